import KVLabMethods

/// The storage side of eviction: the slots a policy released are freed (after merging, with the
/// `merge` modifier) and refilled from the tail, so slots stay without holes.
extension PageStore {
    /// Frees the storage of the slots a policy released (merging first when `merging`) and
    /// refills each with the last slot.
    func reclaim(index: Int, entries: HeadEntries, merging: Bool, ledger: inout IOLedger) {
        guard entries.releasedCount > 0 else { return }
        let base = index * capacity, pageSize = Self.pageSize
        // Highest slot first: each freed slot is then refilled from a tail slot that is live.
        var freed = UnsafeMutableBufferPointer(start: entries.released, count: entries.releasedCount)
        // Insertion sort does not allocate (decode frees a few slots a step); a sliding window's
        // trim after a long prompt frees hundreds, in ascending order, its worst case.
        if freed.count > 64 { freed.sort(by: >) } else { freed.insertionSort(by: >) }
        if merging { for slot in freed { merge(slot: Int(slot), index: index, entries: entries, ledger: &ledger) } }
        // Which kept entry each slot holds, so a refill re-points its entry without a search.
        for i in 0..<entries.count { entryOfSlot[Int(slots[base + i])] = Int32(i) }
        var count = counts[index]
        // Each freed slot re-summarizes up to two pages; when that would cost more than summarizing
        // what stays (a long prompt leaving a sliding window), every page is summarized once at the end.
        let bulk = 2 * freed.count * pageSize > count - freed.count
        for freedSlot in freed {
            let slot = Int(freedSlot), last = count - 1
            release(index: index, slot: slot, slotsInUse: count, ledger: &ledger)
            if slot != last {
                let from = base + last, to = base + slot
                slotPositions[to] = slotPositions[from]
                slotRotary[to] = slotRotary[from]
                keyLocations[to] = keyLocations[from]
                valueLocations[to] = valueLocations[from]
                mergeCounts[to] = mergeCounts[from]
                receivedScores[to] = receivedScores[from]
                let pageSlot = Int(max(keyLocations[to], valueLocations[to]))
                if pageSlot >= 0 { pageOwners[base + pageSlot] = Int32(slot) }
                let entry = Int(entryOfSlot[last])
                slots[base + entry] = Int32(slot)
                entryOfSlot[slot] = Int32(entry)
            }
            count -= 1
            counts[index] = count
            if bulk { continue }
            if count % pageSize != 0 { summarize(index: index, page: last / pageSize) }
            if slot < count { summarize(index: index, page: slot / pageSize) }
        }
        if bulk { summarizeAll(index: index) }
    }

    /// CaM/D2O merge: the evicted entry in `slot` is averaged into the kept entry whose key is
    /// most cosine-similar, weighted by how many entries that one already holds. A quantized
    /// target's record is re-encoded with the merged vectors.
    private func merge(slot: Int, index: Int, entries: HeadEntries, ledger: inout IOLedger) {
        guard entries.count > 0 else { return }
        let hd = layout.headDim, base = index * capacity
        beginReads()
        mergeKey.update(from: key(index: index, slot: slot), count: hd)
        countRead(key: true, index: index, slot: slot, ledger: &ledger)
        var evictedNorm: Float = 0
        for c in 0..<hd { evictedNorm += mergeKey[c] * mergeKey[c] }
        evictedNorm = evictedNorm.squareRoot()
        var best = 0, bestSimilarity = -Float.infinity
        for i in 0..<entries.count {
            let s = Int(slots[base + i])
            let key = key(index: index, slot: s)
            countRead(key: true, index: index, slot: s, ledger: &ledger)
            var dot: Float = 0
            for c in 0..<hd { dot += key[c] * mergeKey[c] }
            let similarity = dot / max(keyNorms[base + i] * evictedNorm, .leastNormalMagnitude)
            if similarity > bestSimilarity {
                best = i
                bestSimilarity = similarity
            }
        }
        let target = Int(slots[base + best])
        let n = mergeCounts[base + target]
        let targetKey = key(index: index, slot: target)
        var norm: Float = 0
        for c in 0..<hd {
            mergeKey[c] = (n * targetKey[c] + mergeKey[c]) / (n + 1)
            norm += mergeKey[c] * mergeKey[c]
        }
        mergeValue.update(from: value(index: index, slot: slot), count: hd)
        let targetValue = value(index: index, slot: target)
        for c in 0..<hd { mergeValue[c] = (n * targetValue[c] + mergeValue[c]) / (n + 1) }
        countRead(key: false, index: index, slot: slot, ledger: &ledger)
        countRead(key: false, index: index, slot: target, ledger: &ledger)
        write(mergeKey, key: true, index: index, slot: target, ledger: &ledger)
        write(mergeValue, key: false, index: index, slot: target, ledger: &ledger)
        keyNorms[base + best] = norm.squareRoot()
        mergeCounts[base + target] = n + 1
        summarize(index: index, page: target / Self.pageSize)
    }
}
