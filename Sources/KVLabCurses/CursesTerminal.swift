import CNCursesW
import Glibc
import KVLabTUI

/// A one-line problem opening or using the terminal.
public struct TerminalError: Error, CustomStringConvertible, Equatable {
    public var description: String
    /// An error with this message.
    public init(_ description: String) { self.description = description }
}

/// The curses backend: opens the screen, draws buffers by their differences, reads keys, follows
/// resizes, and always gives the terminal back (on `stop`, at exit, and from signal handlers
/// after SIGINT/SIGTERM/SIGHUP twice or a crash). The only code in kvlab that calls curses.
///
/// One terminal can be open at a time (curses has one current screen per process). Use it from
/// one thread.
public final class CursesTerminal {
    /// Columns of the screen.
    public private(set) var width: Int
    /// Rows of the screen.
    public private(set) var height: Int
    /// Box drawing and graph glyphs the locale can show (`ascii` unless the codeset is UTF-8).
    public let glyphs: GlyphSet
    /// What the terminal's terminfo entry says about colours, for `ColorSetting.depth`.
    public let colorSupport: ColorSetting.Terminal

    private let screen: OpaquePointer
    private let window: UnsafeMutablePointer<WINDOW>
    private let outputFD: Int32
    private let inputFD: Int32
    /// The calling thread's signal mask before the screen's signals were unblocked on it.
    private var savedSignalMask = sigset_t()
    private var colors: ColorAllocator
    private var palette: (theme: Theme, depth: ColorDepth)?
    private var appearances: [Style: (attributes: attr_t, pair: Int32)] = [:]
    private var previous: Buffer?
    private var text: [wchar_t] = []
    private var stopped = false

    /// Checks that kvlab talks to a terminal, before anything is drawn.
    public static func requireTerminal(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO) throws {
        guard isatty(output) == 1 else {
            throw TerminalError("the workbench needs a terminal, but standard output is not one; use `kvlab run` for output to pipes and files")
        }
        guard isatty(input) == 1 else {
            throw TerminalError("the workbench reads keys from a terminal, but standard input is not one; use `kvlab run` for scripted runs")
        }
    }

    /// Opens the process's own terminal (standard input and output), in the user's locale.
    public static func openInteractive() throws -> CursesTerminal {
        try requireTerminal()
        setlocale(LC_ALL, "")
        // Streams over the standard descriptors for curses; never closed, as that would close them.
        guard let output = fdopen(STDOUT_FILENO, "w"), let input = fdopen(STDIN_FILENO, "r") else {
            throw TerminalError("cannot open the terminal's streams: \(String(cString: strerror(errno)))")
        }
        return try CursesTerminal(output: output, input: input, terminalType: nil)
    }

