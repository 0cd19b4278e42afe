import Foundation
@testable import KVLabEngine
@testable import KVLabMethods
import KVLabRun
import Testing

/// Sliding-window (local) layers: the cache keeps only their window, really freed, under every
/// method, and the model's outputs are those of attention masked to the window.
@Suite struct LocalAttentionTests {
    /// The embedded model with the given attention spans (its weights unchanged).
    static func model(spans: [AttentionSpan]) throws -> ModelWeights {
        var weights = try EmbeddedModelTests.loaded().weights
        weights.config.attentionSpans = spans
        return weights
    }

    static func tokens(_ count: Int) throws -> [Int] {
        let ids = try EmbeddedModelTests.loaded().tokenizer.encode(
            "ROMEO:\nBut, soft! what light through yonder window breaks? It is the east, and Juliet is the sun. Arise, fair sun, "
                + "and kill the envious moon, who is already sick and pale with grief. That thou her maid art far more fair "
                + "than she: be not her maid, since she is envious; her vestal livery is but sick and green, and none but fools "
                + "do wear it; cast it off. It is my lady, O, it is my love! O, that she knew she were!")
        precondition(ids.count >= count, "the test text is too short")
        return Array(ids.prefix(count))
    }

    static func logits(_ engine: InferenceEngine) -> [Float] { Array(engine.logits) }

