import Foundation
import KVLabFoundation

/// Runs cells in `kvlab sweep worker` child processes on this machine, each fed one cell index at
/// a time, so the cells balance across workers. A worker that dies mid-cell (a crash, a kill) has
/// its cell recorded as failed and is replaced; an interrupt stops handing out cells and ends the
/// workers, whose unfinished cells simply have no result (the next run does them).
public final class LocalExecutor: @unchecked Sendable {
    public struct Progress: Sendable {
        public var done: Int
        public var failed: Int
        public var total: Int
        public var elapsed: Double
        /// Cells finished (or failed) by this run.
        public var completedNow: Int
        public var cellsPerSecond: Double { elapsed > 0 ? Double(completedNow) / elapsed : 0 }
        public var remainingSeconds: Double? { cellsPerSecond > 0 ? Double(total - done - failed) / cellsPerSecond : nil }
    }

    private let binary: String
    private let store: ResultStore
    private let plan: String
    private let cells: [SweepCell]
    private let workers: Int
    private let lock = NSLock()
    private var queue: [Int] = []
    private var running: [Process] = []
    private var interrupted = false
    private var progress: Progress

    /// `binary` is the kvlab executable the workers run; `alreadyDone` counts the plan's cells finished before.
    public init(binary: String, store: ResultStore, plan: String, cells: [SweepCell], workers: Int, todo: [Int], alreadyDone: Int) {
        self.binary = binary
        self.store = store
        self.plan = plan
        self.cells = cells
        self.workers = max(1, min(workers, todo.count))
        queue = todo.reversed()
        progress = Progress(done: alreadyDone, failed: 0, total: cells.count, elapsed: 0, completedNow: 0)
    }

    /// Runs every queued cell (or until `interrupt()`), calling `report` after each; returns the final progress.
    public func run(report: @escaping @Sendable (Progress) -> Void) -> (progress: Progress, interrupted: Bool) {
        let started = Date()
        let group = DispatchGroup()
        for slot in 0..<workers {
            group.enter()
            Thread.detachNewThread { [self] in
                feed(slot: slot, started: started, report: report)
                group.leave()
            }
        }
        group.wait()
        return lock.withLock { (progress, interrupted) }
    }

    /// Stops handing out cells and interrupts the workers (their cells in flight are left undone).
    public func interrupt() {
        let processes = lock.withLock {
            interrupted = true
            return running
        }
        for process in processes where process.isRunning { process.interrupt() }
    }

    private func next() -> Int? {
        lock.withLock { interrupted ? nil : queue.popLast() }
    }

    private func feed(slot: Int, started: Date, report: @Sendable (Progress) -> Void) {
        var worker: (process: Process, input: FileHandle, output: LineReader)?
        while let index = next() {
            var finished = false
            if worker == nil {
                do { worker = try spawn(slot: slot) } catch {
                    record(CellFailure(cell: cells[index], error: "cannot start a worker: \(error)", executor: "local"))
                }
            }
            if let (process, input, output) = worker {
                try? input.write(contentsOf: Data("\(index)\n".utf8))
                if let line = output.readLine(), line == "ok \(index)" || line == "failed \(index)" {
                    finished = line.hasPrefix("ok")
                } else {
                    // The worker died with this cell in flight.
                    try? input.close()
                    process.waitUntilExit()
                    worker = nil
                    let wasInterrupted = lock.withLock { interrupted }
                    if wasInterrupted || (process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGINT) { break }
                    let how = process.terminationReason == .uncaughtSignal ? "signal \(process.terminationStatus)" : "status \(process.terminationStatus)"
                    record(CellFailure(cell: cells[index], error: "its worker exited (\(how)) while running it", executor: "local"))
                }
            }
            let snapshot = lock.withLock {
                if finished { progress.done += 1 } else { progress.failed += 1 }
                progress.completedNow += 1
                progress.elapsed = Date().timeIntervalSince(started)
                return progress
            }
            report(snapshot)
        }
        if let worker {
            try? worker.input.close()
            worker.process.waitUntilExit()
        }
    }

    private func record(_ failure: CellFailure) {
        try? store.write(failure)
    }

    private func spawn(slot: Int) throws -> (Process, FileHandle, LineReader) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["sweep", "worker", "--store", store.directory, "--plan", plan]
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        let log = store.directory + "/worker-\(slot).log"
        if !FileManager.default.fileExists(atPath: log) { _ = FileManager.default.createFile(atPath: log, contents: nil) }
        let errors = FileHandle(forWritingAtPath: log)
        _ = try? errors?.seekToEnd()
        process.standardError = errors ?? FileHandle.nullDevice
        try lock.withLock {
            guard !interrupted else { throw SweepError("interrupted") }
            try process.run()
            running.append(process)
        }
        return (process, input.fileHandleForWriting, LineReader(output.fileHandleForReading))
    }
}

/// Lines from a pipe, read as they come.
final class LineReader {
    private let handle: FileHandle
    private var buffer = Data()

    init(_ handle: FileHandle) { self.handle = handle }

    /// The next line without its newline, or nil at the end of the input.
    func readLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer = Data(buffer[(newline + 1)...])
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}
