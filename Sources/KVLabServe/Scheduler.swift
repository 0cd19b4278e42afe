/// Continuous batching over one page pool: requests arrive on the run's clock, are admitted as
/// the pool allows, share each step's token budget (decodes first, then prompt chunks), and
/// finish; when a running sequence cannot grow, the preemption policy makes room. A state
/// machine over a `ServeBackend` and a `StepClock`, so the same requests, backend and clock give
/// the same steps.
public final class Scheduler {
    public let backend: any ServeBackend
    public let clock: any StepClock
    public let options: SchedulerOptions
    /// Every request, in arrival order.
    public let requests: [ServeRequest]

    /// The run's clock, seconds.
    public private(set) var time = 0.0
    /// Wall time spent in the backend's steps so far, seconds (measured here).
    public private(set) var measuredTime = 0.0
    /// Steps run.
    public private(set) var steps = 0
    /// Running, waiting and swapped sequences, each in arrival order: the oldest runs first and is
    /// preempted last.
    public private(set) var running: [Int] = []
    public private(set) var waiting: [Int] = []
    public private(set) var swapped: [Int] = []
    public private(set) var finished: [FinishedRequest] = []
    public private(set) var rejected: [Int] = []
    public private(set) var counters = ServeCounters()

    private var next = 0
    private var sequences: [Int: Sequence] = [:]

    /// A sequence's tokens (prompt, then generated) and how many the backend holds.
    struct Sequence {
        var request: ServeRequest
        var tokens: [Int]
        var processed = 0
        var generated = 0
        /// Pool bytes reserved for its whole life (the wait policy).
        var reserved = 0
        var arrivedMeasured = 0.0
        var firstToken: (time: Double, measured: Double)?

        /// Tokens it runs as a prompt: all of them before its first token, every one but the
        /// last generated after (that one it decodes).
        var prefillEnd: Int { tokens.count - (generated > 0 ? 1 : 0) }
    }

    public init(requests: [ServeRequest], backend: any ServeBackend, clock: any StepClock, options: SchedulerOptions) {
        self.requests = requests.sorted { ($0.arrival, $0.id) < ($1.arrival, $1.id) }
        self.backend = backend
        self.clock = clock
        self.options = options
    }

    /// Whether every request has finished or been turned away.
    public var done: Bool { next == requests.count && running.isEmpty && waiting.isEmpty && swapped.isEmpty }

    /// Tokens generated so far.
    public var generatedTokens: Int { counters.generated }

    /// Where a sequence that has arrived and not finished stands; nil for others.
    public func progress(_ id: Int) -> SequenceProgress? {
        sequences[id].map { SequenceProgress(prompt: $0.request.prompt.count, processed: $0.processed, generated: $0.generated,
                                             outputTokens: $0.request.outputTokens) }
    }

