import KVLabMethods

/// One layer's keys and values in the page store, read back for a policy as attention scores
/// them (Hadamard-rotated keys turned back), each read counted in `ledger`.
final class StoredVectors: EntryVectors {
    private let store: PageStore
    private let layer: Int
    /// Reads since the last `moveReads`.
    private var ledger = IOLedger()

    /// The layer's RoPE at any position (queries' averaged rotations reach past the context).
    private let rope: RoPETable
    private let angles: UnsafeMutablePointer<Float>
    let queries: RecordedQueries
    /// Decodes the layer's output projection (`PagedKVCache.outputProjection`).
    var projection: (() -> [Float])?

    init(store: PageStore, layer: Int) {
        self.store = store
        self.layer = layer
        let layout = store.layout
        rope = RoPETable(layout.ropes[layer], headDim: layout.headDim)
        angles = .allocate(capacity: 2 * layout.headDim)
        queries = RecordedQueries(width: layout.kvHeadCount * layout.groupSize * layout.headDim)
    }

    deinit { angles.deallocate() }

    var headDim: Int { store.layout.headDim }

    func products(_ a: UnsafePointer<Float>, rows: Int, stride: Int, _ b: UnsafePointer<Float>, columns: Int, into out: UnsafeMutablePointer<Float>) {
        BLAS.multiplyTransposed(m: rows, n: columns, k: headDim, a: a, lda: stride, b: b, ldb: headDim, c: out, ldc: columns)
    }

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

    func setValue(head: Int, slot: Int32, from vector: UnsafePointer<Float>) {
        store.write(vector, key: false, index: layer * store.layout.kvHeadCount + head, slot: Int(slot), ledger: &ledger)
    }

    func rotary(head: Int, slot: Int32) -> Int {
        Int(store.slotRotary[(layer * store.layout.kvHeadCount + head) * store.capacity + Int(slot)])
    }

    func rotate(_ vectors: UnsafeMutablePointer<Float>, count: Int, position: Int, inverse: Bool) {
        let hd = headDim, half = hd / 2
        rope.fill(position: position, cos: angles, sin: angles + half)
        if inverse { for i in 0..<half { angles[half + i] = -angles[half + i] } }
        Ops.rotate(vectors, heads: count, headDim: hd, style: store.layout.ropeStyle, cos: angles, sin: angles + half)
    }

    func outputProjection() -> [Float]? { projection?() }
}
