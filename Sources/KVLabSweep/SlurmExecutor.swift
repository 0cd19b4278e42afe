import Foundation
import KVLabFoundation

/// Runs cells as one Slurm job array: each array task runs a contiguous slice of the cells into
/// the store, which must be on a file system the nodes share. Each submission is recorded in
/// `slurm/jobs/JOB.json`, so `sweep status` can match the queue's tasks to cells.
public enum SlurmExecutor {
    /// How to submit: what `sbatch` is given beside the array and the script.
    public struct Options: Sendable {
        public var partition: String?
        public var time: String?
        public var cpusPerTask: Int?
        /// Further `sbatch` options, passed as they are (e.g. `--account=lab`, `--mem=4G`).
        public var extra: [String] = []
        /// Array tasks (default: one per 4 cells, at most 1000).
        public var tasks: Int?
        /// Block until the array finishes (`sbatch --wait`).
        public var wait = false

        public init() {}
    }

    /// One `sbatch --array` submission.
    public struct Submission: Codable, Sendable, Equatable {
        public var job: String
        public var plan: String
        /// Cell indices into the plan, sliced across the tasks in order.
        public var todo: [Int]
        public var tasks: Int
        public var submitted: String
    }

    /// Submits `todo` (indices into the cells of `plan`) as one job array and records it.
    public static func submit(store: ResultStore, plan: String, todo: [Int], binary: String, options: Options) throws -> Submission {
        let directory = absolute(store.directory)
        let tasks = max(1, min(options.tasks ?? (todo.count + 3) / 4, todo.count, 1000))
        let stamp = String(format: "%.0f-%d", Date().timeIntervalSince1970 * 1000, getpid())
        let slurmDirectory = directory + "/slurm"
        let todoPath = slurmDirectory + "/\(stamp).todo.json"
        let script = slurmDirectory + "/\(stamp).sh"
        try OutputFile.write(try JSONDocument.encoder().encode(todo), to: todoPath)
        let command = [binary, "sweep", "worker", "--store", directory, "--plan", absolute(plan), "--todo", todoPath, "--slices", "\(tasks)"]
        try OutputFile.write(Data("""
            #!/bin/sh
            # kvlab sweep: array task $SLURM_ARRAY_TASK_ID runs its slice of the cells into the store.
            exec \(command.map(shellQuoted).joined(separator: " "))

            """.utf8), to: script)
        var arguments = ["--parsable", "--array=0-\(tasks - 1)", "--job-name=kvlab-sweep", "--output=\(slurmDirectory)/%A_%a.out"]
        if let partition = options.partition { arguments.append("--partition=\(partition)") }
        if let time = options.time { arguments.append("--time=\(time)") }
        if let cpus = options.cpusPerTask { arguments.append("--cpus-per-task=\(cpus)") }
        arguments += options.extra
        if options.wait { arguments.append("--wait") }
        arguments.append(script)
        let result = try run("sbatch", arguments)
        // --parsable prints `JOB` or `JOB;CLUSTER`; with --wait a status line may follow.
        guard let job = result.output.split(separator: "\n").first?.split(separator: ";").first.map(String.init),
              job.allSatisfy(\.isNumber), !job.isEmpty else {
            throw SweepError("sbatch failed (status \(result.status)): \(firstLine(result.error.isEmpty ? result.output : result.error))")
        }
        let submission = Submission(job: job, plan: absolute(plan), todo: todo, tasks: tasks,
                                    submitted: ISO8601DateFormatter().string(from: Date()))
        try? FileManager.default.createDirectory(atPath: slurmDirectory + "/jobs", withIntermediateDirectories: true)
        try OutputFile.write(try JSONDocument.encoder().encode(submission), to: slurmDirectory + "/jobs/\(job).json")
        if options.wait, result.status != 0 {
            throw SweepError("job \(job) ended with failures (sbatch --wait status \(result.status)); see kvlab sweep status --store \(store.directory)")
        }
        return submission
    }

    /// The store's submissions, oldest first.
    public static func submissions(_ store: ResultStore) throws -> [Submission] {
        let folder = store.directory + "/slurm/jobs"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
        return try names.map { try ResultStore.decode(Submission.self, path: folder + "/" + $0) }
            .sorted { ($0.submitted, Int($0.job) ?? 0) < ($1.submitted, Int($1.job) ?? 0) }
    }

