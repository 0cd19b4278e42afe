/// One (layer, KV head)'s kept entries in position order, as a policy reads and changes them.
/// The arrays belong to the cache (or to a test); `evict` removes an entry from all of them and
/// records its physical slot so the cache can reclaim the storage.
package struct HeadEntries {
    package private(set) var count: Int
    /// Query heads reading this KV head (`s_t` sums their probabilities, so it totals this).
    package let groupSize: Int
    package let positions: UnsafeMutablePointer<Int32>
    /// The policy's running score per entry (a new entry starts at 0).
    package let scores: UnsafeMutablePointer<Float>
    /// The policy's per-entry bits (scissorhands' below-uniform history).
    package let history: UnsafeMutablePointer<UInt64>
    package let keyNorms: UnsafeMutablePointer<Float>
    /// `s_t(j)` of this step, when the policy asked for scores.
    package let stepScores: UnsafeMutablePointer<Float>
    package let slots: UnsafeMutablePointer<Int32>
    package let released: UnsafeMutablePointer<Int32>
    package private(set) var releasedCount = 0

    package init(count: Int, groupSize: Int, positions: UnsafeMutablePointer<Int32>, scores: UnsafeMutablePointer<Float>,
         history: UnsafeMutablePointer<UInt64>, keyNorms: UnsafeMutablePointer<Float>, stepScores: UnsafeMutablePointer<Float>,
         slots: UnsafeMutablePointer<Int32>, released: UnsafeMutablePointer<Int32>) {
        self.count = count
        self.groupSize = groupSize
        self.positions = positions
        self.scores = scores
        self.history = history
        self.keyNorms = keyNorms
        self.stepScores = stepScores
        self.slots = slots
        self.released = released
    }

    package mutating func evict(_ index: Int) {
        precondition(index >= 0 && index < count, "evicting a missing entry")
        released[releasedCount] = slots[index]
        releasedCount += 1
        let tail = count - index - 1
        if tail > 0 {
            (positions + index).update(from: positions + index + 1, count: tail)
            (scores + index).update(from: scores + index + 1, count: tail)
            (history + index).update(from: history + index + 1, count: tail)
            (keyNorms + index).update(from: keyNorms + index + 1, count: tail)
            (stepScores + index).update(from: stepScores + index + 1, count: tail)
            (slots + index).update(from: slots + index + 1, count: tail)
        }
        count -= 1
    }

    /// Evicts the `k` oldest entries at once (a sliding window's trim after a long prompt).
    package mutating func evictOldest(_ k: Int) {
        precondition(k >= 0 && k <= count, "evicting missing entries")
        guard k > 0 else { return }
        (released + releasedCount).update(from: slots, count: k)
        releasedCount += k
        let tail = count - k
        if tail > 0 {
            positions.update(from: positions + k, count: tail)
            scores.update(from: scores + k, count: tail)
            history.update(from: history + k, count: tail)
            keyNorms.update(from: keyNorms + k, count: tail)
            stepScores.update(from: stepScores + k, count: tail)
            slots.update(from: slots + k, count: tail)
        }
        count = tail
    }

    /// Index of the lowest `key` among `range`; ties go to the older (lower) index.
    package func lowest(in range: Range<Int>, by key: (Int) -> Float) -> Int {
        var best = range.lowerBound
        var bestValue = key(best)
        for i in range.dropFirst() {
            let value = key(i)
            if value < bestValue {
                best = i
                bestValue = value
            }
        }
        return best
    }

    /// Entries at positions below `sinks` (a prefix, since entries are in position order).
    package func sinkCount(_ sinks: Int) -> Int {
        var n = 0
        while n < count, positions[n] < Int32(clamping: sinks) { n += 1 }
        return n
    }
}

