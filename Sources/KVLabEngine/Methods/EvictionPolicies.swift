/// One (layer, KV head)'s kept entries in position order, as a policy reads and changes them.
/// The arrays belong to the cache (or to a test); `evict` removes an entry from all of them and
/// records its physical slot so the cache can reclaim the storage.
struct HeadEntries {
    private(set) var count: Int
    /// Query heads reading this KV head (`s_t` sums their probabilities, so it totals this).
    let groupSize: Int
    let positions: UnsafeMutablePointer<Int32>
    /// The policy's running score per entry (a new entry starts at 0).
    let scores: UnsafeMutablePointer<Float>
    /// The policy's per-entry bits (scissorhands' below-uniform history).
    let history: UnsafeMutablePointer<UInt64>
    let keyNorms: UnsafeMutablePointer<Float>
    /// `s_t(j)` of this step, when the policy asked for scores.
    let stepScores: UnsafeMutablePointer<Float>
    let slots: UnsafeMutablePointer<Int32>
    let released: UnsafeMutablePointer<Int32>
    private(set) var releasedCount = 0

    init(count: Int, groupSize: Int, positions: UnsafeMutablePointer<Int32>, scores: UnsafeMutablePointer<Float>,
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

    mutating func evict(_ index: Int) {
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

    /// Index of the lowest `key` among `range`; ties go to the older (lower) index.
    func lowest(in range: Range<Int>, by key: (Int) -> Float) -> Int {
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
    func sinkCount(_ sinks: Int) -> Int {
        var n = 0
        while n < count, positions[n] < Int32(clamping: sinks) { n += 1 }
        return n
    }
}

/// The stateful side of an eviction method. The cache calls it after each decode step's
/// attention of a layer (with `s_t` when `needsScores`), and around a batched prefill.
protocol EvictionPolicy: AnyObject {
    var needsScores: Bool { get }
    /// Whether a prompt may run as one batched prefill: the policy then acts once at its end
    /// (or never); otherwise the engine feeds the prompt one step at a time.
    var batchedPrefill: Bool { get }
    /// Last prompt positions whose attention `observePrefill` needs (0: none).
    var prefillObservation: Int { get }
    /// Policy state bytes per kept entry, besides its position.
    var stateBytesPerEntry: Int { get }
    /// Token budget of one (layer, KV head), nil when unbounded (for display and tests).
    func budget(layer: Int, head: Int) -> Int?
    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>)
    func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int)
    func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int)
}

extension EvictionPolicy {
    var batchedPrefill: Bool { false }
    var prefillObservation: Int { 0 }
    func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {}
    func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {}
}

final class FullPolicy: EvictionPolicy {
    var needsScores: Bool { false }
    var batchedPrefill: Bool { true }
    var stateBytesPerEntry: Int { 0 }
    func budget(layer: Int, head: Int) -> Int? { nil }
    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}
}

/// `window` (sinks 0) and StreamingLLM: the first `sinks` positions and the last `window` entries.
final class StreamingPolicy: EvictionPolicy {
    let sinks: Int
    let window: Int

    init(sinks: Int, window: Int) {
        self.sinks = sinks
        self.window = window
    }

    var needsScores: Bool { false }
    var stateBytesPerEntry: Int { 0 }
    func budget(layer: Int, head: Int) -> Int? { sinks + window }

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices { Self.trim(&heads[h], sinks: sinks, window: window) }
    }

    static func trim(_ entries: inout HeadEntries, sinks: Int, window: Int) {
        let kept = entries.sinkCount(sinks)
        while entries.count - kept > window { entries.evict(kept) }
    }
}

/// `h2o` (α = 1) and `a2sf`: score ← α·score + s_t; evict the lowest score outside the `recent` window.
final class HeavyHitterPolicy: EvictionPolicy {
    let heavy: Int
    let recent: Int
    let alpha: Float

    init(heavy: Int, recent: Int, alpha: Float) {
        self.heavy = heavy
        self.recent = recent
        self.alpha = alpha
    }

    var needsScores: Bool { true }
    var stateBytesPerEntry: Int { 4 }
    func budget(layer: Int, head: Int) -> Int? { heavy + recent }

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
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
final class TOVAPolicy: EvictionPolicy {
    let budgetTokens: Int

    init(budget: Int) { budgetTokens = budget }

    var needsScores: Bool { true }
    var stateBytesPerEntry: Int { 4 }
    func budget(layer: Int, head: Int) -> Int? { budgetTokens }

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
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
final class ScissorhandsPolicy: EvictionPolicy {
    let budgetTokens: Int
    let historyMask: UInt64
    let recent: Int
    let drop: Int

    init(budget: Int, history: Int, recent: Int, drop: Int) {
        budgetTokens = budget
        historyMask = history == 64 ? .max : (1 << UInt64(history)) - 1
        self.recent = recent
        self.drop = drop
    }

