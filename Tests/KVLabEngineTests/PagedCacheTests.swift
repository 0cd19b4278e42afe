import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Testing

@Suite struct PagedCacheTests {
    /// Appends one token per layer with the given key/value vectors (every KV head the same),
    /// then attends with `query` (every query head the same); returns head 0's output.
    @discardableResult
    static func step(_ cache: PagedKVCache, position: Int, key: [Float], value: [Float], query: [Float]) -> [Float] {
        let l = cache.layout
        let keys = Array((0..<l.kvHeadCount).map { _ in key }.joined())
        let values = Array((0..<l.kvHeadCount).map { _ in value }.joined())
        let queries = Array((0..<(l.kvHeadCount * l.groupSize)).map { _ in query }.joined())
        var output = [Float](repeating: 0, count: queries.count)
        var ledger = IOLedger()
        for layer in 0..<l.layerCount {
            cache.append(layer: layer, position: position, keys: keys, values: values, ledger: &ledger)
            cache.attend(layer: layer, position: position, queries: queries, output: &output, ledger: &ledger)
        }
        return Array(output.prefix(l.headDim))
    }

    static func unit(_ i: Int, _ n: Int = 8, scale: Float = 1) -> [Float] { (0..<n).map { $0 == i ? scale : 0 } }

    /// Resident payload + slack is exactly what the pool has handed out, through growth,
    /// eviction and method switches.
    @Test func residentBytesEqualLivePages() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 8, groupSize: 2, capacity: 200)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "h2o:heavy=20,recent=13"))
        var generator = Xoshiro256(seed: 3)
        func check() {
            let r = cache.residency
            #expect(r.fullPrecisionPayload + r.pageSlack == cache.pagesInUse * PagedKVCache.pageBytes(headDim: 8))
            #expect(r.policyState == (0..<2).reduce(0) { $0 + cache.entryCount(layer: $1, head: 0) + cache.entryCount(layer: $1, head: 1) } * 8)
        }
        for position in 0..<120 {
            let key = (0..<8).map { _ in Float.random(in: -1...1, using: &generator) }
            Self.step(cache, position: position, key: key, value: key, query: key)
            check()
        }
        #expect(cache.entryCount(layer: 1, head: 1) == 33)
        var ledger = IOLedger()
        cache.setEviction(try EvictionMethod(parsing: "window:window=5"), ledger: &ledger)
        #expect(cache.entryCount(layer: 0, head: 0) == 5)
        #expect(cache.keptPositions(layer: 0, head: 0) == Array(115..<120))
        #expect(cache.pagesInUse == 4)
        // Loosening keeps what is there; evicted entries do not come back.
        cache.setEviction(.full, ledger: &ledger)
        Self.step(cache, position: 120, key: Self.unit(0), value: Self.unit(0), query: Self.unit(0))
        #expect(cache.keptPositions(layer: 1, head: 0) == Array(115...120))
        cache.reset()
        #expect(cache.pagesInUse == 0)
    }

    /// The fp32 kernels (keys 16 at a time, values 32 channels at a time, then 8, then single
    /// channels) equal a plain softmax(q·k/√d)·V for head sizes that exercise every path.
    @Test(arguments: [8, 12, 40, 68])
    func fp32AttentionIsSoftmaxWeightedValues(headDim: Int) throws {
        let layout = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: headDim, groupSize: 2, capacity: 64)
        let cache = PagedKVCache(layout: layout)
        var generator = Xoshiro256(seed: 11)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &generator) } }
        var keys: [[Float]] = [], values: [[Float]] = []
        for position in 0..<40 {
            let k = random(2 * headDim), v = random(2 * headDim), q = random(4 * headDim)
            keys.append(k)
            values.append(v)
            var output = [Float](repeating: 0, count: q.count)
            var ledger = IOLedger()
            cache.append(layer: 0, position: position, keys: k, values: v, ledger: &ledger)
            cache.attend(layer: 0, position: position, queries: q, output: &output, ledger: &ledger)
            for queryHead in 0..<4 {
                let head = queryHead / 2, query = q[(queryHead * headDim)...].prefix(headDim)
                let scores = keys.map { key in zip(query, key[(head * headDim)...]).reduce(Float(0)) { $0 + $1.0 * $1.1 } / Float(headDim).squareRoot() }
                let weights = scores.map { expf($0 - scores.max()!) }
                let total = weights.reduce(0, +)
                for c in 0..<headDim {
                    let expected = (0...position).reduce(Float(0)) { $0 + weights[$1] / total * values[$1][head * headDim + c] }
                    #expect(abs(output[queryHead * headDim + c] - expected) < 1e-5, "position \(position), query head \(queryHead), channel \(c)")
                }
            }
        }
    }

    /// `merge`: an evicted entry is averaged into the kept entry with the most similar key.
    @Test func mergeAveragesIntoTheMostSimilarKey() throws {
        let layout = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 8, groupSize: 1, capacity: 32)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "window:window=2+merge"))
        let zero = [Float](repeating: 0, count: 8)
        // A zero query attends uniformly, so the output is the mean of the attended values.
        Self.step(cache, position: 0, key: Self.unit(0), value: Self.unit(0, scale: 4), query: zero)
        Self.step(cache, position: 1, key: Self.unit(1), value: Self.unit(1, scale: 4), query: zero)
        // Position 0 is evicted after this step and merges into position 2 (same key direction).
        Self.step(cache, position: 2, key: Self.unit(0, scale: 2), value: Self.unit(2, scale: 4), query: zero)
        let output = Self.step(cache, position: 3, key: Self.unit(3), value: Self.unit(3, scale: 3), query: zero)
        // Attended: position 1 (4·e1), position 2 merged ((4·e2 + 4·e0) / 2), position 3 (3·e3).
        let expected: [Float] = [2, 4, 2, 3, 0, 0, 0, 0].map { $0 / 3 }
        for c in 0..<8 { #expect(abs(output[c] - expected[c]) < 1e-6, "channel \(c)") }
        #expect(cache.keptPositions(layer: 0, head: 0) == [2, 3])
    }

    /// The ghost's attention mass on the entries a window keeps is below 1 and equals the
    /// share it gives the kept positions.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func massKeptIsTheGhostsShareOnKeptEntries() throws {
        let model = try #require(Fixtures.stories)
        let ids = try #require(Reference.shared).greedy.ids
        let full = StreamingEvaluator(weights: model.weights, eviction: .full, withGhost: true)
        let same = try full.evaluate(Array(ids.prefix(80)))
        #expect(abs(same.meanMassKept! - 1) < 1e-5)
        #expect(same.meanKL! < 1e-9)
        #expect(same.top1Agreement == 1)
        #expect(same.firstDivergence == nil)
        let window = StreamingEvaluator(weights: model.weights, eviction: try EvictionMethod(parsing: "window:window=16"), withGhost: true)
        let cut = try window.evaluate(Array(ids.prefix(80)))
        #expect(cut.meanMassKept! < 0.99)
        #expect(cut.meanMassKept! > 0.3)
        #expect(cut.meanKL! > 0)
        #expect(cut.peakResidentKVBytes < same.peakResidentKVBytes)
    }
}
