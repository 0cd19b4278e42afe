import Foundation

/// kvpress's `ExpectedAttentionPress`: the attention future queries are expected to pay each entry.
/// The prompt's queries before RoPE (after the first `n_sink`, which likely hold outliers) give each
/// query head a mean μ and covariance Σ (divided by their count); RoPE's rotation averaged over
/// the `n_future_positions` positions after the prompt (R, from the prompt's length on) moves them
/// to μ' = Rμ, Σ' = RΣRᵀ. Entry k (after RoPE, as cached) scores
/// `softmax_k(μ'·k/√d + kᵀΣ'k/(2d))` over the entries after the first `n_sink`, averaged over the
/// query group, then (with `use_vnorm`) `(score + epsilon) · ‖v‖`. The first `n_sink` entries
/// always stay (kvpress pads them with the maximum + 1). Inside DecodingPress the queries are
/// those of the decode steps since its last compression (at most kvpress's buffer of 256), and
/// "the prompt's length" is their count, as kvpress's buffered hidden states make it.
struct ExpectedAttentionScorer: KVPressScorer {
    let nFuturePositions: Int
    let nSink: Int
    let useCovariance: Bool
    let useVnorm: Bool
    let epsilon: Double

    var queries: Int { .max }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        let keepAll = heads.map { [Float](repeating: .infinity, count: $0.count) }
        guard let vectors, vectors.queries.count > nSink, heads.allSatisfy({ $0.count > nSink }) else { return keepAll }
        let recorded = vectors.queries, d = vectors.headDim, width = recorded.width, queryHeads = width / d
        let group = queryHeads / heads.count, n = recorded.count - nSink
        // The queries before RoPE, sinks dropped.
        var pre = Array(recorded.values[(nSink * width)...])
        pre.withUnsafeMutableBufferPointer { buffer in
            for t in 0..<n {
                vectors.rotate(buffer.baseAddress! + t * width, count: queryHeads, position: recorded.rotary[nSink + t], inverse: true)
            }
        }
        let rotation = Self.averageRotation(vectors: vectors, from: recorded.count, count: nFuturePositions)
        return heads.indices.map { h in
            let e = heads[h], keys = vectors.gather(head: h, e, keys: true)
            var total = [Double](repeating: 0, count: e.count)
            for g in 0..<group {
                let (mean, covariance) = Self.statistics(pre, count: n, width: width, offset: (h * group + g) * d, d: d, covariance: useCovariance)
                let mu = Self.apply(rotation, to: mean, d: d)
                let sigma = covariance.map { Self.conjugate($0, by: rotation, d: d) }
                var logits = [Double](repeating: 0, count: e.count)
                for i in nSink..<e.count {
                    let k = keys[(i * d)..<((i + 1) * d)].map(Double.init)
                    var s = 0.0
                    for a in 0..<d { s += mu[a] * k[a] }
                    s /= Double(d).squareRoot()
                    if let sigma {
                        var quadratic = 0.0
                        for a in 0..<d {
                            var row = 0.0
                            for b in 0..<d { row += sigma[a * d + b] * k[b] }
                            quadratic += k[a] * row
                        }
                        s += quadratic / Double(d) / 2
                    }
                    logits[i] = s
                }
                let top = logits[nSink...].max()!
                var sum = 0.0
                for i in nSink..<e.count { sum += exp(logits[i] - top) }
                for i in nSink..<e.count { total[i] += exp(logits[i] - top) / sum }
            }
            let values = useVnorm ? vectors.gather(head: h, e, keys: false) : []
            return (0..<e.count).map { i in
                guard i >= nSink else { return .infinity }
                var score = total[i] / Double(group)
                if useVnorm {
                    var norm = 0.0
                    for c in 0..<d { norm += Double(values[i * d + c]) * Double(values[i * d + c]) }
                    score = (score + epsilon) * norm.squareRoot()
                }
                return Float(score)
            }
        }
    }

    /// RoPE's rotation averaged over `count` positions from `from`, row-major `d × d` (kvpress's
    /// mean of `cos·I + sin·P`, in the cache's channel order).
    static func averageRotation(vectors: any EntryVectors, from: Int, count: Int) -> [Double] {
        let d = vectors.headDim
        var rotation = [Double](repeating: 0, count: d * d)
        var basis = [Float](repeating: 0, count: d * d)
        for p in from..<(from + count) {
            basis.withUnsafeMutableBufferPointer { b in
                b.update(repeating: 0)
                for j in 0..<d { b[j * d + j] = 1 }
                vectors.rotate(b.baseAddress!, count: d, position: p, inverse: false)
            }
            // Row j of `basis` is column j of the rotation.
            for j in 0..<d { for i in 0..<d { rotation[i * d + j] += Double(basis[j * d + i]) } }
        }
        return rotation.map { $0 / Double(max(1, count)) }
    }

    /// Mean and (biased) covariance of `count` rows' `d` channels from `offset` of each `width`-float row.
    static func statistics(_ rows: [Float], count: Int, width: Int, offset: Int, d: Int, covariance: Bool) -> ([Double], [Double]?) {
        var mean = [Double](repeating: 0, count: d)
        for t in 0..<count { for c in 0..<d { mean[c] += Double(rows[t * width + offset + c]) } }
        for c in 0..<d { mean[c] /= Double(count) }
        guard covariance else { return (mean, nil) }
        var sigma = [Double](repeating: 0, count: d * d)
        var centered = [Double](repeating: 0, count: d)
        for t in 0..<count {
            for c in 0..<d { centered[c] = Double(rows[t * width + offset + c]) - mean[c] }
            for a in 0..<d { for b in 0..<d { sigma[a * d + b] += centered[a] * centered[b] } }
        }
        return (mean, sigma.map { $0 / Double(count) })
    }

    static func apply(_ matrix: [Double], to v: [Double], d: Int) -> [Double] {
        (0..<d).map { i in (0..<d).reduce(0) { $0 + matrix[i * d + $1] * v[$1] } }
    }

    /// R·Σ·Rᵀ.
    static func conjugate(_ sigma: [Double], by r: [Double], d: Int) -> [Double] {
        var rs = [Double](repeating: 0, count: d * d), out = rs
        for i in 0..<d { for k in 0..<d where r[i * d + k] != 0 { for j in 0..<d { rs[i * d + j] += r[i * d + k] * sigma[k * d + j] } } }
        for i in 0..<d { for j in 0..<d { for k in 0..<d { out[i * d + j] += rs[i * d + k] * r[j * d + k] } } }
        return out
    }
}
