import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabSweep

/// `kvlab sweep run`: the grid's cells not yet in the store, on local workers or a Slurm job array.
struct SweepRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the grid's cells that the store does not hold yet.",
        discussion: """
        Each cell computes what 'kvlab eval' computes for its configuration (with the full-cache ghost), \
        plus resident KV, traffic per decode step by memory link, measured step latency and the \
        projections named by --project. A finished cell is never run again: rerun the same command \
        after an interrupt (Ctrl-C) or a crash to resume.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var gridOptions: GridOptions

    @Option(name: .long, help: "local (worker processes on this machine) or slurm (one sbatch job array).")
    var executor: Executor = .local

    @Option(name: .long, help: "Local worker processes (default: one per core).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(name: .long, help: "No progress line.")
    var quiet = false

    @Flag(name: .long, help: "Run only the store's failed cells (those that threw, or whose worker or Slurm task ended without a result); no grid needed.")
    var retry = false

    @OptionGroup(title: "Slurm (--executor slurm)") var slurm: SlurmOptions

    func validate() throws {
        try checkRange(workers, 1...256, option: "--workers")
        if let tasks = slurm.arrayTasks { try checkRange(tasks, 1...1000, option: "--array-tasks") }
        if let cpus = slurm.cpusPerTask { try checkRange(cpus, 1...4096, option: "--cpus-per-task") }
        if retry, !gridOptions.isEmpty { throw ValidationError("--retry runs the store's failed cells: give no grid with it") }
    }

    enum Executor: String, ExpressibleByArgument, CaseIterable {
        case local, slurm
    }

    func run() throws {
        let store = try storeOptions.open(creating: true)
        let cells = try retry ? failedCells(store) : gridOptions.cells()
        if cells.isEmpty {
            print("no failed cells in \(store.directory)")
            return
        }
        let plan = try singleLineErrors { try store.savePlan(cells) }
        let done = store.doneIDs()
        let todo = cells.indices.filter { !done.contains(cells[$0].id) }
        let finishedBefore = cells.count - todo.count
        if todo.isEmpty {
            print("\(cells.count) cells, all done in \(store.directory)")
            return
        }
        switch executor {
        case .local: try runLocal(store: store, plan: plan, cells: cells, todo: todo, finishedBefore: finishedBefore)
        case .slurm: try runSlurm(store: store, plan: plan, cells: cells, todo: todo, finishedBefore: finishedBefore)
        }
    }

    /// The failed cells: with Slurm submissions, those their tasks left without a result; and those with a failure record.
    private func failedCells(_ store: ResultStore) throws -> [SweepCell] {
        var cells = try singleLineErrors { try store.failures().map(\.cell) }
        if !(try SlurmExecutor.submissions(store)).isEmpty {
            let ids = Set(cells.map(\.id))
            cells += try SlurmExecutor.failedCells(store: store).filter { !ids.contains($0.id) }
        }
        return cells
    }

    private func runSlurm(store: ResultStore, plan: String, cells: [SweepCell], todo: [Int], finishedBefore: Int) throws {
        var options = SlurmExecutor.Options()
        options.partition = slurm.partition
        options.time = slurm.time
        options.cpusPerTask = slurm.cpusPerTask
        options.extra = slurm.sbatchOption
        options.tasks = slurm.arrayTasks
        options.wait = slurm.wait
        let submission = try SlurmExecutor.submit(store: store, plan: plan, todo: todo, binary: currentExecutable(), options: options)
        print("\(cells.count) cells, \(finishedBefore) done before: submitted \(todo.count) as job \(submission.job) "
            + "(array of \(submission.tasks) tasks)" + (slurm.wait ? ", finished" : "; kvlab sweep status --store \(store.directory) follows it"))
    }

    private func runLocal(store: ResultStore, plan: String, cells: [SweepCell], todo: [Int], finishedBefore: Int) throws {
        print("\(cells.count) cells, \(finishedBefore) done before, running \(todo.count) on \(min(workers, todo.count)) local workers")
        let executor = LocalExecutor(binary: currentExecutable(), store: store, plan: plan, cells: cells, workers: workers, todo: todo,
                                     alreadyDone: finishedBefore)
        // Writing to a worker that died must be an error, not the end of kvlab.
        signal(SIGPIPE, SIG_IGN)
        let sources = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { executor.interrupt() }
            source.resume()
            return source
        }
        let terminal = isatty(STDERR_FILENO) == 1
        let (progress, interrupted) = executor.run { progress in
            guard !quiet else { return }
            let line = Self.progressLine(progress)
            FileHandle.standardError.write(Data((terminal ? "\r\u{1B}[K" + line : line + "\n").utf8))
        }
        for source in sources { source.cancel() }
        if terminal, !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
        let left = progress.total - progress.done
        if interrupted {
            print("interrupted: \(progress.done) of \(progress.total) cells done; run the same command to resume")
            throw ExitCode(130)
        }
        print("\(progress.done) of \(progress.total) cells done in \(store.directory)"
            + (left > 0 ? ", \(left) failed (kvlab sweep status --store \(store.directory) shows why; rerun to retry)" : ""))
        if left > 0 { throw ExitCode(1) }
    }

    /// Options passed to `sbatch`.
    struct SlurmOptions: ParsableArguments {
        @Option(name: .long, help: "Slurm partition (sbatch --partition).")
        var partition: String?

        @Option(name: .long, help: "Time limit of each array task (sbatch --time), e.g. 0:30:00.")
        var time: String?

        @Option(name: .long, help: "CPUs per array task (sbatch --cpus-per-task).")
        var cpusPerTask: Int?

        @Option(name: .long, help: "Array tasks the cells are sliced into (default: one per 4 cells, at most 1000).")
        var arrayTasks: Int?

        @Option(name: .long, parsing: .unconditionalSingleValue, help: "Another sbatch option, passed as it is (repeat), e.g. --sbatch-option=--mem=4G.")
        var sbatchOption: [String] = []

        @Flag(name: .long, help: "Wait for the job array to finish (sbatch --wait).")
        var wait = false
    }

    /// `[ 12/48] 25% 0.84 cells/s, ETA 0:43 (1 failed)`.
    static func progressLine(_ p: LocalExecutor.Progress) -> String {
        let width = String(p.total).count
        let done = String(repeating: " ", count: max(0, width - String(p.done).count)) + "\(p.done)"
        var line = "[\(done)/\(p.total)] \(p.total > 0 ? 100 * p.done / p.total : 100)% "
            + String(format: "%.2f cells/s", p.cellsPerSecond)
        if let eta = p.remainingSeconds { line += ", ETA " + duration(eta) }
        if p.failed > 0 { line += " (\(p.failed) failed)" }
        return line
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
