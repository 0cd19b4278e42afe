import Foundation
import Testing
@testable import KVLabServe

/// A pool of 4-token pages of 100 bytes each, for the scheduling logic alone: a sequence's bytes
/// are its pages (bounded by `window` tokens when given), its next token a function of its id and
/// length, so every schedule must produce the same tokens. The shipped `kvlab serve` runs the
/// real engine (`EngineBackend`); this double only lets the scheduler's tests count pages by hand.
final class PagedPool: ServeBackend {
    static let pageTokens = 4, pageBytes = 100
    let poolCapacity: Int
    let window: Int?
    private(set) var held: [Int: Int] = [:]
    private(set) var outside: [Int: Int] = [:]
    private(set) var steps: [[ServeWork]] = []

    init(pages: Int, window: Int? = nil) {
        poolCapacity = pages * Self.pageBytes
        self.window = window
    }

    func bytes(tokens: Int) -> Int {
        let kept = window.map { min($0, tokens) } ?? tokens
        return (kept + Self.pageTokens - 1) / Self.pageTokens * Self.pageBytes
    }

    var poolUsed: Int { held.values.reduce(0) { $0 + bytes(tokens: $1) } }
    var occupancy: PoolOccupancy {
        PoolOccupancy(sequences: held.keys.sorted().map { .init(id: $0, bytes: bytes(tokens: held[$0]!)) }, shared: 0, capacity: poolCapacity)
    }

    var decodeGrowth: Int { Self.pageBytes }
    func prefillLimit(_ id: Int) -> Int { .max }
    func bytesToAdmit(_ request: ServeRequest) -> Int { bytes(tokens: request.prompt.count) }
    func lifeBytes(_ request: ServeRequest) -> Int { bytes(tokens: request.prompt.count + request.outputTokens - 1) }

    func bytesNeeded(_ work: [ServeWork]) -> Int {
        work.reduce(0) { total, item in
            let now = held[item.id]!
            return total + bytes(tokens: now + item.tokens.count) - bytes(tokens: now)
        }
    }

    func start(_ request: ServeRequest) -> Int {
        held[request.id] = 0
        return 0
    }

    func step(_ work: [ServeWork]) throws -> ServeStepResult {
        steps.append(work)
        var tokens: [Int: Int] = [:]
        for item in work {
            precondition(held[item.id] == item.start, "work starts where the sequence is")
            held[item.id]! += item.tokens.count
            if item.samples { tokens[item.id] = (item.id * 31 + held[item.id]!) % 97 }
        }
        precondition(poolUsed <= poolCapacity, "the scheduler overfilled the pool")
        return ServeStepResult(tokens: tokens, nanoseconds: 1_000_000)
    }

    func swapOut(_ id: Int) -> Int {
        outside[id] = held.removeValue(forKey: id)
        return bytes(tokens: outside[id]!)
    }

    func swapIn(_ id: Int) -> Int {
        held[id] = outside.removeValue(forKey: id)
        return bytes(tokens: held[id]!)
    }

    func swappedBytes(_ id: Int) -> Int { bytes(tokens: outside[id]!) }
    func drop(_ id: Int) { held[id] = nil }
    func finish(_ id: Int) { held[id] = nil }
}

/// 10 ms a step and 1 ms per prompt token.
struct FixedClock: StepClock {
    func seconds(of step: StepShape) -> Double { 0.01 + 0.001 * Double(step.prefillTokens) }
}

func run(_ requests: [ServeRequest], pages: Int, window: Int? = nil, options: SchedulerOptions) throws -> (Scheduler, [ServeStepRecord]) {
    let scheduler = Scheduler(requests: requests, backend: PagedPool(pages: pages, window: window), clock: FixedClock(), options: options)
    var records: [ServeStepRecord] = []
    while let record = try scheduler.step() {
        records.append(record)
        precondition(records.count < 10_000, "the scheduler made no progress")
    }
    return (scheduler, records)
}

