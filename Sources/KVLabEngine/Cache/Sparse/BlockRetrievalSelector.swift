import KVLabMethods

/// Block retrieval (`BlockRetrieval`): the sinks and the local window always; of the past
/// blocks, the `top` whose representative keys score highest (group-summed q·k, best
/// representative). A block not in the HBM block cache is fetched from host DRAM (counted on the
/// DRAM→HBM link, and logged as fetched).
final class BlockRetrievalSelector: SparseSelector {
    let retrieval: BlockRetrieval

    init(_ retrieval: BlockRetrieval) { self.retrieval = retrieval }

    var needsProbabilities: Bool { true }

    func reset() { retrieval.reset() }

    func select(_ step: SparseStep, attention: CacheAttention, log: StepReadLog, ledger: inout IOLedger) -> Int {
        let store = attention.store, retrieval = self.retrieval
        let hd = store.layout.headDim, group = store.layout.groupSize, base = step.index * store.capacity
        let index = step.index, visible = step.visible, position = step.position, q = step.queries
        let kept = store.positions + base
        let scores = attention.sortScratch, marks = attention.selectedMarks
        if step.scoring { attention.maskScores(visible: visible) }
        retrieval.beginStep()
        retrieval.formBlocks(head: index, at: position, kept: kept, count: visible)
        func groupScore(slot: Int) -> Float {
            let key = store.key(index: index, slot: slot)
            var sum: Float = 0
            for g in 0..<group {
                let query = q + g * hd
                var dot: Float = 0
                for c in 0..<hd { dot += query[c] * key[c] }
                sum += dot
            }
            return sum * attention.scale
        }
        // Logical index of a kept position (entries are in position order), or nil if evicted.
        func find(_ position: Int32) -> Int? {
            var low = 0, high = visible
            while low < high {
                let mid = (low + high) / 2
                if kept[mid] < position { low = mid + 1 } else { high = mid }
            }
            return low < visible && kept[low] == position ? low : nil
        }
        let past = retrieval.pastBlocks(at: position)
        for b in 0..<past {
            let representatives = retrieval.representatives(head: index, block: b)
            var best = -Float.infinity
            for r in 0..<retrieval.representatives where representatives[r] >= 0 {
                guard let i = find(representatives[r]) else { continue }
                let slot = Int(store.slots[base + i])
                best = max(best, groupScore(slot: slot))
                store.countRead(key: true, index: index, slot: slot, ledger: &ledger)
            }
            scores[b] = best
            marks[b] = false
        }
        // The best blocks with any representative left; ties go to the older block.
        for _ in 0..<min(retrieval.top, past) {
            var choice = -1
            for b in 0..<past where !marks[b] && scores[b] > -Float.infinity
                && (choice < 0 || scores[b] > scores[choice]) { choice = b }
            guard choice >= 0 else { break }
            marks[choice] = true
        }
        var n = 0
        for i in 0..<visible {
            let p = Int(kept[i])
            let slot = Int(store.slots[base + i])
            if !retrieval.alwaysRead(p, at: position) {
                let b = retrieval.block(of: p)!
                guard marks[b] else { continue }
                // First member of a chosen block this step: a miss brings every kept member over.
                if scores[b] != .infinity {
                    scores[b] = .infinity
                    if retrieval.touch(head: index, block: b) {
                        var keyBytes = 0, valueBytes = 0
                        for j in i..<visible where retrieval.block(of: Int(kept[j])) == b {
                            keyBytes += store.storedBytes(key: true, index: index, slot: Int(store.slots[base + j]))
                            valueBytes += store.storedBytes(key: false, index: index, slot: Int(store.slots[base + j]))
                            log.fetched(index: index, position: kept[j])
                        }
                        ledger.fetch(.keys, keyBytes)
                        ledger.fetch(.values, valueBytes)
                    }
                }
            }
            if step.scoring { attention.scoreSlot(index: index, queries: q, slot: slot) }
            attention.selectedSlots[n] = Int32(slot)
            n += 1
        }
        return n
    }

    /// Attention received while read picks a block's representatives when it leaves the window.
    func afterAttention(_ step: SparseStep, read: Int, attention: CacheAttention) {
        let store = attention.store, group = store.layout.groupSize
        for n in 0..<read {
            let slot = Int(attention.selectedSlots[n])
            var received: Float = 0
            for g in 0..<group { received += attention.probabilities[g * attention.scoreStride + slot] }
            retrieval.addReceived(head: step.index, position: Int(store.slotPositions[step.index * store.capacity + slot]), received)
        }
    }
}
