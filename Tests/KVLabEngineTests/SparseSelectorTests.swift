@testable import KVLabEngine
import KVLabMethods
import Testing

/// Each sparse selector alone, over a page store filled with seeded random entries.
@Suite struct SparseSelectorTests {
    static let layout = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 8, groupSize: 2, capacity: 128)

    /// A store holding `entries` random entries (positions 0..<entries), its attention, and a random query group.
    static func setup(entries: Int, seed: UInt64 = 3) -> (store: PageStore, attention: CacheAttention, queries: [Float]) {
        var generator = Xoshiro256(seed: seed)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &generator) } }
        let store = PageStore(layout: layout, quant: .fp32)
        for p in 0..<entries { store.append(index: 0, position: p, key: random(8), value: random(8)) }
        return (store, CacheAttention(store: store), random(16))
    }

    /// Scaled q·k of query head `g` for one slot, computed plainly.
    static func score(_ store: PageStore, _ queries: [Float], g: Int, slot: Int) -> Float {
        let key = store.key(index: 0, slot: slot)
        return (0..<8).reduce(Float(0)) { $0 + queries[g * 8 + $1] * key[$1] } / Float(8).squareRoot()
    }

    static func select(_ selector: any SparseSelector, _ attention: CacheAttention, queries: [Float], visible: Int,
                       ledger: inout IOLedger) -> [Int] {
        let log = StepReadLog(layout: layout)
        let n = queries.withUnsafeBufferPointer { q in
            selector.select(SparseStep(index: 0, queries: q.baseAddress!, visible: visible, position: visible - 1, scoring: true),
                            attention: attention, log: log, ledger: &ledger)
        }
        return (0..<n).map { Int(attention.selectedSlots[$0]) }
    }

    @Test func denseScoresEveryVisibleSlotAndListsNothing() {
        let (store, attention, queries) = Self.setup(entries: 37)
        var ledger = IOLedger()
        let selector = DenseSelector()
        #expect(!selector.lists)
        #expect(Self.select(selector, attention, queries: queries, visible: 37, ledger: &ledger).count == 37)
        for g in 0..<2 {
            for slot in 0..<37 {
                #expect(abs(attention.probabilities[g * attention.scoreStride + slot] - Self.score(store, queries, g: g, slot: slot)) < 1e-5)
            }
        }
    }

    /// Each query head keeps exactly its k best scores (the rest masked in its row); the list is their union.
    @Test func topKListsTheUnionOfEachQueryHeadsBestScores() {
        let (store, attention, queries) = Self.setup(entries: 40)
        var ledger = IOLedger()
        let listed = Self.select(TopKSelector(k: 5), attention, queries: queries, visible: 40, ledger: &ledger)
        var expected = Set<Int>()
        for g in 0..<2 {
            let best = (0..<40).sorted { Self.score(store, queries, g: g, slot: $0) > Self.score(store, queries, g: g, slot: $1) }.prefix(5)
            expected.formUnion(best)
            let row = attention.probabilities + g * attention.scoreStride
            #expect(Set((0..<40).filter { row[$0] != CacheAttention.masked }) == Set(best))
        }
        #expect(Set(listed) == expected && listed == listed.sorted())
    }

    /// Quest reads the newest page and the pages with the best bounds, and a page's bound is never
    /// below the best score the group's keys in it reach.
    @Test func questReadsTheNewestAndTheBestBoundedPages() {
        let (store, attention, queries) = Self.setup(entries: 70)
        var ledger = IOLedger()
        let listed = Self.select(QuestSelector(pagesPerQuestPage: 1, questPages: 2), attention, queries: queries, visible: 70, ledger: &ledger)
        func bound(_ page: Int) -> Float {
            let (lo, hi) = store.summaries.bounds(index: 0, page: page)
            return (0..<2).reduce(Float(0)) { sum, g in
                sum + (0..<8).reduce(Float(0)) { $0 + max(queries[g * 8 + $1] * lo[$1], queries[g * 8 + $1] * hi[$1]) }
            }
        }
        for page in 0..<5 {
            for slot in (page * 16)..<min(70, page * 16 + 16) {
                let groupScore = (0..<2).reduce(Float(0)) { $0 + Self.score(store, queries, g: $1, slot: slot) } * Float(8).squareRoot()
                #expect(groupScore <= bound(page) + 1e-4)
            }
        }
        let best = (0..<4).sorted { bound($0) > bound($1) }.prefix(2)
        let pages = Set(best).union([4]).sorted()
        #expect(listed == pages.flatMap { ($0 * 16)..<min(70, $0 * 16 + 16) })
        // The summaries of the five pages were read.
        #expect(ledger.bytesRead(.policyState) == 5 * 2 * 8 * 4)
    }

    /// threshold reads the entries whose last s_t reached theta, and the newest.
    @Test func thresholdReadsLastStepsHeavyEntriesAndTheNewest() {
        let (store, attention, queries) = Self.setup(entries: 30)
        for i in 0..<30 { store.stepScores[i] = i % 3 == 0 ? 0.5 : 0.01 }
        var ledger = IOLedger()
        let listed = Self.select(ThresholdSelector(theta: 0.1), attention, queries: queries, visible: 30, ledger: &ledger)
        #expect(listed == (0..<30).filter { $0 % 3 == 0 || $0 == 29 })
        let row = attention.probabilities
        #expect(row[1] == CacheAttention.masked && abs(row[3] - Self.score(store, queries, g: 0, slot: 3)) < 1e-5)
    }

    /// Block retrieval reads sinks, the local window and the best block; the first read of a
    /// block is a host fetch of its members, a second one hits the HBM block cache.
    @Test func blockRetrievalFetchesAChosenBlockOnceThenHits() {
        let (store, attention, queries) = Self.setup(entries: 40)
        let retrieval = BlockRetrieval(sinks: 2, local: 8, blockSize: 8, representatives: 2, top: 1, lruCapacity: 2, heads: 1, capacity: 128)
        let selector = BlockRetrievalSelector(retrieval)
        let log = StepReadLog(layout: Self.layout)
        func step() -> (listed: [Int], ledger: IOLedger) {
            var ledger = IOLedger()
            let n = queries.withUnsafeBufferPointer { q in
                selector.select(SparseStep(index: 0, queries: q.baseAddress!, visible: 40, position: 39, scoring: true),
                                attention: attention, log: log, ledger: &ledger)
            }
            return ((0..<n).map { Int(attention.selectedSlots[$0]) }, ledger)
        }
        let first = step()
        // Past blocks: 2..<10, 10..<18, 18..<26; 26..<34 reaches into the window (32..<40).
        let chosen = Set(first.listed.filter { $0 >= 2 && $0 < 26 }.map { ($0 - 2) / 8 })
        #expect(chosen.count == 1)
        #expect(first.listed.filter { $0 < 2 || $0 >= 26 } == [0, 1] + Array(26..<40))
        #expect(first.ledger.bytes(.keys, .dramToHBM) == 8 * 32)
        #expect(log.lastStep(index: 0).fetched == Set((0..<8).map { Int32(2 + chosen.first! * 8 + $0) }))
        let second = step()
        #expect(second.listed == first.listed && second.ledger.bytes(.keys, .dramToHBM) == 0)
    }

    @Test func quickselectFindsTheKthLargest() {
        var generator = Xoshiro256(seed: 5)
        for trial in 0..<200 {
            let count = 1 + trial % 40
            // Few distinct values, so ties are common.
            let values = (0..<count).map { _ in Float(Int.random(in: 0..<6, using: &generator)) }
            let sorted = values.sorted(by: >)
            for k in 1...count {
                var scratch = values
                #expect(TopKSelector.kthLargest(&scratch, count: count, k: k) == sorted[k - 1])
            }
        }
        var slots: [Int32] = [3, 9, 1, 9, 4]
        slots.withUnsafeMutableBufferPointer { $0.insertionSort(by: >) }
        #expect(slots == [9, 9, 4, 3, 1])
    }
}
