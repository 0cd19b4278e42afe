@testable import KVLabEngine
import KVLabMethods
@testable import KVLabRun
import Testing

/// kvpress's KVzip in the real cache on the embedded model: its scoring forks leave nothing
/// behind, the whole model's budget, the sinks, physical frees, replays (the kept sets against
/// kvpress itself: `KVPressCLITests`).
@Suite struct KVzipTests {
    /// Kept entries per layer, per KV head.
    static func counts(_ cache: PagedKVCache) -> [[Int]] {
        (0..<cache.layout.layerCount).map { layer in (0..<cache.layout.kvHeadCount).map { cache.entryCount(layer: layer, head: $0) } }
    }

    @Test func dropsTheLowestShareOfTheWholeModelAndFreesIt() throws {
        let run = try KVPressCacheTests.run("kvpress:kvzip,ratio=0.5")
        let full = try KVPressCacheTests.run("full")
        let n = try run.submit(prompt: KVPressCacheTests.prompt).tokens.count
        try full.submit(prompt: KVPressCacheTests.prompt)
        // The forks ran after the prompt and left neither entries, nor a position, nor logits.
        #expect(run.engine.position == n)
        #expect(Array(run.engine.logits) == Array(full.engine.logits))
        let counts = Self.counts(run.cache), total = counts.count * counts[0].count * n
        #expect(counts.joined().reduce(0, +) == total - total / 2)
        #expect(Set(counts.map { $0.reduce(0, +) }).count > 1, "budgets differ per layer")
        for layer in 0..<run.cache.layout.layerCount {
            for head in 0..<run.cache.layout.kvHeadCount {
                let kept = run.cache.keptPositions(layer: layer, head: head)
                #expect(Array(kept.prefix(4)) == [0, 1, 2, 3])
                #expect(kept.allSatisfy { $0 < n })
            }
        }
        KVPressCacheTests.expectFreed(run.cache)
        // Decode goes on from the prompt's end.
        #expect(try LiveRunTests.generate(run, 3).count == 3)
        #expect(run.engine.position == n + 3)
    }

    @Test func layerwiseDropsEachLayersShareAndChunksScoreEveryEntry() throws {
        let run = try KVPressCacheTests.run("kvpress:kvzip,ratio=0.25,layerwise=true,chunk_size=8")
        let n = try run.submit(prompt: KVPressCacheTests.prompt).tokens.count
        for layer in Self.counts(run.cache) {
            let entries = layer.count * n
            #expect(layer.reduce(0, +) == entries - Int(Double(entries) * 0.25))
        }
        KVPressCacheTests.expectFreed(run.cache)
    }

    /// Entries kept over every (layer, KV head).
    static func total(_ cache: PagedKVCache) -> Int { counts(cache).joined().reduce(0, +) }

    /// Chosen between decode steps KVzip repeats the sequence so far: right after a prompt run
    /// with the full cache, that is the prompt, so it keeps what it keeps at the prompt's end.
    @Test func chosenMidStreamScoresTheSequenceAsItsPrompt() throws {
        let policy = "kvpress:kvzip,ratio=0.5,chunk_size=16"
        let prompt = try KVPressCacheTests.run(policy), switched = try KVPressCacheTests.run("full")
        let n = try prompt.submit(prompt: KVPressCacheTests.prompt).tokens.count
        try switched.submit(prompt: KVPressCacheTests.prompt)
        let logits = Array(switched.engine.logits)
        let change = try switched.set(.policy, to: policy)
        #expect(change.ledger.totalRead > 0)
        let rows = switched.cache.layout.layerCount * switched.cache.layout.kvHeadCount
        #expect(Self.total(switched.cache) == rows * n - rows * n / 2)
        KVPressCacheTests.expectSameKept(switched.cache, prompt.cache)
        KVPressCacheTests.expectFreed(switched.cache)
        // The forks left neither entries, nor a position, nor logits.
        #expect(switched.engine.position == n)
        #expect(Array(switched.engine.logits) == logits)
        #expect(try LiveRunTests.generate(switched, 2).count == 2)
    }