    /// Largest |a − b| relative to the largest |b|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        let scale = max(b.map(abs).max() ?? 1, 1e-6)
        return zip(a, b).map { abs($0 - $1) }.max()! / scale
    }

    /// A local layer keeps its last window − 1 entries between steps and returns the pages of the
    /// rest; a global layer keeps everything. Budgets are capped at the window.
    @Test func localLayersKeepTheirWindowAndFreeTheirPages() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 1, headDim: 8, groupSize: 2, capacity: 200,
                              attentionSpans: [.local(window: 20), .global])
        let cache = PagedKVCache(layout: layout)
        var generator = Xoshiro256(seed: 5)
        for position in 0..<100 {
            let key = (0..<8).map { _ in Float.random(in: -1...1, using: &generator) }
            PagedCacheTests.step(cache, position: position, key: key, value: key, query: key)
        }
        #expect(cache.keptPositions(layer: 0, head: 0) == Array(81..<100))
        #expect(cache.entryCount(layer: 1, head: 0) == 100)
        #expect(cache.pagesInUse == 2 + 7)
        #expect(cache.residency.fullPrecisionPayload == (19 + 100) * 16 * 4)
        #expect(cache.budget(layer: 0, head: 0) == 19 && cache.budget(layer: 1, head: 0) == nil)
        #expect(try EvictionMethod(parsing: "h2o:heavy=30,recent=30").budgets(layout: layout) == [19, 60])
        #expect(try EvictionMethod(parsing: "tova:budget=8").budgets(layout: layout) == [8, 8])
        // A method switch keeps the window; the new method acts on what is left.
        var ledger = IOLedger()
        cache.setEviction(try EvictionMethod(parsing: "window:window=10"), ledger: &ledger)
        #expect(cache.keptPositions(layer: 0, head: 0) == Array(90..<100))
        #expect(cache.keptPositions(layer: 1, head: 0) == Array(90..<100))
        cache.reset()
        #expect(cache.pagesInUse == 0)
    }

    /// A model whose layers are all local(W) is the global model under `window` eviction of
    /// W − 1 entries (KV-METHODS.md: `window` keeps the last w between steps, so a step sees w + 1):
    /// decode logits identical at every step, batched prefill (naive and tiled) within float error.
    @Test(arguments: [AttentionKernel.naive, .tiled(sramBytes: 8192)])
    func allLocalModelIsWindowEviction(kernel: AttentionKernel) throws {
        let window = 24, count = 60
        let config = try EmbeddedModelTests.loaded().config
        let local = InferenceEngine(weights: try Self.model(spans: Array(repeating: .local(window: window), count: config.layerCount)),
                                    options: EngineOptions(attention: kernel))
        let evicting = PagedKVCache(layout: KVLayout(config: config), eviction: try EvictionMethod(parsing: "window:window=\(window - 1)"))
        let global = InferenceEngine(weights: try EmbeddedModelTests.loaded().weights, options: EngineOptions(attention: kernel), cache: evicting)
        let ids = try Self.tokens(count)
        for token in ids {
            try local.decode(token)
            try global.decode(token)
            #expect(Self.logits(local) == Self.logits(global))
            #expect(local.cacheEntries == global.cacheEntries)
        }
        #expect(local.cacheEntries == config.layerCount * config.kvHeadCount * (window - 1))
        // The local model prefills in one batch (masked to the window); `window` eviction steps.
        local.reset()
        global.reset()
        try local.prefill(Array(ids.prefix(50)))
        try global.prefill(Array(ids.prefix(50)))
        #expect(Self.relativeError(Self.logits(local), Self.logits(global)) < 1e-4)
        #expect(local.cacheEntries == global.cacheEntries)
        for token in ids.suffix(10) {
            try local.decode(token)
            try global.decode(token)
            #expect(Self.relativeError(Self.logits(local), Self.logits(global)) < 1e-4)
        }
    }

    /// Local and global layers mixed: the paged cache (batched prefill with either kernel, then
    /// decode) gives the logits of plain attention masked to each layer's window over every entry.
    @Test(arguments: [AttentionKernel.naive, .tiled(sramBytes: 8192)])
    func mixedModelMatchesMaskedAttention(kernel: AttentionKernel) throws {
        let config = try EmbeddedModelTests.loaded().config
        let spans = (0..<config.layerCount).map { $0 % 2 == 0 ? AttentionSpan.local(window: 7 + 3 * $0) : .global }
        let weights = try Self.model(spans: spans)
        let engine = InferenceEngine(weights: weights, options: EngineOptions(attention: kernel))
        let reference = InferenceEngine(weights: weights, cache: MaskedAttentionCache(layout: KVLayout(config: weights.config)))
        let ids = try Self.tokens(70)
        try engine.prefill(Array(ids.prefix(40)))
        try reference.prefill(Array(ids.prefix(40)))
        #expect(Self.relativeError(Self.logits(engine), Self.logits(reference)) < 1e-4)
        for token in ids.suffix(30) {
            try engine.decode(token)
            try reference.decode(token)
            #expect(Self.relativeError(Self.logits(engine), Self.logits(reference)) < 1e-4)
        }
        for layer in 0..<config.layerCount {
            let kept = engine.cache.entryCount(layer: layer, head: 0)
            #expect(kept == (spans[layer].window.map { $0 - 1 } ?? 70), "layer \(layer)")
        }
    }

    /// Methods act on top of the window: a score policy whose budget exceeds the window evicts
    /// nothing on local layers, one below it evicts within the window; quantization, sparse
    /// reads and `think` run on what the window keeps.
    @Test(arguments: ["h2o:heavy=32,recent=32", "tova:budget=5", "snapkv:budget=12,observation=4", "full+think:lambda=0.5"])
    func methodsActOnTopOfTheWindow(method: String) throws {
        let config = try EmbeddedModelTests.loaded().config
        let spans = (0..<config.layerCount).map { $0 % 2 == 0 ? AttentionSpan.local(window: 16) : .global }
        let weights = try Self.model(spans: spans)
        let eviction = try EvictionMethod(parsing: method)
        let cache = PagedKVCache(layout: KVLayout(config: weights.config), eviction: eviction,
                                 sparse: try SparseMethod(parsing: "quest:page=16,budget=32"), quant: try KVQuantMethod(parsing: "q8_0:residual=4"))
        let engine = InferenceEngine(weights: weights, cache: cache)
        let ids = try Self.tokens(60)
        try engine.prefill(Array(ids.prefix(30)))
        for token in ids.suffix(30) {
            try engine.decode(token)
            #expect(Self.logits(engine).allSatisfy { $0.isFinite })
            for layer in 0..<config.layerCount where spans[layer].window != nil {
                let kept = cache.keptPositions(layer: layer, head: 0)
                #expect(kept.allSatisfy { $0 > engine.position - 16 }, "layer \(layer) keeps \(kept)")
                #expect(kept.count <= (eviction.kind == .tova(budget: 5) ? 5 : 15))
                if case .h2o = eviction.kind { #expect(kept == Array((engine.position - 15)..<engine.position)) }
            }
        }
    }

    /// A prompt after `think` pruned keys runs one query at a time over entries the window has
    /// not dropped yet: masked, it gives what decoding the same tokens one by one gives.
    @Test func aLaterPromptWithPrunedKeysSeesOnlyTheWindow() throws {
        let config = try EmbeddedModelTests.loaded().config
        let spans = (0..<config.layerCount).map { $0 % 2 == 0 ? AttentionSpan.local(window: 8) : .global }
        let weights = try Self.model(spans: spans)
        func engine() throws -> InferenceEngine {
            InferenceEngine(weights: weights, cache: PagedKVCache(layout: KVLayout(config: weights.config),
                                                                  eviction: try EvictionMethod(parsing: "full+think:lambda=0.25,observation=8")))
        }
        let batched = try engine(), stepped = try engine()
        let ids = try Self.tokens(60)
        for e in [batched, stepped] { try e.prefill(Array(ids.prefix(30))) }
        #expect((batched.cache as? PagedKVCache)?.keysPruned == true)
        try batched.prefill(Array(ids[30..<50]))
        for token in ids[30..<50] { try stepped.decode(token) }
        #expect(Self.relativeError(Self.logits(batched), Self.logits(stepped)) < 1e-4)
    }
}

