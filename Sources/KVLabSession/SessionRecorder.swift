import KVLabRun

/// Drives a `LiveRun` and turns every action into session events for a sink (a `SessionWriter`,
/// `kvlab run --json`, a screen): the one place that decides what a session holds. Checkpoints
/// follow each prompt and every `checkpointEvery` tokens; with a projector, every token event
/// carries its projected decode latency; `finish` ends the session with an `end` event. Not
/// thread-safe, like the run.
public final class SessionRecorder {
    /// The run whose actions are recorded.
    public let run: LiveRun
    /// Tokens between automatic checkpoints; 0 for none.
    public let checkpointEvery: Int
    /// What tokens are projected onto; nil for no projection.
    public private(set) var projector: SessionProjector?
    private let output: (SessionEvent) throws -> Void
    /// Position of the last checkpoint, so `finish` does not repeat it.
    private var checkpointPosition: Int?
    /// Events the sink has taken, for the end event.
    private var events = 0
    /// Whether `finish` wrote the end event (nothing may follow it).
    private var finished = false

    /// A recorder of `run`; `projector` should be the one of the header's projection settings.
    public init(run: LiveRun, checkpointEvery: Int, projector: SessionProjector? = nil, sink: @escaping (SessionEvent) throws -> Void) {
        precondition(checkpointEvery >= 0, "checkpointEvery must be ≥ 0")
        self.run = run
        self.checkpointEvery = checkpointEvery
        self.projector = projector
        output = sink
    }

    private func sink(_ event: SessionEvent) throws {
        guard !finished else { throw SessionProblem("\(event.name): the session has ended") }
        try output(event)
        events += 1
    }

    /// Submits a prompt (`LiveRun.submit`), then checkpoints.
    @discardableResult
    public func submit(prompt: String, continuing: Bool = false) throws -> PromptSubmission {
        let ghost = run.ghostEnabled
        let submission = try run.submit(prompt: prompt, continuing: continuing)
        // A ghost at the end of its context stopped before the prompt (as in `step`).
        if ghost, !run.ghostEnabled { try sink(.ghost(GhostChange(step: submission.step, enabled: false))) }
        try sink(.prompt(submission))
        if checkpointEvery > 0 { try checkpoint() }
        return submission
    }

    /// One step (`LiveRun.step`): a token event, and a checkpoint every `checkpointEvery` tokens;
    /// or a stop event. A ghost that reached its context stopped before the token: a ghost event
    /// says so ahead of it (a replay's run stops it at the same step anyway).
    @discardableResult
    public func step() throws -> StepOutcome {
        let ghost = run.ghostEnabled
        let outcome = try run.step()
        if ghost, !run.ghostEnabled, case .token(let metrics) = outcome { try sink(.ghost(GhostChange(step: metrics.step, enabled: false))) }
        switch outcome {
        case .token(let metrics):
            let projected = projector?.project(run: run, last: metrics)?.decodeSeconds
            try sink(.token(TokenEvent(metrics: metrics, projectedLatencySeconds: projected)))
            if checkpointEvery > 0, run.currentStep % checkpointEvery == 0 { try checkpoint() }
        case .stopped(let reason):
            try sink(.stop(StopEvent(step: run.currentStep, reason: reason)))
        }
        return outcome
    }

    /// Changes a knob from its string (`LiveRun.set`).
    @discardableResult
    public func set(_ knob: Knob, to value: String) throws -> KnobChange {
        try set(SettingChange(knob, parsing: value))
    }

    /// Applies a typed change (`LiveRun.set`).
    @discardableResult
    public func set(_ change: SettingChange) throws -> KnobChange {
        let applied = try run.set(change)
        try sink(.knob(applied))
        return applied
    }

    /// Changes a projection setting; the session must project (a projector was given).
    @discardableResult
    public func setProjection(_ setting: ProjectionSetting, to value: String) throws -> ProjectionChange {
        guard let projector else { throw SessionProblem("\(setting.rawValue): this session projects nothing (no device or target)") }
        let changed = try projector.setting(setting, to: value, model: run.model)
        let change = ProjectionChange(step: run.currentStep, setting: setting, old: projector.settings.value(of: setting),
                                      new: changed.settings.value(of: setting))
        self.projector = changed
        try sink(.projection(change))
        return change
    }

    /// Starts or stops the ghost.
    public func setGhost(_ enabled: Bool) throws {
        guard enabled != run.ghostEnabled else { return }
        try run.setGhost(enabled)
        try sink(.ghost(GhostChange(step: run.currentStep, enabled: enabled)))
    }

    /// Shows `text` from the next token on.
    public func caption(_ text: String) throws {
        try sink(.caption(Caption(step: run.currentStep, text: text)))
    }

    /// Writes a checkpoint of the state now.
    @discardableResult
    public func checkpoint() throws -> Checkpoint {
        let checkpoint = run.checkpoint()
        try sink(.checkpoint(checkpoint))
        checkpointPosition = checkpoint.position
        return checkpoint
    }

    /// Ends the session: a checkpoint of the final state, unless the last one already is (and only
    /// when checkpoints are on), then the end event. A second call does nothing.
    public func finish() throws {
        guard !finished else { return }
        if checkpointEvery > 0, !run.tokens.isEmpty, checkpointPosition != run.position { try checkpoint() }
        try sink(.end(RecordingEnd(step: run.currentStep, events: events)))
        finished = true
    }
}
