/// kvpress's `CriticalKVPress` around a scorer: each head first keeps its
/// `max(1, ⌊(1 − R)·k·first_stage_ratio⌋)` best by the scorer's own scores; the rest of its
/// `n_kept` go to the best by `(score + epsilon) · ‖v·W_o‖₁`, the L1 norm of the entry's value
/// through the attention output projection of each query head of its group, averaged over the
/// group. The scorer's always-kept entries enter that product as kvpress pads them (the layer's
/// largest score + 1), so they stay only when they win. The wrapped scorer's own `epsilon`
/// (ExpectedAttention's) is not a parameter here: it keeps its default, 0.
struct CriticalKVScorer: KVPressScorer {
    let base: any KVPressScorer
    let epsilon: Double
    let firstStageRatio: Double

    var observation: Int { base.observation }
    var queries: Int { base.queries }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        scores(heads: heads, promptEnd: promptEnd, vectors: vectors, compressionRatio: 0)
    }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?, compressionRatio: Double) -> [[Float]] {
        let scores = base.scores(heads: heads, promptEnd: promptEnd, vectors: vectors, compressionRatio: compressionRatio)
        guard let vectors, let projection = vectors.outputProjection() else { return scores }
        let padded = Self.padded(scores)
        return heads.indices.map { h in
            let count = heads[h].count
            var first = Int((1 - compressionRatio) * Double(count) * firstStageRatio)
            if firstStageRatio > 0 { first = max(1, first) }
            let norms = Self.projectedNorms(vectors: vectors, head: h, heads[h], projection: projection, heads: heads.count)
            var out = (0..<count).map { Float((Double(padded[h][$0]) + epsilon) * norms[$0]) }
            for i in KVPressPolicy.ranked(scores[h], positions: heads[h].positions).prefix(first) { out[i] = .infinity }
            return out
        }
    }

    /// Always-kept entries (`.infinity`) as kvpress pads them: the layer's largest other score + 1.
    static func padded(_ scores: [[Float]]) -> [[Float]] {
        let top = scores.joined().filter { $0 != .infinity }.max() ?? 0
        return scores.map { $0.map { $0 == .infinity ? top + 1 : $0 } }
    }

    /// `‖v·W_o,q‖₁` of each entry, averaged over the query heads q of KV head `head`'s group.
    static func projectedNorms(vectors: any EntryVectors, head: Int, _ entries: HeadEntries, projection: [Float], heads: Int) -> [Double] {
        let d = vectors.headDim, values = vectors.gather(head: head, entries, keys: false)
        let columns = heads * entries.groupSize * d, rows = projection.count / columns
        return (0..<entries.count).map { i in
            var total = 0.0
            for g in 0..<entries.groupSize {
                let column = (head * entries.groupSize + g) * d
                for o in 0..<rows {
                    var x: Float = 0
                    for c in 0..<d { x += values[i * d + c] * projection[o * columns + column + c] }
                    total += Double(abs(x))
                }
            }
            return total / Double(entries.groupSize)
        }
    }
}

/// kvpress's `CriticalAdaKVPress`: AdaKV's head-wise budgets with CriticalKV's two stages. Each
/// head's `⌊n_kept · α⌋` best (at least one) are safe; the layer's `n_heads · n_kept` best
/// (safe first, then by score; ties: the newer, then the later head) set each head's budget;
/// each head then also keeps its `⌊budget · first_stage_ratio⌋` best by the scorer, and fills
/// the rest of its budget by `(score + epsilon) · ‖v·W_o‖₁` (CriticalKVScorer's product, ties:
/// the newer). kvpress masks the others; kvlab frees them.
struct CriticalAdaKVSelection: KVPressSelecting {
    let alphaSafeguard: Double
    let epsilon: Double
    let firstStageRatio: Double

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        var safe = Int(Double(n) * alphaSafeguard)
        if alphaSafeguard > 0 { safe = n > 0 ? max(1, safe) : 0 }
        let orders = heads.indices.map { KVPressPolicy.ranked(scores[$0], positions: heads[$0].positions) }
        // Budgets: the layer's n · heads best, the safe entries above every other.
        var candidates: [(safe: Bool, score: Float, position: Int32, head: Int)] = []
        for h in heads.indices {
            for (rank, i) in orders[h].enumerated() { candidates.append((rank < safe, scores[h][i], heads[h].positions[i], h)) }
        }
        candidates.sort { a, b in
            if a.safe != b.safe { return a.safe }
            if a.score != b.score { return a.score > b.score }
            return a.position != b.position ? a.position > b.position : a.head > b.head
        }
        var budgets = Array(repeating: 0, count: heads.count)
        for c in candidates.prefix(n * heads.count) { budgets[c.head] += 1 }
        let padded = CriticalKVScorer.padded(scores)
        let projection = vectors?.outputProjection()
        return heads.indices.map { h in
            let e = heads[h]
            // kvpress multiplies the int64 budgets by the ratio in float32 and truncates.
            let first = max(safe, Int(Float(budgets[h]) * Float(firstStageRatio)))
            let norms = vectors.flatMap { v in
                projection.map { CriticalKVScorer.projectedNorms(vectors: v, head: h, e, projection: $0, heads: heads.count) }
            } ?? Array(repeating: 1, count: e.count)
            var second = (0..<e.count).map { Float((Double(padded[h][$0]) + epsilon) * norms[$0]) }
            for i in orders[h].prefix(first) { second[i] = .infinity }
            var keep = Array(repeating: false, count: e.count)
            for i in KVPressPolicy.ranked(second, positions: e.positions).prefix(budgets[h]) { keep[i] = true }
            return keep
        }
    }
}
