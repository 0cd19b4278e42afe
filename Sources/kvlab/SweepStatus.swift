import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabSweep

/// `kvlab sweep status`: how far each plan of a store has got.
struct SweepStatus: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Cells done, failed and not run, per plan of a store.")

    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let store = try storeOptions.open()
        let done = store.doneIDs(), failed = store.failedIDs()
        for plan in store.plans() {
            let cells = try singleLineErrors { try ResultStore.loadPlan(plan) }
            let ids = cells.map(\.id)
            let d = ids.filter(done.contains).count, f = ids.filter(failed.contains).count
            print("\((plan as NSString).lastPathComponent): \(cells.count) cells, \(d) done, \(f) failed, \(cells.count - d - f) not run")
        }
        for failure in try singleLineErrors({ try store.failures() }) {
            print("failed \(failure.id) (\(failure.cell.label), \(failure.cell.probe)): \(failure.error)")
        }
    }
}
