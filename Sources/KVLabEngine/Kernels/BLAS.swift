import Foundation
import COpenBLAS

/// The one place kvlab calls OpenBLAS, so every BLAS call can be reviewed and traced here.
public enum BLAS {
    /// `C[m×n] = A[m×k] · B[n×k]ᵀ` (row-major; B is a weight matrix stored out × in), with
    /// leading dimensions for writing into a column slice of a wider C.
    static func multiplyTransposed(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                   b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k),
                    1, a, blasint(lda), b, blasint(ldb), 0, c, blasint(ldc))
    }

    /// Seconds one `n × n × n` single-precision product takes (2n³ FLOPs) on the current BLAS
    /// threads, best of `runs` after a warm-up: the CPU's measured matrix throughput, for the
    /// `this-machine` device profile.
    public static func squareProductSeconds(size n: Int, runs: Int) -> Double {
        let a = [Float](repeating: 1, count: n * n), b = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    for run in 0...max(1, runs) {
                        let start = DispatchTime.now().uptimeNanoseconds
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(n), blasint(n), blasint(n),
                                    1, a.baseAddress, blasint(n), b.baseAddress, blasint(n), 0, c.baseAddress, blasint(n))
                        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                        if run > 0 { best = min(best, seconds) }
                    }
                }
            }
        }
        return best
    }

    /// Sets the number of threads OpenBLAS uses for its own calls.
    public static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(count))
    }

    /// OpenBLAS on one thread, for the engines: the pool splits their products in fixed tiles, so
    /// results do not depend on the thread count (OpenBLAS picks its kernels, and so its summation
    /// order, by its own thread count and the call's shape).
    static func useOneThread() {
        openblas_set_num_threads(1)
    }

    /// The number of threads OpenBLAS uses.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// OpenBLAS's build configuration (version, target CPU, threading), for `kvlab bench`.
    public static var configuration: String {
        guard let text = openblas_get_config() else { return "unknown" }
        return String(cString: text).trimmingCharacters(in: .whitespaces)
    }
}
