import Foundation
import KVLabFoundation

/// Runs a plan's cells into a store: in a `kvlab sweep worker` process, fed cell indices by the
/// local executor, or given a slice of them by a Slurm array task.
public final class SweepWorker {
    public let store: ResultStore
    public let cells: [SweepCell]
    private let runner: CellRunner
    private let executor: String

    public init(store: ResultStore, plan: String, executor: String) throws {
        self.store = store
        cells = try ResultStore.loadPlan(plan)
        self.executor = executor
        runner = CellRunner(executor: executor)
    }

    /// Runs cell `index` unless it is done, and writes its result or its failure. True when it
    /// finished (now or before).
    @discardableResult
    public func run(_ index: Int) throws -> Bool {
        guard cells.indices.contains(index) else { throw SweepError("cell \(index) is not in the plan (\(cells.count) cells)") }
        let cell = cells[index]
        if store.isDone(cell.id) { return true }
        do {
            try store.write(try runner.run(cell))
            return true
        } catch {
            try store.write(CellFailure(cell: cell, error: "\(error)", executor: executor))
            return false
        }
    }

    /// The local executor's protocol: a cell index per line on standard input, answered by `ok N`
    /// or `failed N` on standard output once its file is written; ends at the end of the input.
    public func serve() throws {
        while let line = readLine() {
            guard let index = Int(line) else { throw SweepError("worker: '\(line)' is not a cell index") }
            let finished = try run(index)
            FileHandle.standardOutput.write(Data("\(finished ? "ok" : "failed") \(index)\n".utf8))
        }
    }

    /// Slice `slice` of `slices` of `indices`, in order: contiguous chunks, the first ones one longer.
    public static func slice(_ indices: [Int], _ slice: Int, of slices: Int) -> ArraySlice<Int> {
        let base = indices.count / slices, extra = indices.count % slices
        let start = slice * base + min(slice, extra)
        return indices[start..<(start + base + (slice < extra ? 1 : 0))]
    }
}
