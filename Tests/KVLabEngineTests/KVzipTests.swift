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
        #expect(throws: MethodSpecError.self) { try CacheMethods(eviction: method).check(headDim: model.config.headDim) }
    }
}
