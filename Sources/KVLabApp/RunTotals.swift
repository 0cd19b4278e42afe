import KVLabRun

/// The last `capacity` values of a series, oldest first (panel histories).
public struct History: Sendable, Equatable {
    /// Most values kept.
    public let capacity: Int
    /// Values oldest first.
    public private(set) var values: [Double] = []

    /// An empty history of at most `capacity` values.
    public init(capacity: Int) {
        self.capacity = capacity
        values.reserveCapacity(capacity)
    }

    /// Appends a value, dropping the oldest when full.
    public mutating func append(_ value: Double) {
        if values.count == capacity { values.removeFirst() }
        values.append(value)
    }

    /// Forgets every value.
    public mutating func removeAll() { values.removeAll(keepingCapacity: true) }

    /// The value at quantile `q` (0…1) of the values kept, or nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(Int((Double(sorted.count - 1) * q).rounded()), sorted.count - 1)]
    }
}

/// What the sequence accumulated, token by token: the panels' histories, the ghost's quality
/// totals and, in compare mode, B's. A new sequence starts them again; the UI state owns one.
public struct RunTotals: Sendable {
    /// Values kept per history.
    static let historyCapacity = 512

    /// The full-cache ghost against the run, over the tokens it ran for. Both see the run's
    /// tokens, so only measures of the two distributions on the same context are kept: a ΔNLL of
    /// tokens the run chose itself flatters it (greedy picks its own most likely token).
    public struct Ghost: Sendable, Equatable {
        /// Tokens compared with the ghost.
        public var tokens = 0
        /// Tokens whose top-1 agreed with the ghost's.
        public var top1Agreements = 0
        /// Sum of KL(ghost ‖ run) over the compared tokens: its mean is the expected ΔNLL of
        /// tokens the full cache would sample.
        public var klSum = 0.0
        /// The first token of this sequence whose top-1 disagreed with the ghost's: its position,
        /// and how many tokens the sequence had generated before it.
        public var firstDivergence: Divergence?
        /// The last token's comparison.
        public var last: GhostComparison?
    }

    /// Where the run first chose differently from the ghost.
    public struct Divergence: Sendable, Equatable {
        /// The token's position in the sequence (as the KV map numbers them).
        public var position: Int
        /// Tokens the sequence generated before it.
        public var generated: Int
    }

    /// Configuration B against A (and the ghost) in compare mode, over the tokens B followed.
    public struct Compare: Sendable {
        /// B's measured per-token latency (ms).
        public var latency = History(capacity: RunTotals.historyCapacity)
        /// Tokens B followed.
        public var tokens = 0
        /// Sum of B's ΔNLL against A (nats).
        public var deltaNLLSum = 0.0
        /// Sum of KL(A ‖ B).
        public var klSum = 0.0
        /// Sum of KL(ghost ‖ B) over the tokens the ghost ran for, and their count.
        public var ghostKL = (sum: 0.0, tokens: 0)
        /// B's last step.
        public var lastStep: FollowerStep?
    }

    /// Measured per-token latency (ms).
    public var latency = History(capacity: historyCapacity)
    /// KL(ghost ‖ run) per token.
    public var kl = History(capacity: historyCapacity)
    /// HBM traffic per token (bytes).
    public var traffic = History(capacity: historyCapacity)
    /// Resident KV bytes per token.
    public var kvBytes = History(capacity: historyCapacity)
    /// Time to first token of the sequence: the prompt's forward pass (ms).
    public var ttft: Double?
    /// The last token's metrics.
    public var lastToken: TokenMetrics?
    /// Tokens generated since the sequence started (its prompts excluded).
    public var generated = 0
    /// The ghost's totals.
    public var ghost = Ghost()
    /// B's totals (empty outside compare mode).
    public var compare = Compare()

    /// No tokens yet.
    public init() {}

    /// Adds a generated token, and B's step on it in compare mode.
    public mutating func add(_ metrics: TokenMetrics, compareStep: FollowerStep?) {
        latency.append(Double(metrics.report.timings.totalNanoseconds) / 1e6)
        let ledger = metrics.report.ledger
        traffic.append(Double(ledger.total(.hbmToSRAM) + ledger.total(.sramToHBM) + ledger.total(.dramToHBM)))
        kvBytes.append(Double(metrics.report.cache.total))
        if let comparison = metrics.ghost {
            kl.append(comparison.kl)
            ghost.tokens += 1
            if comparison.top1Agrees {
                ghost.top1Agreements += 1
            } else if ghost.firstDivergence == nil {
                ghost.firstDivergence = Divergence(position: metrics.report.position, generated: generated)
            }
            ghost.klSum += comparison.kl
        }
        ghost.last = metrics.ghost
        lastToken = metrics
        generated += 1
        if let step = compareStep {
            compare.latency.append(Double(step.report.timings.totalNanoseconds) / 1e6)
            compare.tokens += 1
            compare.deltaNLLSum += step.deltaNLL
            compare.klSum += step.kl
            if let ghostKL = step.ghostKL { compare.ghostKL = (compare.ghostKL.sum + ghostKL, compare.ghostKL.tokens + 1) }
            compare.lastStep = step
        }
    }
}
