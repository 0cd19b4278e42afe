import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Writes `message` and a newline to stderr.
func warn(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// How kvlab took one input.
enum Outcome {
    /// Refused with one line naming the file (or, for themes, a diagnostic).
    case clean
    /// Refused, but the message spans lines or does not name the file.
    case unclean(String)
    case accepted
    case crash(String)
    case hang

    /// Whether `message` is one line naming something under `path`.
    static func isClean(_ message: String, path: String) -> Bool {
        !message.contains("") && message.contains(path)
    }
}

/// The child side (`--one`): reads inputs `range` in-process and reports each on stdout, a
/// `start` line before and a `done` line after, so the parent knows which input a crash or hang hit.
enum Child {
    static func run(_ target: FuzzTarget, seed: UInt64, range: Range<Int>, directory: String) -> Never {
        for index in range {
            emit("start \(index)")
            let (chosen, mutation) = target.input(seed: seed, index: index)
            let inputDirectory = directory + "/\(index)"
            let line: String
            do {
                try write(target.companions + [Seed(file: chosen.file, bytes: mutation.bytes)], under: inputDirectory)
                do {
                    try target.read(inputDirectory + "/" + (target.loadPath ?? chosen.file))
                    line = "accepted"
                } catch {
                    let message = "\(error)"
                    line = Outcome.isClean(message, path: inputDirectory) ? "clean" : "unclean " + message.replacingOccurrences(of: "\n", with: " | ").prefix(400)
                }
            } catch {
                warn("kvlab-fuzz: cannot write input \(index) under \(inputDirectory): \(error)")
                exit(2)
            }
            try? FileManager.default.removeItem(atPath: inputDirectory)
            emit("done \(index) \(line)")
        }
        exit(0)
    }

    static func write(_ files: [Seed], under directory: String) throws {
        for file in files {
            let path = directory + "/" + file.file
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(file.bytes).write(to: URL(fileURLWithPath: path))
        }
    }

    /// Unbuffered, so a line is out before a crash can lose it.
    private static func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}

/// Per-format figures, and the inputs worth reporting.
struct Tally {
    var inputs = 0, clean = 0, unclean = 0, crashes = 0, hangs = 0, accepted = 0
    /// Inputs from structure-aware mutators known to be invalid, and how many of those were accepted.
    var corrupt = 0, corruptAccepted = 0
    /// Corrupt-accepted inputs by mutator class (numbers and tensor names folded), with the first index.
    var corruptClasses: [String: (count: Int, first: Int, name: String)] = [:]
    var failures: [String] = []
    var uncleanExamples: [String] = []

    var failed: Bool { crashes + hangs + corruptAccepted > 0 }

    mutating func record(_ outcome: Outcome, index: Int, mutation: Mutation, reproduce: String) {
        inputs += 1
        if mutation.corrupt { corrupt += 1 }
        switch outcome {
        case .clean: clean += 1
        case .unclean(let message):
            unclean += 1
            if uncleanExamples.count < 3 { uncleanExamples.append("input \(index) (\(mutation.name)): \(message)") }
        case .accepted:
            accepted += 1
            if mutation.corrupt {
                corruptAccepted += 1
                let key = Self.mutatorClass(mutation.name)
                let entry = corruptClasses[key] ?? (0, index, mutation.name)
                corruptClasses[key] = (entry.count + 1, entry.first, entry.name)
            }
        case .crash(let how):
            crashes += 1
            failures.append("CRASH (\(how)) input \(index): \(mutation.name); reproduce: \(reproduce)")
        case .hang:
            hangs += 1
            failures.append("HANG input \(index): \(mutation.name); reproduce: \(reproduce)")
        }
    }

    /// A mutation's name with numbers as N and dotted tensor names as T, to group like mutations.
    static func mutatorClass(_ name: String) -> String {
        name.split(separator: " ").map { word -> String in
            let core = word.trimmingCharacters(in: CharacterSet(charactersIn: "[],():'s"))
            if core.contains(".") && core.contains(where: \.isLetter) && !word.hasSuffix(":") { return "T" }
            return word.replacingOccurrences(of: "-?[0-9][0-9.e+]*", with: "N", options: .regularExpression)
        }.joined(separator: " ")
    }
}

/// The parent side: runs a format's inputs in child processes of this executable, `batch` inputs
/// to a child, restarting after the input that crashed or hung.
struct Harness {
    var executable: String
    var seed: UInt64
    var timeoutMilliseconds: Int
    var batch: Int
    /// The first input of a child may wait this long while the child builds its seeds.
    var startupMilliseconds = 120_000

    func run(_ target: FuzzTarget, count: Int) -> Tally {
        var tally = Tally()
        let workDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-fuzz-\(getpid())-\(target.name)").path
        defer { try? FileManager.default.removeItem(atPath: workDirectory) }
        var next = 0
        while next < count {
            let end = min(count, next + batch)
            next = runChild(target, range: next..<end, directory: workDirectory, tally: &tally)
        }
        return tally
    }

    /// Runs one child over `range`; returns the first input it did not settle.
    private func runChild(_ target: FuzzTarget, range: Range<Int>, directory: String, tally: inout Tally) -> Int {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--one", target.name, "--seed", "\(seed)", "--from", "\(range.lowerBound)", "--to", "\(range.upperBound)",
                             "--dir", directory]
        // Crashes are expected here: no backtracer (it would take seconds per crash).
        process.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_BACKTRACE": "enable=no"]) { $1 }
        let output = Pipe()
        process.standardOutput = output
        let errorPath = directory + "/stderr"
        FileManager.default.createFile(atPath: errorPath, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: errorPath)
        do { try process.run() } catch {
            warn("kvlab-fuzz: cannot start \(executable): \(error)")
            exit(2)
        }
        let fd = output.fileHandleForReading.fileDescriptor
        var pending = [UInt8]()
        var current: Int?
        var next = range.lowerBound
        var deadline = Date().addingTimeInterval(Double(startupMilliseconds) / 1000)
        func reproduce(_ index: Int) -> String { "kvlab-fuzz \(target.name) --seed \(seed) --only \(index)" }
        func settle(_ index: Int, _ outcome: Outcome) {
            tally.record(outcome, index: index, mutation: target.input(seed: seed, index: index).mutation, reproduce: reproduce(index))
            current = nil
            next = index + 1
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let wait = max(0, Int(deadline.timeIntervalSinceNow * 1000))
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(wait, Int(Int32.max))))
            if ready == 0 {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                guard let index = current else {
                    warn("kvlab-fuzz: \(target.name) child did not start in \(startupMilliseconds) ms")
                    exit(2)
                }
                settle(index, .hang)
                return next
            }
            let count = read(fd, &buffer, buffer.count)
            if count <= 0 { break }
            pending += buffer[..<count]
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                let words = line.split(separator: " ", maxSplits: 2).map(String.init)
                guard words.count >= 2, let index = Int(words[1]) else { continue }
                if words[0] == "start" {
                    current = index
                    deadline = Date().addingTimeInterval(Double(timeoutMilliseconds) / 1000)
                } else if words.count >= 3 {
                    let verdict = words[2]
                    settle(index, verdict == "accepted" ? .accepted : verdict == "clean" ? .clean : .unclean(String(verdict.dropFirst("unclean ".count))))
                }
            }
        }
        process.waitUntilExit()
        if let index = current {
            let how = process.terminationReason == .uncaughtSignal ? "signal \(process.terminationStatus)" : "exit \(process.terminationStatus)"
            settle(index, .crash(how))
        } else if next < range.upperBound {
            let log = (try? String(contentsOfFile: errorPath, encoding: .utf8)) ?? ""
            warn("kvlab-fuzz: \(target.name) child stopped before input \(next): \(log.suffix(2000))")
            exit(2)
        }
        return next
    }
}