    /// What the queue says of this user's array tasks: job → task → state (`PENDING`, `RUNNING`, …).
    public static func queue() throws -> [String: [Int: String]] {
        let result = try run("squeue", ["--me", "-h", "-r", "-o", "%F %i %T"])
        guard result.status == 0 else { throw SweepError("squeue failed: \(firstLine(result.error))") }
        return parseQueue(result.output)
    }

    /// `squeue -o "%F %i %T"` lines: the array job, the task (`JOB_7`, or a pending array not yet
    /// split, `JOB_[0-3,5%2]`), and its state.
    static func parseQueue(_ text: String) -> [String: [Int: String]] {
        var states: [String: [Int: String]] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let underscore = fields[1].lastIndex(of: "_") else { continue }
            var tasks = fields[1][fields[1].index(after: underscore)...]
            if tasks.hasPrefix("[") { tasks = tasks.dropFirst().prefix { $0 != "]" && $0 != "%" } }
            for range in tasks.split(separator: ",") {
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                guard let low = bounds.first, let high = bounds.last, low <= high else { continue }
                for task in low...high { states[String(fields[0]), default: [:]][task] = String(fields[2]) }
            }
        }
        return states
    }

    /// A cell's state under Slurm.
    public enum CellState: String, Sendable, CaseIterable {
        case done, pending, running, failed
    }

    /// Each submitted cell's state (by id; the latest submission of a cell decides): done when its
    /// result is in the store, pending or running while its array task is queued, failed otherwise
    /// (it threw, or its task ended, was cancelled or timed out without writing it).
    public static func cellStates(store: ResultStore, submissions: [Submission], queue: [String: [Int: String]]) throws
        -> [(submission: Submission, states: [String: CellState])] {
        let done = store.doneIDs()
        var plans: [String: [SweepCell]] = [:]
        return try submissions.map { submission in
            if plans[submission.plan] == nil { plans[submission.plan] = try ResultStore.loadPlan(submission.plan) }
            let cells = plans[submission.plan]!
            var states: [String: CellState] = [:]
            for task in 0..<submission.tasks {
                for index in SweepWorker.slice(submission.todo, task, of: submission.tasks) where cells.indices.contains(index) {
                    let id = cells[index].id
                    if done.contains(id) {
                        states[id] = .done
                    } else if let state = queue[submission.job]?[task] {
                        states[id] = ["PENDING", "REQUEUED", "CONFIGURING"].contains(state) ? .pending : .running
                    } else {
                        states[id] = .failed
                    }
                }
            }
            return (submission, states)
        }
    }

    /// The cells whose latest submission failed them, with their plans' cells.
    public static func failedCells(store: ResultStore) throws -> [SweepCell] {
        let submissions = try Self.submissions(store)
        let states = try cellStates(store: store, submissions: submissions, queue: try queue())
        var latest: [String: CellState] = [:]
        for (_, cellStates) in states { latest.merge(cellStates) { $1 } }
        var seen = Set<String>(), cells: [SweepCell] = []
        for submission in submissions {
            for cell in try ResultStore.loadPlan(submission.plan) where latest[cell.id] == .failed && seen.insert(cell.id).inserted {
                cells.append(cell)
            }
        }
        return cells
    }

    static func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }

    static func shellQuoted(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    static func firstLine(_ text: String) -> String {
        String(text.split(separator: "\n").first ?? "no output").trimmingCharacters(in: .whitespaces)
    }

    /// Runs a Slurm command found on PATH; its output and status.
    static func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String, error: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [tool] + arguments
        // Errors go to a file, so reading the output pipe to its end cannot block on a full error pipe.
        let errorPath = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-\(tool)-\(UUID().uuidString)").path
        guard FileManager.default.createFile(atPath: errorPath, contents: nil), let errorFile = FileHandle(forWritingAtPath: errorPath) else {
            throw SweepError("cannot create a temporary file for \(tool)'s errors")
        }
        defer { try? FileManager.default.removeItem(atPath: errorPath) }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = errorFile
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { throw SweepError("cannot run \(tool): \(error.localizedDescription)") }
        try? errorFile.close()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let errorData = FileManager.default.contents(atPath: errorPath) ?? Data()
        if process.terminationStatus == 127 { throw SweepError("\(tool) is not installed (Slurm's commands must be on PATH)") }
        return (process.terminationStatus, String(decoding: outputData, as: UTF8.self), String(decoding: errorData, as: UTF8.self))
    }
}
