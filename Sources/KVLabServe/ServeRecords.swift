/// When the pool is full and a running sequence needs more pages.
public enum PreemptionPolicy: String, Sendable, Codable, CaseIterable {
    /// Never preempt: a request is admitted only when its whole life (prompt and output) fits
    /// beside the reservations of those running.
    case wait
    /// Move the newest running sequence's pages to host DRAM; it comes back before new requests.
    case swap
    /// Drop the newest running sequence's pages; it is admitted again first and recomputes its
    /// prompt and the tokens it generated.
    case recompute
}

/// The scheduler's knobs.
public struct SchedulerOptions: Sendable, Equatable, Codable {
    public var preemption: PreemptionPolicy
    /// Tokens one step processes at most, over every sequence: decodes first, then prompt chunks,
    /// so a long prompt is spread over steps instead of stalling everyone's next token.
    public var tokenBudget: Int
    /// Sequences that run at once at most.
    public var maxBatch: Int

    public static let defaultTokenBudget = 64
    public static let defaultMaxBatch = 64

    public init(preemption: PreemptionPolicy = .swap, tokenBudget: Int = Self.defaultTokenBudget, maxBatch: Int = Self.defaultMaxBatch) {
        precondition(tokenBudget >= 1 && maxBatch >= 1, "a step runs at least one token of one sequence")
        self.preemption = preemption
        self.tokenBudget = tokenBudget
        self.maxBatch = maxBatch
    }
}

/// The size of a step, which is all the clock needs to model its time.
public struct StepShape: Sendable, Equatable {
    /// Sequences in the step.
    public var batch: Int
    /// Sequences that decode one token.
    public var decodes: Int
    /// Prompt (or recomputed) tokens over every sequence.
    public var prefillTokens: Int
    /// Mean tokens each sequence holds after the step.
    public var meanContext: Double

    public init(batch: Int, decodes: Int, prefillTokens: Int, meanContext: Double) {
        self.batch = batch
        self.decodes = decodes
        self.prefillTokens = prefillTokens
        self.meanContext = meanContext
    }
}

/// How long a step takes on the run's clock. The clock must be a function of what the step did,
/// never of wall time, so a run records and replays identically.
public protocol StepClock {
    func seconds(of step: StepShape) -> Double
}

/// A sequence leaving the running set to make room.
public struct Preemption: Sendable, Equatable, Codable {
    public var id: Int
    public var policy: PreemptionPolicy
    /// Bytes moved to host DRAM (swap) or freed (recompute).
    public var bytes: Int
    /// Tokens it held, to recompute later (recompute; 0 for swap).
    public var tokens: Int
}

/// What one scheduler step did: the line a serve recording holds per step (only what the run's
/// clock and the engine decide, so replays reproduce it exactly).
public struct ServeStepRecord: Sendable, Equatable, Codable {
    public var step: Int
    /// The run's clock at the end of the step, in seconds.
    public var time: Double
    /// Sequences admitted for the first time, or again after being dropped.
    public var admitted: [Int] = []
    public var preempted: [Preemption] = []
    public var swappedIn: [Int] = []
    public var finished: [Int] = []
    /// Requests whose prompt and first token alone exceed the pool, turned away.
    public var rejected: [Int] = []
    /// Next tokens chosen, as [id, token] pairs by id.
    public var tokens: [[Int]] = []
    public var decodeTokens = 0
    public var prefillTokens = 0
    /// Running sequences after the step, in arrival order.
    public var running: [Int] = []
    /// Requests arrived and waiting for admission after the step.
    public var queue = 0
    /// Sequences swapped out to host DRAM after the step.
    public var swapped = 0
    /// Pool bytes after the step (shared pages once), and of them the shared prefix's.
    public var poolUsed = 0
    public var shared = 0
    /// Copy-on-write copies the step made.
    public var copies = 0
}

/// A finished request's latencies on the run's clock and as measured here.
public struct FinishedRequest: Sendable, Equatable {
    public var id: Int
    public var outputTokens: Int
    /// Arrival to first token, seconds.
    public var ttft: Double
    /// Mean seconds per output token after the first (nil for a one-token output).
    public var tpot: Double?
    public var measuredTTFT: Double
    public var measuredTPOT: Double?
}