    /// `+every:steps=4`: every fourth decode step repeats the sequence so far in forks and drops
    /// the lowest half of what is kept then; the step's own logits are those of a run without it.
    @Test func everyNStepsDropsTheShareOfWhatIsKeptAndFreesIt() throws {
        let run = try KVPressCacheTests.run("kvpress:kvzip,ratio=0.5,chunk_size=16+every:steps=4")
        let plain = try KVPressCacheTests.run("kvpress:kvzip,ratio=0.5,chunk_size=16")
        let n = try run.submit(prompt: KVPressCacheTests.prompt).tokens.count
        try plain.submit(prompt: KVPressCacheTests.prompt)
        let rows = run.cache.layout.layerCount * run.cache.layout.kvHeadCount, afterPrompt = Self.total(run.cache)
        #expect(afterPrompt == rows * n - rows * n / 2)
        _ = try LiveRunTests.generate(run, 3)
        _ = try LiveRunTests.generate(plain, 3)
        #expect(Self.total(run.cache) == afterPrompt + 3 * rows)
        _ = try LiveRunTests.generate(run, 1)
        _ = try LiveRunTests.generate(plain, 1)
        let before = afterPrompt + 4 * rows
        #expect(Self.total(run.cache) == before - before / 2)
        #expect(Self.total(plain.cache) == before)
        #expect(Array(run.engine.logits) == Array(plain.engine.logits))
        #expect(run.engine.position == n + 4)
        for layer in 0..<run.cache.layout.layerCount {
            for head in 0..<run.cache.layout.kvHeadCount {
                let kept = run.cache.keptPositions(layer: layer, head: head)
                #expect(Array(kept.prefix(4)) == [0, 1, 2, 3])
                #expect(kept.allSatisfy { $0 < n + 4 })
            }
        }
        KVPressCacheTests.expectFreed(run.cache)
    }

    /// The forks need room beside the sequence: a prompt whose forks do not fit the context fails
    /// before anything runs; chosen after such a sequence, KVzip keeps everything that time.
    @Test func forksThatDoNotFitTheContextRunNowhere() throws {
        let long = String(repeating: KVPressCacheTests.prompt + "\n", count: 20)
        let run = try KVPressCacheTests.run("kvpress:kvzip,ratio=0.5")
        #expect(throws: EngineError.contextFull(limit: run.cache.layout.capacity)) { try run.submit(prompt: long) }
        #expect(run.engine.position == 0 && Self.total(run.cache) == 0)
        let full = try KVPressCacheTests.run("full")
        let n = try full.submit(prompt: long).tokens.count
        try full.set(.policy, to: "kvpress:kvzip,ratio=0.5")
        #expect(Self.total(full.cache) == full.cache.layout.layerCount * full.cache.layout.kvHeadCount * n)
        #expect(full.cache.pendingSequencePass == nil)
    }

    @Test func parsesWithKvpressNames() throws {
        #expect(try EvictionMethod(parsing: "kvpress:kvzip").description == "kvpress:kvzip,n_sink=4,chunk_size=2048,layerwise=false,ratio=0.5")
        #expect(throws: MethodSpecError.self) { try EvictionMethod(parsing: "kvpress:kvzip,kvzip_plus_normalization=true") }
    }

    @Test func anEngineWithoutTheTokenizerRefusesAndBatchesRefuse() throws {
        let model = try EmbeddedModelTests.loaded()
        let method = try EvictionMethod(parsing: "kvpress:kvzip,ratio=0.5")
        let engine = InferenceEngine(weights: model.weights, cache: PagedKVCache(layout: KVLayout(config: model.config), eviction: method))
        #expect(throws: EngineError.noPromptTexts("the eviction method feeds text of its own (kvpress:kvzip) and this engine has no tokenizer")) {
            try engine.prefill(model.tokenizer.encode("ROMEO:"))
        }
        // Chosen between steps, it is refused before the cache changes.
        let full = PagedKVCache(layout: KVLayout(config: model.config))
        let switching = InferenceEngine(weights: model.weights, cache: full)
        try switching.prefill(model.tokenizer.encode("ROMEO:"))
        var ledger = IOLedger()
        #expect(throws: EngineError.self) { try switching.setEviction(method, ledger: &ledger) }
        #expect(full.eviction == .full)
        #expect(throws: MethodSpecError.self) { try CacheMethods(eviction: method).check(headDim: model.config.headDim) }
    }
}
