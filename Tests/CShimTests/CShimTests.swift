import CNCursesW
import Foundation
import Testing

/// The curses shim compiles under Swift 6 and its accessors behave as the TUI relies on.
@Suite struct CShimTests {
    /// The macro and global accessors import; starting a screen is tested in KVLabCursesTests,
    /// whose serialized suite is the only code that opens one (curses has one screen per process).
    @Test func cursesAccessorsImport() {
        #expect(kvlab_a_bold() != kvlab_a_normal())
        #expect(kvlab_a_color() & kvlab_a_bold() == 0)
        #expect(kvlab_key_f(1) == KEY_F0 + 1)
        #expect(kvlab_key_code_yes() == KEY_CODE_YES)
    }
}