/// Eight requests at once: 8-token prompts, 8 output tokens (15 tokens held over a life: 4 pages).
let burst = (0..<8).map { ServeRequest(id: $0, arrival: 0, prompt: Array(1...8), outputTokens: 8) }

/// Every sequence's generated tokens, from the records.
func outputs(_ records: [ServeStepRecord]) -> [Int: [Int]] {
    records.flatMap(\.tokens).reduce(into: [:]) { $0[$1[0], default: []].append($1[1]) }
}

@Suite struct SchedulerTests {
    @Test func waitAdmitsWhatFitsForLifeAndAdmitsMoreAsOthersFinish() throws {
        // 9 pages: two lives of 4 pages fit, a third does not.
        let (scheduler, records) = try run(burst, pages: 9, options: SchedulerOptions(preemption: .wait))
        #expect(records[0].admitted == [0, 1])
        #expect(scheduler.counters.peakRunning == 2)
        #expect(scheduler.counters.preemptions == 0)
        #expect(scheduler.finished.count == 8)
        // Continuous batching: request 2 is admitted the step after 0 and 1 finish, not later.
        let finish = try #require(records.firstIndex { $0.finished.contains(0) })
        #expect(records[finish + 1].admitted == [2, 3])
        #expect(outputs(records).values.allSatisfy { $0.count == 8 })
    }

    @Test func swapAdmitsMoreAndCountsBytesBothWays() throws {
        let (scheduler, records) = try run(burst, pages: 9, options: SchedulerOptions(preemption: .swap))
        let (waited, waitRecords) = try run(burst, pages: 9, options: SchedulerOptions(preemption: .wait))
        // Prompts of 2 pages: four start at once.
        #expect(records[0].admitted == [0, 1, 2, 3])
        #expect(scheduler.counters.peakRunning > waited.counters.peakRunning)
        let preemptions = records.flatMap(\.preempted)
        #expect(!preemptions.isEmpty && preemptions.allSatisfy { $0.policy == .swap && $0.tokens == 0 })
        #expect(scheduler.counters.swapOuts == preemptions.count && scheduler.counters.swapIns == preemptions.count)
        // Out and back in again: each swap moves its bytes twice.
        #expect(scheduler.counters.swappedBytes == 2 * preemptions.reduce(0) { $0 + $1.bytes })
        // The newest running sequence goes first.
        #expect(preemptions[0].id == 3)
        #expect(scheduler.finished.count == 8)
        #expect(outputs(records) == outputs(waitRecords), "preemption changes when tokens come, not which")
    }

    @Test func recomputeCountsTheTokensItProcessesAgain() throws {
        let (scheduler, records) = try run(burst, pages: 9, options: SchedulerOptions(preemption: .recompute))
        let preemptions = records.flatMap(\.preempted)
        #expect(!preemptions.isEmpty && preemptions.allSatisfy { $0.policy == .recompute && $0.tokens > 0 })
        #expect(scheduler.counters.recomputedTokens == preemptions.reduce(0) { $0 + $1.tokens })
        #expect(scheduler.counters.swappedBytes == 0)
        // Every token processed: each sequence's life once, plus the recomputed ones.
        let pool = scheduler.backend as! PagedPool
        let processed = pool.steps.flatMap { $0 }.reduce(0) { $0 + $1.tokens.count }
        #expect(processed == 8 * 15 + scheduler.counters.recomputedTokens)
        // Dropped sequences are admitted again before any request that has not started.
        let fresh = try #require(records.first { $0.admitted.contains(4) })
        let dropped = Set(records.prefix(fresh.step).flatMap(\.preempted).map(\.id))
        let readmitted = Set(records[1...fresh.step].flatMap(\.admitted).filter { $0 < 4 })
        #expect(!dropped.isEmpty && dropped.isSubset(of: readmitted))
        #expect(fresh.admitted.drop { $0 < 4 }.allSatisfy { $0 >= 4 })
        #expect(outputs(records) == outputs(try run(burst, pages: 9, options: SchedulerOptions(preemption: .wait)).1))
    }

