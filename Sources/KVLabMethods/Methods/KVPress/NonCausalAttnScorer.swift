import Foundation

/// kvpress's `NonCausalAttnPress` (Compactor's attention half): the prompt cut into chunks of
/// `chunk_size`; inside each, every query attends every key of the chunk, before it or not, with
/// unscaled logits q·k (queries and keys after RoPE). An entry's score is the attention its
/// chunk's queries pay it, summed, averaged over the query group, times ‖v‖, average-pooled over
/// 3 entries (zero padding counted), then z-normalized over the layer. The last chunk is padded
/// as kvpress pads it: padded keys take logit −1e-9 and padded query rows, attending uniformly,
/// add `padding / chunk_size` to each real entry of that chunk. A prompt after earlier context is
/// kept whole (kvpress refuses it). On the sequence so far each head's kept entries are the
/// prompt, each with its token's query recomputed by the engine (`SequencePass.promptQueries`).
struct NonCausalAttnScorer: KVPressScorer {
    let chunkSize: Int

    var queries: Int { .max }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        guard let vectors, let queryRows = Self.queryRows(heads, vectors) else { return heads.map { [Float](repeating: .infinity, count: $0.count) } }
        let rows = heads.map { 0..<$0.count }
        return Self.scores(heads: heads, vectors: vectors, rows: rows, queryRows: queryRows, chunkSize: chunkSize).map { $0.map(Float.init) }
    }

    /// Each head's recorded query row per entry: a prompt's entries are its queries' tokens, all
    /// of them in order; on the sequence so far (queries recomputed from position 0) a kept entry
    /// takes its position's. Nil when some entry has no query (a prompt after earlier context).
    static func queryRows(_ heads: UnsafeMutableBufferPointer<HeadEntries>, _ vectors: any EntryVectors) -> [[Int]]? {
        let recorded = vectors.queries, n = recorded.count
        guard n > 0 else { return nil }
        if heads.allSatisfy({ $0.count == n }) { return heads.map { _ in Array(0..<n) } }
        let first = recorded.rotary[0]
        var rows: [[Int]] = []
        for e in heads {
            var head: [Int] = []
            for i in 0..<e.count {
                let row = Int(e.positions[i]) - first
                guard row >= 0, row < n, recorded.rotary[row] == Int(e.positions[i]) else { return nil }
                head.append(row)
            }
            rows.append(head)
        }
        return rows
    }

    /// Z-normalized non-causal chunked attention scores of each head's entries `rows[h]`, whose
    /// queries are the recorded rows `queryRows[h]` (per entry).
    static func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, vectors: any EntryVectors, rows: [Range<Int>], queryRows: [[Int]],
                       chunkSize: Int) -> [[Double]] {
        let d = vectors.headDim, recorded = vectors.queries, width = recorded.width
        let group = width / d / heads.count
        let raw = heads.indices.map { h -> [Double] in
            let keys = vectors.gather(head: h, heads[h], keys: true), values = vectors.gather(head: h, heads[h], keys: false)
            let first = rows[h].lowerBound, n = rows[h].count
            var received = [Double](repeating: 0, count: n)
            for g in 0..<group {
                let offset = (h * group + g) * d
                for start in stride(from: 0, to: n, by: chunkSize) {
                    let length = min(chunkSize, n - start), padding = chunkSize - length
                    var logits = [Double](repeating: 0, count: length)
                    for t in 0..<length {
                        let q = queryRows[h][first + start + t] * width + offset
                        for j in 0..<length {
                            let k = (first + start + j) * d
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
                received[i] / Double(group) * (0..<d).reduce(0) { $0 + Double(values[(first + i) * d + $1]) * Double(values[(first + i) * d + $1]) }.squareRoot()
            }
            return (0..<n).map { i in ((i > 0 ? weighted[i - 1] : 0) + weighted[i] + (i + 1 < n ? weighted[i + 1] : 0)) / 3 }
        }
        return LeverageScorer.zNormalized(raw)
    }
}
