import Foundation
import Dispatch
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Synchronization
import Testing

/// The live-run driver on the embedded model: ghost metrics, knob changes, checkpoints, threads.
@Suite struct LiveRunTests {
    static func model() throws -> LoadedModel { try EmbeddedModelTests.loaded() }

    static func settings(_ policy: String = "full", sparse: String = "dense", kv: String = "fp32") throws -> RunSettings {
        RunSettings(eviction: try EvictionMethod(parsing: policy), sparse: try SparseMethod(parsing: sparse), quant: try KVQuantMethod(parsing: kv))
    }

    /// Generates `count` tokens (or until a stop) and returns their metrics.
    static func generate(_ run: LiveRun, _ count: Int) throws -> [TokenMetrics] {
        var metrics: [TokenMetrics] = []
        for _ in 0..<count {
            guard case .token(let token) = try run.step() else { break }
            metrics.append(token)
        }
        return metrics
    }

    @Test func ghostMetricsAreTheStreamingEvaluatorsOnTheSameTokens() throws {
        let model = try Self.model()
        let run = try LiveRun(model: model, settings: try Self.settings("window:window=16"), ghost: true)
        let prompt = try run.submit(prompt: "ROMEO:\nWhat light through yonder window breaks?\n")
        let metrics = try Self.generate(run, 40)
        #expect(metrics.count == 40)
        #expect(metrics.contains { ($0.ghost?.kl ?? 0) > 0 }, "a 16-token window should differ from the full cache")
        // Teacher-forced on the run's tokens, the evaluator's position p − 1 predicts token p.
        var qualities: [Int: TokenQuality] = [:]
        let evaluator = StreamingEvaluator(weights: model.weights, eviction: try EvictionMethod(parsing: "window:window=16"), withGhost: true)
        _ = try evaluator.evaluate(run.tokens, prefill: prompt.tokens.count) { qualities[$0.position] = $0 }
        for m in metrics {
            let p = m.report.position
            let prediction = try #require(qualities[p - 1]), processed = try #require(qualities[p])
            let ghost = try #require(m.ghost)
            // The first token follows the prompt, whose last logits the evaluator takes from a batched classifier.
            let tolerance = m.step == 0 ? 1e-4 : 0
            #expect(abs(m.nll - (prediction.nll ?? .nan)) <= tolerance)
            #expect(abs(ghost.kl - (prediction.kl ?? .nan)) <= tolerance)
            #expect(abs(ghost.ghostNLL - (prediction.ghostNLL ?? .nan)) <= tolerance)
            #expect(ghost.top1Agrees == prediction.top1Agrees)
            #expect(ghost.massKept == processed.massKept)
            #expect(m.report.cache.total == processed.residentKVBytes)
        }
    }

    @Test func aFullCacheRunAgreesWithItsGhost() throws {
        let run = try LiveRun(model: try Self.model(), settings: try Self.settings(), ghost: true)
        try run.submit(prompt: "ROMEO:\n")
        for m in try Self.generate(run, 24) {
            let ghost = try #require(m.ghost)
            #expect(ghost.kl == 0 && ghost.deltaNLL == 0 && ghost.top1Agrees && ghost.ghostTop == m.token)
            #expect(abs((ghost.massKept ?? 0) - 1) < 1e-5)
        }
    }

    @Test func theGhostDoesNotChangeTheRun() throws {
        func run(ghost: Bool) throws -> ([Int], Checkpoint) {
            let run = try LiveRun(model: try Self.model(), settings: try Self.settings("h2o:heavy=16,recent=16", sparse: "quest:page=16,budget=32",
                                                                                        kv: "kivi:bits=2,residual=16"), ghost: ghost)
            try run.submit(prompt: "ROMEO:\n")
            _ = try Self.generate(run, 30)
            try run.setGhost(!ghost)
            _ = try Self.generate(run, 30)
            return (run.tokens, run.checkpoint())
        }
        let (withGhost, a) = try run(ghost: true), (without, b) = try run(ghost: false)
        #expect(withGhost == without)
        #expect(a == b)
    }