    @Test func aLongPromptIsChunkedSoDecodingGoesOn() throws {
        let requests = [ServeRequest(id: 0, arrival: 0, prompt: [1, 2], outputTokens: 40),
                        ServeRequest(id: 1, arrival: 0.015, prompt: Array(repeating: 5, count: 100), outputTokens: 2)]
        let (_, records) = try run(requests, pages: 100, options: SchedulerOptions(preemption: .wait, tokenBudget: 16))
        let prefilling = records.filter { $0.running.contains(1) && $0.prefillTokens > 0 && !$0.admitted.contains(0) }
        #expect(prefilling.count >= 100 / 16)
        for record in prefilling {
            #expect(record.tokens.contains { $0[0] == 0 }, "sequence 0 decodes in step \(record.step) while 1's prompt runs")
            #expect(record.decodeTokens + record.prefillTokens <= 16)
        }
    }

    @Test func aRequestLargerThanThePoolIsTurnedAwayAndTheRestRun() throws {
        let requests = [ServeRequest(id: 0, arrival: 0, prompt: Array(repeating: 1, count: 64), outputTokens: 4)] + burst.map {
            ServeRequest(id: $0.id + 1, arrival: 0, prompt: $0.prompt, outputTokens: $0.outputTokens)
        }
        let (scheduler, _) = try run(requests, pages: 9, options: SchedulerOptions(preemption: .swap))
        #expect(scheduler.rejected == [0])
        #expect(scheduler.finished.count == 8)
    }

    @Test func aBoundedMethodFitsMoreSequences() throws {
        // A 4-token window holds one page for life, whatever the prompt.
        let (full, _) = try run(burst, pages: 9, options: SchedulerOptions(preemption: .wait))
        let (window, _) = try run(burst, pages: 9, window: 4, options: SchedulerOptions(preemption: .wait))
        #expect(window.counters.peakRunning == 8)
        #expect(full.counters.peakRunning == 2)
    }

    @Test func theSameRequestsGiveTheSameSteps() throws {
        let stream = SyntheticArrivals(rate: 50, count: 30, promptLength: LengthRange(4, 40), outputLength: LengthRange(2, 20), seed: 7)
        let requests = stream.requests(source: Array(0..<200), first: 1)
        let a = try run(requests, pages: 40, options: SchedulerOptions(preemption: .recompute, tokenBudget: 24))
        let b = try run(requests, pages: 40, options: SchedulerOptions(preemption: .recompute, tokenBudget: 24))
        #expect(a.1 == b.1)
        #expect(a.0.finished == b.0.finished)
        #expect(a.0.finished.count == 30)
    }

    @Test func latenciesComeFromTheClock() throws {
        let request = ServeRequest(id: 0, arrival: 1, prompt: [1, 2, 3], outputTokens: 3)
        let (scheduler, records) = try run([request], pages: 10, options: SchedulerOptions())
        // Prefill of 3 tokens (13 ms) gives the first token; two decode steps of 10 ms follow.
        let finished = try #require(scheduler.finished.first)
        #expect(abs(finished.ttft - 0.013) < 1e-12)
        #expect(abs(try #require(finished.tpot) - 0.010) < 1e-12)
        #expect(abs(finished.measuredTTFT - 0.001) < 1e-12)
        #expect(records.count == 3)
        #expect(abs(scheduler.time - 1.033) < 1e-12)
    }
}

@Suite struct ServeMetricsTests {
    @Test func percentilesAreNearestRank() throws {
        let values = (1...100).map(Double.init).shuffled()
        let p = try #require(Percentiles(values))
        #expect(p.p50 == 50 && p.p99 == 99 && p.count == 100)
        let one = try #require(Percentiles([3]))
        #expect(one.p50 == 3 && one.p99 == 3)
        #expect(Percentiles([]) == nil)
        #expect(Percentiles([1, 2, 3, 4])?.p50 == 2)
    }
}
