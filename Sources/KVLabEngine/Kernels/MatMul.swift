import CKVLabKernels
import KVLabMethods

/// Batched products for prefill: `out[t, r] = Σ_c x[t, c] · w[r, c]`. Quantized weights take
/// CKVLabKernels' integer tiles: the inputs quantized to 8 bits as the decode kernels' are, the
/// rows unpacked eight (AVX-512: 32) at a time and multiplied with every input, tiles split
/// over the pool (no BLAS threads competing with it). f32 goes to OpenBLAS (one thread) in tiles of rows split over
/// the pool; f16 and bf16 are decoded a tile of rows
/// at a time into floats for OpenBLAS, the pool's threads decoding a tile's rows between them.
enum MatMul {
    /// Rows of a float-decoded weight per BLAS call.
    static let tileRows = 256

    /// Inputs quantized and multiplied per pass over a quantized matrix (their codes, scales and
    /// sums, 1.5 bytes per element, fit the scratch).
    static let tokensPerPass = 256

    static func scratchFloats(config c: ModelConfig) -> Int {
        tileRows * max(c.dim, c.hiddenDim, c.queryDim)
    }

    static func multiply(_ x: UnsafePointer<Float>, rows n: Int, _ w: WeightMatrix, into out: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>, pool: WorkerPool, ledger: inout IOLedger) {
        multiply(x, rows: n, [(w, out)], scratch: scratch, pool: pool, ledger: &ledger)
    }

    /// Products of matrices that share the input `x` (q/k/v, gate/up): the quantized ones take the
    /// input quantized once per pass and their tiles split over the pool in one dispatch.
    static func multiply(_ x: UnsafePointer<Float>, rows n: Int, _ products: [(WeightMatrix, UnsafeMutablePointer<Float>)],
                         scratch: UnsafeMutablePointer<Float>, pool: WorkerPool, ledger: inout IOLedger) {
        var tiled: [(WeightMatrix, UnsafeMutablePointer<Float>)] = []
        for (w, out) in products {
            if w.type.hasTile {
                tiled.append((w, out))
                continue
            }
            floatProduct(x, rows: n, w, into: out, scratch: scratch, pool: pool)
            ledger.read(.weights, w.byteCount)
            ledger.read(.activations, n * w.cols * 4)
            ledger.write(.activations, n * w.rows * 4)
        }
        if !tiled.isEmpty { integerProducts(x, rows: n, tiled, scratch: UnsafeMutableRawPointer(scratch), pool: pool, ledger: &ledger) }
    }

    private static func floatProduct(_ x: UnsafePointer<Float>, rows n: Int, _ w: WeightMatrix, into out: UnsafeMutablePointer<Float>,
                                     scratch: UnsafeMutablePointer<Float>, pool: WorkerPool) {
        if w.type == .f32 {
            // Tiles of `tileRows` weight rows split over the pool: every call has the same shape
            // whatever the thread count, so neither do the results.
            let tiles = (w.rows + tileRows - 1) / tileRows
            let weights = w.storage.assumingMemoryBound(to: Float.self)
            pool.run { share, shares in
                for tile in (tiles * share / shares)..<(tiles * (share + 1) / shares) {
                    let first = tile * tileRows, count = min(tileRows, w.rows - first)
                    BLAS.multiplyTransposed(m: n, n: count, k: w.cols, a: x, lda: w.cols, b: weights + first * w.cols, ldb: w.cols,
                                            c: out + first, ldc: w.rows)
                }
            }
            return
        }
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

    /// A CKVLabKernels product of `w` with `tokens` quantized inputs, `out[t · stride + r]`.
    static func job(_ w: WeightMatrix, tokens: Int, activation: ckv_activation, into out: UnsafeMutablePointer<Float>,
                    stride: Int) -> ckv_gemm {
        // A packed matrix's tiles come from its interleaved copy, so its mapped pages stay released.
        let packed = w.isPackable
        return ckv_gemm(weights: packed ? w.packedBytes() : UnsafeRawPointer(w.storage), row_bytes: w.rowBytes, type: Int32(w.type.ggmlTypeID),
                        rows: Int32(w.rows), cols: Int32(w.cols), tokens: Int32(tokens), activation: activation, out: out, out_stride: stride,
                        path: 0, packed: packed ? 1 : 0)
    }

    /// Passes of up to `tokensPerPass` inputs: quantized into the scratch on the pool, then every
    /// matrix's tiles against all of them in one dispatch (each share takes its slice of each
    /// matrix, so results do not depend on the thread count). Each pass reads the weights once.
    private static func integerProducts(_ x: UnsafePointer<Float>, rows n: Int, _ products: [(WeightMatrix, UnsafeMutablePointer<Float>)],
                                        scratch: UnsafeMutableRawPointer, pool: WorkerPool, ledger: inout IOLedger) {
        let cols = products[0].0.cols, blocks = cols / 32
        precondition(products.allSatisfy { $0.0.cols == cols }, "products sharing an input need the same column count")
        let capacity = min(n, tokensPerPass)
        let qs = scratch.assumingMemoryBound(to: Int8.self)
        let d = (scratch + capacity * cols).assumingMemoryBound(to: Float.self)
        let s = d + capacity * blocks, h = s + capacity * blocks
        var first = 0
        while first < n {
            let count = min(capacity, n - first), start = first
            pool.run { share, shares in
                for t in (count * share / shares)..<(count * (share + 1) / shares) {
                    ckv_quantize_activation(x + (start + t) * cols, Int32(cols),
                                            ckv_activation(qs: qs + t * cols, d: d + t * blocks, s: s + t * blocks, h: h + 2 * t * blocks))
                }
            }
            let activation = ckv_activation(qs: qs, d: d, s: s, h: h)
            var jobs = products.map { job($0.0, tokens: count, activation: activation, into: $0.1 + start * $0.0.rows, stride: $0.0.rows) }
            jobs.withUnsafeMutableBufferPointer { jobs in
                if jobs.count == 1 { return pool.run(ckv_gemm_part, jobs.baseAddress!) }
                pool.run { share, shares in
                    for i in jobs.indices { ckv_gemm_part(jobs.baseAddress! + i, Int32(share), Int32(shares)) }
                }
            }
            for (w, _) in products { ledger.read(.weights, w.byteCount) }
            ledger.read(.activations, count * cols * 4)
            ledger.write(.activations, count * Int(ckv_activation_bytes(Int32(cols))))
            first += count
        }
        for (w, _) in products { ledger.write(.activations, n * w.rows * 4) }
    }
}
