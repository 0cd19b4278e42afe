import KVLabMethods

/// Batched prefill attention of one KV head over a prompt's entries: the naive kernel as BLAS
/// products, or the tiled kernel. `finish(t)` runs, in position order, for each query token `t`
/// whose probabilities the method needs (`needed`), once they are in `probabilities`.
extension CacheAttention {
    /// Most floats of scores naive batched attention materializes at once (64 MiB): longer
    /// prompts run in chunks of query tokens, each reading the keys and values again.
    static let naiveScoreFloats = 1 << 24

    /// The layout of naive batched attention's scratch for a head of up to `entries` entries:
    /// gathered keys, transposed values, then the score rows of one chunk of query tokens.
    struct NaiveScratch {
        let entries: Int
        /// Score row stride (whole 16-lane chunks, as softmax needs).
        let rowStride: Int
        let chunkTokens: Int
        let floats: Int

        init(tokens: Int, group: Int, headDim: Int, entries: Int) {
            self.entries = entries
            rowStride = (entries + 15) / 16 * 16
            chunkTokens = max(1, min(tokens, CacheAttention.naiveScoreFloats / (group * rowStride)))
            floats = 2 * entries * headDim + chunkTokens * group * rowStride
        }
    }

    /// Naive batched attention of one KV head: keys (row-major) and values (transposed) gathered,
    /// S = Q·Kᵀ and O = P·V as BLAS products, softmax over each row's causal prefix (the rest of
    /// the row zeroed). On a local layer chunks of about a window's tokens multiply only the band
    /// of entries their windows cover (from the chunk's first window start, down to a whole
    /// 16-lane chunk, to its last row's end), and entries outside a row's window are masked.
    /// Traffic per chunk of queries: the band's keys and values once; scores written by the
    /// product, read and rewritten as probabilities by softmax, read by P·V.
    func prefillNaive(index: Int, tokens n: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                      causal: CausalRows, scratch: NaiveScratch, at base: UnsafeMutablePointer<Float>,
                      needed: (Int) -> Bool, finish: (Int, inout IOLedger) -> Void, ledger: inout IOLedger) {
        let hd = store.layout.headDim, group = store.layout.groupSize, rows = n * group
        let entries = causal.visible(rows - 1)
        let rowStride = scratch.rowStride
        let chunk = causal.window.map { min(scratch.chunkTokens, max(16, $0)) } ?? scratch.chunkTokens
        let keys = base, valuesT = base + scratch.entries * hd, scores = base + 2 * scratch.entries * hd
        for slot in 0..<entries {
            (keys + slot * hd).update(from: store.key(index: index, slot: slot), count: hd)
            let v = store.value(index: index, slot: slot)
            for c in 0..<hd { valuesT[c * entries + slot] = v[c] }
        }
        var start = 0
        while start < n {
            let chunkTokens = min(chunk, n - start), firstRow = start * group, chunkRows = chunkTokens * group
            let low = causal.start(firstRow) / 16 * 16, high = causal.visible(firstRow + chunkRows - 1), width = high - low
            if low == 0 && high == entries {
                store.countDenseRead(key: true, index: index, visible: entries, ledger: &ledger)
                store.countDenseRead(key: false, index: index, visible: entries, ledger: &ledger)
            } else {
                store.beginReads()
                for slot in low..<high {
                    store.countRead(key: true, index: index, slot: slot, ledger: &ledger)
                    store.countRead(key: false, index: index, slot: slot, ledger: &ledger)
                }
            }
            BLAS.multiplyTransposed(m: chunkRows, n: width, k: hd, a: queries + firstRow * hd, lda: hd,
                                    b: keys + low * hd, ldb: hd, c: scores + low, ldc: rowStride)
            for r in 0..<chunkRows {
                let row = scores + r * rowStride, visible = causal.visible(firstRow + r)
                for i in low..<visible { row[i] = capped(row[i] * scale) }
                causal.maskWindow(rows: (firstRow + r)..<(firstRow + r + 1), tile: low..<visible, scores: row + low, stride: 0,
                                  masked: Self.masked)
                Vector.softmax(row + low, count: visible - low)
                // Softmax leaves ~1e-38 where it was masked: a method reading probabilities sees 0.
                causal.maskWindow(rows: (firstRow + r)..<(firstRow + r + 1), tile: low..<visible, scores: row + low, stride: 0, masked: 0)
                for i in visible..<high { row[i] = 0 }
            }
            ledger.write(.scores, 2 * chunkRows * width * 4)
            ledger.read(.scores, 2 * chunkRows * width * 4)
            BLAS.multiplyTransposed(m: chunkRows, n: hd, k: width, a: scores + low, lda: rowStride, b: valuesT + low, ldb: entries,
                                    c: output + firstRow * hd, ldc: hd)
            for t in start..<(start + chunkTokens) where needed(t) {
                let visible = causal.visible(t * group)
                for g in 0..<group {
                    let p = probabilities + g * scoreStride
                    p.update(repeating: 0, count: low)
                    (p + low).update(from: scores + ((t - start) * group + g) * rowStride + low, count: visible - low)
                }
                ledger.read(.scores, group * (visible - low) * 4)
                finish(t, &ledger)
            }
            start += chunkTokens
        }
        ledger.read(.activations, rows * hd * 4)
        ledger.write(.activations, rows * hd * 4)
    }

    /// Tiled batched attention of one KV head (every visible slot listed, rows token-major), then a
    /// second pass over the keys for each query whose probabilities are needed.
    func prefillTiled(_ kernel: TiledAttention, index: Int, rows: Int, queries: UnsafePointer<Float>,
                      output: UnsafeMutablePointer<Float>, causal: CausalRows, needed: (Int) -> Bool,
                      finish: (Int, inout IOLedger) -> Void, ledger: inout IOLedger) {
        let group = store.layout.groupSize
        tiledPass(kernel, index: index, queries: queries, rows: rows, entries: causal.visible(rows - 1), causal: causal,
                  dense: true, masked: false, output: output, ledger: &ledger)
        for t in 0..<(rows / group) where needed(t) {
            writeProbabilities(kernel, index: index, rows: (t * group)..<((t + 1) * group), queries: queries,
                               visible: causal.visible(t * group), listed: nil, causal: causal, ledger: &ledger)
            finish(t, &ledger)
        }
    }
}
