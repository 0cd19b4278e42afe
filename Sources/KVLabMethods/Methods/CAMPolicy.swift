/// CaM (Zhang et al., ICML 2024) as KVCache-Factory's `CAMKVCluster` applies it to a prompt of
/// `n ≥ budget` entries (a shorter prompt is left whole): score each entry by the attention the
/// last `observation` queries pay it (summed, no pooling), then walk the prompt as CaM's
/// streaming cache would, merging the value of each entry that leaves a `W = observation`-entry
/// recent window into the W entries after it, and finally keep the `budget − W` best-scored
/// entries before the window plus the window.
///
/// The merge, for t = S + W … n − 1 with S = ⌈start · n⌉ and p = t − W, in order (so a merged
/// value carries what earlier merges added to it): with probability
/// `score[p] / max(score[0..<S] ∪ score[p..<t])`, drawn from a generator seeded by `seed`, layer
/// and head, `value[q] += value[p] / W` for q = p + 1 … t. Keys are never merged; entries before S
/// never merge into later ones. Scores are kvlab's `s_t` sums over the KV head's query heads
/// (KVCache-Factory's `kv_head` layout with `gqa_score_agg=mean`, up to a factor that neither
/// ranking nor the ratio sees); ties keep the older entry.
package final class CAMPolicy: EvictionPolicy {
    package let budgetTokens: Int
    package let observation: Int
    package let start: Double
    package let seed: UInt64
    private let kvHeadCount: Int

    package init(budget: Int, observation: Int, start: Double, seed: UInt64, layout: KVLayout) {
        budgetTokens = budget
        self.observation = observation
        self.start = start
        self.seed = seed
        kvHeadCount = layout.kvHeadCount
    }

    package var needsScores: Bool { false }
    package var batchedPrefill: Bool { true }
    package var prefillObservation: Int { observation }
    package var stateBytesPerEntry: Int { 4 }
    package func budget(layer: Int, head: Int) -> Int? { budgetTokens }
    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}

    package func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {
        guard queryPosition >= promptEnd - observation else { return }
        for i in 0..<entries.count { entries.scores[i] += entries.stepScores[i] }
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: any EntryVectors) {
        let boundary = Int32(promptEnd - observation)
        for h in heads.indices {
            defer { for j in 0..<heads[h].count { heads[h].scores[j] = 0 } }
            let e = heads[h], n = e.count
            guard n >= budgetTokens else { continue }
            let merged = mergeValues(e, vectors: vectors, head: h, generator: Xoshiro256(seed: seed &+ UInt64(layer * kvHeadCount + h) &* 0x9E37_79B9_7F4A_7C15))
            var past = 0
            while past < n, e.positions[past] < boundary { past += 1 }
            let ranked = (0..<past).sorted { e.scores[$0] != e.scores[$1] ? e.scores[$0] > e.scores[$1] : $0 < $1 }
            var keep = [Bool](repeating: false, count: n)
            for i in ranked.prefix(budgetTokens - observation) { keep[i] = true }
            for i in past..<n { keep[i] = true }
            // Kept entries take their merged values; the rest leave.
            if let merged {
                merged.values.withUnsafeBufferPointer { values in
                    for i in 0..<n where keep[i] && merged.changed[i] {
                        vectors.setValue(head: h, slot: e.slots[i], from: values.baseAddress! + i * vectors.headDim)
                    }
                }
            }
            for i in (0..<n).reversed() where !keep[i] { heads[h].evict(i) }
        }
    }

    /// Every entry's value after CaM's merge walk (nil when no entry merges), and which changed.
    private func mergeValues(_ e: HeadEntries, vectors: any EntryVectors, head: Int, generator: Xoshiro256) -> (values: [Float], changed: [Bool])? {
        let n = e.count, w = observation, d = vectors.headDim
        let s = Int((start * Double(n)).rounded(.up))
        guard s + w < n else { return nil }
        var generator = generator
        var values = vectors.gather(head: head, e, keys: false)
        var changed = [Bool](repeating: false, count: n)
        var startMax = -Float.infinity
        for i in 0..<s { startMax = max(startMax, e.scores[i]) }
        var any = false
        for t in (s + w)..<n {
            let p = t - w
            var top = startMax
            for i in p..<t { top = max(top, e.scores[i]) }
            // KVCache-Factory turns a NaN probability (0/0) into 0; top ≥ score[p] keeps it ≤ 1.
            let probability = top > 0 ? min(1, max(0, e.scores[p] / top)) : 0
            guard generator.nextUnitFloat() < probability else { continue }
            any = true
            for q in (p + 1)...t {
                for c in 0..<d { values[q * d + c] += values[p * d + c] / Float(w) }
                changed[q] = true
            }
        }
        return any ? (values, changed) : nil
    }
}
