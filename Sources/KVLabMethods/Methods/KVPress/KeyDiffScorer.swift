/// kvpress's `KeyDiffPress`: the keys least similar to the head's mean direction stay (score: minus
/// the cosine similarity of each key to the mean of the L2-normalized keys).
struct KeyDiffScorer: KVPressScorer {
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        guard let vectors else { return heads.map { Array(repeating: .infinity, count: $0.count) } }
        return heads.indices.map { h in
            Self.scores(keys: vectors.gather(head: h, heads[h], keys: true), count: heads[h].count, headDim: vectors.headDim)
        }
    }

    /// The scores of `count` keys (entry-major, `headDim` each) among themselves.
    static func scores(keys: [Float], count: Int, headDim d: Int) -> [Float] {
        var anchor = [Float](repeating: 0, count: d)
        var norms = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var sum: Float = 0
            for c in 0..<d { sum += keys[i * d + c] * keys[i * d + c] }
            norms[i] = sum.squareRoot()
            // torch's F.normalize: x / max(‖x‖, 1e-12).
            for c in 0..<d { anchor[c] += keys[i * d + c] / max(norms[i], 1e-12) }
        }
        for c in 0..<d { anchor[c] /= Float(count) }
        let anchorNorm = anchor.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return (0..<count).map { i in
            var dot: Float = 0
            for c in 0..<d { dot += keys[i * d + c] * anchor[c] }
            return -dot / max(norms[i] * anchorNorm, 1e-8)
        }
    }
}
