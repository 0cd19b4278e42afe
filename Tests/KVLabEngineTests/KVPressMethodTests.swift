import Foundation
@testable import KVLabEngine
@testable import KVLabMethods
import Testing

/// `kvpress:<press>`: parsing, kvpress's budgets, and each press's selection on hand-built heads
/// (kvpress itself is the oracle in `KVPressOracleTests`).
@Suite struct KVPressMethodTests {
    static let layout = KVLayout(layerCount: 4, kvHeadCount: 2, headDim: 16, groupSize: 2, capacity: 200)

    @Test func pressesParseWithKvpressNamesAndPrintCanonically() throws {
        #expect(try EvictionMethod(parsing: "kvpress:snapkv").description == "kvpress:snapkv,window_size=64,kernel_size=5,ratio=0.5")
        #expect(try EvictionMethod(parsing: "kvpress:SnapKV,ratio=0.25,window_size=16").description
                == "kvpress:snapkv,window_size=16,kernel_size=5,ratio=0.25")
        #expect(try EvictionMethod(parsing: "kvpress:press=knorm,budget=32").description == "kvpress:knorm,budget=32")
        #expect(try EvictionMethod(parsing: "kvpress:streamingllm,bytes=65536").description == "kvpress:streamingllm,n_sink=4,bytes=64KiB")
        #expect(try EvictionMethod(parsing: "kvpress:adakv").description
                == "kvpress:adakv,scorer=snapkv,window_size=64,kernel_size=5,alpha_safeguard=0.2,ratio=0.5")
        #expect(try EvictionMethod(parsing: "kvpress:chunkkv,scorer=knorm,ratio=0.25").description == "kvpress:chunkkv,scorer=knorm,chunk_length=20,ratio=0.25")
        #expect(try EvictionMethod(parsing: "kvpress:decoding,target_size=64").description
                == "kvpress:decoding,scorer=knorm,compression_interval=512,target_size=64")
        let method = try EvictionMethod(parsing: "kvpress:pyramidkv,ratio=0.75,beta=10+think")
        #expect(try EvictionMethod(parsing: method.description) == method)
    }

    /// kvpress's ThinKPress under its names is kvlab's `think` on `full` (its kept channels: KVPressCLITests).
    @Test func thinkPressIsFullWithThink() throws {
        let press = try EvictionMethod(parsing: "kvpress:think,key_channel_compression_ratio=0.25,window_size=8")
        #expect(press == (try EvictionMethod(parsing: "full+think:lambda=0.25,observation=8")))
        #expect(try EvictionMethod(parsing: "kvpress:think,key_channel_compression_ratio=0.5").description == "full+think:lambda=0.5,observation=32")
        // kvpress's default ratio, 0, prunes nothing.
        #expect(try EvictionMethod(parsing: "kvpress:think") == .full)
        #expect(throws: MethodSpecError("kvpress:think: window_size=65 is outside 1...64")) {
            try EvictionMethod(parsing: "kvpress:think,key_channel_compression_ratio=0.5,window_size=65")
        }
        #expect(throws: MethodSpecError("kvpress:think: key_channel_compression_ratio=1 must be at least 0 and below 1")) {
            try EvictionMethod(parsing: "kvpress:think,key_channel_compression_ratio=1")
        }
    }

    @Test(arguments: [
        ("kvpress", "kvpress: name a press first, e.g. kvpress:snapkv,ratio=0.5 (snapkv, pyramidkv, streamingllm, tova, knorm, adakv, keydiff, observedattention, chunkkv, decoding, expectedattention, lagkv, leveragescore, cur, noncausalattn, compactor, criticalkv, criticaladakv, chunk, block, perlayer, keyrerotation, composed, prefilldecoding, compressionratiodecoding, finch, simlayerkv, lukv, entropygatedchunkkv, dms, kvzip, think)"),
        ("kvpress:lru", "kvpress: unknown press 'lru' (snapkv, pyramidkv, streamingllm, tova, knorm, adakv, keydiff, observedattention, chunkkv, decoding, expectedattention, lagkv, leveragescore, cur, noncausalattn, compactor, criticalkv, criticaladakv, chunk, block, perlayer, keyrerotation, composed, prefilldecoding, compressionratiodecoding, finch, simlayerkv, lukv, entropygatedchunkkv, dms, kvzip, think)"),
        ("kvpress:decoding,scorer=snapkv", "kvpress:decoding: scorer=snapkv is not one of knorm, keydiff, expectedattention"),
        ("kvpress:decoding,ratio=0.5", "kvpress:decoding: unknown parameter 'ratio' (known: scorer, compression_interval, target_size)"),
        ("kvpress:adakv,scorer=pyramidkv", "kvpress:adakv: scorer=pyramidkv is not one of snapkv, streamingllm, tova, knorm, keydiff, observedattention, expectedattention, lagkv, leveragescore, cur, noncausalattn, compactor"),
        ("kvpress:tova,window_size=8", "kvpress:tova: unknown parameter 'window_size' (known: ratio, budget, bytes)"),
        ("kvpress:knorm,ratio=1", "kvpress:knorm: ratio=1 must be at least 0 and below 1"),
        ("kvpress:knorm,ratio=0.5,budget=8", "kvpress:knorm: give one of ratio, budget and bytes"),
        ("kvpress:snapkv,kernel_size=4", "kvpress:snapkv: kernel_size must be odd (kvpress pools with same padding)"),
    ])
    func badPressesSayWhat(text: String, message: String) {
        #expect(throws: MethodSpecError(message)) { try EvictionMethod(parsing: text) }
    }

    @Test func budgetsFollowComputeNKept() {
        #expect(KVBudget.ratio(0.75).keptCount(of: 200, layout: Self.layout) == 50)
        #expect(KVBudget.ratio(0.7).keptCount(of: 200, layout: Self.layout) == 60)
        #expect(KVBudget.ratio(0.999).keptCount(of: 200, layout: Self.layout) == 1)
        #expect(KVBudget.entries(500).keptCount(of: 200, layout: Self.layout) == 200)
        // 4 layers × 2 heads × (16 + 16) channels × 4 B = 1 KiB per entry of every head.
        #expect(KVBudget.bytes(10 * 1024 + 5).keptCount(of: 200, layout: Self.layout) == 10)
    }

    /// kvpress 0.5.5's `get_layer_budget` on a 200-token prompt, 4 layers, window 64, β 20.
    @Test func pyramidBudgetsAreKvpresss() {
        let scorer = PyramidKVScorer(snap: SnapKVScorer(windowSize: 64, kernelSize: 5), beta: 20)
        func budgets(_ r: Double) -> [Int] {
            (0..<4).map { scorer.keptCount(layer: $0, of: 200, budget: .ratio(r), layout: Self.layout) }
        }
        #expect(budgets(0.5) == [136, 112, 88, 64])
        #expect(budgets(0.25) == [150, 150, 150, 150])
        #expect(budgets(0.75) == [50, 50, 50, 50])
    }

    /// Two heads, 12 entries, prompt end 12: runs `finishPrefill` with the given running scores and key norms.
    static func finish(_ policy: any EvictionPolicy, scores: [[Float]], norms: [[Float]]? = nil) -> [[Int]] {
        let heads = scores.indices.map { _ in HandHead(groupSize: 2) }
        for (h, head) in heads.enumerated() {
            for i in scores[h].indices {
                head.append(norm: norms?[h][i] ?? 1)
                head.scores[i] = scores[h][i]
            }
        }
        let buffer = UnsafeMutableBufferPointer<HeadEntries>.allocate(capacity: heads.count)
        defer { buffer.deallocate() }
        for (h, head) in heads.enumerated() { (buffer.baseAddress! + h).initialize(to: head.entries) }
        policy.finishPrefill(layer: 0, heads: buffer, promptEnd: scores[0].count)
        return buffer.map { e in (0..<e.count).map { Int(e.positions[$0]) } }
    }

    /// Keys (and values, zero unless given) per head and entry, read as the cache's `StoredVectors`
    /// reads its pages; entry i sits at rotary position i, and RoPE turns each channel pair
    /// (c, c + d/2) by `angle` radians per position (0: no RoPE). `queries` are what the cache
    /// records for a press that reads them.
    final class GivenVectors: EntryVectors {
        let keys: [[[Float]]]
        private(set) var values: [[[Float]]]?
        let angle: Double
        let queries: RecordedQueries
        let projection: [Float]?
        init(keys: [[[Float]]], values: [[[Float]]]? = nil, angle: Double = 0, groupSize: Int = 2, projection: [Float]? = nil) {
            self.keys = keys
            self.values = values
            self.angle = angle
            self.projection = projection
            queries = RecordedQueries(width: keys.count * groupSize * keys[0][0].count)
        }
        var headDim: Int { keys[0][0].count }
        func key(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>) {
            for (c, x) in keys[head][Int(slot)].enumerated() { out[c] = x }
        }
        func value(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>) {
            guard let values else { return out.update(repeating: 0, count: headDim) }
            for (c, x) in values[head][Int(slot)].enumerated() { out[c] = x }
        }
        func setValue(head: Int, slot: Int32, from vector: UnsafePointer<Float>) {
            values![head][Int(slot)] = Array(UnsafeBufferPointer(start: vector, count: headDim))
        }
        func rotary(head: Int, slot: Int32) -> Int { Int(slot) }
        func outputProjection() -> [Float]? { projection }
        func products(_ a: UnsafePointer<Float>, rows: Int, stride: Int, _ b: UnsafePointer<Float>, columns: Int, into out: UnsafeMutablePointer<Float>) {
            for r in 0..<rows {
                for c in 0..<columns { out[r * columns + c] = (0..<headDim).reduce(0) { $0 + a[r * stride + $1] * b[c * headDim + $1] } }
            }
        }
        func rotate(_ vectors: UnsafeMutablePointer<Float>, count: Int, position: Int, inverse: Bool) {
            let half = headDim / 2, turn = (inverse ? -1 : 1) * angle * Double(position)
            let (cos, sin) = (Float(Foundation.cos(turn)), Float(Foundation.sin(turn)))
            for v in 0..<count {
                for c in 0..<half {
                    let x = vectors[v * headDim + c], y = vectors[v * headDim + c + half]
                    vectors[v * headDim + c] = x * cos - y * sin
                    vectors[v * headDim + c + half] = x * sin + y * cos
                }
            }
        }
    }

    static func finish(_ policy: any EvictionPolicy, keys: [[[Float]]]) -> [[Int]] {
        finish(policy, vectors: GivenVectors(keys: keys))
    }

    static func finish(_ policy: any EvictionPolicy, vectors: GivenVectors) -> [[Int]] {
        let keys = vectors.keys
        let heads = keys.indices.map { _ in HandHead(groupSize: 2) }
        for (h, head) in heads.enumerated() { for _ in keys[h] { head.append() } }
        let buffer = UnsafeMutableBufferPointer<HeadEntries>.allocate(capacity: heads.count)
        defer { buffer.deallocate() }
        for (h, head) in heads.enumerated() { (buffer.baseAddress! + h).initialize(to: head.entries) }
        policy.finishPrefill(layer: 0, heads: buffer, promptEnd: keys[0].count, vectors: vectors)
        return buffer.map { e in (0..<e.count).map { Int(e.positions[$0]) } }
    }

    static func policy(_ text: String) throws -> any EvictionPolicy {
        try EvictionMethod(parsing: text).makePolicy(layout: KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 4, groupSize: 2, capacity: 12))
    }

    @Test func snapkvAveragePoolsBeforeTheWindowAndKeepsIt() throws {
        // Window 4 (positions 8...11); kernel 3 pools 0...7 with zero padding: a spike at 2 lifts 1...3,
        // and position 7's pool sees no window score.
        let spike: [Float] = [0, 0, 9, 0, 0, 0, 0, 1, 50, 50, 50, 50]
        let kept = try Self.finish(Self.policy("kvpress:snapkv,window_size=4,kernel_size=3,budget=7"), scores: [spike, spike])
        #expect(kept == [[1, 2, 3, 8, 9, 10, 11], [1, 2, 3, 8, 9, 10, 11]])
        // Fewer kept than the window: its newest entries (kvpress's top-k picks among tied ones).
        let few = try Self.finish(Self.policy("kvpress:snapkv,window_size=4,kernel_size=3,budget=2"), scores: [spike, spike])
        #expect(few == [[10, 11], [10, 11]])
    }

    @Test func tovaAveragesEveryHeadSoHeadsKeepTheSamePositions() throws {
        let a: [Float] = [5, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0], b: [Float] = [0, 4, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]
        let kept = try Self.finish(Self.policy("kvpress:tova,budget=3"), scores: [a, b])
        #expect(kept == [[0, 3, 11], [0, 3, 11]])
    }

    @Test func knormKeepsTheSmallestKeysWithoutTheNewest() throws {
        let norms: [[Float]] = [[5, 1, 4, 2, 9, 9, 9, 9, 9, 9, 9, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]]
        let kept = try Self.finish(Self.policy("kvpress:knorm,budget=3"), scores: [[Float](repeating: 0, count: 12), [Float](repeating: 0, count: 12)],
                                   norms: norms)
        #expect(kept == [[1, 3, 11], [0, 1, 2]])
    }

    @Test func streamingKeepsSinksAndTheNewest() throws {
        let zeros = [Float](repeating: 0, count: 12)
        #expect(try Self.finish(Self.policy("kvpress:streamingllm,n_sink=2,ratio=0.5"), scores: [zeros, zeros]) == [[0, 1, 8, 9, 10, 11], [0, 1, 8, 9, 10, 11]])
    }

    @Test func adakvSharesTheLayersBudgetAcrossHeads() throws {
        // Window 2 (10, 11), kernel 1, ratio 0.5: 6 per head, 12 in all; ⌊6 · 0.5⌋ = 3 safe per head
        // (the window and each head's best: 9, newest of head 0's ties, and 0 for head 1). Head 0's
        // scores are higher, so the layer's 12 lowest are head 1's 1...9 and head 0's oldest three.
        let a: [Float] = [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0], b: [Float] = [3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]
        let kept = try Self.finish(Self.policy("kvpress:adakv,window_size=2,kernel_size=1,alpha_safeguard=0.5,ratio=0.5"), scores: [a, b])
        #expect(kept == [Array(3...11), [0, 10, 11]])
        #expect(kept.map(\.count).reduce(0, +) == 12)
    }

    @Test func keydiffKeepsTheKeysFarthestFromTheMeanDirection() throws {
        // Mostly along x; 2 points along y, 4 against x: those two differ most from the mean direction.
        let head: [[Float]] = [[1, 0], [2, 0.1], [0, 1], [1, 0.2], [-1, 0], [3, 0], [1, -0.1], [2, 0]]
        let kept = try Self.finish(Self.policy("kvpress:keydiff,budget=2"), keys: [head, head.reversed()])
        #expect(kept == [[2, 4], [3, 5]])
    }

    @Test func observedAttentionDividesByTheQueriesThatSawEachEntry() throws {
        // Entry i of 12 was seen by 12 − i queries: 11 of 12 at 0, the last one's 1 from its only query.
        let received: [Float] = [11, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1.5, 1]
        let kept = try Self.finish(Self.policy("kvpress:observedattention,budget=3"), scores: [received, received])
        #expect(kept == [[0, 10, 11], [0, 10, 11]])
    }

    @Test func chunkkvKeepsWholeChunksForEveryHead() throws {
        // Chunks of 4 over 12 entries, ratio 0.5: ⌊3 · 0.5⌋ = 1 chunk, the best by summed knorm scores.
        let norms: [[Float]] = [[9, 9, 9, 9, 1, 1, 1, 1, 5, 5, 5, 5], [9, 9, 9, 9, 2, 2, 2, 2, 1, 1, 1, 1]]
        let zeros = [Float](repeating: 0, count: 12)
        let kept = try Self.finish(Self.policy("kvpress:chunkkv,scorer=knorm,chunk_length=4,ratio=0.5"), scores: [zeros, zeros], norms: norms)
        #expect(kept == [[4, 5, 6, 7], [4, 5, 6, 7]])
    }

    @Test func decodingBisectsTheRatioAsKvpressDoes() {
        #expect(KVPressDecoding.ratio(keeping: 2048, of: 2000) == 0)
        for (target, count) in [(150, 208), (100, 109), (64, 576), (7, 1000)] {
            let ratio = KVPressDecoding.ratio(keeping: target, of: count)
            #expect(Int(Double(count) * (1 - ratio)) == target)
        }
    }

    @Test func decodingCompressesEveryIntervalToTheTarget() throws {
        let policy = try EvictionMethod(parsing: "kvpress:decoding,scorer=knorm,compression_interval=3,target_size=4")
            .makePolicy(layout: KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 2, groupSize: 1, capacity: 64))
        let head = HandHead()
        let vectors = GivenVectors(keys: [Array(repeating: [0, 0], count: 64)])
        // Norms fall with position, so knorm keeps the newest four at each compression.
        var counts: [Int] = []
        for step in 0..<9 {
            head.append(norm: Float(100 - step))
            head.run { policy.afterAttention(layer: 0, heads: $0, vectors: vectors) }
            counts.append(head.count)
        }
        #expect(counts == [1, 2, 3, 4, 5, 4, 5, 6, 4])
        #expect(head.kept == [5, 6, 7, 8])
    }

    /// Entries each head of `layer` keeps after a prompt of `count` under `press`.
    static func keptCount(_ press: KVPressMethod, layer: Int, of count: Int, layout: KVLayout) -> Int {
        guard let policy = press.makePolicy(layout: layout) as? KVPressPolicy else { return -1 }
        return policy.scorer.keptCount(layer: layer, of: count, budget: policy.budgetSpec, layout: layout)
    }
}