    /// Runs one step (first jumping the clock to the next arrival when nothing is left to run);
    /// nil when done.
    public func step() throws -> ServeStepRecord? {
        if running.isEmpty && waiting.isEmpty && swapped.isEmpty {
            guard next < requests.count else { return nil }
            time = max(time, requests[next].arrival)
        }
        while next < requests.count, requests[next].arrival <= time {
            let request = requests[next]
            sequences[request.id] = Sequence(request: request, tokens: request.prompt, arrivedMeasured: measuredTime)
            waiting.append(request.id)
            next += 1
        }
        var record = ServeStepRecord(step: steps, time: time)
        var budget = options.tokenBudget
        var work: [ServeWork] = []
        var need = 0
        let free = { self.backend.poolCapacity - self.backend.poolUsed }

        // The running sequences' work, newest given up first while it does not fit.
        while true {
            (work, budget) = plan(running, budget: options.tokenBudget)
            need = backend.bytesNeeded(work)
            guard need > free(), options.preemption != .wait, let victim = running.last else { break }
            record.preempted.append(try preempt(victim))
        }
        // Swapped sequences come back first, oldest first, then new requests, while the pool has
        // room: a sequence comes back when its pages and a decode's growth fit; its work runs this
        // step when the engine's bound for it fits too (else the next step makes room by
        // preempting newer sequences).
        if record.preempted.isEmpty, options.preemption == .swap {
            while let id = swapped.first, running.count < options.maxBatch, budget > 0 {
                guard need + backend.swappedBytes(id) + backend.decodeGrowth <= free() else { break }
                counters.swapIns += 1
                counters.swappedBytes += try backend.swapIn(id)
                swapped.removeFirst()
                insert(id, into: &running)
                record.swappedIn.append(id)
                let (more, left) = plan([id], budget: budget)
                let bytes = backend.bytesNeeded(more)
                guard need + bytes <= free() else { continue }
                work += more
                budget = left
                need += bytes
            }
        }
        if record.preempted.isEmpty, swapped.isEmpty {
            while let id = waiting.first, running.count < options.maxBatch, budget > 0 {
                let request = sequences[id]!.request
                let life = backend.lifeBytes(request)
                if life > backend.poolCapacity {
                    waiting.removeFirst()
                    rejected.append(id)
                    record.rejected.append(id)
                    continue
                }
                if options.preemption == .wait {
                    guard reservedBytes + life <= backend.poolCapacity - backend.occupancy.shared else { break }
                    sequences[id]!.reserved = life
                } else {
                    guard need + backend.bytesToAdmit(request) <= free() else { break }
                }
                waiting.removeFirst()
                sequences[id]!.processed = try backend.start(request)
                insert(id, into: &running)
                record.admitted.append(id)
                let (more, left) = plan([id], budget: budget)
                work += more
                budget = left
                need += backend.bytesNeeded(more)
            }
        }
        guard !work.isEmpty else {
            // Nothing ran. After a preemption, the next step brings sequences back; otherwise the
            // queue is empty or its head cannot fit even alone.
            if record.preempted.isEmpty && record.rejected.isEmpty {
                if let id = waiting.first, running.isEmpty, swapped.isEmpty {
                    waiting.removeFirst()
                    rejected.append(id)
                    record.rejected.append(id)
                } else if next < requests.count {
                    time = max(time, requests[next].arrival)
                }
            }
            return finishRecord(record)
        }
        let result = try backend.step(work)
        measuredTime += Double(result.nanoseconds) / 1e9
        let decodes = work.filter(\.decode).count
        var context = 0
        for item in work {
            sequences[item.id]!.processed += item.tokens.count
            context += sequences[item.id]!.processed
        }
        record.decodeTokens = decodes
        record.prefillTokens = work.reduce(0) { $0 + $1.tokens.count } - decodes
        time += clock.seconds(of: StepShape(batch: work.count, decodes: record.decodeTokens, prefillTokens: record.prefillTokens,
                                            meanContext: Double(context) / Double(work.count)))
        record.time = time
        record.copies = result.copies
        counters.copies += result.copies
        for item in work where item.samples {
            guard let token = result.tokens[item.id] else { continue }
            record.tokens.append([item.id, token])
            var sequence = sequences[item.id]!
            sequence.tokens.append(token)
            sequence.generated += 1
            counters.generated += 1
            if sequence.firstToken == nil { sequence.firstToken = (time, measuredTime) }
            sequences[item.id] = sequence
            if sequence.generated >= sequence.request.outputTokens {
                try backend.finish(item.id)
                running.removeAll { $0 == item.id }
                record.finished.append(item.id)
                finished.append(latencies(sequence))
                sequences[item.id] = nil
            }
        }
        record.tokens.sort { $0[0] < $1[0] }
        return finishRecord(record)
    }

    private func finishRecord(_ record: ServeStepRecord) -> ServeStepRecord {
        var record = record
        let occupancy = backend.occupancy
        record.running = running
        record.queue = waiting.count
        record.swapped = swapped.count
        record.poolUsed = occupancy.used
        record.shared = occupancy.shared
        counters.peakRunning = max(counters.peakRunning, running.count)
        steps += 1
        return record
    }

