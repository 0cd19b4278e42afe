import KVLabMethods

/// Batched products for prefill: `out[t, r] = Σ_c x[t, c] · w[r, c]` through OpenBLAS. Weights
/// that are not f32 are decoded a tile of rows at a time, so they are read in their own type; the
/// pool's threads decode a tile's rows between them.
enum MatMul {
    /// Rows of a quantized weight decoded per BLAS call.
    static let tileRows = 256

    static func scratchFloats(config c: ModelConfig) -> Int {
        tileRows * max(c.dim, c.hiddenDim, c.queryDim)
    }

    static func multiply(_ x: UnsafePointer<Float>, rows n: Int, _ w: WeightMatrix, into out: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>, pool: WorkerPool, ledger: inout IOLedger) {
        if w.type == .f32 {
            BLAS.multiplyTransposed(m: n, n: w.rows, k: w.cols, a: x, lda: w.cols,
                                    b: w.storage.assumingMemoryBound(to: Float.self), ldb: w.cols, c: out, ldc: w.rows)
        } else {
            var first = 0
            while first < w.rows {
                let count = min(tileRows, w.rows - first)
                let tile = first
                pool.run { share, shares in
                    for r in (count * share / shares)..<(count * (share + 1) / shares) {
                        w.decodeRow(tile + r, into: scratch + r * w.cols)
                    }
                }
                BLAS.multiplyTransposed(m: n, n: count, k: w.cols, a: x, lda: w.cols, b: scratch, ldb: w.cols,
                                        c: out + first, ldc: w.rows)
                first += count
            }
        }
        ledger.read(.weights, w.byteCount)
        ledger.read(.activations, n * w.cols * 4)
        ledger.write(.activations, n * w.rows * 4)
    }
}
