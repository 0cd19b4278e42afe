import KVLabSession

/// The 50th and 99th percentiles of a set of latencies, by the nearest-rank method (the smallest
/// value with at least p % of the values at or below it); nil when there are none.
public struct Percentiles: Sendable, Equatable, Codable {
    public var p50: Double
    public var p99: Double
    public var count: Int

    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        p50 = Self.rank(50, sorted)
        p99 = Self.rank(99, sorted)
        count = values.count
    }

    /// The nearest-rank percentile `p` of ascending `sorted`.
    public static func rank(_ p: Double, _ sorted: [Double]) -> Double {
        let index = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(index, 0), sorted.count - 1)]
    }
}

/// Step figures summed over a run, for the summary and the view.
public struct ServeTally: Sendable, Equatable {
    public var steps = 0
    /// Sequences running after each step, summed (for the mean).
    public var runningSum = 0
    public var peakPoolUsed = 0
    public var peakQueue = 0
    public var decodeTokens = 0
    public var prefillTokens = 0

    public init() {}

    public mutating func add(_ record: ServeStepRecord) {
        steps += 1
        runningSum += record.running.count
        peakPoolUsed = max(peakPoolUsed, record.poolUsed)
        peakQueue = max(peakQueue, record.queue)
        decodeTokens += record.decodeTokens
        prefillTokens += record.prefillTokens
    }

    public var meanRunning: Double { steps > 0 ? Double(runningSum) / Double(steps) : 0 }
}

/// A serve run's figures: throughput, latency percentiles on the run's clock (the projection's
/// step times) and as measured on this machine, admission and preemption counts, pool use.
public struct ServeSummary: Sendable, Equatable, Codable {
    /// The KV methods (and sampler) at the end of the run, and the preemption policy.
    public var settings: SessionSettings
    public var preemption: PreemptionPolicy
    public var steps: Int
    public var requests: Int
    public var finished: Int
    public var rejected: Int
    public var generatedTokens: Int
    public var decodeTokens: Int
    public var prefillTokens: Int
    /// The run's clock at the end, seconds.
    public var seconds: Double
    /// Wall time of the engine's steps on this machine, seconds.
    public var measuredSeconds: Double
    /// Generated tokens per second of the run's clock, and per measured second.
    public var tokensPerSecond: Double
    public var measuredTokensPerSecond: Double
    /// Time to first token and time per output token (after the first), in seconds.
    public var ttft: Percentiles?
    public var tpot: Percentiles?
    public var measuredTTFT: Percentiles?
    public var measuredTPOT: Percentiles?
    public var counters: ServeCounters
    public var meanRunning: Double
    public var peakQueue: Int
    public var poolCapacity: Int
    public var peakPoolUsed: Int
    /// Pool bytes after the last step, and of them the shared prefix's (counted once).
    public var poolUsed: Int
    public var sharedBytes: Int

    public init(scheduler: Scheduler, tally: ServeTally, last: ServeStepRecord?, settings: SessionSettings) {
        self.settings = settings
        preemption = scheduler.options.preemption
        let finished = scheduler.finished
        steps = scheduler.steps
        requests = scheduler.requests.count
        self.finished = finished.count
        rejected = scheduler.rejected.count
        generatedTokens = scheduler.counters.generated
        decodeTokens = tally.decodeTokens
        prefillTokens = tally.prefillTokens
        seconds = scheduler.time
        measuredSeconds = scheduler.measuredTime
        tokensPerSecond = seconds > 0 ? Double(generatedTokens) / seconds : 0
        measuredTokensPerSecond = measuredSeconds > 0 ? Double(generatedTokens) / measuredSeconds : 0
        ttft = Percentiles(finished.map(\.ttft))
        tpot = Percentiles(finished.compactMap(\.tpot))
        measuredTTFT = Percentiles(finished.map(\.measuredTTFT))
        measuredTPOT = Percentiles(finished.compactMap(\.measuredTPOT))
        counters = scheduler.counters
        meanRunning = tally.meanRunning
        peakQueue = tally.peakQueue
        poolCapacity = scheduler.backend.poolCapacity
        peakPoolUsed = tally.peakPoolUsed
        poolUsed = last?.poolUsed ?? 0
        sharedBytes = last?.shared ?? 0
    }
}