/// The stateful side of an eviction method. The cache calls it after each decode step's
/// attention of a layer (with `s_t` when `needsScores`), and around a batched prefill.
package protocol EvictionPolicy: AnyObject {
    var needsScores: Bool { get }
    /// Whether a prompt may run as one batched prefill: the policy then acts once at its end
    /// (or never); otherwise the engine feeds the prompt one step at a time.
    var batchedPrefill: Bool { get }
    /// Last prompt positions whose attention `observePrefill` needs (0: none).
    var prefillObservation: Int { get }
    /// Policy state bytes per kept entry, besides its position.
    var stateBytesPerEntry: Int { get }
    /// The latest queries of each layer the cache keeps for the policy in `EntryVectors.queries`
    /// (0: none; `Int.max`: all until the policy empties them).
    var recordedQueries: Int { get }
    /// What the engine must run before the policy can act on the sequence so far (chosen between
    /// decode steps, or `+every`); nil: nothing, it acts on what the cache holds.
    var sequencePass: SequencePass? { get }
    /// Token budget of one (layer, KV head), nil when unbounded (for display and tests).
    func budget(layer: Int, head: Int) -> Int?
    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>)
    /// `afterAttention` for policies that also read the entries' keys and values (kvpress's DecodingPress).
    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, vectors: any EntryVectors)
    func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int)
    func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int)
    /// `finishPrefill` for policies that also read the entries' keys and values (kvpress's presses).
    func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: any EntryVectors)
}

extension EvictionPolicy {
    package var batchedPrefill: Bool { false }
    package var prefillObservation: Int { 0 }
    package var recordedQueries: Int { 0 }
    package var sequencePass: SequencePass? { nil }
    package func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {}
    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {}
    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, vectors: any EntryVectors) {
        afterAttention(layer: layer, heads: heads)
    }
    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: any EntryVectors) {
        finishPrefill(layer: layer, heads: heads, promptEnd: promptEnd)
    }
}

package final class FullPolicy: EvictionPolicy {
    package var needsScores: Bool { false }
    package var batchedPrefill: Bool { true }
    package var stateBytesPerEntry: Int { 0 }
    package func budget(layer: Int, head: Int) -> Int? { nil }
    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}
}

/// `window` (sinks 0) and StreamingLLM: the first `sinks` positions and the last `window` entries.
package final class StreamingPolicy: EvictionPolicy {
    package let sinks: Int
    package let window: Int

    package init(sinks: Int, window: Int) {
        self.sinks = sinks
        self.window = window
    }

    package var needsScores: Bool { false }
    package var stateBytesPerEntry: Int { 0 }
    package func budget(layer: Int, head: Int) -> Int? { sinks + window }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices { Self.trim(&heads[h], sinks: sinks, window: window) }
    }

    package static func trim(_ entries: inout HeadEntries, sinks: Int, window: Int) {
        let kept = entries.sinkCount(sinks)
        while entries.count - kept > window { entries.evict(kept) }
    }
}

/// `h2o` (α = 1) and `a2sf`: score ← α·score + s_t; evict the lowest score outside the `recent` window.
package final class HeavyHitterPolicy: EvictionPolicy {
    package let heavy: Int
    package let recent: Int
    package let alpha: Float

    package init(heavy: Int, recent: Int, alpha: Float) {
        self.heavy = heavy
        self.recent = recent
        self.alpha = alpha
    }

    package var needsScores: Bool { true }
    package var stateBytesPerEntry: Int { 4 }
    package func budget(layer: Int, head: Int) -> Int? { heavy + recent }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices {
            let e = heads[h]
            for i in 0..<e.count { e.scores[i] = alpha * e.scores[i] + e.stepScores[i] }
            while heads[h].count > heavy + recent {
                let victim = heads[h].lowest(in: 0..<(heads[h].count - recent)) { e.scores[$0] }
                heads[h].evict(victim)
            }
        }
    }
}

/// TOVA: only this step's `s_t` counts; the new entry may go too.
package final class TOVAPolicy: EvictionPolicy {
    package let budgetTokens: Int

    package init(budget: Int) { budgetTokens = budget }

    package var needsScores: Bool { true }
    package var stateBytesPerEntry: Int { 4 }
    package func budget(layer: Int, head: Int) -> Int? { budgetTokens }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices {
            let e = heads[h]
            for i in 0..<e.count { e.scores[i] = e.stepScores[i] }
            while heads[h].count > budgetTokens {
                heads[h].evict(heads[h].lowest(in: 0..<heads[h].count) { e.scores[$0] })
            }
        }
    }
}

