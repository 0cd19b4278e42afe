@testable import KVLabEngine
@testable import KVLabMethods
import Testing

/// The ThinK store alone over a page store: recording queries, choosing channels, re-storing keys.
@Suite struct ThinKStoreTests {
    /// Head 0's keys grow with the channel, head 1's shrink; with equal queries each head keeps
    /// its largest half of channels, stores keys at that width in thin pages, and reads them back
    /// with zeros elsewhere. Switching off stores full keys again; pruned channels stay zero.
    @Test func thinkKeepsEachHeadsHeaviestChannelsAndStoresThemAlone() {
        let layout = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 8, groupSize: 1, capacity: 64)
        let store = PageStore(layout: layout, quant: .fp32)
        let think = ThinK(lambda: 0.5, observation: 2)
        let thinK = ThinKStore(store: store, think: think)
        func key(head: Int, position: Int) -> [Float] {
            (0..<8).map { c in Float(head == 0 ? c + 1 : 8 - c) * Float(position + 1) / 10 }
        }
        for p in 0..<10 {
            for head in 0..<2 { store.append(index: head, position: p, key: key(head: head, position: p), value: key(head: 0, position: p)) }
        }
        var ledger = IOLedger()
        let query = [Float](repeating: 1, count: 8)
        func recordQuery() {
            for head in 0..<2 { thinK.recordQuery(query, layer: 0, head: head) }
            thinK.endQuery(layer: 0, counted: true, ledger: &ledger)
        }
        recordQuery()
        thinK.actIfReady(think, wholeWindow: true, quantize: true, ledger: &ledger)
        #expect(!store.keysPruned && thinK.pending)
        recordQuery()
        thinK.actIfReady(think, wholeWindow: true, quantize: true, ledger: &ledger)
        #expect(store.keysPruned && !thinK.pending && store.keyWidth == 4)
        let kept = [[4, 5, 6, 7], [0, 1, 2, 3]]
        for head in 0..<2 {
            #expect((0..<4).map { Int(store.keptChannels[head * 8 + $0]) } == kept[head])
            for slot in 0..<10 {
                let full = key(head: head, position: slot)
                let expected = (0..<8).map { kept[head].contains($0) ? full[$0] : 0 }
                #expect(Array(UnsafeBufferPointer(start: store.key(index: head, slot: slot), count: 8)) == expected)
                #expect(Array(UnsafeBufferPointer(start: store.value(index: head, slot: slot), count: 8)) == key(head: 0, position: slot))
            }
        }
        #expect(store.fullPool.pagesInUse == 0 && thinK.pagesInUse == 2)
        #expect(thinK.pageBytes == 2 * PagedKVCache.pageBytes(headDim: 8, keyChannels: 4))

        thinK.switchThink(from: think, to: nil, quantize: true, ledger: &ledger)
        #expect(!store.keysPruned && store.keyWidth == 8 && store.fullPool.pagesInUse == 2 && thinK.pagesInUse == 0)
        let full = key(head: 1, position: 3)
        #expect(Array(UnsafeBufferPointer(start: store.key(index: 1, slot: 3), count: 8)) == (0..<8).map { $0 < 4 ? full[$0] : 0 })
    }
}
