@testable import KVLabEngine
@testable import KVLabFoundation
@testable import KVLabMethods
@testable import KVLabRun
import Testing

@Suite struct BlockRetrievalTests {
    static func make(lru: Int = 2) -> BlockRetrieval {
        BlockRetrieval(sinks: 2, local: 4, blockSize: 4, representatives: 2, top: 1, lruCapacity: lru, heads: 1, capacity: 64)
    }

    @Test func blocksAreCutByPositionAfterTheSinks() {
        let r = Self.make()
        #expect(r.block(of: 1) == nil)
        #expect(r.block(of: 2) == 0)
        #expect(r.block(of: 5) == 0)
        #expect(r.block(of: 6) == 1)
        // At position 13 the local window is 10…13, so blocks 0 (2–5) and 1 (6–9) are past.
        #expect(r.pastBlocks(at: 13) == 2)
        #expect(r.alwaysRead(1, at: 13))
        #expect(!r.alwaysRead(9, at: 13))
        #expect(r.alwaysRead(10, at: 13))
        #expect(r.pastBlocks(at: 12) == 1)
        #expect(r.alwaysRead(9, at: 12))
    }

    @Test func representativesAreTheMostAttendedKeptEntries() {
        let r = Self.make()
        for (position, score) in [(2, 0.1), (3, 0.7), (4, 0.7), (5, 0.2), (6, 0.9), (7, 0.0), (9, 0.3)] as [(Int, Float)] {
            r.addReceived(head: 0, position: position, score)
        }
        // Position 8 was evicted: block 1 keeps 6, 7, 9.
        let kept: [Int32] = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13]
        kept.withUnsafeBufferPointer { r.formBlocks(head: 0, at: 13, kept: $0.baseAddress!, count: $0.count) }
        let block0 = r.representatives(head: 0, block: 0), block1 = r.representatives(head: 0, block: 1)
        #expect([block0[0], block0[1]] == [3, 4])  // tie at 0.7: the older first
        #expect([block1[0], block1[1]] == [6, 9])
    }

    @Test func lruCountsMissesAndEvictsTheLeastRecentlyUsed() {
        let r = Self.make(lru: 2)
        r.beginStep()
        #expect(r.touch(head: 0, block: 0))
        r.beginStep()
        #expect(r.touch(head: 0, block: 1))
        r.beginStep()
        #expect(!r.touch(head: 0, block: 0))
        r.beginStep()
        #expect(r.touch(head: 0, block: 2))   // evicts block 1, used least recently
        #expect(r.residentBlocks(head: 0) == [0, 2])
        r.beginStep()
        #expect(r.touch(head: 0, block: 1))
        #expect(r.residentBlocks(head: 0) == [1, 2])
    }
}