    var needsScores: Bool { true }
    var stateBytesPerEntry: Int { 8 }
    func budget(layer: Int, head: Int) -> Int? { budgetTokens }

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
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

/// SnapKV (one budget), PyramidKV (budgets falling with depth) and AdaKV (one budget pooled
/// over a layer's KV heads): at the end of a prompt, score its entries by the attention of the
/// last `observation` queries, max-pool, keep the best plus the observation window.
final class SnapKVPolicy: EvictionPolicy {
    let budgets: [Int]
    let observation: Int
    let pool: Int
    let pooledAcrossHeads: Bool

    init(budgets: [Int], observation: Int, pool: Int, pooledAcrossHeads: Bool) {
        self.budgets = budgets
        self.observation = observation
        self.pool = pool
        self.pooledAcrossHeads = pooledAcrossHeads
    }

    /// Linear from `2·mean − minimum` at the first layer to `minimum` at the last (mean `mean`).
    static func pyramid(mean: Int, minimum: Int, layers: Int) -> [Int] {
        guard layers > 1 else { return [mean] }
        let top = Double(2 * mean - minimum)
        return (0..<layers).map { l in
            Int((top - (top - Double(minimum)) * Double(l) / Double(layers - 1)).rounded())
        }
    }

    var needsScores: Bool { false }
    var batchedPrefill: Bool { true }
    var prefillObservation: Int { observation }
    var stateBytesPerEntry: Int { 4 }
    func budget(layer: Int, head: Int) -> Int? { budgets[layer] }
    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}

    func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {
        guard queryPosition >= promptEnd - observation else { return }
        for i in 0..<entries.count { entries.scores[i] += entries.stepScores[i] }
    }

    func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {
        let boundary = Int32(promptEnd - observation)
        let keep = budgets[layer] - observation
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
                for c in perHead[h].sorted(by: order).prefix(keep) { kept.insert(Int64(h) << 32 | Int64(c.position)) }
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
final class KeyNormPolicy: EvictionPolicy {
    let budgetTokens: Int

    init(budget: Int) { budgetTokens = budget }

    var needsScores: Bool { false }
    var stateBytesPerEntry: Int { 4 }
    func budget(layer: Int, head: Int) -> Int? { budgetTokens + 1 }

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices {
            let e = heads[h]
            while heads[h].count > budgetTokens + 1 {
                heads[h].evict(heads[h].lowest(in: 0..<(heads[h].count - 1)) { -e.keyNorms[$0] })
            }
        }
    }
}

/// Uniform random eviction from a seeded generator: the floor every method must beat.
final class RandomPolicy: EvictionPolicy {
    let budgetTokens: Int
    private var generator: Xoshiro256

    init(budget: Int, seed: UInt64) {
        budgetTokens = budget
        generator = Xoshiro256(seed: seed)
    }

    var needsScores: Bool { false }
    var stateBytesPerEntry: Int { 0 }
    func budget(layer: Int, head: Int) -> Int? { budgetTokens }

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        for h in heads.indices {
            while heads[h].count > budgetTokens {
                heads[h].evict(Int.random(in: 0..<heads[h].count, using: &generator))
            }
        }
    }
}

/// DuoAttention without training: on the prompt, rank heads by the share of their attention
/// outside sinks + window; the top `ratio` keep everything, the rest become streaming heads.
final class DuoPolicy: EvictionPolicy {
    let sinks: Int
    let window: Int
    let ratio: Double
    private let kvHeadCount: Int
    /// Mean attention mass outside sinks + window per (layer, head), summed over prompt queries.
    private var outsideMass: [Double]
    private var observedQueries: [Int]
    /// nil until calibrated (every head then keeps everything).
    private(set) var retrieval: [Bool]?

    init(sinks: Int, window: Int, ratio: Double, layout: KVLayout) {
        self.sinks = sinks
        self.window = window
        self.ratio = ratio
        kvHeadCount = layout.kvHeadCount
        outsideMass = Array(repeating: 0, count: layout.layerCount * layout.kvHeadCount)
        observedQueries = outsideMass.map { _ in 0 }
    }

    var needsScores: Bool { false }
    var batchedPrefill: Bool { true }
    var prefillObservation: Int { .max }
    var stateBytesPerEntry: Int { 0 }

    func budget(layer: Int, head: Int) -> Int? {
        guard let retrieval, !retrieval[layer * kvHeadCount + head] else { return nil }
        return sinks + window
    }

    func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {
        var outside: Float = 0
        for i in 0..<entries.count {
            let p = Int(entries.positions[i])
            if p >= sinks, p <= queryPosition - window { outside += entries.stepScores[i] }
        }
        outsideMass[layer * kvHeadCount + head] += Double(outside / Float(entries.groupSize))
        observedQueries[layer * kvHeadCount + head] += 1
    }

    func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {
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

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        guard let retrieval else { return }
        for h in heads.indices where !retrieval[layer * kvHeadCount + h] {
            StreamingPolicy.trim(&heads[h], sinks: sinks, window: window)
        }
    }
}
