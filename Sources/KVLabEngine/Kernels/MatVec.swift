import CKVLabKernels
import KVLabMethods

/// Matrix-vector products that read weights in their storage type (decode path), in the C
/// kernels of CKVLabKernels: quantized weights take an integer dot product against the input
/// quantized once to 8 bits in blocks of 32 (as llama.cpp's q8 activations), float weights the
/// float input; q4_0 and q4_K read an interleaved copy eight rows at a time (`WeightMatrix.packedBytes`).
/// Types without a row kernel of their own go through the integer tiles of the
/// prefill products with one input. Each output row is summed by one thread in a fixed order, so
/// results do not depend on the thread count.
enum MatVec {
    /// Products smaller than this many weights run on the calling thread (a dispatch costs more).
    static let parallelThreshold = 1 << 16

    /// One matrix of a product and where its results go.
    struct Product {
        let weights: WeightMatrix
        let out: UnsafeMutablePointer<Float>

        init(_ weights: WeightMatrix, into out: UnsafeMutablePointer<Float>) {
            self.weights = weights
            self.out = out
        }
    }

    /// `out[r] = Σ_c w[r, c] · x[c]` for up to three matrices that read the same input (q/k/v,
    /// gate/up): the input is quantized once for all of them and their rows shared in one
    /// dispatch. Counts the bytes moved into `ledger`: the quantized input at its real size.
    static func multiply(_ first: Product, _ second: Product? = nil, _ third: Product? = nil, input x: UnsafePointer<Float>,
                         scratch: QuantizedActivation, pool: WorkerPool, ledger: inout IOLedger) {
        let cols = first.weights.cols
        func each(_ body: (WeightMatrix, UnsafeMutablePointer<Float>) -> Void) {
            body(first.weights, first.out)
            if let second { body(second.weights, second.out) }
            if let third { body(third.weights, third.out) }
        }
        var job = ckv_matvec()
        job.cols = Int32(cols)
        job.x = x
        job.activation = scratch.view
        var elements = 0, quantized = false
        var tiled: [(WeightMatrix, UnsafeMutablePointer<Float>)] = []
        each { w, out in
            precondition(w.cols == cols, "products sharing an input need the same column count")
            quantized = quantized || w.type.readsQuantizedActivation
            guard w.type.hasKernel else { return tiled.append((w, out)) }
            let packed = w.isPackable
            let matrix = ckv_matrix(weights: packed ? w.packedBytes() : UnsafeRawPointer(w.storage), row_bytes: w.rowBytes,
                                    type: Int32(w.type.ggmlTypeID), rows: Int32(w.rows), out: out, packed: packed ? 1 : 0)
            let index = Int(job.count)
            withUnsafeMutableBytes(of: &job.matrices) { $0.storeBytes(of: matrix, toByteOffset: index * MemoryLayout<ckv_matrix>.stride, as: ckv_matrix.self) }
            job.count += 1
            elements += w.elementCount
        }
        let quantizedBytes = ckv_activation_bytes(Int32(cols))
        if quantized {
            precondition(cols <= scratch.capacity)
            ckv_quantize_activation(x, Int32(cols), scratch.view)
            ledger.read(.activations, cols * 4)
            ledger.write(.activations, quantizedBytes)
        }
        if pool.threads > 1, elements >= parallelThreshold {
            pool.run(ckv_matvec_part, &job)
        } else if job.count > 0 {
            ckv_matvec_part(&job, 0, 1)
        }
        for (w, out) in tiled {
            var gemm = MatMul.job(w, tokens: 1, activation: scratch.view, into: out, stride: w.rows)
            if pool.threads > 1, w.elementCount >= parallelThreshold { pool.run(ckv_gemm_part, &gemm) } else { ckv_gemm_part(&gemm, 0, 1) }
        }
        each { w, _ in
            ledger.read(.weights, w.byteCount)
            ledger.read(.activations, w.type.readsQuantizedActivation ? quantizedBytes : cols * 4)
            ledger.write(.activations, w.rows * 4)
        }
    }
}

/// Scratch for an input vector quantized to 8 bits in blocks of 32: codes, scales, and
/// scale × code sums (the part of a dot product that offset weight types need).
final class QuantizedActivation {
    /// Elements it can hold (a multiple of 32).
    let capacity: Int
    let view: ckv_activation

    init(capacity count: Int) {
        capacity = (count + 31) / 32 * 32
        let blocks = capacity / 32
        view = ckv_activation(qs: .allocate(capacity: capacity), d: .allocate(capacity: blocks), s: .allocate(capacity: blocks),
                              h: .allocate(capacity: 2 * blocks))
    }

    deinit {
        view.qs.deallocate()
        view.d.deallocate()
        view.s.deallocate()
        view.h.deallocate()
    }
}

extension WeightType {
    /// Whether CKVLabKernels has a row kernel for this type (else it goes through integer tiles).
    var hasKernel: Bool { ckv_has_kernel(Int32(ggmlTypeID)) != 0 }

    /// Whether rows of this type unpack into the integer tiles of the matrix products.
    var hasTile: Bool { ckv_has_tile(Int32(ggmlTypeID)) != 0 }

    /// Whether this type's kernel reads the input quantized to 8 bits (else as floats).
    var readsQuantizedActivation: Bool { ckv_uses_quantized_activation(Int32(ggmlTypeID)) != 0 }
}

/// What the decode kernels were built for, for `kvlab bench`.
public enum DecodeKernels {
    /// The vector path chosen at run time: "avx512-vnni", "avx2" or "portable".
    public static var vectorPath: String { String(cString: ckv_vector_path()) }
}
