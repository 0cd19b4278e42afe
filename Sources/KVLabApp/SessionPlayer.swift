import Foundation
import KVLabEngine
import KVLabMethods
import KVLabRun
import KVLabSession

/// Plays a recorded session into an `AppState`, so the workbench's panels draw a replay as they
/// draw a live run. Re-executing, it runs each event on the model through a `SessionReplayer`
/// (verifying tokens and checkpoints) and describes the live cache after it with an `EngineCore`;
/// in playback it shows only what the events carry (no model: no KV map, no projection).
/// Not thread-safe: the run loop owns it.
public final class SessionPlayer {
    /// How events are played.
    public enum Mode {
        /// Re-executed on the model (the model the session recorded) and verified.
        case reexecute(LoadedModel, threads: Int?, strict: Bool)
        /// The recorded metrics only.
        case playback
    }

    /// The session file.
    public let path: String
    /// The session's header.
    public let header: SessionHeader
    /// Every complete event of the file, in order.
    public let records: [SessionRecord]
    /// Tokens the session generates.
    public let totalSteps: Int
    /// The session's numbers per part (the end card).
    public let summary: SessionSummary
    /// How the file was cut before its recording ended (the reader's `cut`), if it was.
    public let cut: RecordingCut?
    /// What the panels draw.
    public private(set) var state: AppState
    /// The caption in effect.
    public private(set) var caption: String?
    /// Why the replay stopped before the end (a mismatch or an event that could not be applied).
    public private(set) var failure: String?
    /// The next record to play.
    private var index = 0
    /// Tokens played so far.
    public private(set) var step = 0

    private let mode: Mode
    private let initialState: AppState
    private var replayer: SessionReplayer?
    private var core: EngineCore?
    /// The projection refreshed lazily (before a frame): projecting every token costs more than the token.
    private var projectionStale = false
    private var lastMetrics: TokenMetrics?
    private var defaultProjector: SessionProjector?
    private var playbackSettings = RunSettings()
    private var playbackGhost = false
    private var playbackPosition = 0
    private var playbackProjection = ProjectionSettings()

    /// A player of `records` (read from `path`, whose header is `header`, cut as `cut` says),
    /// drawing into `state`.
    public init(path: String, header: SessionHeader, records: [SessionRecord], cut: RecordingCut? = nil, mode: Mode, state: AppState) throws {
        self.path = path
        self.header = header
        self.records = records
        self.cut = cut
        self.mode = mode
        self.initialState = state
        self.state = state
        totalSteps = records.reduce(0) { count, record in if case .token = record.event { count + 1 } else { count } }
        summary = SessionSummary(header: header, records: records)
        try restart()
    }

    /// Whether the model re-executes the session (false: playback of recorded metrics).
    public var reexecutes: Bool { replayer != nil }

    /// Whether every event has been played, or a failure stopped the replay.
    public var finished: Bool { index >= records.count || failure != nil }

    /// The next record to play, if any.
    public var next: SessionRecord? { finished ? nil : records[index] }

    /// Back to before the first event: a fresh run (re-execution) and a fresh state.
    public func restart() throws {
        let paused = state.paused
        state = initialState
        state.paused = paused
        caption = nil
        failure = nil
        index = 0
        step = 0
        lastMetrics = nil
        let projection = header.projection ?? ProjectionSettings()
        state.device = projection.device
        state.target = projection.target
        switch mode {
        case .reexecute(let model, let threads, let strict):
            let replayer = try SessionReplayer(path: path, header: header, model: model, threads: threads, strict: strict)
            self.replayer = replayer
            core = EngineCore(run: replayer.run, device: projection.device, target: projection.target)
            // Sessions that project nothing are shown on the workbench's default device and target.
            defaultProjector = try? SessionProjector(settings: projection, model: model)
        case .playback:
            playbackSettings = try header.settings.runSettings(headDim: nil)
            playbackGhost = header.ghost
            playbackPosition = 0
            playbackProjection = projection
        }
        let file = URL(fileURLWithPath: path).lastPathComponent
        absorb(.notice(reexecutes ? "replaying \(file) on \(header.model.name), verifying every token and checkpoint"
                                  : "playback of \(file): the recorded metrics, without the model"))
    }

