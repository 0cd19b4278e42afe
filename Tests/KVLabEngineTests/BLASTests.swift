import CKVLabKernels
import Foundation
@testable import KVLabEngine
import Testing

/// OpenBLAS as the engine opens it: the product the engine relies on, and the kernel set kvlab
/// pins so that results and replays are the same on every x86-64 CPU with AVX2.
@Suite struct BLASTests {
    @Test func multipliesRowMajorTransposed() {
        // [1 2; 3 4] · [5 6; 7 8]ᵀ = [17 23; 39 53]
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        BLAS.multiplyTransposed(m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, c: &c, ldc: 2)
        #expect(c == [17, 23, 39, 53])
    }

    @Test func runsTheBaselineKernelsOnAVX2Machines() {
        _ = BLAS.threadCount  // opens the library, setting OPENBLAS_CORETYPE first unless the user did
        if let chosen = getenv("OPENBLAS_CORETYPE").map({ String(cString: $0) }) {
            #expect(BLAS.coreName.lowercased() == chosen.lowercased(), "OPENBLAS_CORETYPE=\(chosen) but OpenBLAS runs \(BLAS.coreName)")
        } else {
            #expect(ckv_path_supported(Int32(CKV_PATH_AVX2)) == 0, "an AVX2 machine runs OpenBLAS's own choice, \(BLAS.coreName)")
        }
        #expect(BLAS.configuration.contains("kernels \(BLAS.coreName)"))
    }
}