    /// The work of `ids` within `budget` tokens: one token for each sequence that decodes, then
    /// prompt chunks in order; the budget left. A sequence that recomputes runs what it held as a
    /// prompt and then decodes its last token again, as one that was never preempted would.
    private func plan(_ ids: [Int], budget: Int) -> ([ServeWork], Int) {
        var budget = budget
        var work: [ServeWork] = []
        for id in ids where budget > 0 {
            let s = sequences[id]!
            guard s.processed == s.prefillEnd else { continue }
            work.append(ServeWork(id: id, tokens: [s.tokens[s.processed]], start: s.processed, decode: true, samples: true))
            budget -= 1
        }
        for id in ids where budget > 0 {
            let s = sequences[id]!
            guard s.processed < s.prefillEnd else { continue }
            let count = min(s.prefillEnd - s.processed, budget, backend.prefillLimit(id))
            work.append(ServeWork(id: id, tokens: Array(s.tokens[s.processed..<(s.processed + count)]), start: s.processed, decode: false,
                                  samples: s.generated == 0 && s.processed + count == s.prefillEnd))
            budget -= count
        }
        return (work, budget)
    }


    /// Adds `id` to a list kept in arrival order (ids are arrival order): the older a sequence,
    /// the sooner it runs and the later it is preempted.
    private func insert(_ id: Int, into list: inout [Int]) {
        list.insert(id, at: list.firstIndex { $0 > id } ?? list.count)
    }

    private var reservedBytes: Int { running.reduce(0) { $0 + sequences[$1]!.reserved } }

    private func preempt(_ id: Int) throws -> Preemption {
        running.removeLast()
        counters.preemptions += 1
        var sequence = sequences[id]!
        switch options.preemption {
        case .swap:
            let bytes = try backend.swapOut(id)
            counters.swapOuts += 1
            counters.swappedBytes += bytes
            insert(id, into: &swapped)
            return Preemption(id: id, policy: .swap, bytes: bytes, tokens: 0)
        case .recompute, .wait:
            let bytes = backend.occupancy.sequences.first { $0.id == id }?.bytes ?? 0
            try backend.drop(id)
            let tokens = sequence.processed
            counters.recomputedTokens += tokens
            sequence.processed = 0
            sequences[id] = sequence
            insert(id, into: &waiting)
            return Preemption(id: id, policy: .recompute, bytes: bytes, tokens: tokens)
        }
    }

    private func latencies(_ sequence: Sequence) -> FinishedRequest {
        let first = sequence.firstToken!
        let later = Double(sequence.generated - 1)
        return FinishedRequest(id: sequence.request.id, outputTokens: sequence.generated, ttft: first.time - sequence.request.arrival,
                               tpot: later > 0 ? (time - first.time) / later : nil,
                               measuredTTFT: first.measured - sequence.arrivedMeasured,
                               measuredTPOT: later > 0 ? (measuredTime - first.measured) / later : nil)
    }
}

/// What the scheduler counted over the run.
public struct ServeCounters: Sendable, Equatable, Codable {
    public var generated = 0
    public var preemptions = 0
    public var swapOuts = 0
    public var swapIns = 0
    /// Bytes moved between the pool and host DRAM, both ways.
    public var swappedBytes = 0
    /// Tokens processed again after a recompute preemption.
    public var recomputedTokens = 0
    /// Copy-on-write copies of shared pages.
    public var copies = 0
    /// The most sequences running at once.
    public var peakRunning = 0
}

/// How far a sequence has come.
public struct SequenceProgress: Sendable, Equatable {
    /// Prompt tokens.
    public var prompt: Int
    /// Tokens the engine holds (a dropped sequence starts again from 0).
    public var processed: Int
    public var generated: Int
    public var outputTokens: Int

    /// Whether it still runs its prompt (or recomputes what it held).
    public var prefilling: Bool { processed < prompt + max(generated - 1, 0) }
}
