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

    @Test func cursesStartsHeadlessWithWideCharacters() throws {
        setlocale(LC_ALL, "C.UTF-8")
        let output = fopen("/dev/null", "w"), input = fopen("/dev/null", "r")
        defer { fclose(output); fclose(input) }
        let screen = try #require(newterm("xterm-256color", output, input))
        defer { delscreen(screen) }
        let window = try #require(kvlab_stdscr())
        #expect(kvlab_lines() > 0 && kvlab_cols() > 0)
        let text = Array("█▓ kvlab".unicodeScalars.map { wchar_t($0.value) }) + [0]
        #expect(mvwaddnwstr(window, 0, 0, text, Int32(text.count - 1)) == OK)
        #expect(wcwidth(wchar_t(0x2588)) == 1)
        #expect(kvlab_a_bold() != kvlab_a_normal())
        endwin()
    }
}
