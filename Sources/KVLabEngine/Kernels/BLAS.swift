import COpenBLAS
import Foundation

/// The one place kvlab calls OpenBLAS, so every BLAS call can be reviewed and traced here.
public enum BLAS {
    /// `C[m×n] = A[m×k] · B[n×k]ᵀ` (row-major; B is a weight matrix stored out × in), with
    /// leading dimensions for writing into a column slice of a wider C.
    static func multiplyTransposed(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                   b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k),
                    1, a, blasint(lda), b, blasint(ldb), 0, c, blasint(ldc))
    }

    /// Sets the number of threads OpenBLAS uses for its own calls.
    public static func setThreadCount(_ count: Int) {
        openblas_set_num_threads(Int32(count))
    }

    /// The number of threads OpenBLAS uses.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// OpenBLAS's build configuration (version, target CPU, threading), for `kvlab bench`.
    public static var configuration: String {
        guard let text = openblas_get_config() else { return "unknown" }
        return String(cString: text).trimmingCharacters(in: .whitespaces)
    }
}
