import Foundation
@testable import KVLabEngine
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// Going past the context: rotary positions renumbered inside the cache (context shift, and
/// StreamingLLM's `+rebase`), keys re-rotated in place or relabelled when stored before RoPE.
@Suite struct ContextShiftTests {
    /// R(a)·R(b) = R(a + b) and R(−b) = R(b)ᵀ, per frequency pair: rotating a key cached before
    /// RoPE at position p gives what shifting a key rotated at q by p − q gives (both styles, plain
    /// and scaled frequencies).
    @Test(arguments: [(RoPEStyle.interleaved, RoPEScaling.none), (.halfRotation, .none),
                      (.halfRotation, .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContext: 64)),
                      (.interleaved, .yarn(factor: 4, originalContext: 64, betaFast: 32, betaSlow: 1, attentionFactor: 1.1, truncate: true))])
    func reRotationEqualsRotatingAtTheNewPosition(style: RoPEStyle, scaling: RoPEScaling) {
        let headDim = 16, positions = 300
        let angles = RoPEAngles(RoPE(theta: 10_000, scaling: scaling), headDim: headDim, style: style, positions: positions)
        var generator = Xoshiro256(seed: 7)
        let raw = (0..<headDim).map { _ in Float.random(in: -2...2, using: &generator) }
        for (q, p) in [(5, 3), (250, 4), (17, 290), (299, 0), (0, 299)] {
            var direct = raw, shifted = raw
            angles.rotate(&direct, position: p)
            angles.rotate(&shifted, position: q)
            angles.rotate(&shifted, position: abs(p - q), inverse: p < q)
            for c in 0..<headDim { #expect(abs(direct[c] - shifted[c]) <= 2e-5, "q \(q) → p \(p), channel \(c)") }
        }
    }

    static func decodeAll(_ engine: InferenceEngine, _ tokens: [Int], each: (Int) throws -> Void = { _ in }) throws {
        for (t, token) in tokens.enumerated() {
            try engine.decode(token)
            try each(t)
        }
    }

    static func tokens(_ count: Int, vocabulary: Int) -> [Int] {
        var generator = Xoshiro256(seed: 11)
        return [1] + (1..<count).map { _ in Int.random(in: 3..<vocabulary, using: &generator) }
    }

    static func engine(_ weights: ModelWeights, capacity: Int, policy: String, kv: String = "fp32") throws -> InferenceEngine {
        let cache = PagedKVCache(layout: KVLayout(config: weights.config, capacity: capacity), eviction: try EvictionMethod(parsing: policy),
                                 quant: try KVQuantMethod(parsing: kv))
        return InferenceEngine(weights: weights, cache: cache)
    }

    static func maxDifference(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// A bounded cache runs 5× past a 48-token context with its entries and resident bytes flat;
    /// keys stored after RoPE (re-rotated by the shift) and before it (relabelled) give the same
    /// logits at every step, and the full cache still stops at the context.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func boundedCacheGoesPastTheContextWithFlatMemory() throws {
        let weights = Fixtures.stories!.weights
        let context = 48, tokens = Self.tokens(5 * context, vocabulary: weights.config.vocabSize)
        let after = try Self.engine(weights, capacity: context, policy: "streaming:sinks=4,window=20")
        let before = try Self.engine(weights, capacity: context, policy: "streaming:sinks=4,window=20", kv: "fp32+prerope")
        var resident: Set<Int> = [], entries: Set<Int> = []
        try Self.decodeAll(after, tokens) { t in
            try before.decode(tokens[t])
            #expect(Self.maxDifference(after.logits, before.logits) < 1e-3, "step \(t)")
            if t >= 24 {
                resident.insert(after.cache.residency.total)
                entries.insert(after.cacheEntries)
            }
        }
        #expect(after.position == 5 * context)
        #expect(resident.count == 1 && entries.count == 1)
        let cache = after.cache as! PagedKVCache
        #expect(cache.keptPositions(layer: 0, head: 0) == Array(0..<4) + Array((5 * context - 20)..<(5 * context)))
        #expect(cache.rotaryPosition(after.position) <= context)
        let full = try Self.engine(weights, capacity: context, policy: "full")
        #expect(throws: EngineError.contextFull(limit: context)) { try Self.decodeAll(full, tokens) }
        #expect(full.position == context)
    }

    /// With scaled RoPE (llama3 here) the cache's angles are the queries' scaled ones: keys stored
    /// before RoPE and rotated as read, and keys re-rotated in place past the context, both match
    /// the plain path (keys rotated with the queries' frequencies) at every step.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func renumberingUsesTheModelsScaledFrequencies() throws {
        var weights = Fixtures.stories!.weights
        weights.config.ropeScaling = .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContext: 64)
        let tokens = Self.tokens(150, vocabulary: weights.config.vocabSize)
        let after = try Self.engine(weights, capacity: 48, policy: "window:window=20")
        let before = try Self.engine(weights, capacity: 48, policy: "window:window=20", kv: "fp32+prerope")
        try Self.decodeAll(after, tokens) { t in
            try before.decode(tokens[t])
            #expect(Self.maxDifference(after.logits, before.logits) < 1e-3, "step \(t)")
        }
    }

    /// Before the context fills, nothing is renumbered: a bounded cache matches the same method
    /// with a larger context bit for bit. `+rebase` (StreamingLLM) numbers entries by their place
    /// in the cache at every step, so it does not depend on the context at all.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func renumberingStartsAtTheContextAndRebaseIgnoresIt() throws {
        let weights = Fixtures.stories!.weights
        let tokens = Self.tokens(200, vocabulary: weights.config.vocabSize)
        let small = try Self.engine(weights, capacity: 40, policy: "window:window=24")
        let large = try Self.engine(weights, capacity: 400, policy: "window:window=24")
        try Self.decodeAll(small, Array(tokens.prefix(40))) { t in try large.decode(tokens[t]) }
        #expect(Array(small.logits) == Array(large.logits))
        let rebasedSmall = try Self.engine(weights, capacity: 40, policy: "h2o:heavy=8,recent=8+rebase", kv: "fp32+prerope")
        let rebasedLarge = try Self.engine(weights, capacity: 400, policy: "h2o:heavy=8,recent=8+rebase", kv: "fp32+prerope")
        let rebasedAfterRoPE = try Self.engine(weights, capacity: 40, policy: "h2o:heavy=8,recent=8+rebase")
        try Self.decodeAll(rebasedSmall, tokens) { t in
            try rebasedLarge.decode(tokens[t])
            try rebasedAfterRoPE.decode(tokens[t])
            #expect(Self.maxDifference(rebasedSmall.logits, rebasedLarge.logits) == 0, "step \(t)")
            #expect(Self.maxDifference(rebasedSmall.logits, rebasedAfterRoPE.logits) < 1e-3, "step \(t)")
        }
    }

    /// A live run with the ghost goes on past stories260K's 512-token context under StreamingLLM:
    /// the ghost (a full cache) stops at the context, the run does not, and its memory stays flat.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func liveRunGoesOnWhereTheGhostStops() throws {
        let model = Fixtures.stories!
        let run = try LiveRun(model: model, settings: RunSettings(eviction: try EvictionMethod(parsing: "streaming:sinks=4,window=60"),
                                                                  sampler: SamplerSettings(temperature: 1, seed: 3)), ghost: true)
        try run.submit(prompt: "Once upon a time")
        var resident: Set<Int> = [], compared: [Int] = [], alone: [Int] = []
        while run.position < 700 {
            switch try run.step() {
            case .token(let metrics):
                if metrics.ghost != nil { compared.append(metrics.report.position) } else { alone.append(metrics.report.position) }
                if metrics.report.position > 100 { resident.insert(metrics.report.cache.total) }
            case .stopped(let reason):
                // A story ended: the sequence goes on with more text.
                #expect(reason == .endOfSequence)
                try run.submit(prompt: " The", continuing: true)
            }
        }
        let context = model.config.contextLength
        #expect(compared.max()! < context && alone.min()! >= context && !run.ghostEnabled)
        #expect(resident.count == 1)
    }

    /// `rebase` re-rotates keys stored after RoPE at every step: quantized ones need `prerope`,
    /// and `think`'s pruned channels cannot be re-rotated.
    @Test func rebaseRefusesWhatItCannotReRotate() throws {
        let rebase = try EvictionMethod(parsing: "streaming+rebase")
        #expect(rebase.description == "streaming:sinks=4,window=124+rebase")
        #expect(throws: MethodSpecError.self) { try rebase.check(quant: KVQuantMethod(parsing: "q8_0")) }
        try rebase.check(quant: KVQuantMethod(parsing: "q8_0+prerope"))
        #expect(throws: MethodSpecError.self) { try EvictionMethod(parsing: "window+think+rebase") }
    }

    /// `eval --sequence`'s measurement on a small context: the full cache stops at the context,
    /// a streaming cache runs to the end with flat memory and its perplexity past the context
    /// stays near its perplexity inside it.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func sequenceEvaluationPastTheContext() throws {
        let model = Fixtures.stories!
        let text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. "
        let tokens = Array(EvaluationText(String(repeating: text, count: 30), tokenizer: model.tokenizer).tokens.prefix(399))
        let sequence = [1] + tokens, context = 64, bounds = [64, 128, 399]
        let full = StreamingEvaluator(weights: model.weights, eviction: .full, withGhost: false, capacity: context)
        let fullResult = try full.evaluateSequence(sequence, bounds: bounds)
        #expect(fullResult.stoppedAt == context && fullResult.tokens == context)
        #expect(fullResult.segments.count == 1 && fullResult.segments[0].end == context)
        let streaming = StreamingEvaluator(weights: model.weights, eviction: try EvictionMethod(parsing: "streaming:sinks=4,window=28"),
                                           withGhost: false, capacity: context)
        let result = try streaming.evaluateSequence(sequence, bounds: bounds)
        #expect(result.stoppedAt == nil && result.tokens == 400 && result.predictions == 399)
        #expect(result.segments.map(\.start) == [0, 64, 128] && result.segments.map(\.end) == [64, 128, 399])
        #expect(result.residentKVBytesAtContext == result.finalResidentKVBytes)
        #expect(result.segments[2].meanNLL < result.segments[0].meanNLL + 0.5)
    }
}
