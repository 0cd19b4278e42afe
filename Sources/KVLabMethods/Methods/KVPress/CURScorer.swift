/// kvpress's `CURPress` (CurDKV): each entry's squared key norm k² and value norm v², each
/// normalized by its sum over a local window of `local_window_size` entries (windows from the
/// first entry, the last one shorter; with `use_local_approximation`), combined by
/// `leverage_type` (k², v², their mean or, by default, their product), normalized to sum 1 over the
/// head; the first `num_sinks` entries score 1 and stay. kvpress's `use_random_leverage` (a random
/// projection first) is not offered: its scores are random.
struct CURScorer: KVPressScorer {
    enum Leverage: String, CaseIterable { case key, value, kv_avg, kv_product }

    let numSinks: Int
    let leverage: Leverage
    let localApproximation: Bool
    let localWindowSize: Int

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        guard let vectors else { return heads.map { [Float](repeating: .infinity, count: $0.count) } }
        let d = vectors.headDim
        return heads.indices.map { h in
            let e = heads[h]
            var k2 = Self.squaredNorms(vectors.gather(head: h, e, keys: true), d: d)
            var v2 = Self.squaredNorms(vectors.gather(head: h, e, keys: false), d: d)
            if localApproximation {
                k2 = Self.windowNormalized(k2, window: localWindowSize)
                v2 = Self.windowNormalized(v2, window: localWindowSize)
            }
            var scores: [Double] = switch leverage {
            case .key: k2
            case .value: v2
            case .kv_avg: zip(k2, v2).map { ($0 + $1) / 2 }
            case .kv_product: zip(k2, v2).map { $0 * $1 }
            }
            let sum = scores.reduce(0, +)
            scores = scores.map { $0 / sum }
            return scores.indices.map { $0 < numSinks ? 1 : Float(scores[$0]) }
        }
    }

    static func squaredNorms(_ vectors: [Float], d: Int) -> [Double] {
        (0..<(vectors.count / d)).map { i in (0..<d).reduce(0) { $0 + Double(vectors[i * d + $1]) * Double(vectors[i * d + $1]) } }
    }

    /// Each value divided by the sum of its window of `window` (windows from the first value).
    static func windowNormalized(_ x: [Double], window: Int) -> [Double] {
        var out = x
        for start in stride(from: 0, to: x.count, by: window) {
            let range = start..<min(x.count, start + window)
            let sum = x[range].reduce(0, +)
            for i in range { out[i] = x[i] / sum }
        }
        return out
    }
}
