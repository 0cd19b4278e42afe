import KVLabMethods

/// What one (layer, KV head) of the cache holds, read on request by the screens, `--kept-out`
/// and the tests; the decode step never calls these.
extension PagedKVCache {
    public func entryCount(layer: Int, head: Int) -> Int { store.counts[layer * layout.kvHeadCount + head] }

    /// Positions kept by one (layer, KV head), oldest first.
    public func keptPositions(layer: Int, head: Int) -> [Int] {
        let index = layer * layout.kvHeadCount + head
        return (0..<store.counts[index]).map { Int(store.positions[index * store.capacity + $0]) }
    }

    /// The state of each entry one (layer, KV head) keeps, oldest first: its position, whether
    /// its key and value are stored quantized, and whether the last attention step read it or
    /// fetched it from host. Built on request; the step only logs what a sparse mode listed.
    public func entryStates(layer: Int, head: Int) -> [KVEntryState] {
        let index = layer * layout.kvHeadCount + head, base = index * store.capacity
        let (read, fetched) = log.lastStep(index: index)
        return (0..<store.counts[index]).map { i in
            let slot = Int(store.slots[base + i]), position = store.positions[base + i]
            return KVEntryState(position: Int(position), keyQuantized: store.isQuantized(key: true, index: index, slot: slot),
                                valueQuantized: store.isQuantized(key: false, index: index, slot: slot),
                                read: read?.contains(position) ?? true, fetched: fetched.contains(position))
        }
    }

    /// The key and value of the `entry`-th kept entry (position order) of one (layer, KV head), as
    /// attention reads them (decoded when quantized), the key in the model's frame (after RoPE,
    /// not Hadamard-transformed, zero in channels `think` pruned).
    public func entry(layer: Int, head: Int, _ entry: Int) -> (key: [Float], value: [Float]) {
        let index = layer * layout.kvHeadCount + head
        precondition(entry >= 0 && entry < store.counts[index], "no such entry")
        let slot = Int(store.slots[index * store.capacity + entry])
        var key = Array(UnsafeBufferPointer(start: store.key(index: index, slot: slot), count: layout.headDim))
        if store.scoresRotated { key.withUnsafeMutableBufferPointer { Hadamard.transform($0.baseAddress!, count: $0.count) } }
        return (key, Array(UnsafeBufferPointer(start: store.value(index: index, slot: slot), count: layout.headDim)))
    }

    /// Token budget of one (layer, KV head) under the current method; nil when unbounded.
    public func budget(layer: Int, head: Int) -> Int? { policy.budget(layer: layer, head: head) }

    /// The kept key channels of one (layer, KV head), ascending, while `think` has keys pruned; nil otherwise.
    public func keptChannels(layer: Int, head: Int) -> [Int]? {
        guard store.keysPruned else { return nil }
        let kept = store.keptChannels + (layer * layout.kvHeadCount + head) * layout.headDim
        return (0..<store.keyWidth).map { Int(kept[$0]) }
    }
}
