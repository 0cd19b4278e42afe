@testable import KVLabEngine
import KVLabMethods
@testable import KVLabRun
import Testing

/// kvpress presses in the real cache on the embedded model: exact budgets, physical frees
/// (head-wise budgets included), bit-identical replays, compression during decode.
@Suite struct KVPressCacheTests {
    static let prompt = "ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\nArise"

    static func run(_ policy: String) throws -> LiveRun {
        try LiveRun(model: try EmbeddedModelTests.loaded(), settings: try LiveRunTests.settings(policy))
    }

    /// Resident fp32 payload and pages are exactly what the kept entries need.
    static func expectFreed(_ cache: PagedKVCache) {
        let layout = cache.layout
        var kept = 0, pages = 0
        for layer in 0..<layout.layerCount {
            for head in 0..<layout.kvHeadCount {
                let n = cache.entryCount(layer: layer, head: head)
                kept += n
                pages += (n + PagedKVCache.pageSize - 1) / PagedKVCache.pageSize
            }
        }
        #expect(cache.residency.fullPrecisionPayload == kept * 2 * layout.headDim * 4)
        #expect(cache.pagesInUse == pages)
    }

    /// Both caches keep the same positions in every (layer, KV head).
    static func expectSameKept(_ a: PagedKVCache, _ b: PagedKVCache) {
        for layer in 0..<a.layout.layerCount {
            for head in 0..<a.layout.kvHeadCount {
                #expect(a.keptPositions(layer: layer, head: head) == b.keptPositions(layer: layer, head: head), "layer \(layer) head \(head)")
            }
        }
    }

    @Test(arguments: ["kvpress:snapkv,window_size=8,ratio=0.5", "kvpress:knorm,budget=24", "kvpress:keydiff,ratio=0.75",
                      "kvpress:observedattention,ratio=0.25", "kvpress:pyramidkv,window_size=8,ratio=0.5"])
    func pressesKeepTheirCountAndFreeTheRest(policy: String) throws {
        let run = try Self.run(policy)
        let n = try run.submit(prompt: Self.prompt).tokens.count
        let method = try EvictionMethod(parsing: policy)
        guard case .kvpress(let press) = method.kind else { Issue.record("not a kvpress method"); return }
        for layer in 0..<run.cache.layout.layerCount {
            let expected = KVPressMethodTests.keptCount(press, layer: layer, of: n, layout: run.cache.layout)
            for head in 0..<run.cache.layout.kvHeadCount { #expect(run.cache.entryCount(layer: layer, head: head) == expected) }
        }
        Self.expectFreed(run.cache)
    }

    @Test func adakvFreesUnequalHeadsPhysically() throws {
        let run = try Self.run("kvpress:adakv,window_size=8,ratio=0.5")
        let n = try run.submit(prompt: Self.prompt).tokens.count
        let layout = run.cache.layout
        var unequal = false
        for layer in 0..<layout.layerCount {
            let counts = (0..<layout.kvHeadCount).map { run.cache.entryCount(layer: layer, head: $0) }
            #expect(counts.reduce(0, +) == layout.kvHeadCount * (n / 2))
            unequal = unequal || Set(counts).count > 1
        }
        #expect(unequal, "AdaKV should give the heads of some layer unequal budgets")
        Self.expectFreed(run.cache)
    }

    @Test func pressesReplayBitIdentically() throws {
        for policy in ["kvpress:adakv,window_size=8,ratio=0.5", "kvpress:criticaladakv,scorer=knorm,ratio=0.5", "kvpress:decoding,scorer=keydiff,compression_interval=4,target_size=20",
                       "kvpress:kvzip,ratio=0.5,chunk_size=16", "kvpress:kvzip,ratio=0.5,chunk_size=16+every:steps=4",
                       "kvpress:noncausalattn,chunk_size=16,ratio=0.5+every:steps=4"] {
            var checkpoints: [Checkpoint] = []
            for _ in 0..<2 {
                let run = try Self.run(policy)
                try run.submit(prompt: Self.prompt)
                _ = try LiveRunTests.generate(run, 10)
                checkpoints.append(run.checkpoint())
            }
            #expect(checkpoints[0].cacheDigest == checkpoints[1].cacheDigest)
            #expect(checkpoints[0].logitsDigest == checkpoints[1].logitsDigest)
        }
    }

    @Test func decodingCompressesToTheTargetEveryInterval() throws {
        let run = try Self.run("kvpress:decoding,scorer=keydiff,compression_interval=4,target_size=20")
        let n = try run.submit(prompt: Self.prompt).tokens.count
        // The prompt stays whole; after 4 steps every head holds 20, then grows until the next 4.
        #expect(run.cache.entryCount(layer: 0, head: 0) == n)
        _ = try LiveRunTests.generate(run, 4)
        #expect(run.cache.entryCount(layer: 0, head: 0) == 20)
        _ = try LiveRunTests.generate(run, 3)
        #expect(run.cache.entryCount(layer: 1, head: 0) == 23)
        Self.expectFreed(run.cache)
    }

    /// The presses that read every prompt query, chosen between decode steps right after a prompt
    /// run with the full cache, keep what they keep at its end: the engine recomputes the
    /// sequence's queries by running it as a prompt in a scratch cache.
    @Test(arguments: ["kvpress:noncausalattn,chunk_size=16,ratio=0.5", "kvpress:compactor,chunk_size=16,ratio=0.25",
                      "kvpress:expectedattention,ratio=0.5"])
    func promptQueryPressesChosenMidStreamActAsAtThePromptsEnd(policy: String) throws {
        let prompt = try Self.run(policy), switched = try Self.run("full")
        let n = try prompt.submit(prompt: Self.prompt).tokens.count
        try switched.submit(prompt: Self.prompt)
        _ = try switched.set(.policy, to: policy)
        #expect(switched.cache.entryCount(layer: 0, head: 0) < n)
        Self.expectSameKept(switched.cache, prompt.cache)
        Self.expectFreed(switched.cache)
        #expect(switched.cache.recordedQueryCount == 0, "the recomputed queries are dropped once scored")
    }

    /// Under `+every:steps=4` NonCausalAttn compresses every fourth step what each head keeps then,
    /// each kept entry with its token's recomputed query.
    @Test func noncausalattnActsEveryNSteps() throws {
        let policy = "kvpress:noncausalattn,chunk_size=16,ratio=0.5+every:steps=4"
        let run = try Self.run(policy)
        guard case .kvpress(let press) = try EvictionMethod(parsing: policy).kind else { Issue.record("not a kvpress method"); return }
        let n = try run.submit(prompt: Self.prompt).tokens.count, layout = run.cache.layout
        let kept = (0..<layout.layerCount).map { KVPressMethodTests.keptCount(press, layer: $0, of: n, layout: layout) }
        _ = try LiveRunTests.generate(run, 4)
        for layer in 0..<layout.layerCount {
            let expected = KVPressMethodTests.keptCount(press, layer: layer, of: kept[layer] + 4, layout: layout)
            #expect(expected < kept[layer] + 4)
            for head in 0..<layout.kvHeadCount { #expect(run.cache.entryCount(layer: layer, head: head) == expected) }
        }
        Self.expectFreed(run.cache)
    }
}
