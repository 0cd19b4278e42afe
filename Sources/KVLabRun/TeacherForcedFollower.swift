import KVLabEngine
import KVLabMethods

/// What a follower's step cost and how its prediction of the token compared with the leader's.
public struct FollowerStep: Sendable, Equatable {
    /// The decode step that processed the token (timings, traffic, resident KV bytes).
    public var report: StepReport
    /// −log p_follower(token).
    public var nll: Double
    /// −log p_follower(token) − (−log p_leader(token)).
    public var deltaNLL: Double
    /// KL(leader ‖ follower) of the next-token distributions the token was chosen from.
    public var kl: Double
    /// KL(ghost ‖ follower), when the leader's ghost runs.
    public var ghostKL: Double?
}

/// A second configuration teacher-forced on another run's tokens: its own paged cache and engine
/// on the same weights, fed every token the leader chose (the workbench's compare mode, B beside
/// A). Not thread-safe: use it on the leader's thread.
public final class TeacherForcedFollower {
    /// The model (the leader's).
    public let model: LoadedModel
    /// The follower's settings (knob changes update them).
    public private(set) var settings: RunSettings
    /// The engine on `cache`.
    public let engine: InferenceEngine
    /// The follower's cache.
    public let cache: PagedKVCache
    /// The leader's and ghost's logits before the leader's step, copied so the follower's
    /// prediction is compared with the distributions the token was chosen from.
    private var leaderLogits: [Float]
    private var ghostLogits: [Float]
    private var ghostCaptured = false

    /// A follower of `model` under `settings` that first runs `tokens` (the leader's sequence so
    /// far) as one prompt.
    public init(model: LoadedModel, settings: RunSettings, tokens: [Int]) throws {
        try settings.check(headDim: model.config.headDim)
        try settings.eviction.check(layout: KVLayout(config: model.config))
        self.model = model
        self.settings = settings
        (cache, engine) = settings.makeEngine(for: model)
        leaderLogits = [Float](repeating: 0, count: model.config.vocabSize)
        ghostLogits = leaderLogits
        if !tokens.isEmpty { try engine.prefill(tokens) }
    }

    /// Starts a new sequence: an empty cache, then `tokens` as one prompt.
    public func restart(tokens: [Int]) throws(EngineError) {
        engine.reset()
        if !tokens.isEmpty { try engine.prefill(tokens) }
    }

    /// Copies the leader's (and its ghost's) next-token logits; call before the leader's step.
    public func capture(leader: UnsafeBufferPointer<Float>, ghost: UnsafeBufferPointer<Float>?) {
        leaderLogits.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: leader) }
        ghostCaptured = ghost != nil
        if let ghost { ghostLogits.withUnsafeMutableBufferPointer { _ = $0.update(fromContentsOf: ghost) } }
    }

    /// Compares the follower's prediction of `token` with the captured distributions, then
    /// processes the token. Returns nil at a full context (the follower stops with the leader).
    public func follow(_ token: Int) throws(EngineError) -> FollowerStep? {
        guard engine.hasRoom() else { return nil }
        let vocabulary = model.config.vocabSize
        let position = engine.position - 1
        let own = engine.logits.baseAddress!
        let versusLeader = leaderLogits.withUnsafeBufferPointer {
            StreamingEvaluator.quality(position: position, next: token, logits: own, ghostLogits: $0.baseAddress, vocabulary: vocabulary,
                                       massKept: nil, resident: 0)
        }
        let versusGhost: TokenQuality? = ghostCaptured ? ghostLogits.withUnsafeBufferPointer {
            StreamingEvaluator.quality(position: position, next: token, logits: own, ghostLogits: $0.baseAddress, vocabulary: vocabulary,
                                       massKept: nil, resident: 0)
        } : nil
        let report = try engine.decode(token)
        let nll = versusLeader.nll ?? 0
        return FollowerStep(report: report, nll: nll, deltaNLL: nll - (versusLeader.ghostNLL ?? nll), kl: versusLeader.kl ?? 0,
                            ghostKL: versusGhost?.kl)
    }

    /// Changes a knob from the next step on, as `LiveRun.set` does for the leader.
    @discardableResult
    public func set(_ knob: Knob, to value: String, step: Int) throws(MethodSpecError) -> KnobChange {
        try set(SettingChange(knob, parsing: value), step: step)
    }

    /// Applies a typed change from the next step on.
    @discardableResult
    public func set(_ change: SettingChange, step: Int) throws(MethodSpecError) -> KnobChange {
        try settings.apply(change, step: step, model: model, cache: cache, engine: engine)
    }
}
