import CNCursesW
import Glibc

/// What the fatal-signal handler writes while the workbench holds the terminal: a backtrace to
/// `$TMPDIR/kvlab-crash-PID.txt` (or under /tmp) and one line on stderr naming that file. Every
/// byte it needs is prepared beforehand, so the handler only calls async-signal-safe functions
/// (`open`, `write`, `close`) and glibc's `backtrace_symbols_fd`, which does not allocate.
enum CrashReport {
    static let frameCapacity = 128
    static let pathCapacity = 512

    /// The report's path (NUL-terminated) and the frame buffer, allocated once for the life of the
    /// process (a handler may read them at any time).
    nonisolated(unsafe) private static let path = UnsafeMutablePointer<CChar>.allocate(capacity: pathCapacity)
    nonisolated(unsafe) private static let frames = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: frameCapacity)
    nonisolated(unsafe) private static var pathLength = 0

    /// The file a crash of this process writes its backtrace to.
    static var file: String { String(cString: path) }

    /// Names the report file and loads what `backtrace` needs (its first call may allocate, as it
    /// loads the unwinder): called when the handlers are installed, never from one.
    static func prepare() {
        let directory = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        let name = Array("\(directory)/kvlab-crash-\(getpid()).txt".utf8.prefix(pathCapacity - 1))
        for (index, byte) in name.enumerated() { path[index] = CChar(bitPattern: byte) }
        path[name.count] = 0
        pathLength = name.count
        _ = backtrace(frames, Int32(frameCapacity))
    }

    /// Writes the backtrace of the crashing thread and the line naming it; async-signal-safe.
    static func write(signal: Int32) {
        var number = (UInt8(0), UInt8(0), UInt8(0))
        let digits = withUnsafeMutableBytes(of: &number) { digits in
            var value = Int(signal), count = 0
            repeat {
                digits[2 - count] = UInt8(48 + value % 10)
                value /= 10
                count += 1
            } while value > 0 && count < 3
            return count
        }
        let count = backtrace(frames, Int32(frameCapacity))
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0o600)
        if fd >= 0 {
            put(fd, "kvlab: fatal signal ")
            withUnsafeBytes(of: &number) { _ = Glibc.write(fd, $0.baseAddress! + 3 - digits, digits) }
            put(fd, "; backtrace of the crashing thread (`addr2line -fCe BINARY +OFFSET` names a frame):\n")
            backtrace_symbols_fd(frames, count, fd)
            close(fd)
        }
        put(2, "kvlab: fatal signal ")
        withUnsafeBytes(of: &number) { _ = Glibc.write(2, $0.baseAddress! + 3 - digits, digits) }
        if fd >= 0 {
            put(2, "; the terminal is restored; backtrace in ")
            _ = Glibc.write(2, path, pathLength)
            put(2, "\n")
        } else {
            put(2, "; the terminal is restored (no backtrace: cannot create ")
            _ = Glibc.write(2, path, pathLength)
            put(2, ")\n")
        }
    }

    /// Writes a static string's bytes (string literals are stored, not built, so no allocation).
    private static func put(_ fd: Int32, _ text: StaticString) {
        _ = Glibc.write(fd, text.utf8Start, text.utf8CodeUnitCount)
    }
}
