@testable import KVLabEngine
import KVLabMethods
import Testing

/// The per-position state a cache reports: quantized halves, what the last step read and fetched.
@Suite struct KVEntryStateTests {
    /// Appends and attends one seeded step on every layer; returns the step's ledger.
    @discardableResult
    static func step(_ cache: PagedKVCache, position: Int) -> IOLedger {
        let data = KVQuantCacheTests.data(cache.layout, position: position, seed: 8)
        var output = [Float](repeating: 0, count: data.queries.count)
        var ledger = IOLedger()
        for layer in 0..<cache.layout.layerCount {
            cache.append(layer: layer, position: position, keys: data.keys, values: data.values, ledger: &ledger)
            cache.attend(layer: layer, position: position, queries: data.queries, output: &output, ledger: &ledger)
        }
        return ledger
    }

    /// ggml blocks of 32 over heads of 8 quantize 4 entries at a time, so up to 3 wait at fp32
    /// beyond the residual window; protected sinks never leave fp32.
    @Test func quantizedFlagsFollowSinksGroupWaitsAndTheResidualWindow() throws {
        let layout = KVQuantCacheTests.layout(headDim: 8, layers: 2, kvHeads: 2, group: 2, capacity: 64)
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "q4_0:residual=3+rotate:protect-sinks=2"))
        let tokens = try #require(cache.store.keyStore).tokens
        #expect(tokens == 4)
        for position in 0..<30 {
            Self.step(cache, position: position)
            let count = position + 1
            let quantized = max(0, (count - 3 - 2) / tokens * tokens)
            for layer in 0..<2 {
                for head in 0..<2 {
                    let states = cache.entryStates(layer: layer, head: head)
                    #expect(states.map(\.position) == Array(0..<count))
                    #expect(states.map(\.keyQuantized) == (0..<count).map { $0 >= 2 && $0 < 2 + quantized })
                    #expect(states.map(\.valueQuantized) == states.map(\.keyQuantized))
                    #expect(states.allSatisfy { $0.read && !$0.fetched })
                }
            }
        }
    }

    /// topk reads every key but only the values its query heads chose: the entries marked read
    /// are exactly the values the step's ledger counts.
    @Test func topKReadSetIsItsSelection() throws {
        let layout = KVQuantCacheTests.layout(headDim: 8, layers: 1, kvHeads: 2, group: 2, capacity: 64)
        let cache = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: "topk:k=3"))
        for position in 0..<20 {
            let ledger = Self.step(cache, position: position)
            let read = (0..<2).reduce(0) { $0 + cache.entryStates(layer: 0, head: $1).filter(\.read).count }
            #expect(UInt64(read * 8 * 4) == ledger.bytesRead(.values))
            for head in 0..<2 {
                let count = cache.entryStates(layer: 0, head: head).filter(\.read).count
                #expect(count <= position + 1 && count >= min(position + 1, 3) && count <= 6)
            }
        }
    }

    /// A block-retrieval miss shows its block's entries as fetched, as many as the ledger's
    /// host-to-HBM bytes say; a later hit fetches nothing.
    @Test func blockRetrievalMissesShowAsFetched() throws {
        let layout = KVQuantCacheTests.layout(headDim: 8, layers: 1, kvHeads: 1, group: 2, capacity: 128)
        let cache = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: "block-retrieval:block=4,reps=2,top=2,local=8,sinks=2,lru=8"))
        var misses = 0
        for position in 0..<60 {
            let ledger = Self.step(cache, position: position)
            let states = cache.entryStates(layer: 0, head: 0)
            let fetched = states.filter(\.fetched)
            #expect(UInt64(fetched.count * 8 * 4) == ledger.bytes(.keys, .dramToHBM))
            #expect(fetched.allSatisfy { $0.read })
            // Sinks and the local window are always read.
            #expect(states.filter { $0.position < 2 || $0.position > position - 8 }.allSatisfy { $0.read })
            if !fetched.isEmpty { misses += 1 }
        }
        #expect(misses > 0 && misses < 60)
    }

    /// After a reset nothing is kept; a dense step reads everything it keeps.
    @Test func denseStepsReadEveryEntry() {
        let cache = PagedKVCache(layout: KVQuantCacheTests.layout(headDim: 8, capacity: 32))
        for position in 0..<5 { Self.step(cache, position: position) }
        #expect(cache.entryStates(layer: 0, head: 0).map(\.read) == Array(repeating: true, count: 5))
        cache.reset()
        #expect(cache.entryStates(layer: 0, head: 0).isEmpty)
    }
}
