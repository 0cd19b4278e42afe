@testable import KVLabEngine
import KVLabMethods
import KVLabRun
import Testing

/// The ghost's attention-mass measurement alone and through two caches.
@Suite struct AttentionMassProbeTests {
    static let layout = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 8, groupSize: 1, capacity: 32)

    /// A reference holding positions 0–9 with step scores p/45, and a cache holding 1, 3, 5, 7 and 12.
    static func referenceAndOther() -> (PageStore, PageStore) {
        let reference = PageStore(layout: Self.layout, quant: .fp32), other = PageStore(layout: Self.layout, quant: .fp32)
        let zero = [Float](repeating: 0, count: 8)
        for p in 0..<10 {
            reference.append(index: 0, position: p, key: zero, value: zero)
            reference.stepScores[p] = Float(p) / 45
        }
        for p in [1, 3, 5, 7, 12] { other.append(index: 0, position: p, key: zero, value: zero) }
        return (reference, other)
    }

    @Test func massSumsTheReferencesScoresOnTheAttendedPositions() {
        let (reference, other) = Self.referenceAndOther()
        #expect(abs(AttentionMassProbe.mass(of: reference, layer: 0, head: 0, on: other, visible: 5) - 16.0 / 45) < 1e-6)
        #expect(abs(AttentionMassProbe.mass(of: reference, layer: 0, head: 0, on: other, visible: 2) - 4.0 / 45) < 1e-6)
    }

    /// A full cache keeps all of the ghost's attention; a window keeps less once it evicts.
    @Test func cachesMeasureTheirMassAgainstTheGhost() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 8, groupSize: 2, capacity: 64)
        let ghost = PagedKVCache(layout: layout), full = PagedKVCache(layout: layout)
        let window = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "window:window=4"))
        ghost.recordsAttention = true
        #expect(full.massKept == nil)
        full.attentionReference = ghost
        window.attentionReference = ghost
        var generator = Xoshiro256(seed: 4)
        for position in 0..<12 {
            let key = (0..<8).map { _ in Float.random(in: -1...1, using: &generator) }
            for cache in [ghost, full, window] { PagedCacheTests.step(cache, position: position, key: key, value: key, query: key) }
        }
        #expect(abs(full.massKept! - 1) < 1e-5)
        #expect(window.massKept! < 0.999)
        window.reset()
        #expect(window.massKept == nil)
    }

    /// A sparse mode keeps every entry but reads only what it lists: the mass is of the entries
    /// read (issue 16: `threshold` showed 100% while its KL was 0.42), and dense reads all of it.
    @Test func sparseModesMeasureTheMassOfWhatTheyRead() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 8, groupSize: 2, capacity: 64)
        let ghost = PagedKVCache(layout: layout), dense = PagedKVCache(layout: layout)
        let topK = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: "topk:k=2"))
        let threshold = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: "threshold:theta=0.2"))
        ghost.recordsAttention = true
        for cache in [dense, topK, threshold] { cache.attentionReference = ghost }
        var generator = Xoshiro256(seed: 7)
        for position in 0..<16 {
            let key = (0..<8).map { _ in Float.random(in: -1...1, using: &generator) }
            for cache in [ghost, dense, topK, threshold] { PagedCacheTests.step(cache, position: position, key: key, value: key, query: key) }
        }
        #expect(abs(dense.massKept! - 1) < 1e-5)
        #expect(topK.massKept! < 0.99)
        #expect(threshold.massKept! < 0.99)
        #expect(threshold.residency == dense.residency)
    }

    /// The listed-slot sum finds each slot's position in the reference's list, in any order.
    @Test func listedSlotsSumTheReferencesScoresAtTheirPositions() {
        let (reference, other) = Self.referenceAndOther()
        let slots: [Int32] = [3, 0, 4]  // positions 7, 1 and 12 (absent from the reference)
        #expect(abs(AttentionMassProbe.mass(of: reference, layer: 0, head: 0, onSlots: slots, count: 3, of: other) - 8.0 / 45) < 1e-6)
    }

    /// Issue 16's reproductions on stories260K, greedy: threshold sparse attention (KL 0.49)
    /// showed 100% mass; the mass of the entries it reads is well below. And the reason the
    /// workbench shows no live ΔNLL: under h2o with 12% of entries kept, the run's ΔNLL on its own
    /// greedy tokens is negative while the KL it pays is not.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func issueReproductionsOnStories260K() throws {
        let model = try #require(Fixtures.stories)
        let threshold = try LiveRun(model: model, settings: try LiveRunTests.settings(sparse: "threshold:theta=0.05"), ghost: true)
        try threshold.submit(prompt: "Once upon a time")
        let sparse = try LiveRunTests.generate(threshold, 200).compactMap(\.ghost)
        let meanMass = sparse.compactMap(\.massKept).reduce(0, +) / Double(sparse.count)
        let meanKL = sparse.map(\.kl).reduce(0, +) / Double(sparse.count)
        #expect(meanKL > 0.3 && meanMass < 0.8, "KL \(meanKL), mass read \(meanMass)")

        let h2o = try LiveRun(model: model, settings: try LiveRunTests.settings("h2o:heavy=16,recent=16"), ghost: true)
        try h2o.submit(prompt: "Once upon a time")
        let evicting = try LiveRunTests.generate(h2o, 250).compactMap(\.ghost)
        let selfChosen = evicting.map(\.deltaNLL).reduce(0, +) / Double(evicting.count)
        #expect(selfChosen < 0 && evicting.map(\.kl).reduce(0, +) > 0, "ΔNLL on its own tokens \(selfChosen)")
    }
}
