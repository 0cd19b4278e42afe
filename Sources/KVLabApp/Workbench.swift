import Foundation
import Dispatch
import KVLabTUI

/// What the workbench needs from a terminal: its size, drawing a buffer (by differences), and
/// keys. `KVLabCurses.CursesTerminal` is the real one; `MemoryTerminal` runs the loop headless.
public protocol WorkbenchTerminal: AnyObject {
    /// Columns.
    var width: Int { get }
    /// Rows.
    var height: Int { get }
    /// Shows a frame.
    func draw(_ buffer: Buffer, palette: Palette)
    /// The next key, waiting at most `timeoutMilliseconds`; nil when none came.
    func readKey(timeoutMilliseconds: Int32) -> Key?
    /// A stop signal (SIGINT, SIGTERM, SIGHUP) that arrived, if any.
    var stopSignal: Int32? { get }
}

/// Figures the run loop measured.
public struct WorkbenchStats: Sendable {
    /// Frames drawn.
    public var frames = 0
    /// Milliseconds from each knob key to the first frame showing the engine's answer.
    public var keyToFrame: [Double] = []
    /// Milliseconds to render each frame into the buffer (before the terminal draws it).
    public var renderTimes: [Double] = []

    /// No figures yet.
    public init() {}
}

/// The workbench's run loop: keys → state → effects, engine snapshots → state, and a frame when
/// something changed, at most 30 per second.
public enum Workbench {
    /// The shortest time between two frames.
    static let frameInterval: UInt64 = 33_000_000

    /// How the run loop ended.
    public enum Ending: Equatable, Sendable {
        /// The user quit.
        case quit
        /// A stop signal arrived (exit with 128 + it).
        case signal(Int32)
    }

    /// Runs until the user quits or a stop signal arrives. `loadTheme` gives the palette of a
    /// theme name (nil keeps the current one and says so in the status bar).
    public static func run(terminal: some WorkbenchTerminal, worker: EngineWorker, state: inout AppState, palette: Palette,
                           glyphs: GlyphSet, loadTheme: (String) -> Palette?, stats: inout WorkbenchStats) -> Ending {
        var palette = palette
        var buffer = Buffer(width: terminal.width, height: terminal.height)
        state.screen = (terminal.width, terminal.height)
        var lastFrame: UInt64 = 0
        var knobSentAt: [UInt64] = []
        var answered = 0
        // A key's effect or the engine's answer to it is drawn at once; token updates wait for
        // the next frame slot.
        var urgent = false
        while true {
            if let signal = terminal.stopSignal { return .signal(signal) }
            for snapshot in worker.drain() {
                state.absorb(snapshot)
                switch snapshot.event {
                case .knob, .compareKnob, .failure: answered += 1; urgent = true
                case .notice, .prompt, .stopped: urgent = true
                case .token: break
                }
            }
            let now = DispatchTime.now().uptimeNanoseconds
            let sizeChanged = buffer.width != terminal.width || buffer.height != terminal.height
            if state.dirty && (urgent || now - lastFrame >= frameInterval) || sizeChanged {
                urgent = false
                if sizeChanged {
                    buffer = Buffer(width: terminal.width, height: terminal.height)
                    state.screen = (terminal.width, terminal.height)
                }
                WorkbenchScreen(state: state, glyphs: glyphs).render(into: &buffer)
                let rendered = DispatchTime.now().uptimeNanoseconds
                terminal.draw(buffer, palette: palette)
                state.dirty = false
                lastFrame = rendered
                stats.frames += 1
                stats.renderTimes.append(Double(rendered - now) / 1e6)
                while answered > 0, !knobSentAt.isEmpty {
                    stats.keyToFrame.append(Double(DispatchTime.now().uptimeNanoseconds - knobSentAt.removeFirst()) / 1e6)
                    answered -= 1
                }
            }
            let waited = DispatchTime.now().uptimeNanoseconds - lastFrame
            // While the engine owes an answer, poll its snapshots every 2 ms.
            let timeout = !knobSentAt.isEmpty ? 2 : state.dirty && waited < frameInterval ? Int32((frameInterval - waited) / 1_000_000) + 1 : 33
            guard let key = terminal.readKey(timeoutMilliseconds: timeout) else { continue }
            let pressed = DispatchTime.now().uptimeNanoseconds
            urgent = true
            for effect in state.handle(key) {
                switch effect {
                case .engine(let command):
                    if case .set = command { knobSentAt.append(pressed) }
                    worker.send(command)
                case .theme(let name):
                    if let next = loadTheme(name) { palette = next } else { state.status = ("theme '\(name)' could not be loaded", true) }
                case .quit:
                    return .quit
                }
            }
        }
    }
}

/// A terminal in memory: keys come from a script, frames are kept. Runs the workbench loop with
/// no terminal (the render and key-latency benchmark).
public final class MemoryTerminal: WorkbenchTerminal {
    /// A key and how long after the previous one (or the start) it is pressed.
    public struct ScriptedKey: Sendable {
        /// Milliseconds after the previous key.
        public var delay: Int
        /// The key.
        public var key: Key

        /// A key `delay` ms after the previous one.
        public init(after delay: Int, _ key: Key) {
            self.delay = delay
            self.key = key
        }
    }

    /// Columns.
    public private(set) var width: Int
    /// Rows.
    public private(set) var height: Int
    /// The last frame drawn.
    public private(set) var screen: Buffer
    /// Never: an in-memory terminal receives no signals.
    public var stopSignal: Int32? { nil }
    private var script: [ScriptedKey]
    private var due: UInt64

    /// A terminal of the given size pressing `script`'s keys in order.
    public init(width: Int, height: Int, script: [ScriptedKey]) {
        self.width = width
        self.height = height
        self.screen = Buffer(width: width, height: height)
        self.script = script
        due = DispatchTime.now().uptimeNanoseconds + UInt64(script.first?.delay ?? 0) * 1_000_000
    }

    /// Keeps the frame as `screen`.
    public func draw(_ buffer: Buffer, palette: Palette) { screen = buffer }

    /// The next scripted key once it is due, else nil after waiting up to the timeout.
    public func readKey(timeoutMilliseconds: Int32) -> Key? {
        guard let next = script.first else {
            usleep(UInt32(max(timeoutMilliseconds, 0)) * 1000)
            return nil
        }
        let now = DispatchTime.now().uptimeNanoseconds
        if now >= due {
            script.removeFirst()
            due = now + UInt64(script.first?.delay ?? 0) * 1_000_000
            return next.key
        }
        usleep(UInt32(min((due - now) / 1000, UInt64(max(timeoutMilliseconds, 0)) * 1000)))
        return nil
    }
}
