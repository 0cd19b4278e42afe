import CNCursesW
import Foundation
import Glibc
@testable import KVLabCurses
import KVLabTUI
import Testing

/// The curses backend, headless: on /dev/null with several terminal types (frames read back from
/// curses' screen), and on a pseudo-terminal (keys, resize, signals, restoring the terminal).
/// Serialized: curses has one current screen per process.
@Suite(.serialized) struct CursesTerminalTests {
    init() {
        setlocale(LC_CTYPE, "C.UTF-8")
    }

    static let dark: Theme = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("themes/dark.theme").path
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return ThemeParser.parse(text, path: path, name: "dark", fallback: .plain).theme
    }()

    /// Runs `body` with a terminal on /dev/null.
    func headless(_ terminalType: String, _ body: (CursesTerminal) throws -> Void) throws {
        let output = try #require(fopen("/dev/null", "w")), input = try #require(fopen("/dev/null", "r"))
        defer { fclose(output); fclose(input) }
        let terminal = try CursesTerminal(output: output, input: input, terminalType: terminalType)
        defer { terminal.stop() }
        try body(terminal)
    }

    /// The rows curses holds for the screen, as text.
    func screenRows(_ terminal: CursesTerminal) -> [String] {
        (0..<terminal.height).map { y in
            var characters = [wchar_t](repeating: 0, count: terminal.width + 1)
            mvwinnwstr(kvlab_stdscr(), Int32(y), 0, &characters, Int32(terminal.width))
            var line = String(String.UnicodeScalarView(characters.prefix { $0 != 0 }.compactMap { Unicode.Scalar(UInt32($0)) }))
            while line.last == " " { line.removeLast() }
            return line
        }
    }

    @Test(arguments: [("xterm-256color", 256, ColorDepth.palette256), ("xterm", 8, .palette8), ("vt100", 0, .mono)])
    func framesDrawnByDifferencesReadBackExactly(terminalType: String, colors: Int, depth: ColorDepth) throws {
        try headless(terminalType) { terminal in
            #expect(terminal.colorSupport.colors == colors)
            #expect(ColorSetting.auto.depth(environment: [:], terminal: terminal.colorSupport) == depth)
            #expect(terminal.glyphs.isUnicode)
            #expect((terminal.width, terminal.height) == (80, 24))
            let palette = Self.dark.palette(depth: depth)
            for step in [0, 7] {  // the second frame redraws only what changed
                var buffer = Buffer(width: terminal.width, height: terminal.height)
                WidgetGallery(glyphs: terminal.glyphs, step: step).render(into: &buffer)
                terminal.draw(buffer, palette: palette)
                #expect(screenRows(terminal) == buffer.textLines)
            }
        }
    }

    @Test func stylesBecomeAttributesAndColourPairs() throws {
        try headless("xterm-256color") { terminal in
            var buffer = Buffer(width: terminal.width, height: terminal.height)
            buffer.put("title", x: 0, y: 0, style: .role(.title))
            buffer.put("kept", x: 0, y: 1, style: Style(foreground: .role(.kvKept), background: .role(.selectedBackground)))
            terminal.draw(buffer, palette: Self.dark.palette(depth: .palette256))
            func look(_ y: Int32) -> (attributes: attr_t, foreground: Int32, background: Int32) {
                var cell = cchar_t(), characters = [wchar_t](repeating: 0, count: 8)
                var attributes: attr_t = 0, shortPair: Int16 = 0, pair: Int32 = 0
                mvwin_wch(kvlab_stdscr(), y, 0, &cell)
                getcchar(&cell, &characters, &attributes, &shortPair, &pair)
                var foreground: Int32 = 0, background: Int32 = 0
                extended_pair_content(pair, &foreground, &background)
                return (attributes, foreground, background)
            }
            let title = look(0), kept = look(1)
            #expect(title.attributes & kvlab_a_bold() != 0)
            #expect(title.foreground == Int32(XtermPalette.nearest256(Self.dark[.title].color.rgbValue!)))
            #expect(title.background == -1)  // the dark theme keeps the terminal's background
            #expect(kept.foreground == Int32(XtermPalette.nearest256(Self.dark[.kvKept].color.rgbValue!)))
            #expect(kept.background == Int32(XtermPalette.nearest256(Self.dark[.selectedBackground].color.rgbValue!)))
        }
    }

    @Test func truecolorRedefinesPaletteEntriesWhereTheTerminalCan() throws {
        try headless("xterm-256color") { terminal in
            try #require(terminal.colorSupport.canRedefineColors)
            #expect(ColorSetting.auto.depth(environment: ["COLORTERM": "truecolor"], terminal: terminal.colorSupport) == .truecolor)
            var buffer = Buffer(width: terminal.width, height: terminal.height)
            buffer.put("x", x: 0, y: 0, style: Style(foreground: .color(.rgb(RGB(hex: 0x336699)))))
            terminal.draw(buffer, palette: Self.dark.palette(depth: .truecolor))
            var cell = cchar_t(), characters = [wchar_t](repeating: 0, count: 8)
            var attributes: attr_t = 0, shortPair: Int16 = 0, pair: Int32 = 0
            mvwin_wch(kvlab_stdscr(), 0, 0, &cell)
            getcchar(&cell, &characters, &attributes, &shortPair, &pair)
            var foreground: Int32 = 0, background: Int32 = 0
            extended_pair_content(pair, &foreground, &background)
            #expect(foreground >= 16)
            var red: Int32 = 0, green: Int32 = 0, blue: Int32 = 0
            extended_color_content(foreground, &red, &green, &blue)
            let expected: [Int32] = [0x33, 0x66, 0x99].map { $0 * 1000 / 255 }
            #expect([red, green, blue] == expected)
        }
    }

    @Test func oneScreenAtATime() throws {
        try headless("xterm") { _ in
            #expect(throws: TerminalError("a terminal screen is already open")) { try headless("xterm") { _ in } }
        }
        try headless("xterm") { _ in }  // the first one was given back
        #expect(throws: TerminalError.self) { try headless("no-such-terminal-type") { _ in } }
    }

    @Test func keysResizeSignalsAndRestoreOnAPseudoTerminal() throws {
        let pty = try PseudoTerminal()
        let original = pty.localModes
        #expect(original == tcflag_t(ICANON | ECHO))
        let terminal = try CursesTerminal(output: pty.output, input: pty.input, terminalType: "xterm-256color")
        #expect(pty.localModes == 0)  // cbreak, no echo
        #expect(throws: Never.self) { try CursesTerminal.requireTerminal(input: pty.slave, output: pty.slave) }

        var buffer = Buffer(width: terminal.width, height: terminal.height)
        buffer.put("kvlab on a pty", x: 2, y: 3, style: .role(.title))
        terminal.draw(buffer, palette: Self.dark.palette(depth: .palette256))
        let screen = pty.drain()
        #expect(screen.contains("\u{1B}[?1049h"))  // the alternate screen
        #expect(screen.contains("kvlab on a pty"))

        pty.type("q\u{1B}OA\u{1B}[15~\u{7F}\ré\u{1B}[Z")
        var keys: [Key] = []
        while keys.count < 7, let key = terminal.readKey(timeoutMilliseconds: 2000) { keys.append(key) }
        #expect(keys == [.character("q"), .up, .function(5), .backspace, .enter, .character("é"), .backTab])

        // Signals go to the process (test threads may block them; the handler runs on whichever
        // thread takes it), so wait for their effect.
        try pty.resize(rows: 30, columns: 100)
        kill(getpid(), SIGWINCH)
        var resized = false
        for _ in 0..<100 where !resized { resized = terminal.readKey(timeoutMilliseconds: 20) == .resize }
        #expect(resized)
        #expect((terminal.width, terminal.height) == (100, 30))

        #expect(terminal.stopSignal == nil)
        kill(getpid(), SIGINT)  // handled: the run loop sees it and quits cleanly
        for _ in 0..<100 where terminal.stopSignal == nil { usleep(20_000) }
        #expect(terminal.stopSignal == SIGINT)

        terminal.stop()
        #expect(pty.localModes == original)
        #expect(pty.drain().contains("\u{1B}[?1049l"))
    }

    @Test func signalHandlersRestoreTheTerminalWithoutCurses() throws {
        let pty = try PseudoTerminal()
        let original = pty.localModes
        let terminal = try CursesTerminal(output: pty.output, input: pty.input, terminalType: "xterm-256color")
        defer { terminal.stop() }
        terminal.draw(Buffer(width: terminal.width, height: terminal.height), palette: Self.dark.palette(depth: .palette256))
        _ = pty.drain()
        #expect(pty.localModes == 0)
        TerminalSignals.restoreWithoutCurses()  // what a fatal signal or a second SIGINT runs
        #expect(pty.localModes == original)
        let sent = pty.drain()
        #expect(sent.contains("\u{1B}[?1049l") && sent.contains("\u{1B}[?25h"))  // leave the alternate screen, show the cursor
        TerminalSignals.restoreWithoutCurses()
        #expect(pty.drain().isEmpty)  // once only
    }

    @Test func aClosedTerminalCountsAsHangUp() throws {
        let pty = try PseudoTerminal()
        let terminal = try CursesTerminal(output: pty.output, input: pty.input, terminalType: "xterm-256color")
        defer { terminal.stop() }
        #expect(terminal.readKey(timeoutMilliseconds: 10) == nil && terminal.stopSignal == nil)
        pty.hangUp()
        #expect(terminal.readKey(timeoutMilliseconds: 10) == nil)
        #expect(terminal.stopSignal == SIGHUP)
    }

    @Test func notATerminalPointsToKvlabRun() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        #expect(throws: TerminalError("the workbench needs a terminal, but standard output is not one; use `kvlab run` for output to pipes and files")) {
            try CursesTerminal.requireTerminal(input: fds[0], output: fds[1])
        }
    }

    @Test func keyCodesDecode() {
        let yes = kvlab_key_code_yes()
        #expect(KeyDecoder.key(status: OK, code: 0x71) == .character("q"))
        #expect(KeyDecoder.key(status: OK, code: 3) == .control("c"))
        #expect(KeyDecoder.key(status: OK, code: 27) == .escape)
        #expect(KeyDecoder.key(status: OK, code: 9) == .tab)
        #expect(KeyDecoder.key(status: OK, code: 0x6708) == .character("月"))
        #expect(KeyDecoder.key(status: yes, code: UInt32(kvlab_key_f(12))) == .function(12))
        #expect(KeyDecoder.key(status: yes, code: UInt32(KEY_NPAGE)) == .pageDown)
        #expect(KeyDecoder.key(status: yes, code: UInt32(kvlab_key_resize())) == .resize)
        #expect(KeyDecoder.key(status: yes, code: UInt32(KEY_MOUSE)) == nil)
        #expect(KeyDecoder.key(status: ERR, code: 0) == nil)
    }

    @Test func cellWidthsMatchGlibcForEveryScalar() {
        var mismatches: [String] = []
        for value in UInt32(0)...0x10FFFF {
            guard let scalar = Unicode.Scalar(value) else { continue }
            let glibc = wcwidth(wchar_t(value))
            guard glibc >= 0 else { continue }  // controls and unassigned: kvlab never asks the terminal
            if CharacterWidth.of(scalar) != Int(glibc) { mismatches.append(String(value, radix: 16)) }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(20))")
    }
}