/// Scissorhands: count each entry's below-uniform steps over the last `history`; when the head
/// reaches its budget, drop the `drop` non-recent entries with the highest count.
package final class ScissorhandsPolicy: EvictionPolicy {
    package let budgetTokens: Int
    package let historyMask: UInt64
    package let recent: Int
    package let drop: Int

    package init(budget: Int, history: Int, recent: Int, drop: Int) {
        budgetTokens = budget
        historyMask = history == 64 ? .max : (1 << UInt64(history)) - 1
        self.recent = recent
        self.drop = drop
    }

    package var needsScores: Bool { true }
    package var stateBytesPerEntry: Int { 8 }
    package func budget(layer: Int, head: Int) -> Int? { budgetTokens }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices {
            let e = heads[h]
            let uniform = Float(e.groupSize) / Float(e.count)
            for i in 0..<e.count {
                e.history[i] = (e.history[i] << 1 | (e.stepScores[i] < uniform ? 1 : 0)) & historyMask
            }
            guard e.count >= budgetTokens else { continue }
            for _ in 0..<drop {
                let candidates = heads[h].count - recent
                guard candidates > 0 else { break }
                // Highest count = lowest negated count; ties go to the older entry.
                heads[h].evict(heads[h].lowest(in: 0..<candidates) { -Float(e.history[$0].nonzeroBitCount) })
            }
        }
    }
}

/// SnapKV (one budget), PyramidKV (budgets falling with depth), AdaKV (one budget pooled
/// over a layer's KV heads) and HeadKV (a budget per KV head): at the end of a prompt, score its
/// entries by the attention of the last `observation` queries, max-pool, keep the best plus the
/// observation window.
package final class SnapKVPolicy: EvictionPolicy {
    package let budgets: [Int]
    package let observation: Int
    package let pool: Int
    package let pooledAcrossHeads: Bool
    /// HeadKV's budget per (layer, KV head), layer-major, replacing `budgets`; nil for the others.
    package let headBudgets: [Int]?
    /// Sequences of fewer tokens are left whole (HeadKV's `q_len < max_capacity_prompt`).
    package let minimumPrompt: Int

    package init(budgets: [Int], observation: Int, pool: Int, pooledAcrossHeads: Bool, headBudgets: [Int]? = nil, minimumPrompt: Int = 0) {
        self.budgets = budgets
        self.observation = observation
        self.pool = pool
        self.pooledAcrossHeads = pooledAcrossHeads
        self.headBudgets = headBudgets
        self.minimumPrompt = minimumPrompt
    }

    /// Linear from `2·mean − minimum` at the first layer to `minimum` at the last (mean `mean`).
    package static func pyramid(mean: Int, minimum: Int, layers: Int) -> [Int] {
        guard layers > 1 else { return [mean] }
        let top = Double(2 * mean - minimum)
        return (0..<layers).map { l in
            Int((top - (top - Double(minimum)) * Double(l) / Double(layers - 1)).rounded())
        }
    }

    package var needsScores: Bool { false }
    package var batchedPrefill: Bool { true }
    package var prefillObservation: Int { observation }
    package var stateBytesPerEntry: Int { 4 }
    package func budget(layer: Int, head: Int) -> Int? {
        guard let headBudgets else { return budgets[layer] }
        return headBudgets[layer * (headBudgets.count / budgets.count) + head]
    }
    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}

    package func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {
        guard queryPosition >= promptEnd - observation else { return }
        for i in 0..<entries.count { entries.scores[i] += entries.stepScores[i] }
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {
        let boundary = Int32(promptEnd - observation)
        let keep = budgets[layer] - observation
        guard promptEnd >= minimumPrompt else {
            for h in heads.indices { for j in 0..<heads[h].count { heads[h].scores[j] = 0 } }
            return
        }
        // Candidates: (pooled score, head, position) of entries before the observation window.
        var candidates: [(score: Float, head: Int, position: Int32)] = []
        var perHead = [[(score: Float, head: Int, position: Int32)]](repeating: [], count: heads.count)
        for h in heads.indices {
            let e = heads[h]
            var n = 0
            while n < e.count, e.positions[n] < boundary { n += 1 }
            for i in 0..<n {
                var pooled = -Float.infinity
                for j in max(0, i - pool / 2)...min(n - 1, i + pool / 2) { pooled = max(pooled, e.scores[j]) }
                perHead[h].append((pooled, h, e.positions[i]))
            }
            candidates += perHead[h]
        }
        // Best first; ties keep the older entry.
        let order: ((score: Float, head: Int, position: Int32), (score: Float, head: Int, position: Int32)) -> Bool = {
            $0.score != $1.score ? $0.score > $1.score : $0.position < $1.position
        }
        var kept = Set<Int64>()
        if pooledAcrossHeads {
            for c in candidates.sorted(by: order).prefix(keep * heads.count) { kept.insert(Int64(c.head) << 32 | Int64(c.position)) }
        } else {
            for h in heads.indices {
                for c in perHead[h].sorted(by: order).prefix(budget(layer: layer, head: h)! - observation) { kept.insert(Int64(h) << 32 | Int64(c.position)) }
            }
        }
        for h in heads.indices {
            var i = 0
            while i < heads[h].count, heads[h].positions[i] < boundary {
                if kept.contains(Int64(h) << 32 | Int64(heads[h].positions[i])) {
                    i += 1
                } else {
                    heads[h].evict(i)
                }
            }
            for j in 0..<heads[h].count { heads[h].scores[j] = 0 }
        }
    }
}

