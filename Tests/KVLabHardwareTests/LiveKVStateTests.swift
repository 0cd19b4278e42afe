import Foundation
import Testing
import KVLabEngine
import KVLabMethods
@testable import KVLabHardware

/// A live cache's state applied to a target: heads that evicted keep their token count, heads
/// that kept everything keep the target's whole context.
@Suite struct LiveKVStateTests {
    static func fill(_ cache: PagedKVCache, tokens: Int) -> IOLedger {
        let l = cache.layout
        var last = IOLedger()
        for position in 0..<tokens {
            var ledger = IOLedger()
            let keys = (0..<(l.kvHeadCount * l.headDim)).map { Float(sin(Double(position * 7 + $0))) }
            let queries = Array(repeating: keys, count: l.groupSize).joined().map { $0 }
            var output = [Float](repeating: 0, count: queries.count)
            for layer in 0..<l.layerCount {
                cache.append(layer: layer, position: position, keys: keys, values: keys, ledger: &ledger)
                cache.attend(layer: layer, position: position, queries: queries, output: &output, ledger: &ledger)
            }
            last = ledger
        }
        return last
    }

    @Test func keptEntriesMapOntoTheTarget() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 16, groupSize: 2, capacity: 256)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "window:window=24"))
        let ledger = Self.fill(cache, tokens: 100)
        let state = LiveKVState(cache: cache, positions: 100, lastStep: ledger)
        #expect(state.kept == [24, 24, 24, 24])
        #expect(state.keyReadFraction == 1)
        let setup = ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: try HardwareCatalog.target("llama-3-8b"),
                                    context: 32768, eviction: try EvictionMethod(parsing: "window:window=24"), live: state)
        #expect(Projection(setup).meanKept == 24)

        // A head that kept everything keeps the whole target context.
        let full = LiveKVState(layerCount: 2, kvHeadCount: 2, positions: 100, kept: [100, 24, 100, 24])
        var mixed = setup
        mixed.eviction = .full
        mixed.live = full
        #expect(Projection(mixed).meanKept == (32768 + 24) / 2)
    }

    /// threshold's reads depend on the data: the live step's read share is applied to the target.
    @Test func thresholdTakesTheLiveReadShare() throws {
        let layout = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 16, groupSize: 1, capacity: 256)
        let cache = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: "threshold:theta=0.02"))
        let ledger = Self.fill(cache, tokens: 120)
        let state = LiveKVState(cache: cache, positions: 120, lastStep: ledger)
        let share = try #require(state.keyReadFraction)
        #expect(share > 0 && share < 1)
        let setup = ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: try HardwareCatalog.target("llama-3-8b"),
                                    context: 8192, sparse: try SparseMethod(parsing: "threshold:theta=0.02"))
        var live = setup
        live.live = state
        let keysRead = { (p: Projection) in p.decode.op("qk")!.bytes }
        #expect(keysRead(Projection(live)) < keysRead(Projection(setup)))
    }

    /// A target's local layers keep at most their window: projected KV entries (and bytes) use
    /// min(context, window) there, on top of the method's budgets.
    @Test func localLayersOfTheTargetKeepTheirWindow() throws {
        var target = try HardwareCatalog.target("llama-3-8b")
        let global = ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: target, context: 32768)
        target.attentionSpans = (0..<target.layers).map { $0 % 2 == 0 ? .local(window: 4096) : .global }
        var local = global
        local.target = target
        let heads = Double(target.kvHeads * target.layers / 2)
        #expect(Projection(local).kv.entries == heads * 4096 + heads * 32768)
        #expect(Projection(local).kv.total < Projection(global).kv.total)
        #expect(Projection(local).prefill.flops < Projection(global).prefill.flops)
        #expect(Projection(local).notes.contains { $0.contains("16 of 32 layers local (window 4096)") })
        var short = local
        short.context = 1000
        #expect(Projection(short).kv.entries == Double(target.kvHeads * target.layers) * 1000)
        var budgeted = local
        budgeted.eviction = try EvictionMethod(parsing: "window:window=8192")
        #expect(Projection(budgeted).kv.entries == heads * 4096 + heads * 8192)
    }

    /// A live local layer that holds its whole window has kept everything the method allows: it
    /// is not read as an eviction when applied to another target.
    @Test func liveLocalLayersAreNotEvictions() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 16, groupSize: 2, capacity: 256,
                              attentionSpans: [.local(window: 16), .global])
        let full = PagedKVCache(layout: layout)
        let state = LiveKVState(cache: full, positions: 100, lastStep: Self.fill(full, tokens: 100))
        #expect(state.kept == [15, 15, 100, 100] && state.windows == [16, nil])
        let setup = ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: try HardwareCatalog.target("llama-3-8b"),
                                    context: 32768, live: state)
        #expect(Projection(setup).meanKept == 32768)
        let evicting = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "window:window=8"))
        let evicted = LiveKVState(cache: evicting, positions: 100, lastStep: Self.fill(evicting, tokens: 100))
        var windowed = setup
        windowed.eviction = try EvictionMethod(parsing: "window:window=8")
        windowed.live = evicted
        #expect(Projection(windowed).meanKept == 8)
    }
}