/// Plain attention over every entry ever appended, each layer masked to its window: the
/// reference local layers must match. Keys and values are kept as given, per layer and position.
final class MaskedAttentionCache: KVCache {
    let layout: KVLayout
    private var keys: [[[Float]]]
    private var values: [[[Float]]]
    var attentionKernel: AttentionKernel = .naive

    init(layout: KVLayout) {
        self.layout = layout
        keys = Array(repeating: [], count: layout.layerCount)
        values = Array(repeating: [], count: layout.layerCount)
    }

    var residency: KVResidency { KVResidency() }
    func entryCount(layer: Int, head: Int) -> Int { keys[layer].count }
    func reset() {
        keys = Array(repeating: [], count: layout.layerCount)
        values = Array(repeating: [], count: layout.layerCount)
    }
    var keysBeforeRoPE: Bool { false }
    func rotaryPosition(_ position: Int) -> Int { position }
    func hasRoom(position: Int, count: Int) -> Bool { position + count <= layout.capacity }
    func makeRoom(position: Int, count: Int, ledger: inout IOLedger) throws(EngineError) {
        guard hasRoom(position: position, count: count) else { throw .contextFull(limit: layout.capacity) }
    }
    var batchedPrefill: Bool { true }
    func beginPrompt(end: Int) {}
    func beginPrefill(end: Int) {}
    func endPrefill(ledger: inout IOLedger) {}

    func append(layer: Int, position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, ledger: inout IOLedger) {
        precondition(position == keys[layer].count, "entries arrive in position order")
        let width = layout.kvHeadCount * layout.headDim
        keys[layer].append(Array(UnsafeBufferPointer(start: k, count: width)))
        values[layer].append(Array(UnsafeBufferPointer(start: v, count: width)))
    }

    func attend(layer: Int, position: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim, first = layout.attentionSpans[layer].window.map { max(0, position - $0 + 1) } ?? 0
        for h in 0..<(layout.kvHeadCount * layout.groupSize) {
            let kv = h / layout.groupSize, q = queries + h * hd
            let scores = (first...position).map { j in
                (0..<hd).reduce(Float(0)) { $0 + q[$1] * keys[layer][j][kv * hd + $1] } / Float(hd).squareRoot()
            }
            let top = scores.max()!, weights = scores.map { expf($0 - top) }, total = weights.reduce(0, +)
            for c in 0..<hd {
                output[h * hd + c] = (first...position).enumerated().reduce(Float(0)) {
                    $0 + weights[$1.offset] / total * values[layer][$1.element][kv * hd + c]
                }
            }
        }
    }

    func attend(layer: Int, positions: Range<Int>, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        let stride = layout.kvHeadCount * layout.groupSize * layout.headDim
        for (t, position) in positions.enumerated() {
            attend(layer: layer, position: position, queries: queries + t * stride, output: output + t * stride, ledger: &ledger)
        }
    }
}