/// Keeps the `budget` entries with the smallest key norm, plus the newest.
package final class KeyNormPolicy: EvictionPolicy {
    package let budgetTokens: Int

    package init(budget: Int) { budgetTokens = budget }

    package var needsScores: Bool { false }
    package var stateBytesPerEntry: Int { 4 }
    package func budget(layer: Int, head: Int) -> Int? { budgetTokens + 1 }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices {
            let e = heads[h]
            while heads[h].count > budgetTokens + 1 {
                heads[h].evict(heads[h].lowest(in: 0..<(heads[h].count - 1)) { -e.keyNorms[$0] })
            }
        }
    }
}

/// Uniform random eviction from a seeded generator: the floor every method must beat.
package final class RandomPolicy: EvictionPolicy {
    package let budgetTokens: Int
    private var generator: Xoshiro256

    package init(budget: Int, seed: UInt64) {
        budgetTokens = budget
        generator = Xoshiro256(seed: seed)
    }

    package var needsScores: Bool { false }
    package var stateBytesPerEntry: Int { 0 }
    package func budget(layer: Int, head: Int) -> Int? { budgetTokens }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices {
            while heads[h].count > budgetTokens {
                heads[h].evict(Int.random(in: 0..<heads[h].count, using: &generator))
            }
        }
    }
}

/// DuoAttention without training: on the prompt, rank heads by the share of their attention
/// outside sinks + window; the top `ratio` keep everything, the rest become streaming heads.
package final class DuoPolicy: EvictionPolicy {
    package let sinks: Int
    package let window: Int
    package let ratio: Double
    private let kvHeadCount: Int
    /// Mean attention mass outside sinks + window per (layer, head), summed over prompt queries.
    private var outsideMass: [Double]
    private var observedQueries: [Int]
    /// nil until calibrated (every head then keeps everything).
    package private(set) var retrieval: [Bool]?

    package init(sinks: Int, window: Int, ratio: Double, layout: KVLayout) {
        self.sinks = sinks
        self.window = window
        self.ratio = ratio
        kvHeadCount = layout.kvHeadCount
        outsideMass = Array(repeating: 0, count: layout.layerCount * layout.kvHeadCount)
        observedQueries = outsideMass.map { _ in 0 }
    }

    package var needsScores: Bool { false }
    package var batchedPrefill: Bool { true }
    package var prefillObservation: Int { .max }
    package var stateBytesPerEntry: Int { 0 }

    package func budget(layer: Int, head: Int) -> Int? {
        guard let retrieval, !retrieval[layer * kvHeadCount + head] else { return nil }
        return sinks + window
    }

    package func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {
        var outside: Float = 0
        for i in 0..<entries.count {
            let p = Int(entries.positions[i])
            if p >= sinks, p <= queryPosition - window { outside += entries.stepScores[i] }
        }
        outsideMass[layer * kvHeadCount + head] += Double(outside / Float(entries.groupSize))
        observedQueries[layer * kvHeadCount + head] += 1
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {
        if layer == 0 {
            // Every layer was observed during the forward pass, so heads rank globally here.
            let means = outsideMass.indices.map { outsideMass[$0] / Double(max(1, observedQueries[$0])) }
            let count = Int((ratio * Double(means.count)).rounded())
            let ranked = means.indices.sorted { means[$0] != means[$1] ? means[$0] > means[$1] : $0 < $1 }
            var flags = Array(repeating: false, count: means.count)
            for index in ranked.prefix(count) { flags[index] = true }
            retrieval = flags
        }
        afterAttention(layer: layer, heads: heads)
    }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        guard let retrieval else { return }
        for h in heads.indices where !retrieval[layer * kvHeadCount + h] {
            StreamingPolicy.trim(&heads[h], sinks: sinks, window: window)
        }
    }
}
