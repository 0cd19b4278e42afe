@testable import KVLabMethods
import Testing

/// CaM as KVCache-Factory's CAMKVCluster applies it: the kept set, the merged values, the budget.
@Suite struct CAMTests {
    /// One head of `scores.count` entries (values `[i, 1]`, zero keys) after `finishPrefill` of
    /// `method`: the kept positions and the values the vectors then hold.
    static func finish(_ method: String, scores: [Float]) throws -> (kept: [Int], values: [[Float]]) {
        let policy = try EvictionMethod(parsing: method).makePolicy(layout: KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 2, groupSize: 1, capacity: 64))
        let head = HandHead()
        for (i, score) in scores.enumerated() {
            head.append()
            head.scores[i] = score
        }
        let vectors = KVPressMethodTests.GivenVectors(keys: [scores.map { _ in [0, 0] }], values: [scores.indices.map { [Float($0), 1] }], groupSize: 1)
        let buffer = UnsafeMutableBufferPointer<HeadEntries>.allocate(capacity: 1)
        defer { buffer.deallocate() }
        buffer.baseAddress!.initialize(to: head.entries)
        policy.finishPrefill(layer: 0, heads: buffer, promptEnd: scores.count, vectors: vectors)
        let kept = (0..<buffer[0].count).map { Int(buffer[0].positions[$0]) }
        return (kept, kept.map { vectors.values![0][$0] })
    }

    /// 8 entries, window 2, S = ⌈0.25 · 8⌉ = 2: entries 2 and 4 each score the maximum of the
    /// start and their window (merge probability 1), 3 and 5 score 0 (probability 0), so the
    /// seed does not matter. Entry 2's value, halved, goes into 3 and 4; entry 4's (carrying
    /// 2's share) into 5 and 6. The best 3 of positions 0…5 stay (ties: the older), then the window.
    @Test(arguments: [0, 7])
    func evictedValuesFlowIntoTheEntriesAfterThem(seed: Int) throws {
        let (kept, values) = try Self.finish("cam:budget=5,observation=2,start=0.25,seed=\(seed)", scores: [1, 1, 3, 0, 2, 0, 4, 4])
        #expect(kept == [0, 2, 4, 6, 7])
        #expect(values == [[0, 1], [2, 1], [5, 1.5], [8.5, 1.75], [7, 1]])
    }

    /// KVCache-Factory leaves a prompt shorter than the budget whole, values included.
    @Test func aShortPromptIsLeftAlone() throws {
        let (kept, values) = try Self.finish("cam:budget=9,observation=2,start=0.25", scores: [1, 1, 3, 0, 2, 0, 4, 4])
        #expect(kept == Array(0..<8))
        #expect(values == (0..<8).map { [Float($0), 1] })
    }

    @Test func budgetsAndSpellings() throws {
        let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 8, groupSize: 1, capacity: 512)
        #expect(try EvictionMethod(parsing: "cam:budget=64").description == "cam:budget=64,observation=32,start=0.1,seed=0")
        #expect(try EvictionMethod(parsing: "cam:budget=48").budgets(layout: layout) == [48, 48, 48, 48])
        // A ratio sizes the budget from the prompt (here the 512-entry context): ⌊512 · 0.25⌋.
        #expect(try EvictionMethod(parsing: "cam:ratio=0.75").budgets(layout: layout) == [128, 128, 128, 128])
        #expect(throws: MethodSpecError("cam: observation must be below budget")) { try EvictionMethod(parsing: "cam:budget=8,observation=8") }
        #expect(throws: MethodSpecError("cam: start=2 is outside 0...1")) { try EvictionMethod(parsing: "cam:start=2") }
    }
}
