/// kvpress's `CompactorPress`: `blending · leverage + non-causal attention` (both z-normalized
/// over the layer, `LeverageScorer` and `NonCausalAttnScorer`) over the prompt without its first
/// `sink_size_start` and last `sink_size_end` entries, which always stay (kvpress pads them with the
/// maximum). `blending` defaults to the compression ratio (an entry count or byte budget: the
/// share it removes). A prompt after earlier context is kept whole; on the sequence so far each
/// head's kept entries are the prompt (`NonCausalAttnScorer`).
struct CompactorScorer: KVPressScorer {
    let sinkSizeStart: Int
    let sinkSizeEnd: Int
    let chunkSize: Int
    let blending: Double?

    var queries: Int { .max }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        scores(heads: heads, promptEnd: promptEnd, vectors: vectors, compressionRatio: 0)
    }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?, compressionRatio: Double) -> [[Float]] {
        guard let vectors, let queryRows = NonCausalAttnScorer.queryRows(heads, vectors) else {
            return heads.map { [Float](repeating: .infinity, count: $0.count) }
        }
        let rows = heads.map { e -> Range<Int> in
            let left = min(sinkSizeStart, e.count), right = min(sinkSizeEnd, max(0, e.count - left))
            return left..<(e.count - right)
        }
        let leverage = LeverageScorer.zNormalized(heads.indices.map { h in
            LeverageScorer.leverage(vectors.gatherPreRoPE(head: h, heads[h]), rows: rows[h], d: vectors.headDim)
        })
        let attention = NonCausalAttnScorer.scores(heads: heads, vectors: vectors, rows: rows, queryRows: queryRows, chunkSize: chunkSize)
        let weight = blending ?? compressionRatio
        return heads.indices.map { h in
            let left = rows[h].lowerBound
            return (0..<heads[h].count).map { i in
                rows[h].contains(i) ? Float(weight * leverage[h][i - left] + attention[h][i - left]) : .infinity
            }
        }
    }
}
