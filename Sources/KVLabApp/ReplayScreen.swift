import Foundation
import Dispatch
import KVLabSession
import KVLabTUI

/// How fast a replay plays.
public struct ReplayPace: Sendable, Equatable {
    /// Speed factors `+` and `-` step through; infinity is "as fast as possible".
    public static let speeds: [Double] = [0.25, 0.5, 1, 2, 4, 8, 16, .infinity]

    /// Milliseconds per token at 1× (nil: the recorded latency of each token).
    public var fixedTokenMilliseconds: Double?
    /// Milliseconds a new caption is held before the next token at 1× (demos: time to read it).
    public var captionHoldMilliseconds: Double
    /// The entry of `speeds` in use.
    public var speedIndex: Int

    /// A pace: recorded latencies or a fixed time per token, at 1×.
    public init(fixedTokenMilliseconds: Double? = nil, captionHoldMilliseconds: Double = 0, speedIndex: Int = 2) {
        self.fixedTokenMilliseconds = fixedTokenMilliseconds
        self.captionHoldMilliseconds = captionHoldMilliseconds
        self.speedIndex = speedIndex
    }

    /// The replay pace: each token as long as it took when recorded.
    public static let recorded = ReplayPace()
    /// The demo pace, for a projector: 8 tokens a second and 3 s to read each caption.
    public static let demo = ReplayPace(fixedTokenMilliseconds: 125, captionHoldMilliseconds: 3000)

    /// The speed factor.
    public var speed: Double { Self.speeds[speedIndex] }

    /// The speed as the progress line shows it.
    public var speedLabel: String {
        speed.isInfinite ? "max" : speed == speed.rounded() ? "\(Int(speed))×" : "\(speed)×"
    }

    /// Milliseconds to wait after playing `event` (at the current speed).
    public func delayMilliseconds(after event: SessionEvent) -> Double {
        switch event {
        case .token(let token): delayMilliseconds(after: .token, recordedNanoseconds: token.metrics.report.timings.totalNanoseconds)
        case .caption: delayMilliseconds(after: .caption, recordedNanoseconds: 0)
        default: 0
        }
    }

    /// Milliseconds to wait after an event of `kind` whose recording took `recordedNanoseconds`.
    public func delayMilliseconds(after event: SessionEventKind, recordedNanoseconds: UInt64) -> Double {
        guard !speed.isInfinite else { return 0 }
        switch event {
        case .token: return (fixedTokenMilliseconds ?? Double(recordedNanoseconds) / 1e6) / speed
        case .caption: return captionHoldMilliseconds / speed
        case .other: return 0
        }
    }

    /// One step faster (true) or slower.
    public mutating func change(faster: Bool) {
        speedIndex = min(max(speedIndex + (faster ? 1 : -1), 0), Self.speeds.count - 1)
    }
}

/// What kind of event a delay follows.
public enum SessionEventKind: Sendable {
    /// A generated token: it lasts its latency, or the fixed time per token.
    case token
    /// A new caption: held for reading.
    case caption
    /// Anything else: no wait.
    case other
}

/// The replay screen: the workbench's panels as they were after the step played, a caption bar
/// and a progress line (step n / total, speed, the keys or the jump editor).
public struct ReplayScreen {
    /// The workbench state the panels draw.
    public var state: AppState
    /// The caption in effect.
    public var caption: String?
    /// Tokens played.
    public var step: Int
    /// Tokens in the session.
    public var total: Int
    /// The pace.
    public var pace: ReplayPace
    /// Whether the model re-executes the session (false: recorded metrics only).
    public var reexecutes: Bool
    /// Whether a mismatch stopped the replay.
    public var stopped: Bool
    /// The jump editor's text, when open.
    public var jumpText: String?
    /// Box drawing and graph glyphs.
    public var glyphs: GlyphSet
    /// Bars drawn in patterns too (`AppState.patterned`).
    public var patterned = false
    /// The session's numbers, shown on a card once every token has played.
    public var summary: SessionSummary?

