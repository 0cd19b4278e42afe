/// kvpress's `LeverageScorePress` (Compactor's geometric half): each entry's statistical leverage
/// among the head's keys before RoPE, centred over the entries: `xᵢ (XᵀX)⁻¹ xᵢᵀ`, z-normalized
/// over the layer (mean and unbiased standard deviation of every head's scores). kvpress
/// approximates it through a random Gaussian sketch of `sketch_dimension` columns with a 1e-2
/// ridge; kvlab computes the exact leverage the sketch estimates, which kvpress's equals when
/// `sketch_dimension` ≥ head_dim (its default 48 against this check's 16), up to that ridge.
/// `sketch_dimension` is therefore not a kvlab parameter.
struct LeverageScorer: KVPressScorer {
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        guard let vectors else { return heads.map { [Float](repeating: .infinity, count: $0.count) } }
        let scores = heads.indices.map { h in
            Self.leverage(vectors.gatherPreRoPE(head: h, heads[h]), rows: 0..<heads[h].count, d: vectors.headDim)
        }
        return Self.zNormalized(scores).map { $0.map(Float.init) }
    }

    /// Leverage of `rows` of entry-major `keys` (`d` channels), centred over those rows; the Gram
    /// matrix gets kvpress's 1e-2 jitter only when it is not positive definite.
    static func leverage(_ keys: [Float], rows: Range<Int>, d: Int) -> [Double] {
        let n = rows.count
        guard n > 0 else { return [] }
        var x = [Double](repeating: 0, count: n * d), mean = [Double](repeating: 0, count: d)
        for (t, r) in rows.enumerated() { for c in 0..<d { x[t * d + c] = Double(keys[r * d + c]) } }
        for t in 0..<n { for c in 0..<d { mean[c] += x[t * d + c] } }
        for t in 0..<n { for c in 0..<d { x[t * d + c] -= mean[c] / Double(n) } }
        var gram = [Double](repeating: 0, count: d * d)
        for t in 0..<n { for a in 0..<d { for b in 0..<d { gram[a * d + b] += x[t * d + a] * x[t * d + b] } } }
        var jitter = 0.0, lower: [Double]?
        while lower == nil {
            var g = gram
            for a in 0..<d { g[a * d + a] += jitter }
            lower = cholesky(g, d: d)
            jitter = jitter == 0 ? 1e-2 : jitter * 10
        }
        // xᵢ G⁻¹ xᵢᵀ = ‖L⁻¹ xᵢ‖².
        return (0..<n).map { t in
            var y = [Double](repeating: 0, count: d)
            for a in 0..<d {
                var s = x[t * d + a]
                for b in 0..<a { s -= lower![a * d + b] * y[b] }
                y[a] = s / lower![a * d + a]
            }
            return max(0, y.reduce(0) { $0 + $1 * $1 })
        }
    }

    /// The lower Cholesky factor of a symmetric `d × d` matrix, nil when it is not positive definite.
    static func cholesky(_ g: [Double], d: Int) -> [Double]? {
        var l = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in 0...i {
                var s = g[i * d + j]
                for k in 0..<j { s -= l[i * d + k] * l[j * d + k] }
                if i == j {
                    guard s > 0 else { return nil }
                    l[i * d + i] = s.squareRoot()
                } else {
                    l[i * d + j] = s / l[j * d + j]
                }
            }
        }
        return l
    }

    /// Scores minus their mean over every head, over their unbiased standard deviation (at least 1e-6).
    static func zNormalized(_ scores: [[Double]]) -> [[Double]] {
        let all = scores.flatMap { $0 }
        guard all.count > 1 else { return scores }
        let mean = all.reduce(0, +) / Double(all.count)
        let deviation = max(1e-6, (all.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(all.count - 1)).squareRoot())
        return scores.map { $0.map { ($0 - mean) / deviation } }
    }
}
