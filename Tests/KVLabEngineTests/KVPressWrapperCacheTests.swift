@testable import KVLabEngine
import KVLabMethods
@testable import KVLabRun
import Testing

/// kvpress's wrapper presses in the real cache on the embedded model: KeyRerotation's rotary
/// positions, decode-time compression, and key-scoring presses chosen between decode steps.
@Suite struct KVPressWrapperCacheTests {
    typealias C = KVPressCacheTests

    /// Rotary positions of one (layer, KV head)'s kept entries, in position order.
    static func rotary(_ cache: PagedKVCache, layer: Int, head: Int) -> [Int] {
        let store = cache.store, index = layer * cache.layout.kvHeadCount + head
        return (0..<store.counts[index]).map { Int(store.slotRotary[index * store.capacity + Int(store.slots[index * store.capacity + $0])]) }
    }

    @Test func keyRerotationMovesTheKeptKeysToTheFrontAndTheQueryStays() throws {
        let plain = try C.run("kvpress:knorm,ratio=0.5"), rerotated = try C.run("kvpress:keyrerotation,scorer=knorm,ratio=0.5")
        let n = try plain.submit(prompt: C.prompt).tokens.count
        _ = try rerotated.submit(prompt: C.prompt)
        let layout = plain.cache.layout
        for layer in 0..<layout.layerCount {
            for head in 0..<layout.kvHeadCount {
                let kept = rerotated.cache.keptPositions(layer: layer, head: head)
                #expect(kept == plain.cache.keptPositions(layer: layer, head: head))
                #expect(Self.rotary(plain.cache, layer: layer, head: head) == kept)
                #expect(Self.rotary(rerotated.cache, layer: layer, head: head) == Array(0..<kept.count))
            }
        }
        // The next token keeps its own position: rotary n, after a gap of n − n/2.
        _ = try LiveRunTests.generate(rerotated, 1)
        #expect(Self.rotary(rerotated.cache, layer: 0, head: 0).suffix(2) == [n / 2 - 1, n])
        C.expectFreed(rerotated.cache)
    }

    @Test func prefillDecodingCompressesThePromptThenEveryInterval() throws {
        let run = try C.run("kvpress:prefilldecoding,scorer=snapkv,window_size=8,ratio=0.5,compression_interval=4,target_size=20")
        let n = try run.submit(prompt: C.prompt).tokens.count
        #expect(run.cache.entryCount(layer: 0, head: 0) == n / 2)
        _ = try LiveRunTests.generate(run, 4)
        #expect(run.cache.entryCount(layer: 0, head: 0) == 20)
        C.expectFreed(run.cache)
    }

    @Test func compressionRatioDecodingKeepsAShareOfTheTokensSeen() throws {
        let run = try C.run("kvpress:compressionratiodecoding,scorer=keydiff,target_compression_ratio=0.5,compression_interval=4")
        let n = try run.submit(prompt: C.prompt).tokens.count
        #expect(run.cache.entryCount(layer: 0, head: 0) == n)
        _ = try LiveRunTests.generate(run, 4)
        // The fourth generated token is at position n + 3: n + 4 tokens seen.
        #expect(run.cache.entryCount(layer: 1, head: 1) == (n + 4) / 2)
        C.expectFreed(run.cache)
    }

    /// Presses scoring keys alone have no observation window: chosen between steps, they act at
    /// once on the entries as they are (keydiff reading the stored keys).
    @Test(arguments: ["kvpress:knorm,budget=10", "kvpress:keydiff,budget=10", "kvpress:chunk,scorer=keydiff,chunk_length=8,budget=10"])
    func keyPressesChosenMidStreamActAtOnce(policy: String) throws {
        let run = try C.run("full")
        _ = try run.submit(prompt: C.prompt)
        _ = try LiveRunTests.generate(run, 3)
        let change = try run.set(.policy, to: policy)
        #expect(change.ledger.totalRead > 0)
        let layout = run.cache.layout
        for layer in 0..<layout.layerCount {
            for head in 0..<layout.kvHeadCount { #expect(run.cache.entryCount(layer: layer, head: head) <= 10) }
        }
        C.expectFreed(run.cache)
    }

    @Test func everyCompressesBackToTheBudgetEveryNSteps() throws {
        let run = try C.run("kvpress:knorm,budget=20+every:steps=4")
        _ = try run.submit(prompt: C.prompt)
        #expect(run.cache.entryCount(layer: 0, head: 0) == 20)
        _ = try LiveRunTests.generate(run, 3)
        #expect(run.cache.entryCount(layer: 0, head: 0) == 23)
        _ = try LiveRunTests.generate(run, 1)
        let layout = run.cache.layout
        for layer in 0..<layout.layerCount {
            for head in 0..<layout.kvHeadCount { #expect(run.cache.entryCount(layer: layer, head: head) == 20) }
        }
        C.expectFreed(run.cache)
    }

    @Test func wrappersReplayBitIdentically() throws {
        for policy in ["kvpress:block,scorer=keydiff,block_size=8,ratio=0.5", "kvpress:dms,threshold=-4,sliding_window_size=8,decoding=true",
                       "kvpress:keyrerotation,scorer=snapkv,window_size=8,ratio=0.5+every:steps=4"] {
            var checkpoints: [Checkpoint] = []
            for _ in 0..<2 {
                let run = try C.run(policy)
                try run.submit(prompt: C.prompt)
                _ = try LiveRunTests.generate(run, 10)
                checkpoints.append(run.checkpoint())
            }
            #expect(checkpoints[0].cacheDigest == checkpoints[1].cacheDigest, "\(policy)")
            #expect(checkpoints[0].logitsDigest == checkpoints[1].logitsDigest, "\(policy)")
        }
    }

    @Test func perLayerListMustFitTheModel() throws {
        #expect(throws: MethodSpecError.self) { try C.run("kvpress:perlayer,scorer=knorm,compression_ratios=0.5") }
    }
}