    /// A replay screen.
    public init(state: AppState, caption: String?, step: Int, total: Int, pace: ReplayPace, reexecutes: Bool, stopped: Bool = false,
                jumpText: String?, glyphs: GlyphSet = .unicode) {
        self.stopped = stopped
        self.state = state
        self.caption = caption
        self.step = step
        self.total = total
        self.pace = pace
        self.reexecutes = reexecutes
        self.jumpText = jumpText
        self.glyphs = glyphs
    }

    /// The screen of a player's state now.
    public init(player: SessionPlayer, pace: ReplayPace, jumpText: String? = nil, glyphs: GlyphSet = .unicode) {
        self.init(state: player.state, caption: player.caption, step: player.step, total: player.totalSteps, pace: pace,
                  reexecutes: player.reexecutes, stopped: player.failure != nil, jumpText: jumpText, glyphs: glyphs)
        summary = player.summary
    }

    /// Rows below the panels at the least: the caption's first row and the progress line.
    public static let extraRows = 2

    /// The fewest rows the panels keep below the caption (`WorkbenchScreen.compactHeight`): a
    /// caption longer than the rest allows is cut to fit.
    static var panelRows: Int { WorkbenchScreen.compactHeight }

    /// The caption bar: the caption wrapped at words to as many rows as it needs.
    static func captionParagraph(_ caption: String?) -> Paragraph {
        Paragraph([Line([Span(" ▶ ", style: .role(.key, .bold)),
                         Span(caption ?? "(no caption)", style: caption == nil ? .role(.dimText) : .role(.title, .bold))])], wrap: .word)
    }

    /// Rows the caption takes on a `width` × `height` screen (at most what leaves the panels theirs).
    static func captionRows(_ caption: String?, width: Int, height: Int) -> Int {
        min(captionParagraph(caption).rowCount(width: width), max(height - 1 - panelRows, 1))
    }

    /// Draws the screen over `buffer`: the panels, the caption (as many rows as it wraps to) and
    /// the progress line; at the end of the session, the card of its numbers over the panels.
    public func render(into buffer: inout Buffer) {
        buffer.reset()
        let area = buffer.area
        let caption = Self.captionParagraph(caption)
        let captionRows = Self.captionRows(self.caption, width: area.width, height: area.height)
        var panels = Buffer(width: area.width, height: max(area.height - captionRows - 1, 0))
        var state = self.state
        state.patterned = patterned
        state.replay = ReplayTitle(speed: pace.speedLabel, paused: state.paused, finished: step >= total, reexecutes: reexecutes)
        var workbench = WorkbenchScreen(state: state, glyphs: glyphs)
        workbench.minimumHeight = Self.panelRows
        workbench.rowsBelow = area.height - panels.height
        workbench.render(into: &panels)
        if let summary, step >= total, total > 0 { endCard(summary, area: panels.area.inset(horizontal: 1), buffer: &panels) }
        for y in 0..<panels.height {
            for x in 0..<panels.width { buffer[x, y] = panels[x, y] }
        }
        guard area.height > captionRows else { return }
        let captionArea = Rect(x: 0, y: area.height - 1 - captionRows, width: area.width, height: captionRows)
        for row in 0..<captionRows { buffer.fill(captionArea.row(row), with: Cell(" ", style: Style(background: .role(.selectedBackground)))) }
        caption.render(area: captionArea, buffer: &buffer)
        progress(area.row(area.height - 1), &buffer)
    }

    /// The end-of-session card: the session's numbers per part, recomputed from its events.
    private func endCard(_ summary: SessionSummary, area: Rect, buffer: inout Buffer) {
        let exact = summary.table()
        let fits = (exact.map { CharacterWidth.of($0) }.max() ?? 0) + 4 <= area.width
        let lines = fits ? exact : summary.table(compact: true)
        // Dimmed above a blank row: the header, or the compact table's legend and header.
        let heading = fits ? 1 : summary.compactHeaderLines
        guard lines.count > heading else { return }
        let title = "End of session: its numbers, recomputed from the replay"
        // As wide as its lines or its whole title, whichever is wider (a turned table is narrow).
        let width = min(max((lines.map { CharacterWidth.of($0) }.max() ?? 0) + 4, CharacterWidth.of(title) + 4), area.width)
        let popup = area.centered(width: width, height: min(lines.count + 3, area.height))
        Clear().render(area: popup, buffer: &buffer)
        let block = Block(titles: [Block.Title(Line(title, style: .role(.title, .bold))),
                                   Block.Title(Line("← steps back", style: .role(.dimText)), position: .bottom)],
                          mergesBorders: false, horizontalPadding: 1, glyphs: glyphs)
        block.render(area: popup, buffer: &buffer)
        let inner = block.inner(popup)
        for (index, line) in lines.enumerated() where index + (index >= heading ? 1 : 0) < inner.height {
            let row = index + (index >= heading ? 1 : 0)
            buffer.put(Line(line, style: index < heading ? .role(.dimText) : .role(.text)), row: inner.row(row), glyphs: glyphs)
        }
    }

