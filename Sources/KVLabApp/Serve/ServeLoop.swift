import Dispatch
import KVLabMethods
import KVLabRun
import KVLabServe
import KVLabTUI

/// The serve view's loop on one thread: a scheduler step whenever it is not paused, a frame at
/// most 30 times a second, and keys between steps. The workbench's method keys change the KV
/// method of every sequence from the next step (recorded, when the session records).
public enum ServeLoop {
    static let frameInterval: UInt64 = 33_000_000

    /// Runs until `q` or a stop signal; stepping ends when every request is done or `stop` says so
    /// (the view stays until `q`). Returns how it ended.
    public static func run(terminal: some WorkbenchTerminal, session: ServeSession, modelName: String, clock: String, palette: Palette,
                           glyphs: GlyphSet, patterned: Bool, stop: (ServeSession) -> Bool, sramSizes: [Int]) throws -> Workbench.Ending {
        var buffer = Buffer(width: terminal.width, height: terminal.height)
        var paused = false, dirty = true, lastFrame: UInt64 = 0
        var status: (String, Bool)?
        var running = true
        while true {
            if let signal = terminal.stopSignal { return .signal(signal) }
            if running, !paused {
                if try stop(session) || session.step() == nil {
                    running = false
                    try session.finish()
                }
                dirty = true
            }
            let now = DispatchTime.now().uptimeNanoseconds
            if dirty, now - lastFrame >= frameInterval || !running || paused {
                if buffer.width != terminal.width || buffer.height != terminal.height { buffer = Buffer(width: terminal.width, height: terminal.height) }
                let view = ServeView(session: session, modelName: modelName, clock: clock, paused: paused, status: status)
                ServeScreen(view: view, glyphs: glyphs, patterned: patterned).render(into: &buffer)
                terminal.draw(buffer, palette: palette)
                lastFrame = now
                dirty = false
            }
            // Steps run back to back; keys are read between them (and waited for once idle).
            guard let key = terminal.readKey(timeoutMilliseconds: running && !paused ? 0 : 33) else { continue }
            dirty = true
            status = nil
            guard let action = Keymap.action(for: key) else { continue }
            switch action {
            case .quit: return .quit
            case .togglePause: paused.toggle()
            case .cycleEviction, .budget, .cycleBits, .cycleQuant, .cycleSparse:
                do {
                    guard let change = try AppState.change(for: action, from: session.engine.settings, sramSizes: sramSizes) else { continue }
                    let knob = try session.set(change)
                    status = ("\(knob.knob.rawValue) → \(knob.value) for every sequence from step \(knob.step)", false)
                } catch {
                    status = ("\(error)", true)
                }
            default: continue
            }
        }
    }
}
