import Foundation
@testable import KVLabApp
import KVLabEngine
import KVLabMethods
import KVLabTUI
import KVLabTestSupport
import Testing

/// The KV map's states: sampled into columns, drawn by the panel, and built from a real cache's
/// entry states (sinks, group waits, sparse reads, host fetches).
@Suite struct KVMapTests {
    static func map(_ rows: [[KVCellState]]) -> KVMapSnapshot {
        KVMapSnapshot(layers: rows.count, positions: rows.first?.count ?? 0, cells: rows.flatMap { $0 })
    }

    @Test func columnsShowAnyFetchAndAnyRead() {
        let columns: [[KVCellState]] = [[.keptSkipped, .retrieved, .keptSkipped], [.evicted, .evicted, .keptSkipped],
                                        [.keptSkipped, .keptSkipped, .keptSkipped], [.kept, .keptSkipped, .quantizedSkipped],
                                        [.quantizedSkipped, .quantizedSkipped, .evicted], [.evicted, .kept, .evicted],
                                        [.quantizedSkipped, .quantizedSkipped, .kept]]
        let map = Self.map([columns.flatMap { $0 }])
        let (_, states) = KVMapView(map: map).cells(rows: 1, columns: 7)
        #expect(states == [[.retrieved, .evicted, .keptSkipped, .kept, .quantizedSkipped, .evicted, .quantized]],
                "one fetch shows; evicted wins its majority even over a read; one read keeps a column read; precision by majority")
    }

    @Test func tokensAreTintedByWhatTheCacheHoldsNotByTheStepsReads() {
        let map = Self.map([[.keptSkipped, .retrieved, .quantizedSkipped], [.keptSkipped, .evicted, .quantized], [.evicted, .evicted, .kept]])
        #expect((0..<3).map { map.tokenState(position: $0) } == [.kept, .evicted, .quantized])
        #expect(KVCellState.allCases.map(\.holding) == [.empty, .kept, .evicted, .quantized, .kept, .quantized, .kept])
    }

    /// Renders `map` in a panel of `width` × `height` (borders included).
    static func render(_ map: KVMapSnapshot, width: Int = 30, height: Int) -> Buffer {
        var buffer = Buffer(width: width, height: height)
        KVMapPanel(view: KVMapView(map: map), glyphs: .unicode).render(area: buffer.area, buffer: &buffer)
        return buffer
    }

    @Test func skippedIsItsPrecisionDimmedAndRetrievedHasItsRole() {
        let buffer = Self.render(Self.map([[.kept, .keptSkipped, .quantized, .quantizedSkipped, .retrieved, .evicted]]), height: 3)
        let cells = (0..<6).map { buffer[5 + $0, 1] }
        #expect(cells.map(\.symbol) == ["█", "█", "▓", "▓", "▒", "░"])
        #expect(cells.map(\.style) == [.role(.kvKept), .role(.kvKept, .dim), .role(.kvQuantized), .role(.kvQuantized, .dim),
                                       .role(.kvRetrieved), .role(.kvEvicted)])
    }

    @Test func aKeyToReadsTakesOnlyASpareRow() {
        let sparse = Self.map([[.kept, .keptSkipped, .retrieved], [.kept, .keptSkipped, .kept]])
        let lines = Self.render(sparse, width: 60, height: 5).textLines
        #expect(lines[3].contains("█ dimmed: not read this step  ▒ fetched from host"))
        #expect(!Self.render(sparse, width: 50, height: 4).textLines.joined().contains("not read"), "no row to spare: layers only")
        let dense = Self.map([[.kept, .quantized, .evicted], [.kept, .kept, .kept]])
        #expect(Self.render(dense, width: 50, height: 5).textLines[3].allSatisfy { $0 == " " || $0 == "│" }, "dense: nothing to key")
        let retrievedOnly = Self.render(Self.map([[.kept, .retrieved]]), width: 50, height: 4).textLines[2]
        #expect(retrievedOnly.contains("▒ fetched from host") && !retrievedOnly.contains("not read"))
    }

    /// The layer summary stays in the title whatever the sequence's length: at 80×24 (a 44-column
    /// panel) a 5-position map (just after `R`) dropped it, its longer title chosen as if it fit.
    @Test func theLayerSummaryStaysInTheTitleAtAnyLength() {
        for positions in [5, 300] {
            let map = KVMapSnapshot(layers: 8, positions: positions, cells: Array(repeating: .kept, count: 8 * positions))
            let title = Self.render(map, width: 44, height: 7).textLines[0]
            #expect(title.contains("L0–L7 of 8, 2 per row"), "\(positions) positions: \(title)")
        }
    }

    // MARK: a real cache

    static func layout(layers: Int = 1, kvHeads: Int = 1) -> KVLayout {
        KVLayout(layerCount: layers, kvHeadCount: kvHeads, headDim: 8, groupSize: 2, capacity: 128)
    }

    /// Appends and attends one step on every layer, with fixed pseudo-random keys, values and queries.
    static func step(_ cache: PagedKVCache, position: Int) {
        let layout = cache.layout
        func data(_ count: Int, _ salt: Int) -> [Float] { (0..<count).map { Float(sin(Double(position * 977 + $0 * 131 + salt * 7919))) } }
        let kv = layout.kvHeadCount * layout.headDim
        let keys = data(kv, 1), values = data(kv, 2), queries = data(kv * layout.groupSize, 3).map { $0 * 3 }
        var output = [Float](repeating: 0, count: queries.count)
        var ledger = IOLedger()
        for layer in 0..<layout.layerCount {
            cache.append(layer: layer, position: position, keys: keys, values: values, ledger: &ledger)
            cache.attend(layer: layer, position: position, queries: queries, output: &output, ledger: &ledger)
        }
    }

    /// ggml q4_0 over heads of 8 quantizes 4 entries at a time: past the residual window of 3 up
    /// to 3 more wait at fp32 for their group, and the 2 protected sinks never leave fp32. The
    /// residual setting alone would have called sinks and group-waiting entries quantized.
    @Test func sinksAndGroupWaitsShowKeptNotQuantized() throws {
        let cache = PagedKVCache(layout: Self.layout(layers: 2, kvHeads: 2), quant: try KVQuantMethod(parsing: "q4_0:residual=3+rotate:protect-sinks=2"))
        for position in 0..<30 { Self.step(cache, position: position) }
        let map = KVMapSnapshot(cache: cache, positions: 30)
        let expected: [KVCellState] = (0..<30).map { $0 < 2 || $0 >= 26 ? .kept : .quantized }
        for layer in 0..<2 { #expect((0..<30).map { map.state(layer: layer, position: $0) } == expected) }
    }

    /// topk reads a few entries per KV head: a layer's cell is read when any of its heads read it.
    @Test func topKShowsSkippedEntries() throws {
        let cache = PagedKVCache(layout: Self.layout(kvHeads: 2), sparse: try SparseMethod(parsing: "topk:k=3"))
        for position in 0..<24 { Self.step(cache, position: position) }
        let map = KVMapSnapshot(cache: cache, positions: 24)
        let read = Set((0..<2).flatMap { cache.entryStates(layer: 0, head: $0).filter(\.read).map(\.position) })
        #expect(!read.isEmpty && read.count < 24)
        #expect((0..<24).map { map.state(layer: 0, position: $0) } == (0..<24).map { read.contains($0) ? .kept : .keptSkipped })
    }

    /// Block-retrieval misses show retrieved at the step that fetched them, and only then.
    @Test func blockRetrievalShowsRetrievedEntries() throws {
        let cache = PagedKVCache(layout: Self.layout(), sparse: try SparseMethod(parsing: "block-retrieval:block=4,reps=2,top=2,local=8,sinks=2,lru=8"))
        var steps = 0
        for position in 0..<60 {
            Self.step(cache, position: position)
            let states = cache.entryStates(layer: 0, head: 0)
            let map = KVMapSnapshot(cache: cache, positions: position + 1)
            let cells = (0...position).map { map.state(layer: 0, position: $0) }
            #expect(Set(cells.indices.filter { cells[$0] == .retrieved }) == Set(states.filter(\.fetched).map(\.position)))
            #expect(Set(cells.indices.filter { cells[$0] == .keptSkipped }) == Set(states.filter { !$0.read }.map(\.position)))
            if cells.contains(.retrieved) { steps += 1 }
        }
        #expect(steps > 0 && steps < 60)
    }

    /// Local layers hold only their window, so their rows are a band at the right; their labels
    /// give the window.
    @Test func localLayersShowTheirWindow() throws {
        let layout = KVLayout(layerCount: 4, kvHeadCount: 1, headDim: 8, groupSize: 2, capacity: 128,
                              attentionSpans: [.local(window: 6), .global, .local(window: 12), .global])
        let cache = PagedKVCache(layout: layout)
        for position in 0..<30 { Self.step(cache, position: position) }
        let map = KVMapSnapshot(cache: cache, positions: 30)
        #expect((0..<30).map { map.state(layer: 0, position: $0) } == (0..<30).map { $0 >= 25 ? .kept : .evicted })
        #expect((0..<30).allSatisfy { map.state(layer: 1, position: $0) == .kept })
        #expect(map.label(layer: 0) == "L0 w6" && map.label(layer: 1) == "L1")
        expectSnapshot(Self.render(map, width: 42, height: 6), "kvmap-local-42x6")
    }
}