    private func progress(_ row: Rect, _ buffer: inout Buffer) {
        let counter = " step \(step) / \(total) "
        var x = buffer.put(counter, x: row.x, y: row.y, style: .role(.highlight, .bold), clip: row)
        let barWidth = min(max(row.width / 5, 10), 30)
        let filled = total > 0 ? barWidth * step / total : 0
        x = buffer.put(String(repeating: "━", count: filled), x: x, y: row.y, style: .role(.ok), clip: row)
        x = buffer.put(String(repeating: "─", count: barWidth - filled), x: x, y: row.y, style: .role(.dimText), clip: row)
        x = buffer.put(" \(pace.speedLabel) ", x: x, y: row.y, style: .role(.highlight), clip: row)
        let (note, role): (String, ThemeRole) = stopped ? ("mismatch ", .error) : reexecutes ? ("verified ", .ok)
            : ("playback: no model, no KV map or projection ", .warning)
        x = buffer.put(note, x: x, y: row.y, style: .role(role, stopped ? .bold : []), clip: row)
        if let jumpText {
            let end = buffer.put(Line([Span("jump to step> ", style: .role(.key, .bold)), Span(jumpText)]), x: x, y: row.y, clip: row)
            buffer.setStyle(Rect(x: end, y: row.y, width: 1, height: 1), Style(attributes: .reverse))
            buffer.put("  Enter jumps · Esc cancels", x: end + 1, y: row.y, style: .role(.dimText), clip: row)
            return
        }
        var spans: [Span] = []
        for (key, label) in ReplayControls.hints {
            spans.append(Span(" " + key, style: .role(.key, .bold)))
            spans.append(Span(" " + label, style: .role(.dimText)))
        }
        buffer.put(Line(spans), x: x, y: row.y, clip: row)
    }
}

/// What a key does on the replay screen.
public enum ReplayCommand: Sendable, Equatable {
    case togglePause
    case step
    case back
    case speed(faster: Bool)
    case jump
    case help
    case quit
}

/// The replay's keys: one table that the key handling and the progress line's hints both read.
public enum ReplayControls {
    public static let table = KeyTable<ReplayCommand>([
        KeyBinding([.character(" ")], "pause / resume", group: "Replay", action: .togglePause),
        KeyBinding([.character("."), .right], "step one token (pauses)", group: "Replay", action: .step),
        KeyBinding([.left], "step back one token (pauses)", group: "Replay", action: .back),
        KeyBinding([.character("+"), .character("-")], "speed: faster / slower", group: "Replay", action: .speed(faster: true)),
        KeyBinding([.character("=")], "faster (the unshifted +)", group: "Replay", action: .speed(faster: true)),
        KeyBinding([.character("g")], "jump to a step", group: "Replay", action: .jump),
        KeyBinding([.character("?")], "help: these keys, what the numbers and marks mean", group: "Replay", action: .help),
        KeyBinding([.character("q"), .control("c")], "quit", group: "Replay", action: .quit),
    ])

    /// The command of a key (`-`, the second key of the speed pair, is slower).
    public static func command(for key: Key) -> ReplayCommand? {
        if key == .character("-") { return .speed(faster: false) }
        return table.action(for: key)
    }

