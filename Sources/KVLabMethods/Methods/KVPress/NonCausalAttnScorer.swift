import Foundation

/// kvpress's `NonCausalAttnPress` (Compactor's attention half): the prompt cut into chunks of
/// `chunk_size`; inside each, every query attends every key of the chunk, before it or not, with
/// unscaled logits q·k (queries and keys after RoPE). An entry's score is the attention its
/// chunk's queries pay it, summed, averaged over the query group, times ‖v‖, average-pooled over
/// 3 entries (zero padding counted), then z-normalized over the layer. The last chunk is padded
/// as kvpress pads it: padded keys take logit −1e-9 and padded query rows, attending uniformly,
/// add `padding / chunk_size` to each real entry of that chunk. Prompt-only, as in kvpress: a
/// prompt after earlier context is kept whole.
struct NonCausalAttnScorer: KVPressScorer {
    let chunkSize: Int

    var queries: Int { .max }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        guard let vectors, let rows = Self.promptRows(heads, vectors) else { return heads.map { [Float](repeating: .infinity, count: $0.count) } }
        return Self.scores(heads: heads, vectors: vectors, rows: 0..<rows, chunkSize: chunkSize).map { $0.map(Float.init) }
    }

    /// The entries and the recorded queries are the same prompt tokens: all of them, in order.
    static func promptRows(_ heads: UnsafeMutableBufferPointer<HeadEntries>, _ vectors: any EntryVectors) -> Int? {
        let n = vectors.queries.count
        return n > 0 && heads.allSatisfy({ $0.count == n }) ? n : nil
    }

    /// Z-normalized non-causal chunked attention scores of entries `rows` of every head.
    static func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, vectors: any EntryVectors, rows: Range<Int>, chunkSize: Int) -> [[Double]] {
        let d = vectors.headDim, recorded = vectors.queries, width = recorded.width
        let group = width / d / heads.count, n = rows.count
        let raw = heads.indices.map { h -> [Double] in
            let keys = vectors.gather(head: h, heads[h], keys: true), values = vectors.gather(head: h, heads[h], keys: false)
            var received = [Double](repeating: 0, count: n)
            for g in 0..<group {
                let offset = (h * group + g) * d
                for start in stride(from: 0, to: n, by: chunkSize) {
                    let length = min(chunkSize, n - start), padding = chunkSize - length
                    var logits = [Double](repeating: 0, count: length)
                    for t in 0..<length {
                        let q = (rows.lowerBound + start + t) * width + offset
                        for j in 0..<length {
                            let k = (rows.lowerBound + start + j) * d
                            var dot: Float = 0
                            for c in 0..<d { dot += recorded.values[q + c] * keys[k + c] }
                            logits[j] = Double(dot)
                        }
                        var top = logits.max()!
                        if padding > 0 { top = max(top, -1e-9) }
                        let sum = logits.reduce(0) { $0 + exp($1 - top) } + Double(padding) * exp(-1e-9 - top)
                        for j in 0..<length { received[start + j] += exp(logits[j] - top) / sum }
                    }
                    for j in 0..<length { received[start + j] += Double(padding) / Double(chunkSize) }
                }
            }
            let weighted = (0..<n).map { i in
                received[i] / Double(group) * (0..<d).reduce(0) { $0 + Double(values[(rows.lowerBound + i) * d + $1]) * Double(values[(rows.lowerBound + i) * d + $1]) }.squareRoot()
            }
            return (0..<n).map { i in ((i > 0 ? weighted[i - 1] : 0) + weighted[i] + (i + 1 < n ? weighted[i + 1] : 0)) / 3 }
        }
        return LeverageScorer.zNormalized(raw)
    }
}