    /// Plays the next event; a mismatch or failure ends the replay with a status line naming it.
    public func playNext() {
        guard let record = next else { return }
        index += 1
        let event: SessionEvent
        if let replayer {
            do { event = try replayer.replay(record) } catch {
                failure = String(describing: error)
                state.status = ("stopped: " + failure!, true)
                state.dirty = true
                return
            }
        } else {
            event = record.event
            applyToPlayback(event)
        }
        switch event {
        case .prompt(let submission): absorb(.prompt(submission))
        case .token(let token):
            step += 1
            lastMetrics = token.metrics
            projectionStale = true
            absorb(.token(token.metrics))
        case .knob(let change):
            projectionStale = true
            absorb(.knob(change))
        case .ghost(let change): absorb(.notice("ghost \(change.enabled ? "on" : "off") from token \(change.step)"))
        case .projection(let change):
            projectionStale = true
            absorb(.notice("\(change.setting.rawValue) \(change.old) → \(change.new) from token \(change.step)"))
        case .caption(let recorded):
            caption = recorded.text
            state.dirty = true
        case .checkpoint, .end: break
        case .stop(let stop): absorb(.stopped(stop.reason))
        }
        if finished, failure == nil { state.status = (endNote, cut != nil) }
    }

    /// Plays events up to and including the next token (single-step); the events before the
    /// following token (captions, knob changes) come with it.
    public func stepToken() {
        let target = step + 1
        while let record = next, record.event.step < target || !isToken(record) && record.event.step == target { playNext() }
    }

    /// Shows the state after `target` tokens (clamped to the session): plays on, or restarts and
    /// plays from the start when `target` is behind.
    public func jump(to target: Int) throws {
        let target = min(max(target, 0), totalSteps)
        if target < step || failure != nil { try restart() }
        while let record = next, record.event.step < target || !isToken(record) && record.event.step == target { playNext() }
    }

    /// Updates what is computed only for frames (the projection of the current cache state).
    public func prepareFrame() {
        guard projectionStale, let replayer, let metrics = lastMetrics else { return }
        projectionStale = false
        let projector = replayer.projector ?? defaultProjector
        state.snapshot?.projection = projector?.project(run: replayer.run, last: metrics) ?? nil
        if let projector {
            state.device = projector.settings.device
            state.target = projector.settings.target
        }
    }

    private var endNote: String {
        let end = cut.map { "recording cut after step \($0.step): \($0.reason)" } ?? "end of session"
        guard let summary = replayer?.summary else { return "\(end): \(step) recorded tokens shown" }
        return "\(end): \(summary.tokens) tokens and \(summary.checkpoints) checkpoints verified"
    }

    private func isToken(_ record: SessionRecord) -> Bool {
        if case .token = record.event { return true }
        return false
    }

    private func applyToPlayback(_ event: SessionEvent) {
        switch event {
        case .knob(let change):
            // Session files are an edge: the recorded change is parsed; without the model no head size is checked.
            if let setting = try? SettingChange(change.knob, parsing: change.new) { try? playbackSettings.set(setting, headDim: nil) }
        case .ghost(let change): playbackGhost = change.enabled
        case .prompt(let submission): playbackPosition = (submission.continuing ? playbackPosition : 0) + submission.tokens.count
        case .token(let token): playbackPosition = token.metrics.report.position + 1
        case .projection(let change): try? playbackProjection.set(change.setting, to: change.new)
        default: break
        }
    }

    /// Hands the state after an event to the panels, as the live engine's snapshot would.
    private func absorb(_ event: EngineEvent) {
        var snapshot: EngineSnapshot
        if let core, let replayer {
            snapshot = core.snapshot(event)
            snapshot.generating = !finished
            snapshot.projection = state.snapshot?.projection
            snapshot.device = (replayer.projector ?? defaultProjector)?.settings.device ?? state.device
            snapshot.target = (replayer.projector ?? defaultProjector)?.settings.target ?? state.target
        } else {
            let residency: KVResidency = lastMetrics?.report.cache ?? KVResidency()
            snapshot = EngineSnapshot(
                event: event, settings: playbackSettings, ghost: playbackGhost, paused: false, generating: !finished,
                position: playbackPosition, contextLength: 0, residency: residency, weightBytes: 0, activationBytes: 0,
                map: KVMapSnapshot(layers: 0, positions: 0, cells: []), device: playbackProjection.device, target: playbackProjection.target,
                projection: nil, sequenceTokens: playbackPosition)
        }
        snapshot.paused = state.paused
        state.absorb(snapshot)
    }

    /// Marks the replay paused or running (the title bar shows it).
    public func setPaused(_ paused: Bool) {
        state.paused = paused
        state.snapshot?.paused = paused
        state.dirty = true
    }

    /// Sets the status line.
    public func setStatus(_ text: String, isError: Bool = false) {
        state.status = (text, isError)
        state.dirty = true
    }

    /// Marks the screen for redrawing (the replay's own parts changed).
    public func invalidate() { state.dirty = true }

    /// Marks the state drawn.
    public func markDrawn() { state.dirty = false }
}