    /// The progress line's key hints: every key of a binding (`. →`), but only the first of quit's.
    public static let hints: [(String, String)] = [
        (ReplayCommand.togglePause, "pause"), (.step, "step"), (.back, "back"), (.speed(faster: true), "speed"), (.jump, "jump"), (.quit, "quit"),
    ].map { command, word in
        let keys = table.bindings.first { $0.action == command }?.keys ?? []
        let shown = command == .quit ? Array(keys.prefix(1)) : keys
        return (shown.map { $0.label().count > 1 && $0.label().first!.isLetter ? $0.label().lowercased() : $0.label() }.joined(separator: " "), word)
    }

    /// How the loop ended.
    public enum Ending: Equatable, Sendable {
        /// The user quit.
        case quit
        /// A stop signal arrived (exit with 128 + it).
        case signal(Int32)
    }

    /// Plays `player` on `terminal` until the user quits or a stop signal arrives.
    public static func run(terminal: some WorkbenchTerminal, player: SessionPlayer, pace: ReplayPace, palette: Palette,
                           glyphs: GlyphSet, patterned: Bool = false) -> Ending {
        var pace = pace
        var buffer = Buffer(width: terminal.width, height: terminal.height)
        var jumpText: String?
        var lastFrame: UInt64 = 0
        var due = DispatchTime.now().uptimeNanoseconds
        while true {
            if let signal = terminal.stopSignal { return .signal(signal) }
            var now = DispatchTime.now().uptimeNanoseconds
            // Play what is due, at most a frame's worth of work before drawing.
            while !player.state.paused, jumpText == nil, let record = player.next, now >= due,
                  now - lastFrame < Workbench.frameInterval || player.state.dirty == false {
                player.playNext()
                due = now + UInt64(pace.delayMilliseconds(after: record.event) * 1e6)
                now = DispatchTime.now().uptimeNanoseconds
            }
            let sizeChanged = buffer.width != terminal.width || buffer.height != terminal.height
            if player.state.dirty && now - lastFrame >= Workbench.frameInterval || sizeChanged {
                if sizeChanged { buffer = Buffer(width: terminal.width, height: terminal.height) }
                player.prepareFrame()
                var screen = ReplayScreen(player: player, pace: pace, jumpText: jumpText, glyphs: glyphs)
                screen.patterned = patterned
                screen.render(into: &buffer)
                terminal.draw(buffer, palette: palette)
                player.markDrawn()
                lastFrame = DispatchTime.now().uptimeNanoseconds
            }
            now = DispatchTime.now().uptimeNanoseconds
            let untilDue = player.state.paused || player.finished || due <= now ? 33 : Int32(min((due - now) / 1_000_000, 33))
            guard let key = terminal.readKey(timeoutMilliseconds: max(untilDue, 1)) else { continue }
            if var text = jumpText {
                switch key {
                case .escape: jumpText = nil
                case .enter:
                    jumpText = nil
                    if let target = Int(text) { jump(player, to: target) } else { player.setStatus("jump: '\(text)' is not a step number", isError: true) }
                case .backspace: text = String(text.dropLast()); jumpText = text
                case .character(let character) where character.isASCII && character.isNumber: text.append(character); jumpText = text
                case .control("c"): return .quit
                default: break
                }
                player.invalidate()
                continue
            }
            if key == .resize {
                player.invalidate()
                continue
            }
            if player.state.helpVisible {
                player.helpKey(key, terminal: (terminal.width, terminal.height))
                continue
            }
            switch command(for: key) {
            case .quit: return .quit
            case .togglePause:
                player.setPaused(!player.state.paused)
                due = DispatchTime.now().uptimeNanoseconds
            case .step:
                player.setPaused(true)
                player.stepToken()
            case .back:
                player.setPaused(true)
                jump(player, to: player.step - 1)
            case .speed(let faster):
                pace.change(faster: faster)
                player.setStatus("speed \(pace.speedLabel)")
            case .help:
                player.helpKey(key, terminal: (terminal.width, terminal.height))
            case .jump:
                jumpText = ""
                player.setStatus("jump: a step from 0 to \(player.totalSteps)")
            case nil: break
            }
        }
    }

    private static func jump(_ player: SessionPlayer, to target: Int) {
        do { try player.jump(to: target) } catch { player.setStatus("jump: \(error)", isError: true) }
    }
}
