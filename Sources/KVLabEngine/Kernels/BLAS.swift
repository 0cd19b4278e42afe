import CKVLabKernels
import Foundation

/// The one place kvlab calls OpenBLAS, so every BLAS call can be reviewed and traced here.
///
/// OpenBLAS is opened with `dlopen` on first use rather than linked: a linked OpenBLAS picks its
/// kernels for the CPU (Haswell, SkylakeX, Zen, …) in its load-time constructor, before kvlab
/// runs, and the kernels differ in summation order, so a session recorded on one x86-64 CPU
/// would replay with other floats on another (2-bit KV codes then round the other way). Opened
/// here, it is first told `OPENBLAS_CORETYPE=Haswell` on every CPU with AVX2 and FMA, unless
/// the user set the variable: the same kernels, so the same results, on every such machine.
public enum BLAS {
    /// `C[m×n] = A[m×k] · B[n×k]ᵀ` (row-major; B is a weight matrix stored out × in), with
    /// leading dimensions for writing into a column slice of a wider C.
    static func multiplyTransposed(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                   b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        library.sgemm(rowMajor, noTranspose, transpose, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
    }

    /// Seconds one `n × n × n` single-precision product takes (2n³ FLOPs) on the current BLAS
    /// threads, best of `runs` after a warm-up: the CPU's measured matrix throughput, for the
    /// `this-machine` device profile.
    public static func squareProductSeconds(size n: Int, runs: Int) -> Double {
        let a = [Float](repeating: 1, count: n * n), b = [Float](repeating: 0.5, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = Double.infinity
        let size = Int32(n)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    for run in 0...max(1, runs) {
                        let start = DispatchTime.now().uptimeNanoseconds
                        library.sgemm(rowMajor, noTranspose, noTranspose, size, size, size, 1, a.baseAddress!, size, b.baseAddress!, size,
                                      0, c.baseAddress!, size)
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
        library.setThreads(Int32(count))
    }

    /// OpenBLAS on one thread, for the engines: the pool splits their products in fixed tiles, so
    /// results do not depend on the thread count (OpenBLAS picks its kernels, and so its summation
    /// order, by its own thread count and the call's shape).
    static func useOneThread() {
        library.setThreads(1)
    }

    /// The number of threads OpenBLAS uses.
    public static var threadCount: Int { Int(library.threads()) }

    /// OpenBLAS's build configuration (version, target CPU, threading) and the kernel set it runs,
    /// for `kvlab bench`.
    public static var configuration: String {
        let text = String(cString: library.config()).trimmingCharacters(in: .whitespaces)
        return "\(text), kernels \(coreName)\(library.pinned ? " (pinned by kvlab)" : "")"
    }

    /// The kernel set OpenBLAS chose (`Haswell`, `SkylakeX`, `Zen`, …).
    public static var coreName: String { String(cString: library.coreName()) }

    // CBLAS's enum values (cblas.h).
    private static let rowMajor: Int32 = 101, noTranspose: Int32 = 111, transpose: Int32 = 112

    private static let library = OpenBLASLibrary.open()
}

/// OpenBLAS's entry points, resolved once from the shared library.
private struct OpenBLASLibrary: @unchecked Sendable {
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>, Int32,
                                      UnsafePointer<Float>, Int32, Float, UnsafeMutablePointer<Float>, Int32) -> Void
    let sgemm: SGEMM
    let setThreads: @convention(c) (Int32) -> Void
    let threads: @convention(c) () -> Int32
    let config: @convention(c) () -> UnsafePointer<CChar>
    let coreName: @convention(c) () -> UnsafePointer<CChar>
    /// Whether kvlab chose the kernel set (the user had not).
    let pinned: Bool

    /// The sonames Debian's and most distributions' OpenBLAS packages install.
    static let names = ["libopenblas.so.0", "libopenblas.so"]
    static let baselineCore = "Haswell"

    static func open() -> OpenBLASLibrary {
        let pinned = getenv("OPENBLAS_CORETYPE") == nil && ckv_path_supported(Int32(CKV_PATH_AVX2)) != 0
        if pinned { setenv("OPENBLAS_CORETYPE", baselineCore, 0) }
        guard let handle = names.lazy.compactMap({ dlopen($0, RTLD_NOW | RTLD_LOCAL) }).first else {
            fatal("cannot load OpenBLAS (\(names.joined(separator: " or "))): install libopenblas0 (scripts/setup does)")
        }
        func symbol<T>(_ name: String, as type: T.Type) -> T {
            guard let address = dlsym(handle, name) else { fatal("OpenBLAS has no \(name)") }
            return unsafeBitCast(address, to: type)
        }
        return OpenBLASLibrary(sgemm: symbol("cblas_sgemm", as: SGEMM.self),
                               setThreads: symbol("openblas_set_num_threads", as: (@convention(c) (Int32) -> Void).self),
                               threads: symbol("openblas_get_num_threads", as: (@convention(c) () -> Int32).self),
                               config: symbol("openblas_get_config", as: (@convention(c) () -> UnsafePointer<CChar>).self),
                               coreName: symbol("openblas_get_corename", as: (@convention(c) () -> UnsafePointer<CChar>).self),
                               pinned: pinned)
    }

    private static func fatal(_ message: String) -> Never {
        FileHandle.standardError.write(Data("kvlab: \(message)\n".utf8))
        exit(1)
    }
}
