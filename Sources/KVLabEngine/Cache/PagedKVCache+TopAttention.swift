/// Where each query head looked most at a step, for `kvlab heads`' retrieval-head detection.
extension PagedKVCache {
    /// After a decode step's attention over KV head `index`'s `visible` entries: each of its query
    /// heads' most-attended position (ties to the older entry) into `topAttention`.
    func noteTopAttention(index: Int, visible: Int) {
        let group = layout.groupSize, capacity = store.capacity
        let slots = store.slots + index * capacity
        for g in 0..<group {
            let row = attention.probabilities + g * attention.scoreStride
            var best = -1, top = -Float.infinity
            for i in 0..<visible where row[Int(slots[i])] > top {
                top = row[Int(slots[i])]
                best = i
            }
            topAttention[index * group + g] = best < 0 ? -1 : store.positions[index * capacity + best]
        }
    }
}
