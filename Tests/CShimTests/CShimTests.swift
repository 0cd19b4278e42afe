import CNCursesW
import COpenBLAS
import Foundation
import Testing

/// The C shims compile under Swift 6 and the libraries behave as the engine and TUI rely on.
@Suite struct CShimTests {
    @Test func openBLASMultipliesRowMajorTransposed() {
        // [1 2; 3 4] · [5 6; 7 8]ᵀ = [17 23; 39 53]
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        var c = [Float](repeating: 0, count: 4)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 2, 2, 2, 1, a, 2, b, 2, 0, &c, 2)
        #expect(c == [17, 23, 39, 53])
        #expect(openblas_get_config() != nil)
    }

    /// The macro and global accessors import; starting a screen is tested in KVLabCursesTests,
    /// whose serialized suite is the only code that opens one (curses has one screen per process).
    @Test func cursesAccessorsImport() {
        #expect(kvlab_a_bold() != kvlab_a_normal())
        #expect(kvlab_a_color() & kvlab_a_bold() == 0)
        #expect(kvlab_key_f(1) == KEY_F0 + 1)
        #expect(kvlab_key_code_yes() == KEY_CODE_YES)
    }
}
