import Foundation
import Testing
import KVLabEngine
import KVLabMethods
import KVLabRun
import KVLabSession
@testable import KVLabServe

/// The scheduler on the real engine (the embedded model, one pool): what a shared prefix saves,
/// preemption's accounting against the engine's pool, and record/replay identity.
@Suite(.serialized) struct EngineServeTests {
    static let model = Result { try EmbeddedModel.load() }

    static func session(_ requests: [ServeRequest], pool: Int, options: SchedulerOptions, settings: RunSettings = RunSettings(),
                        recorder: ServeRecorder? = nil) throws -> ServeSession {
        try ServeSession(model: try model.get(), settings: settings, pool: pool, requests: requests, options: options,
                         clock: ProjectionSettings(), recorder: recorder)
    }

    /// `count` requests at once: a system prompt of `shared` tokens (BOS first) shared or not,
    /// then 16 tokens of their own.
    static func requests(_ count: Int, systemPrompt shared: Int, sharing: Bool) -> [ServeRequest] {
        let head = [1] + (0..<(shared - 1)).map { 100 + $0 % 1500 }
        return (0..<count).map { id in
            ServeRequest(id: id, arrival: 0, prompt: head + (0..<16).map { 300 + id * 16 + $0 }, outputTokens: 4,
                         sharedPrefix: sharing ? shared : 0)
        }
    }

    @Test func aSharedSystemPromptSavesItsBytesForEveryExtraSequence() throws {
        let options = SchedulerOptions(preemption: .wait, tokenBudget: 8 * 272)
        func usedAfterOneStep(_ count: Int, sharing: Bool) throws -> (used: Int, shared: Int) {
            let session = try Self.session(Self.requests(count, systemPrompt: 256, sharing: sharing), pool: 64 << 20, options: options)
            let record = try #require(try session.step())
            #expect(record.admitted.count == count)
            return (record.poolUsed, record.shared)
        }
        let shared1 = try usedAfterOneStep(1, sharing: true), shared8 = try usedAfterOneStep(8, sharing: true)
        let own1 = try usedAfterOneStep(1, sharing: false), own8 = try usedAfterOneStep(8, sharing: false)
        // The prefix's pages, counted from the layout: 256 tokens fill 16 pages of every (layer, KV head).
        let config = try Self.model.get().config
        let prefix = config.layerCount * config.kvHeadCount * (256 / PagedKVCache.pageSize) * PagedKVCache.pageBytes(headDim: config.headDim)
        #expect(shared8.shared == prefix && shared1.shared == prefix)
        #expect(own8.shared == 0)
        let saved = ((own8.used - own1.used) - (shared8.used - shared1.used)) / 7
        #expect(saved == prefix, "each extra sequence saves the prefix's \(prefix) B, saved \(saved) B")
    }

    /// The traffic a step shows is the engine's count: at batch 1 and 4, a decode-only step reads
    /// every weight matrix once (plus each row's embedding row), so its weight bytes per token fall
    /// by the batch, and its FLOPs are two per weight and row plus dense attention over the
    /// entries each query sees; the arithmetic intensity then rises with the batch.
    @Test func aDecodeStepsTrafficPerTokenFallsWithTheBatch() throws {
        let model = try Self.model.get(), c = model.config, weights = model.weights
        let matrices = weights.layers.flatMap { [$0.query, $0.key, $0.value, $0.attentionOutput, $0.ffnGate, $0.ffnUp, $0.ffnDown] } + [weights.output]
        let weightBytes = matrices.reduce(0) { $0 + $1.byteCount }, elements = matrices.reduce(0) { $0 + $1.elementCount }
        func decodeStep(_ count: Int) throws -> StepTraffic {
            let requests = Self.requests(count, systemPrompt: 16, sharing: false)
            let session = try Self.session(requests, pool: 64 << 20, options: SchedulerOptions(preemption: .wait, tokenBudget: 1024))
            var decoded: StepTraffic?
            while decoded == nil, let record = try session.step() {
                if record.prefillTokens == 0 { decoded = session.engine.lastTraffic }
            }
            let traffic = try #require(decoded, "a decode-only step")
            // The first decode is at the prompt's end: every (layer, KV head) then holds prompt + 1 entries.
            let attention = 4 * c.groupSize * c.headDim * c.layerCount * c.kvHeadCount * (requests[0].prompt.count + 1) * count
            #expect(traffic.flops == UInt64(2 * count * elements + attention))
            return traffic
        }
        let one = try decodeStep(1), four = try decodeStep(4)
        let embedding = weights.tokenEmbedding.rowBytes
        #expect(one.ledger.bytesRead(.weights) == UInt64(weightBytes + embedding))
        #expect(four.ledger.bytesRead(.weights) == UInt64(weightBytes + 4 * embedding))
        #expect(four.rows == 4 && four.sequences == 4)
        #expect(four.weightBytesPerToken == Double(weightBytes + 4 * embedding) / 4)
        #expect(four.weightBytesPerToken < one.weightBytesPerToken / 3)
        #expect(four.kvBytesPerToken == one.kvBytesPerToken, "each sequence reads its own KV")
        #expect(four.intensity > 2 * one.intensity)
    }

