import CNCursesW
import KVLabTUI

/// Turns what `wget_wch` returns into a `Key`.
enum KeyDecoder {
    /// The key for a `wget_wch` status and code, or nil for nothing (timeout) or keys kvlab does
    /// not use (mouse events, unnamed function keys).
    static func key(status: Int32, code: UInt32) -> Key? {
        if status == kvlab_key_code_yes() { return functionKey(Int32(bitPattern: code)) }
        guard status == OK else { return nil }
        switch code {
        case 10, 13: return .enter
        case 9: return .tab
        case 8, 127: return .backspace
        case 27: return .escape
        case 1...26: return .control(Character(Unicode.Scalar(code + 0x60)!))
        case 0..<32: return nil
        default: return Unicode.Scalar(code).map { .character(Character($0)) }
        }
    }

    private static func functionKey(_ code: Int32) -> Key? {
        switch code {
        case KEY_UP: return .up
        case KEY_DOWN: return .down
        case KEY_LEFT: return .left
        case KEY_RIGHT: return .right
        case KEY_HOME: return .home
        case KEY_END: return .end
        case KEY_PPAGE: return .pageUp
        case KEY_NPAGE: return .pageDown
        case KEY_DC: return .delete
        case KEY_IC: return .insert
        case KEY_BACKSPACE: return .backspace
        case KEY_ENTER: return .enter
        case KEY_BTAB: return .backTab
        case kvlab_key_resize(): return .resize
        case kvlab_key_f(1)...kvlab_key_f(63): return .function(Int(code - kvlab_key_f(0)))
        default: return nil
        }
    }
}