    /// Opens curses on the given streams: the terminal, or a pseudo-terminal or /dev/null for
    /// headless runs. `terminalType` is a terminfo name (nil: `$TERM`). The locale must be set.
    public init(output: UnsafeMutablePointer<FILE>, input: UnsafeMutablePointer<FILE>, terminalType: String?) throws {
        guard !TerminalSignals.terminalOpen.exchange(true, ordering: .acquiringAndReleasing) else {
            throw TerminalError("a terminal screen is already open")
        }
        outputFD = fileno(output)
        inputFD = fileno(input)
        var modes = termios()
        let savedModes: termios? = tcgetattr(outputFD, &modes) == 0 ? modes : nil
        // Handlers first: curses leaves SIGINT, SIGTERM and SIGWINCH alone when they are taken.
        TerminalSignals.install()
        // A process started from a thread that blocks signals inherits that mask (a launcher's
        // worker thread, say): this thread, which runs the screen, takes the terminal's signals.
        var screenSignals = sigset_t()
        sigemptyset(&screenSignals)
        for signal in [SIGWINCH] + TerminalSignals.stopSignals { sigaddset(&screenSignals, signal) }
        pthread_sigmask(SIG_UNBLOCK, &screenSignals, &savedSignalMask)
        guard let screen = newterm(terminalType, output, input), let window = kvlab_stdscr() else {
            pthread_sigmask(SIG_SETMASK, &savedSignalMask, nil)
            TerminalSignals.uninstall()
            TerminalSignals.terminalOpen.store(false, ordering: .releasing)
            throw TerminalError("cannot start curses for terminal type '\(terminalType ?? Self.environment("TERM") ?? "")'")
        }
        self.screen = screen
        self.window = window
        cbreak()
        noecho()
        nonl()
        keypad(window, true)
        set_escdelay(25)
        curs_set(0)

        var colorCount: Int32 = 0, direct = false, redefine = false
        if has_colors() {
            start_color()
            use_default_colors()
            colorCount = kvlab_colors()
            direct = tigetflag("RGB") > 0 || colorCount >= 1 << 24
            redefine = can_change_color()
        }
        colorSupport = ColorSetting.Terminal(colors: Int(colorCount), directColor: direct, canRedefineColors: redefine)
        colors = ColorAllocator(directColor: direct, canRedefineColors: redefine, colors: colorCount, colorPairs: kvlab_color_pairs())
        glyphs = GlyphSet.forCodeset(String(cString: nl_langinfo(nl_item(CODESET))))
        width = Int(kvlab_cols())
        height = Int(kvlab_lines())
        TerminalSignals.arm(fd: outputFD, modes: savedModes, leaveSequence: Self.leaveSequence())
    }

    deinit { stop() }

