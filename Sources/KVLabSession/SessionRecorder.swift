import KVLabEngine

/// Drives a `LiveRun` and turns every action into session events for a sink (a `SessionWriter`,
/// `kvlab run --json`, a screen): the one place that decides what a session holds. Checkpoints
/// follow each prompt and every `checkpointEvery` tokens. Not thread-safe, like the run.
public final class SessionRecorder {
    /// The run whose actions are recorded.
    public let run: LiveRun
    /// Tokens between automatic checkpoints; 0 for none.
    public let checkpointEvery: Int
    private let sink: (SessionEvent) throws -> Void
    /// Position of the last checkpoint, so `finish` does not repeat it.
    private var checkpointPosition: Int?

    public init(run: LiveRun, checkpointEvery: Int, sink: @escaping (SessionEvent) throws -> Void) {
        precondition(checkpointEvery >= 0, "checkpointEvery must be ≥ 0")
        self.run = run
        self.checkpointEvery = checkpointEvery
        self.sink = sink
    }

    /// Submits a prompt (`LiveRun.submit`), then checkpoints.
    @discardableResult
    public func submit(prompt: String, continuing: Bool = false) throws -> PromptSubmission {
        let submission = try run.submit(prompt: prompt, continuing: continuing)
        try sink(.prompt(submission))
        if checkpointEvery > 0 { try checkpoint() }
        return submission
    }

    /// One step (`LiveRun.step`): a token event, and a checkpoint every `checkpointEvery` tokens;
    /// or a stop event.
    @discardableResult
    public func step() throws -> StepOutcome {
        let outcome = try run.step()
        switch outcome {
        case .token(let metrics):
            try sink(.token(TokenEvent(metrics: metrics)))
            if checkpointEvery > 0, run.currentStep % checkpointEvery == 0 { try checkpoint() }
        case .stopped(let reason):
            try sink(.stop(StopEvent(step: run.currentStep, reason: reason)))
        }
        return outcome
    }

    /// Changes a knob (`LiveRun.set`).
    @discardableResult
    public func set(_ knob: Knob, to value: String) throws -> KnobChange {
        let change = try run.set(knob, to: value)
        try sink(.knob(change))
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

    /// Ends the session with a checkpoint of the final state, unless the last one already is (and
    /// only when checkpoints are on).
    public func finish() throws {
        guard checkpointEvery > 0, !run.tokens.isEmpty, checkpointPosition != run.position else { return }
        try checkpoint()
    }
}
