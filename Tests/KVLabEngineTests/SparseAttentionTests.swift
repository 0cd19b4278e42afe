@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

@Suite struct SparseAttentionTests {
    static let layout = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 8, groupSize: 2, capacity: 256)

    /// Runs `steps` decode steps of seeded random keys/values/queries; returns the last output
    /// of every query head and the ledger of the last step.
    static func run(_ sparse: SparseMethod, eviction: EvictionMethod = .full, steps: Int = 100) -> (output: [Float], ledger: IOLedger, cache: PagedKVCache) {
        let cache = PagedKVCache(layout: layout, eviction: eviction, sparse: sparse)
        var generator = Xoshiro256(seed: 11)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -2...2, using: &generator) } }
        var output = [Float](repeating: 0, count: 4 * 8)
        var ledger = IOLedger()
        for position in 0..<steps {
            ledger = IOLedger()
            let keys = random(16), values = random(16), queries = random(32)
            cache.append(layer: 0, position: position, keys: keys, values: values, ledger: &ledger)
            cache.attend(layer: 0, position: position, queries: queries, output: &output, ledger: &ledger)
        }
        return (output, ledger, cache)
    }

    static func close(_ a: [Float], _ b: [Float], _ tolerance: Float = 1e-5) -> Bool {
        zip(a, b).allSatisfy { abs($0 - $1) <= tolerance }
    }

    @Test func sparseModesThatReadEverythingEqualDense() throws {
        let dense = Self.run(.dense)
        #expect(Self.close(Self.run(try SparseMethod(parsing: "topk:k=100")).output, dense.output))
        #expect(Self.close(Self.run(try SparseMethod(parsing: "quest:page=16,budget=112")).output, dense.output))
        #expect(Self.close(Self.run(try SparseMethod(parsing: "threshold:theta=0")).output, dense.output))
    }

    @Test func sparseModesReadLessAndFreeNothing() throws {
        let dense = Self.run(.dense)
        let topk = Self.run(try SparseMethod(parsing: "topk:k=8"))
        // topk reads every key but at most k values per query head (4 heads here).
        #expect(topk.ledger.bytesRead(.keys) == dense.ledger.bytesRead(.keys))
        #expect(topk.ledger.bytesRead(.values) <= 2 * 8 * 8 * 4 * 2)
        let quest = Self.run(try SparseMethod(parsing: "quest:page=16,budget=32"))
        // Two best pages plus the newest (a partial page of 4 at position 99) per KV head.
        #expect(quest.ledger.bytesRead(.keys) == 2 * (16 + 16 + 4) * 8 * 4)
        #expect(quest.ledger.bytesRead(.values) == quest.ledger.bytesRead(.keys))
        for sparse in [topk, quest] {
            #expect(sparse.cache.residency.fullPrecisionPayload == dense.cache.residency.fullPrecisionPayload)
            #expect(!Self.close(sparse.output, dense.output, 1e-7))
        }
    }

    @Test func topKOfOneReturnsTheBestValue() throws {
        let cache = PagedKVCache(layout: KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 8, groupSize: 1, capacity: 16),
                                 sparse: try SparseMethod(parsing: "topk:k=1"))
        var ledger = IOLedger()
        var output = [Float](repeating: 0, count: 8)
        let query = PagedCacheTests.unit(2)
        for (position, scale) in [Float(1), 5, 2].enumerated() {
            let key = PagedCacheTests.unit(2, scale: scale), value = PagedCacheTests.unit(position, scale: scale)
            cache.append(layer: 0, position: position, keys: key, values: value, ledger: &ledger)
            cache.attend(layer: 0, position: position, queries: query, output: &output, ledger: &ledger)
        }
        #expect(output == PagedCacheTests.unit(1, scale: 5))
    }

    @Test func questBoundsAreUpperBounds() throws {
        // With a budget of one page Quest must still pick the page holding the best key.
        let cache = PagedKVCache(layout: KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 8, groupSize: 1, capacity: 64),
                                 sparse: try SparseMethod(parsing: "quest:page=16,budget=16"))
        var ledger = IOLedger()
        var output = [Float](repeating: 0, count: 8)
        let query = PagedCacheTests.unit(0)
        for position in 0..<40 {
            let best = position == 20
            cache.append(layer: 0, position: position, keys: PagedCacheTests.unit(best ? 0 : 1, scale: best ? 30 : 1),
                         values: PagedCacheTests.unit(best ? 3 : 4), ledger: &ledger)
            ledger = IOLedger()
            cache.attend(layer: 0, position: position, queries: query, output: &output, ledger: &ledger)
        }
        // Pages 1 (positions 16–31, holding the best key) and 2 (the newest) are read.
        #expect(ledger.bytesRead(.keys) == (16 + 8) * 8 * 4)
        #expect(output[3] > 0.99)
    }

    @Test func thresholdSkipsEntriesThatFellBelowIt() throws {
        // A low threshold (with no scoring policy or ghost) still reads what last step attended.
        let low = Self.run(try SparseMethod(parsing: "threshold:theta=0.0001"))
        #expect(low.ledger.bytesRead(.values) > 2 * 50 * 8 * 4)
        let skipping = Self.run(try SparseMethod(parsing: "threshold:theta=0.9"))
        // Only a few entries ever reach 0.9 of a group's mass; the newest is always read.
        #expect(skipping.ledger.bytesRead(.values) < 2 * 10 * 8 * 4)
        #expect(skipping.ledger.bytesRead(.values) >= 2 * 8 * 4)
    }

    @Test func sparseComposesWithEviction() throws {
        let both = Self.run(try SparseMethod(parsing: "quest:page=16,budget=32"), eviction: try EvictionMethod(parsing: "h2o:heavy=32,recent=32"))
        #expect(both.cache.entryCount(layer: 0, head: 0) == 64)
        #expect(both.ledger.bytesRead(.keys) <= 2 * 48 * 8 * 4)
    }

    @Test func blockRetrievalReadingEveryBlockEqualsDenseAndFetchesEachBlockOnce() throws {
        let dense = Self.run(.dense)
        let all = Self.run(try SparseMethod(parsing: "block-retrieval:block=8,reps=2,top=100,local=16,sinks=2,lru=100"))
        #expect(Self.close(all.output, dense.output))
        // Every past block is already in the HBM block cache at the last step: no fetch.
        #expect(all.ledger.total(.dramToHBM) == 0)
        #expect(all.cache.residency.fullPrecisionPayload == dense.cache.residency.fullPrecisionPayload)
    }

    @Test func blockRetrievalReadsSinksWindowAndTheBestBlocks() throws {
        let dense = Self.run(.dense)
        let one = Self.run(try SparseMethod(parsing: "block-retrieval:block=8,reps=2,top=1,local=16,sinks=2,lru=1"))
        // Per KV head: 2 sinks + the 18 entries not yet in a past block (82…99) + one block of 8,
        // plus the representatives' keys (2 per past block, 10 blocks).
        #expect(one.ledger.bytesRead(.values) == 2 * (2 + 18 + 8) * 8 * 4)
        #expect(one.ledger.bytesRead(.keys) == 2 * (2 + 18 + 8 + 10 * 2) * 8 * 4)
        #expect(!Self.close(one.output, dense.output, 1e-7))
        // Over a whole run with an LRU of one block, misses bring blocks over from host DRAM.
        var fetched: UInt64 = 0
        let cache = PagedKVCache(layout: Self.layout, sparse: try SparseMethod(parsing: "block-retrieval:block=8,reps=2,top=1,local=16,sinks=2,lru=1"))
        var generator = Xoshiro256(seed: 11)
        var output = [Float](repeating: 0, count: 32)
        for position in 0..<100 {
            var ledger = IOLedger()
            let keys = (0..<16).map { _ in Float.random(in: -2...2, using: &generator) }
            cache.append(layer: 0, position: position, keys: keys, values: keys, ledger: &ledger)
            cache.attend(layer: 0, position: position, queries: keys + keys, output: &output, ledger: &ledger)
            #expect(ledger.bytes(.keys, .dramToHBM) == ledger.bytes(.values, .dramToHBM))
            #expect(ledger.total(.dramToHBM) % UInt64(8 * 2 * 8 * 4) == 0)
            fetched += ledger.total(.dramToHBM)
        }
        #expect(fetched >= 2 * 10 * 8 * 2 * 8 * 4)
    }

    @Test func sparseStringsParse() throws {
        #expect(try SparseMethod(parsing: "quest").description == "quest:page=16,budget=128")
        #expect(throws: MethodSpecError("quest: page=24 must be a multiple of the cache's 16-slot pages")) {
            try SparseMethod(parsing: "quest:page=24")
        }
        #expect(try SparseMethod(parsing: "block-retrieval").description == "block-retrieval:block=16,reps=4,top=4,local=64,sinks=4,lru=8")
        #expect(throws: MethodSpecError("block-retrieval: lru must hold at least top blocks")) {
            try SparseMethod(parsing: "block-retrieval:top=8,lru=4")
        }
        #expect(throws: MethodSpecError("unknown sparse attention mode 'dilated' (dense, topk, quest, threshold, block-retrieval)")) {
            try SparseMethod(parsing: "dilated")
        }
    }
}