    /// Gives the terminal back: leaves curses, restores the tty modes and signal handlers. Safe
    /// to call more than once.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        _ = TerminalSignals.emergency.exchange(0, ordering: .acquiringAndReleasing)
        endwin()
        delscreen(screen)
        TerminalSignals.uninstall()
        pthread_sigmask(SIG_SETMASK, &savedSignalMask, nil)
        TerminalSignals.terminalOpen.store(false, ordering: .releasing)
    }

    /// The SIGINT, SIGTERM or SIGHUP that asked kvlab to quit, if one arrived (exit with 128 + it);
    /// SIGHUP also when the terminal went away without one (its input hung up).
    public var stopSignal: Int32? {
        let signal = TerminalSignals.stopSignal.load(ordering: .acquiring)
        return signal == 0 ? nil : signal
    }

    /// Draws the cells of `buffer` that differ from the last frame, in the palette's colours.
    public func draw(_ buffer: Buffer, palette: Palette) {
        if self.palette?.theme != palette.theme || self.palette?.depth != palette.depth {
            self.palette = (palette.theme, palette.depth)
            appearances.removeAll()
            colors.reset()
            previous = nil
        }
        let columns = min(buffer.width, width)
        for run in buffer.diff(from: previous) where run.y < height {
            var x = run.x
            let end = min(run.x + run.count, columns)
            while x < end {
                if buffer[x, run.y].isContinuation { x += 1; continue }
                let look = appearance(buffer[x, run.y].style, palette)
                let start = x
                text.removeAll(keepingCapacity: true)
                while x < end {
                    let cell = buffer[x, run.y]
                    if cell.isContinuation { x += 1; continue }
                    let cellLook = appearance(cell.style, palette)
                    if cellLook != look { break }
                    append(cell.symbol)
                    x += 1
                    // After a wide cluster, place the next text explicitly in case the terminal's
                    // width tables disagree with kvlab's.
                    if x < end && buffer[x, run.y].isContinuation { x += 1; break }
                }
                guard !text.isEmpty else { continue }
                kvlab_set_attributes(window, look.attributes, look.pair)
                mvwaddnwstr(window, Int32(run.y), Int32(start), text, Int32(text.count))
            }
        }
        wnoutrefresh(window)
        doupdate()
        previous = buffer
    }

    /// The next key, waiting at most `timeoutMilliseconds` (negative: until one comes); `.resize`
    /// after the terminal changed size (then `width` and `height` are the new size); nil when
    /// nothing came, a stop signal arrived, or the key is one kvlab does not use.
    public func readKey(timeoutMilliseconds: Int32) -> Key? {
        if followResize() { return .resize }
        wtimeout(window, timeoutMilliseconds)
        var code: wint_t = 0
        let status = wget_wch(window, &code)
        if followResize() { return .resize }
        if status == ERR { noticeHangUp() }
        let key = KeyDecoder.key(status: status, code: code)
        if key == .resize { updateSize() }
        return key
    }

    /// Nothing to read may mean the terminal is gone (its emulator closed): then quitting is the
    /// only way on, as after SIGHUP.
    private func noticeHangUp() {
        var input = pollfd(fd: inputFD, events: Int16(POLLIN), revents: 0)
        guard poll(&input, 1, 0) > 0, input.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 else { return }
        _ = TerminalSignals.stopSignal.compareExchange(expected: 0, desired: SIGHUP, ordering: .acquiringAndReleasing)
    }

    /// After SIGWINCH: resizes curses to the terminal's new size and forces a full redraw.
    private func followResize() -> Bool {
        guard TerminalSignals.resizePending.exchange(false, ordering: .acquiringAndReleasing) else { return false }
        var rows: Int32 = 0, columns: Int32 = 0
        if kvlab_window_size(outputFD, &rows, &columns) == 0 { resizeterm(rows, columns) }
        updateSize()
        return true
    }

    private func updateSize() {
        width = Int(kvlab_cols())
        height = Int(kvlab_lines())
        wclear(window)  // the terminal may have reflowed: repaint every cell
        previous = nil
    }

    private func appearance(_ style: Style, _ palette: Palette) -> (attributes: attr_t, pair: Int32) {
        if let known = appearances[style] { return known }
        let resolved = palette.resolve(style)
        var attributes = kvlab_a_normal()
        if resolved.attributes.contains(.bold) { attributes |= kvlab_a_bold() }
        if resolved.attributes.contains(.dim) { attributes |= kvlab_a_dim() }
        if resolved.attributes.contains(.underline) { attributes |= kvlab_a_underline() }
        if resolved.attributes.contains(.reverse) { attributes |= kvlab_a_reverse() }
        let look = (attributes, palette.depth == .mono ? 0 : colors.pair(foreground: resolved.foreground, background: resolved.background))
        appearances[style] = look
        return look
    }

    /// Appends a cluster's scalars; in a non-UTF-8 locale anything outside ASCII becomes `?`
    /// (one per column), since the terminal could not show it.
    private func append(_ symbol: String) {
        if glyphs.isUnicode || symbol.unicodeScalars.allSatisfy(\.isASCII) {
            for scalar in symbol.unicodeScalars { text.append(wchar_t(scalar.value)) }
        } else {
            for _ in 0..<max(CharacterWidth.of(symbol), 1) { text.append(wchar_t(UInt8(ascii: "?"))) }
        }
    }

    /// The bytes that leave curses' screen mode without curses: leave the alternate screen, reset
    /// attributes, show the cursor, leave keypad mode.
    private static func leaveSequence() -> [UInt8] {
        var bytes: [UInt8] = []
        for capability in ["rmcup", "sgr0", "cnorm", "rmkx"] {
            guard let value = tigetstr(capability), Int(bitPattern: value) != -1 else { continue }
            // Drop terminfo padding ("$<5>"), which is for curses' delay logic, not the terminal.
            var text = String(cString: value)
            while let start = text.range(of: "$<"), let end = text[start.upperBound...].firstIndex(of: ">") {
                text.removeSubrange(start.lowerBound...end)
            }
            bytes += Array(text.utf8)
        }
        return bytes
    }

    private static func environment(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }
}
