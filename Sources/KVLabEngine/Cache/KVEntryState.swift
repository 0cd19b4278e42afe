import KVLabMethods

/// The state of one kept entry of one (layer, KV head), as the cache holds it now.
public struct KVEntryState: Sendable, Hashable {
    /// The token position.
    public var position: Int
    /// Whether its key and its value are stored quantized (record members); false while they wait
    /// at fp32 in the residual window, for their group, in a prompt or as protected sinks.
    public var keyQuantized: Bool
    public var valueQuantized: Bool
    /// Whether the last attention step read it: every kept entry under dense attention, only the
    /// entries a sparse mode listed otherwise (topk: the union of its query heads' choices).
    public var read: Bool
    /// Whether the last step fetched it from host DRAM (a block-retrieval miss).
    public var fetched: Bool

    public init(position: Int, keyQuantized: Bool, valueQuantized: Bool, read: Bool, fetched: Bool) {
        self.position = position
        self.keyQuantized = keyQuantized
        self.valueQuantized = valueQuantized
        self.read = read
        self.fetched = fetched
    }
}

/// What each (layer, KV head)'s last attention step read and fetched, by position: positions
/// outlive the slot moves of eviction, so `PagedKVCache.entryStates` can answer after the step's
/// policy ran. Recording costs a store per listed entry (none under dense attention).
final class StepReadLog {
    private let heads: Int
    private let capacity: Int
    private let arena = BufferArena()
    /// Per head: entries listed at the last step, or −1 when it read every visible entry.
    private let readCounts: UnsafeMutablePointer<Int>
    private let readPositions: UnsafeMutablePointer<Int32>
    private let fetchCounts: UnsafeMutablePointer<Int>
    private let fetchPositions: UnsafeMutablePointer<Int32>

    init(layout: KVLayout) {
        heads = layout.layerCount * layout.kvHeadCount
        capacity = layout.capacity
        readCounts = arena.allocate(count: heads, repeating: 0)
        readPositions = arena.allocate(Int32.self, count: heads * capacity)
        fetchCounts = arena.allocate(count: heads, repeating: 0)
        fetchPositions = arena.allocate(Int32.self, count: heads * capacity)
    }

    /// Nothing read or fetched yet (a new sequence).
    func reset() {
        readCounts.update(repeating: 0, count: heads)
        fetchCounts.update(repeating: 0, count: heads)
    }

    /// A step of head `index` starts: nothing fetched yet.
    @inline(__always)
    func beginStep(index: Int) { fetchCounts[index] = 0 }

    /// The step read every visible entry.
    @inline(__always)
    func readAll(index: Int) { readCounts[index] = -1 }

    /// The step read the `count` slots of `slots`, whose positions are in `slotPositions`.
    @inline(__always)
    func read(index: Int, slots: UnsafePointer<Int32>, count: Int, slotPositions: UnsafePointer<Int32>) {
        let out = readPositions + index * capacity
        for n in 0..<count { out[n] = slotPositions[Int(slots[n])] }
        readCounts[index] = count
    }

    @inline(__always)
    func fetched(index: Int, position: Int32) {
        fetchPositions[index * capacity + fetchCounts[index]] = position
        fetchCounts[index] += 1
    }

    /// The positions head `index` read at its last step (nil: every visible entry) and fetched.
    func lastStep(index: Int) -> (read: Set<Int32>?, fetched: Set<Int32>) {
        let reads = readCounts[index]
        let read = reads < 0 ? nil : Set(UnsafeBufferPointer(start: readPositions + index * capacity, count: reads))
        return (read, Set(UnsafeBufferPointer(start: fetchPositions + index * capacity, count: fetchCounts[index])))
    }
}