    /// A stream that overfills a 2 MiB pool (a 48-token sequence takes 3 pages per head: 576 KiB).
    static let crowd = SyntheticArrivals(rate: 500, count: 10, promptLength: LengthRange(20, 40), outputLength: LengthRange(8, 24), seed: 5)
        .requests(source: Array(100..<1100), first: 1)

    @Test(arguments: [PreemptionPolicy.swap, .recompute, .wait])
    func preemptionKeepsThePoolWithinItsBudget(policy: PreemptionPolicy) throws {
        let session = try Self.session(Self.crowd, pool: 2 << 20, options: SchedulerOptions(preemption: policy, tokenBudget: 64))
        var preemptions: [Preemption] = []
        while let record = try session.step() {
            #expect(record.poolUsed <= 2 << 20)
            preemptions += record.preempted
        }
        let counters = session.scheduler.counters
        #expect(session.scheduler.finished.count == Self.crowd.count)
        #expect(counters.preemptions == preemptions.count)
        switch policy {
        case .wait: #expect(preemptions.isEmpty)
        case .swap:
            #expect(!preemptions.isEmpty)
            #expect(counters.swapIns == counters.swapOuts)
            #expect(counters.swappedBytes == 2 * preemptions.reduce(0) { $0 + $1.bytes })
        case .recompute:
            #expect(!preemptions.isEmpty)
            #expect(counters.recomputedTokens == preemptions.reduce(0) { $0 + $1.tokens })
        }
        #expect(session.engine.poolUsed == session.engine.occupancy.shared, "finished sequences give their pages back")
    }

    @Test func aRecordingReplaysByteForByteWithALiveMethodChange() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-serve-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let model = try Self.model.get()
        let options = SchedulerOptions(preemption: .swap, tokenBudget: 64)
        let header = ServeHeader(model: try ModelIdentity(model: model, path: nil), settings: SessionSettings(RunSettings()), pool: 2 << 20,
                                 scheduler: options, clock: ProjectionSettings(), arrivals: nil, requests: Self.crowd)
        let recorded = try Self.session(Self.crowd, pool: 2 << 20, options: options, recorder: try ServeRecorder(path: path, header: header))
        for _ in 0..<6 { try recorded.step() }
        try recorded.set(.eviction(try EvictionMethod(parsing: "window:window=16")))
        while try recorded.step() != nil {}
        try recorded.finish()

        let recording = try ServeRecording(path: path)
        let replayed = try Self.session(recording.header.requests, pool: recording.header.pool, options: recording.header.scheduler)
        try replayed.replay(recording)
        #expect(replayed.scheduler.finished.map(\.id) == recorded.scheduler.finished.map(\.id))
        #expect(replayed.scheduler.finished.map(\.ttft) == recorded.scheduler.finished.map(\.ttft))

        // One changed byte in a step line is named by its line.
        var lines = try String(contentsOfFile: path, encoding: .utf8).components(separatedBy: "\n")
        let index = try #require(lines.firstIndex { $0.contains("\"tokens\":[[") })
        lines[index] = lines[index].replacingOccurrences(of: "\"queue\":", with: "\"queue\":9")
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let changed = try ServeRecording(path: path)
        let again = try Self.session(changed.header.requests, pool: changed.header.pool, options: changed.header.scheduler)
        #expect { try again.replay(changed) } throws: { "\($0)".contains("line \(index + 1): the replay differs") }
    }
}
