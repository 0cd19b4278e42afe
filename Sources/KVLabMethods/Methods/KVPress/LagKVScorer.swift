import Foundation

/// kvpress's `LagKVPress`: the entries after the first `n_sink` are cut into partitions of
/// `lag_size`; each partition but the last is scored against the next one (its reference): every
/// channel of its keys, then of its values, is min-max scaled by the reference's range, the
/// token's score is the standard deviation over channels (unbiased), softmaxed over the
/// partition, keys and values averaged. Without `cross_scoring` a partition's scores become its
/// ranks / `lag_size` (so every partition has the same scores: equal ranks tie across partitions,
/// and kvlab keeps the newer). The sinks and the last partition with the remainder score 1 and
/// stay. A prompt shorter than `n_sink + 2·lag_size` is not partitioned: the sinks score 1, the
/// rest `i/(k − n_sink)`, so the newest stay (StreamingLLM).
struct LagKVScorer: KVPressScorer {
    let nSink: Int
    let lagSize: Int
    let crossScoring: Bool

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        heads.indices.map { h in
            let e = heads[h], n = e.count
            var out = [Float](repeating: 1, count: n)
            guard n >= nSink + 2 * lagSize else {
                if n > nSink { for i in nSink..<n { out[i] = Float(i - nSink) / Float(n - nSink) } }
                return out
            }
            guard let vectors else { return [Float](repeating: .infinity, count: n) }
            let d = vectors.headDim
            let partitions = (n - nSink) / lagSize
            let keys = Self.partitionScores(vectors.gather(head: h, e, keys: true), from: nSink, partitions: partitions, lag: lagSize, d: d)
            let values = Self.partitionScores(vectors.gather(head: h, e, keys: false), from: nSink, partitions: partitions, lag: lagSize, d: d)
            for p in 0..<(partitions - 1) {
                let base = nSink + p * lagSize
                let score = (0..<lagSize).map { Float((keys[p * lagSize + $0] + values[p * lagSize + $0]) / 2) }
                if crossScoring {
                    for t in 0..<lagSize { out[base + t] = score[t] }
                } else {
                    // argsort().argsort(): each token's rank, lowest first.
                    let order = (0..<lagSize).sorted { score[$0] != score[$1] ? score[$0] < score[$1] : $0 < $1 }
                    for (rank, t) in order.enumerated() { out[base + t] = Float(rank) / Float(lagSize) }
                }
            }
            return out
        }
    }

    /// Each token's lag-relative score in partitions `0..<partitions − 1` (entry-major `vectors`,
    /// partitions from entry `from`): per channel scaled by the next partition's min and max, the
    /// standard deviation over channels, softmaxed over the partition.
    static func partitionScores(_ vectors: [Float], from: Int, partitions: Int, lag: Int, d: Int) -> [Double] {
        var out = [Double](repeating: 0, count: max(0, partitions - 1) * lag)
        for p in 0..<max(0, partitions - 1) {
            let base = from + p * lag, reference = base + lag
            var low = [Double](repeating: .infinity, count: d), high = [Double](repeating: -.infinity, count: d)
            for t in 0..<lag {
                for c in 0..<d {
                    let x = Double(vectors[(reference + t) * d + c])
                    low[c] = min(low[c], x)
                    high[c] = max(high[c], x)
                }
            }
            var deviations = [Double](repeating: 0, count: lag)
            for t in 0..<lag {
                let scaled = (0..<d).map { c in (Double(vectors[(base + t) * d + c]) - low[c]) / (high[c] - low[c]) }
                let mean = scaled.reduce(0, +) / Double(d)
                deviations[t] = (scaled.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d - 1)).squareRoot()
            }
            let top = deviations.max()!
            let sum = deviations.reduce(0) { $0 + exp($1 - top) }
            for t in 0..<lag { out[p * lag + t] = exp(deviations[t] - top) / sum }
        }
        return out
    }
}