    @Test func knobsChangeBetweenStepsInCanonicalSpelling() throws {
        let model = try Self.model()
        let run = try LiveRun(model: model, settings: try Self.settings())
        try run.submit(prompt: "ROMEO:\n")
        _ = try Self.generate(run, 20)
        let change = try run.set(.policy, to: "window:window=8")
        #expect(change == KnobChange(step: 20, knob: .policy, old: "full", new: "window:window=8", ledger: change.ledger))
        let layout = run.cache.layout
        #expect(run.engine.cacheEntries == 8 * layout.layerCount * layout.kvHeadCount)
        let after = try Self.generate(run, 5)
        #expect(after.allSatisfy { $0.report.cacheEntries == 8 * layout.layerCount * layout.kvHeadCount })
        #expect(try run.set(.policy, to: "h2o").new == "h2o:heavy=64,recent=64")
        #expect(try run.set(.kv, to: "kivi").new == "kivi:bits=2,group=32,residual=128")
        #expect(try run.set(.sparse, to: "quest").new == "quest:page=16,budget=128")

        let quantized = try run.set(.weights, to: "q4_0")
        #expect(quantized.old == "stored" && quantized.new == "q4_0")
        #expect(run.engine.weights.layers[0].query.type == .q4_0)
        _ = try Self.generate(run, 2)
        try run.set(.weights, to: "stored")
        // Back to the file's weights themselves, not a re-conversion of the q4_0 ones.
        #expect(run.engine.weights.layers[0].query === model.weights.layers[0].query)
        // ggml spells the K-quants with a capital K; the knob takes either case, and rows that are
        // not whole 256-element super-blocks take llama.cpp's fallback type.
        #expect(try run.set(.weights, to: "q4_k").new == "q4_K")
        let cols = model.weights.layers[0].query.cols
        #expect(run.engine.weights.layers[0].query.type == (cols % 256 == 0 ? .q4_K : .q5_0))
        try run.set(.weights, to: "stored")

        #expect(throws: MethodSpecError.self) { try run.set(.kv, to: "kivi:bits=5") }
        #expect(throws: MethodSpecError("weights: 'q7_k' is not one of f32, f16, bf16, q8_0, q6_K, q5_1, q5_K, q5_0, q4_1, q4_K, q4_0, iq4_nl, iq4_xs, q3_K, q2_K, stored")) {
            try run.set(.weights, to: "q7_k")
        }
        #expect(run.settings.value(of: .kv) == "kivi:bits=2,group=32,residual=128", "a refused value changes nothing")
    }

    /// Combinations the cache cannot hold (`think` prunes key channels in the frame attention
    /// scores them, `rotate` and `prerope` store keys in another) are refused by either knob,
    /// and by a new run, before they reach the cache.
    @Test func incompatibleMethodsAreRefusedNotTrapped() throws {
        let model = try Self.model()
        let run = try LiveRun(model: model, settings: try Self.settings("full+think"))
        try run.submit(prompt: "ROMEO:\n")
        #expect(throws: MethodSpecError.self) { try run.set(.kv, to: "q8_0+rotate") }
        try run.set(.policy, to: "full")
        try run.set(.kv, to: "q8_0+prerope")
        #expect(throws: MethodSpecError.self) { try run.set(.policy, to: "h2o+think") }
        #expect(run.settings.value(of: .policy) == "full" && run.settings.value(of: .kv).hasPrefix("q8_0"))
        #expect(throws: MethodSpecError.self) { try LiveRun(model: model, settings: try Self.settings("full+think", kv: "q8_0+rotate")) }
    }

    @Test func checkpointsTellStatesApart() throws {
        let model = try Self.model()
        func checkpoint(_ policy: String, tokens: Int = 40) throws -> Checkpoint {
            let run = try LiveRun(model: model, settings: try Self.settings(policy))
            try run.submit(prompt: "ROMEO:\n")
            _ = try Self.generate(run, tokens)
            return run.checkpoint()
        }
        let full = try checkpoint("full")
        #expect(try checkpoint("full") == full)
        #expect(full.compare(toRecorded: full) == .exact)
        let window = try checkpoint("window:window=16")
        guard case .mismatch(let field, _, _) = window.compare(toRecorded: full) else {
            Issue.record("a 16-token window kept the same positions as the full cache")
            return
        }
        #expect(field == "kept positions")
        // Same decisions, last bits different (as another machine's BLAS may make them).
        var nearby = full
        nearby.cacheDigest = String(repeating: "0", count: 64)
        nearby.keyMagnitude *= 1 + 1e-6
        #expect(nearby.compare(toRecorded: full) == .withinTolerance)
        nearby.keyMagnitude = full.keyMagnitude * (1 + 1e-3)
        #expect(nearby.compare(toRecorded: full) == .mismatch(field: "key magnitude", expected: "\(full.keyMagnitude)",
                                                               observed: "\(nearby.keyMagnitude)"))
        nearby.keyMagnitude = .nan
        #expect(nearby.compare(toRecorded: full) != .withinTolerance)
    }

    @Test func promptsContinueOrRestartTheSequence() throws {
        let model = try Self.model()
        let run = try LiveRun(model: model, settings: try Self.settings())
        let first = try run.submit(prompt: "ROMEO:\n")
        #expect(first.tokens.first == model.tokenizer.spec.bosID && !first.continuing)
        _ = try Self.generate(run, 5)
        let second = try run.submit(prompt: "JULIET:\n", continuing: true)
        #expect(second.continuing && second.step == 5 && second.tokens.first != model.tokenizer.spec.bosID)
        #expect(run.position == first.tokens.count + 5 + second.tokens.count && run.tokens.count == run.position)
        let fresh = try run.submit(prompt: "ROMEO:\n")
        #expect(!fresh.continuing && run.position == first.tokens.count && run.currentStep == 5)
        #expect(throws: EngineError.emptyInput) { try LiveRun(model: model, settings: RunSettings()).step() }
    }

    @Test func aFullContextStopsTheRun() throws {
        let model = try Self.model()
        let context = model.config.contextLength
        // The most repeats of a line whose tokens leave a few positions free (binary search).
        func text(_ repeats: Int) -> String { String(repeating: "ROMEO: ", count: repeats) }
        var low = 1, high = context
        while low < high {
            let mid = (low + high + 1) / 2
            if model.tokenizer.encode(text(mid)).count <= context - 4 { low = mid } else { high = mid - 1 }
        }
        let text = text(low)
        let run = try LiveRun(model: model, settings: try Self.settings())
        let prompt = try run.submit(prompt: text)
        let metrics = try Self.generate(run, 10)
        #expect(metrics.count == context - prompt.tokens.count)
        #expect(try run.step() == .stopped(.contextFull))
        #expect(throws: EngineError.contextFull(limit: context)) { try run.submit(prompt: text + text) }
    }

    /// The way a UI uses a run: created and stepped on a worker thread that posts Sendable values.
    @Test func runsOnAWorkerThreadPostingSendableMetrics() throws {
        let model = try Self.model()
        let posted = Mutex<[TokenMetrics]>([])
        let done = DispatchSemaphore(value: 0)
        let worker = Thread {
            defer { done.signal() }
            guard let run = try? LiveRun(model: model, settings: RunSettings(), ghost: true),
                  (try? run.submit(prompt: "ROMEO:\n")) != nil else { return }
            while case .token(let metrics)? = try? run.step(), metrics.step < 16 {
                posted.withLock { $0.append(metrics) }
            }
        }
        worker.start()
        done.wait()
        let here = try LiveRun(model: model, settings: RunSettings())
        try here.submit(prompt: "ROMEO:\n")
        let tokens = try Self.generate(here, 16).map(\.token)
        #expect(posted.withLock { $0.map(\.token) } == tokens)
    }
}
