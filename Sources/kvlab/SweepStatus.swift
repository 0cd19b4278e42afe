import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabSweep

/// `kvlab sweep status`: how far each plan of a store has got, and its Slurm jobs' cells.
struct SweepStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Cells done, failed and not run per plan; pending, running, done and failed per Slurm job.")

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let store = try storeOptions.open()
        let done = store.doneIDs(), failed = store.failedIDs()
        if store.plans().isEmpty { print("\(store.directory): no sweep has run here yet") }
        for plan in store.plans() {
            let cells = try singleLineErrors { try ResultStore.loadPlan(plan) }
            let ids = cells.map(\.id)
            let d = ids.filter(done.contains).count, f = ids.filter(failed.contains).count
            print("plan \((plan as NSString).lastPathComponent): \(cells.count) cells, \(d) done, \(f) failed, \(cells.count - d - f) not run")
        }
        let submissions = try singleLineErrors { try SlurmExecutor.submissions(store) }
        if !submissions.isEmpty {
            let queue: [String: [Int: String]]
            do { queue = try SlurmExecutor.queue() } catch let error as SweepError {
                throw CLIError("\(error) (the store has Slurm jobs; run status where squeue reaches their cluster)")
            }
            for (submission, states) in try singleLineErrors({ try SlurmExecutor.cellStates(store: store, submissions: submissions, queue: queue) }) {
                let counts = SlurmExecutor.CellState.allCases.map { state in "\(states.values.filter { $0 == state }.count) \(state)" }
                print("slurm job \(submission.job) (\(submission.todo.count) cells in \(submission.tasks) tasks, submitted \(submission.submitted)): "
                    + counts.joined(separator: ", "))
            }
        }
        for failure in try singleLineErrors({ try store.failures() }) {
            print("failed \(failure.id) (\(failure.cell.label), \(failure.cell.probe)): \(failure.error)")
        }
    }
}
