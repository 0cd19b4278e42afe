import Foundation
import Glibc

/// A pseudo-terminal for driving the curses backend as a user's terminal would: keys written to
/// the master side, screen output read back from it.
final class PseudoTerminal {
    let master: Int32
    let slave: Int32
    let slavePath: String
    let output: UnsafeMutablePointer<FILE>
    let input: UnsafeMutablePointer<FILE>

    /// Glibc's module hides the pseudo-terminal calls (they need _XOPEN_SOURCE), so they are
    /// looked up in the C library directly.
    private static func libc<Function>(_ name: String, _ type: Function.Type) -> Function {
        unsafeBitCast(dlsym(dlopen(nil, RTLD_NOW), name), to: type)
    }

    init() throws {
        let openMaster = Self.libc("posix_openpt", (@convention(c) (Int32) -> Int32).self)
        let grant = Self.libc("grantpt", (@convention(c) (Int32) -> Int32).self)
        let unlock = Self.libc("unlockpt", (@convention(c) (Int32) -> Int32).self)
        let name = Self.libc("ptsname_r", (@convention(c) (Int32, UnsafeMutablePointer<CChar>, Int) -> Int32).self)
        master = openMaster(O_RDWR | O_NOCTTY)
        var path = [CChar](repeating: 0, count: 128)
        guard master >= 0, grant(master) == 0, unlock(master) == 0, name(master, &path, path.count) == 0 else {
            throw POSIXError(.EIO)
        }
        slavePath = String(decoding: path.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        slave = open(slavePath, O_RDWR | O_NOCTTY)
        guard slave >= 0, let output = fdopen(dup(slave), "w"), let input = fdopen(dup(slave), "r") else { throw POSIXError(.EIO) }
        self.output = output
        self.input = input
    }

    private var masterOpen = true

    deinit {
        fclose(output)
        fclose(input)
        close(slave)
        hangUp()
    }

    /// Closes the master side, as a terminal emulator does when its window closes.
    func hangUp() {
        if masterOpen { close(master) }
        masterOpen = false
    }

    /// Types bytes as if on the keyboard.
    func type(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
    }

    /// Everything the terminal has been sent since the last call.
    func drain() -> String {
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        while poll(&poller, 1, 50) > 0 && poller.revents & Int16(POLLIN) != 0 {
            let count = read(master, &buffer, buffer.count)
            guard count > 0 else { break }
            collected += buffer[0..<count]
        }
        return String(decoding: collected, as: UTF8.self)
    }

    /// The slave side's line-discipline flags (canonical mode, echo).
    var localModes: tcflag_t {
        var modes = termios()
        tcgetattr(slave, &modes)
        return modes.c_lflag & tcflag_t(ICANON | ECHO)
    }

    /// Sets the window size the kernel reports for the terminal, as a terminal emulator does.
    func resize(rows: Int, columns: Int) throws {
        let stty = Process()
        stty.executableURL = URL(fileURLWithPath: "/bin/stty")
        stty.arguments = ["-F", slavePath, "rows", "\(rows)", "cols", "\(columns)"]
        try stty.run()
        stty.waitUntilExit()
    }
}
