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
