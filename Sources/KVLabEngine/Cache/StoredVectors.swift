import KVLabMethods

/// One layer's keys and values in the page store, read back for a policy as attention scores
/// them (Hadamard-rotated keys turned back), each read counted in `ledger`.
final class StoredVectors: EntryVectors {
    private let store: PageStore
    private let layer: Int
    /// Reads since the last `moveReads`.
    private var ledger = IOLedger()

    init(store: PageStore, layer: Int) {
        self.store = store
        self.layer = layer
    }

    var headDim: Int { store.layout.headDim }

    /// Adds the reads counted so far to `total` and starts counting anew.
    func moveReads(to total: inout IOLedger) {
        total.add(ledger)
        ledger = IOLedger()
    }

    func key(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>) {
        let index = layer * store.layout.kvHeadCount + head
        out.update(from: store.key(index: index, slot: Int(slot)), count: headDim)
        if store.scoresRotated { Hadamard.transform(out, count: headDim) }
        store.countRead(key: true, index: index, slot: Int(slot), ledger: &ledger)
    }

    func value(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>) {
        let index = layer * store.layout.kvHeadCount + head
        out.update(from: store.value(index: index, slot: Int(slot)), count: headDim)
        store.countRead(key: false, index: index, slot: Int(slot), ledger: &ledger)
    }
}
