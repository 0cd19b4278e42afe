@testable import KVLabEngine
import KVLabMethods
import Testing

/// The page store alone: appends into pages, reads back, refills freed page slots from the tail.
@Suite struct PageStoreTests {
    static let layout = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 8, groupSize: 1, capacity: 64)

    static func vector(_ position: Int, _ salt: Float) -> [Float] { (0..<8).map { Float(position) * 10 + Float($0) + salt } }

    /// Appends positions `0..<count` to head 0 (key `vector(p, 0)`, value `vector(p, 0.5)`).
    static func filled(_ count: Int, quant: KVQuantMethod = .fp32) -> PageStore {
        let store = PageStore(layout: layout, quant: quant)
        for p in 0..<count { store.append(index: 0, position: p, key: vector(p, 0), value: vector(p, 0.5)) }
        return store
    }

    @Test func appendedEntriesReadBackFromTheirPages() {
        let store = Self.filled(20)
        #expect(store.counts[0] == 20 && store.counts[1] == 0)
        #expect(store.pageCounts[0] == 20)
        #expect(store.fullPool.pagesInUse == 2)
        for p in 0..<20 {
            #expect(Array(UnsafeBufferPointer(start: store.key(index: 0, slot: p), count: 8)) == Self.vector(p, 0))
            #expect(Array(UnsafeBufferPointer(start: store.value(index: 0, slot: p), count: 8)) == Self.vector(p, 0.5))
            #expect(store.positions[p] == Int32(p) && store.slots[p] == Int32(p) && store.keyLocations[p] == Int32(p))
        }
        // The page summary of the second page spans its four keys channel by channel.
        let (lo, hi) = store.summaries.bounds(index: 0, page: 1)
        #expect(Array(UnsafeBufferPointer(start: lo, count: 8)) == Self.vector(16, 0))
        #expect(Array(UnsafeBufferPointer(start: hi, count: 8)) == Self.vector(19, 0))
    }

    @Test func releasingAPageSlotRefillsItFromTheTail() {
        let store = Self.filled(17)
        var ledger = IOLedger()
        store.releasePageSlot(index: 0, 3, ledger: &ledger)
        // The last page slot (slot 16's entry) moved into page slot 3, and its owner follows; the
        // tail page emptied and went back to the pool.
        #expect(store.pageCounts[0] == 16)
        #expect(store.fullPool.pagesInUse == 1)
        #expect(store.pageOwners[3] == 16)
        #expect(store.keyLocations[16] == 3 && store.valueLocations[16] == 3)
        #expect(Array(UnsafeBufferPointer(start: store.key(index: 0, slot: 16), count: 8)) == Self.vector(16, 0))
        #expect(Array(UnsafeBufferPointer(start: store.value(index: 0, slot: 16), count: 8)) == Self.vector(16, 0.5))
        // The live key and value moved: read once and written once each.
        #expect(ledger.bytesRead(.keys) == 32 && ledger.bytesRead(.values) == 32)
    }

    @Test func rebuildingStoresEntriesAgainInPositionOrder() {
        let store = Self.filled(5)
        for i in 0..<5 {
            (store.restoreKeys + i * 8).update(from: Self.vector(i, 100), count: 8)
            (store.restoreValues + i * 8).update(from: Self.vector(i, 200), count: 8)
            store.restoreValueLocations[i] = 0
            store.restoreMerged[i] = 1
            store.restoreReceived[i] = 0
        }
        var ledger = IOLedger()
        store.rebuildPages(index: 0, pool: store.pool, width: 8, pruned: false, ledger: &ledger)
        #expect(store.fullPool.pagesInUse == 1)
        for i in 0..<5 {
            #expect(Array(UnsafeBufferPointer(start: store.key(index: 0, slot: i), count: 8)) == Self.vector(i, 100))
            #expect(Array(UnsafeBufferPointer(start: store.value(index: 0, slot: i), count: 8)) == Self.vector(i, 200))
        }
        #expect(ledger.bytesWritten(.keys) == 5 * 32 && ledger.bytesWritten(.values) == 5 * 32)
    }

    /// Entries leaving the residual window become record members; the page slots of entries
    /// whose key and value both left go back, and reads decode them.
    @Test func entriesBeyondTheResidualWindowMoveIntoRecords() throws {
        let store = Self.filled(20, quant: try KVQuantMethod(parsing: "kivi:bits=8,group=4,residual=4"))
        var ledger = IOLedger()
        store.quantizeLeaving(index: 0, ledger: &ledger)
        #expect(store.keyStore!.quantizedCounts[0] == 16 && store.valueStore!.quantizedCounts[0] == 16)
        #expect((0..<16).allSatisfy { store.isQuantized(key: true, index: 0, slot: $0) && store.isQuantized(key: false, index: 0, slot: $0) })
        #expect((16..<20).allSatisfy { !store.isQuantized(key: true, index: 0, slot: $0) })
        #expect(store.pageCounts[0] == 4)
        for p in 0..<20 {
            let key = UnsafeBufferPointer(start: store.key(index: 0, slot: p), count: 8)
            #expect(zip(key, Self.vector(p, 0)).allSatisfy { abs($0 - $1) < 1 })
        }
        store.reset()
        #expect(store.counts[0] == 0 && store.fullPool.pagesInUse == 0 && store.keyStore!.quantizedCounts[0] == 0)
    }
}
