import Foundation
@testable import KVLabEngine
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// The scorer presses of KVPressMethod+Scorers.swift on hand-checkable heads: two KV heads of
/// two-channel entries, two query heads each (kvpress itself is the oracle in `KVPressCLITests`).
@Suite struct KVPressScorerTests {
    typealias Given = KVPressMethodTests.GivenVectors

    /// Both heads hold `keys`; every query head of each token gets that token's query.
    static func vectors(keys: [[Float]], values: [[Float]]? = nil, queries: [[Float]] = [], angle: Double = 0) -> Given {
        let given = Given(keys: [keys, keys], values: values.map { [$0, $0] }, angle: angle)
        let rows = queries.flatMap { q in (0..<4).flatMap { _ in q } }
        rows.withUnsafeBufferPointer { given.queries.append($0.baseAddress!, count: queries.count, firstRotary: 0, scale: 1, limit: .max) }
        return given
    }

    static func kept(_ method: String, _ vectors: Given) throws -> [Int] {
        let kept = KVPressMethodTests.finish(try KVPressMethodTests.policy(method), vectors: vectors)
        #expect(kept[0] == kept[1])
        #expect(vectors.queries.count == 0, "the press empties the queries it read")
        return kept[0]
    }

    @Test func expectedAttentionRanksByTheMeanQueryWithoutTheSinksQueries() throws {
        // The first query (a sink's) points along y; the rest along x, so keys along x stay.
        let keys: [[Float]] = [[0, 0], [1, 5], [3, 0], [2, 9], [-1, 0], [0.5, 0]]
        let queries: [[Float]] = [[0, 100]] + Array(repeating: [1, 0], count: 5)
        let method = "kvpress:expectedattention,n_sink=1,use_covariance=false,use_vnorm=false,budget=3"
        #expect(try Self.kept(method, Self.vectors(keys: keys, queries: queries)) == [0, 2, 3])
    }

    @Test func expectedAttentionAddsTheQueriesCovariance() throws {
        // Queries ±y: mean 0, variance along y only, so the keys with the largest |y| stay.
        let keys: [[Float]] = [[5, 0], [0, 1], [0, -3], [4, 0], [0, 2], [1, 0]]
        let queries: [[Float]] = (0..<6).map { [0, $0 % 2 == 0 ? 1 : -1] }
        let method = "kvpress:expectedattention,n_sink=0,use_vnorm=false,budget=2"
        #expect(try Self.kept(method, Self.vectors(keys: keys, queries: queries)) == [2, 4])
    }

    @Test func expectedAttentionScalesByValueNorms() throws {
        // Zero queries attend uniformly: the value norms decide.
        let keys = Array(repeating: [Float](repeating: 1, count: 2), count: 6)
        let values: [[Float]] = [[1, 0], [0, 3], [2, 0], [0, 0.5], [4, 0], [0, 1]]
        let method = "kvpress:expectedattention,n_sink=0,use_covariance=false,budget=2"
        #expect(try Self.kept(method, Self.vectors(keys: keys, values: values, queries: Array(repeating: [0, 0], count: 6))) == [1, 4])
    }

    @Test func expectedAttentionAveragesRoPEOverTheFuturePositions() throws {
        // RoPE turns by π/2 per position. Four queries, (1, 0) before RoPE, recorded after it (their
        // mean is 0); positions 4 and 5 average to (I + R(π/2))/2, so the mean becomes (½, ½).
        let queries: [[Float]] = (0..<4).map { t in [Float(cos(Double(t) * .pi / 2)), Float(sin(Double(t) * .pi / 2))] }
        let keys: [[Float]] = [[3, 0], [0, 3], [2, 2], [1, 0], [0, 1]]
        let method = "kvpress:expectedattention,n_sink=0,n_future_positions=2,use_covariance=false,use_vnorm=false,budget=1"
        #expect(try Self.kept(method, Self.vectors(keys: keys, queries: queries, angle: .pi / 2)) == [2])
    }

    @Test func lagkvScoresEachPartitionAgainstTheNext() throws {
        // Sink 0; partition 1...2 against 3...4 (range 0...1 per channel); 3...5 (last partition and
        // remainder) stay. Entry 2 scales to (0, 1), entry 1 to (½, ½): entry 2 varies more and stays.
        let keys: [[Float]] = [[9, 9], [0.5, 0.5], [0, 1], [0, 0], [1, 1], [5, 5]]
        #expect(try Self.kept("kvpress:lagkv,n_sink=1,lag_size=2,budget=5", Self.vectors(keys: keys, values: keys)) == [0, 2, 3, 4, 5])
        // Shorter than n_sink + 2 · lag_size: the sink and the newest.
        #expect(try Self.kept("kvpress:lagkv,n_sink=1,lag_size=4,budget=3", Self.vectors(keys: keys, values: keys)) == [0, 4, 5])
    }

    @Test func curNormalizesSquaredNormsPerLocalWindow() throws {
        // k² = 1, 9 | 100, 100 | 4, 4 in windows of 2: entry 1 has 0.9 of its window, the most.
        let keys: [[Float]] = [[1, 0], [3, 0], [10, 0], [0, 10], [2, 0], [0, 2]]
        #expect(try Self.kept("kvpress:cur,num_sinks=0,leverage_type=key,local_window_size=2,budget=1", Self.vectors(keys: keys)) == [1])
        // Without windows the largest norms (tied: the newer), and a sink always stays.
        #expect(try Self.kept("kvpress:cur,num_sinks=0,leverage_type=key,use_local_approximation=false,budget=1", Self.vectors(keys: keys)) == [3])
        #expect(try Self.kept("kvpress:cur,num_sinks=1,leverage_type=key,use_local_approximation=false,budget=2", Self.vectors(keys: keys)) == [0, 3])
    }

    @Test func leverageKeepsOutlyingKeysBeforeRoPE() throws {
        // Four keys on the x axis and one just off it: that one alone spans y (leverage 0.8), then
        // the far ones on x (0.45). Keys are given after RoPE (0.7 rad per position).
        let before: [[Float]] = [[-1, 0], [1, 0], [-2, 0], [2, 0], [0, 0.1]]
        let keys = before.enumerated().map { i, k in
            let a = 0.7 * Double(i)
            return [k[0] * Float(cos(a)) - k[1] * Float(sin(a)), k[0] * Float(sin(a)) + k[1] * Float(cos(a))]
        }
        #expect(try Self.kept("kvpress:leveragescore,budget=1", Self.vectors(keys: keys, angle: 0.7)) == [4])
        #expect(try Self.kept("kvpress:leveragescore,budget=3", Self.vectors(keys: keys, angle: 0.7)) == [2, 3, 4])
    }

    @Test func nonCausalAttentionStaysInsideEachChunk() throws {
        // Chunks 0...2 and 3...5; every query along x: each chunk's queries pick its key along x
        // (0, then 4), pooled over 3 entries: 1 and 4 receive a whole chunk's attention, then 0
        // (its chunk's 2.96 and 0.02), 3 (0.02 + 0.05 + 2.89), 5 (2.89 + 0.05).
        let keys: [[Float]] = [[5, 0], [0, 0], [0, 0], [0, 0], [4, 0], [0, 0]]
        let values = Array(repeating: [Float(1), 0], count: 6)
        let queries = Array(repeating: [Float(1), 0], count: 6)
        #expect(try Self.kept("kvpress:noncausalattn,chunk_size=3,budget=4", Self.vectors(keys: keys, values: values, queries: queries)) == [0, 1, 3, 4])
    }

    @Test func compactorProtectsItsSinksAndBlendsLeverageIn() throws {
        let keys: [[Float]] = [[5, 0], [0, 1], [1, 2], [0, 0.5], [4, 0], [2, 2]]
        let values = Array(repeating: [Float(1), 0], count: 6)
        let queries: [[Float]] = [[1, 0], [0, 1], [1, 1], [1, 0], [0, 1], [1, 0]]
        let given = { Self.vectors(keys: keys, values: values, queries: queries) }
        #expect(try Self.kept("kvpress:compactor,sink_size_start=2,sink_size_end=1,budget=3", given()) == [0, 1, 5])
        // Blending 0 is the non-causal attention alone.
        for budget in 1...5 {
            #expect(try Self.kept("kvpress:compactor,sink_size_start=0,sink_size_end=0,chunk_size=4,blending=0,budget=\(budget)", given())
                    == Self.kept("kvpress:noncausalattn,chunk_size=4,budget=\(budget)", given()))
        }
    }

    @Test func scorerPressesParseWithKvpressNames() throws {
        #expect(try EvictionMethod(parsing: "kvpress:expectedattention").description
                == "kvpress:expectedattention,n_future_positions=512,n_sink=4,use_covariance=true,use_vnorm=true,epsilon=0,ratio=0.5")
        #expect(try EvictionMethod(parsing: "kvpress:compactor,blending=0.3,ratio=0.25").description
                == "kvpress:compactor,sink_size_start=8,sink_size_end=4,chunk_size=256,blending=0.3,ratio=0.25")
        #expect(try EvictionMethod(parsing: "kvpress:cur,budget=8").description
                == "kvpress:cur,num_sinks=4,leverage_type=kv_product,use_local_approximation=true,local_window_size=16,budget=8")
        #expect(try EvictionMethod(parsing: "kvpress:decoding,scorer=expectedattention,n_sink=0,target_size=64").description
                == "kvpress:decoding,scorer=expectedattention,n_future_positions=512,n_sink=0,use_covariance=true,use_vnorm=true,epsilon=0,"
                + "compression_interval=512,target_size=64")
        #expect(throws: MethodSpecError("kvpress:cur: leverage_type=both is not one of key, value, kv_avg, kv_product")) {
            try EvictionMethod(parsing: "kvpress:cur,leverage_type=both")
        }
        #expect(throws: MethodSpecError("kvpress:leveragescore: unknown parameter 'sketch_dimension' (known: ratio, budget, bytes)")) {
            try EvictionMethod(parsing: "kvpress:leveragescore,sketch_dimension=48")
        }
    }

    /// In the real cache on the embedded model: exact budgets, physical frees, the recorded
    /// queries dropped once read, bit-identical replays, ExpectedAttention during decode.
    @Test(arguments: ["kvpress:expectedattention,ratio=0.5", "kvpress:lagkv,lag_size=8,budget=20", "kvpress:leveragescore,ratio=0.75",
                      "kvpress:cur,bytes=200000", "kvpress:noncausalattn,chunk_size=16,ratio=0.25", "kvpress:compactor,chunk_size=16,ratio=0.5",
                      "kvpress:adakv,scorer=expectedattention,ratio=0.5", "kvpress:criticalkv,use_vnorm=false,ratio=0.5",
                      "kvpress:criticaladakv,scorer=knorm,ratio=0.5"])
    func pressesKeepTheirBudgetInTheCache(policy: String) throws {
        let run = try KVPressCacheTests.run(policy)
        let n = try run.submit(prompt: KVPressCacheTests.prompt).tokens.count
        guard case .kvpress(let press) = try EvictionMethod(parsing: policy).kind else { Issue.record("not a kvpress method"); return }
        let layout = run.cache.layout
        for layer in 0..<layout.layerCount {
            let expected = KVPressMethodTests.keptCount(press, layer: layer, of: n, layout: layout)
            let counts = (0..<layout.kvHeadCount).map { run.cache.entryCount(layer: layer, head: $0) }
            if press.press == .adakv || press.press == .criticaladakv {
                #expect(counts.reduce(0, +) == expected * layout.kvHeadCount)
            } else {
                #expect(counts == Array(repeating: expected, count: layout.kvHeadCount))
            }
        }
        KVPressCacheTests.expectFreed(run.cache)
        #expect(run.cache.recordedQueryCount == 0)
        _ = try LiveRunTests.generate(run, 3)
        #expect(run.cache.recordedQueryCount == 0, "prompt presses record nothing during decode")
    }

    @Test func expectedAttentionCompressesDuringDecodeAndReplays() throws {
        let policy = "kvpress:decoding,scorer=expectedattention,n_sink=0,compression_interval=4,target_size=20"
        var checkpoints: [Checkpoint] = []
        for _ in 0..<2 {
            let run = try KVPressCacheTests.run(policy)
            let n = try run.submit(prompt: KVPressCacheTests.prompt).tokens.count
            #expect(run.cache.entryCount(layer: 0, head: 0) == n)
            #expect(run.cache.recordedQueryCount == 0, "DecodingPress ignores the prompt's queries")
            _ = try LiveRunTests.generate(run, 3)
            #expect(run.cache.recordedQueryCount == 3 * run.cache.layout.layerCount)
            _ = try LiveRunTests.generate(run, 1)
            #expect(run.cache.entryCount(layer: 0, head: 0) == 20)
            #expect(run.cache.recordedQueryCount == 0)
            _ = try LiveRunTests.generate(run, 6)
            checkpoints.append(run.checkpoint())
        }
        #expect(checkpoints[0].cacheDigest == checkpoints[1].cacheDigest)
        #expect(checkpoints[0].logitsDigest == checkpoints[1].logitsDigest)
    }
}

extension KVPressScorerTests {
    @Test func criticalkvKeepsTheScorersBestThenWeighsValuesThroughTheOutputProjection() throws {
        // CUR on keys alone scores k² / Σk²: entry 4 is the best by its own score. The output
        // projection reads only value channel 0 of each query head, so ‖v·W_o‖₁ is |v₀|: by
        // k²·|v₀| (1, 36, 0, 128, −, 0) entries 3 and 1 take the rest.
        let keys: [[Float]] = [[1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [0.5, 0]]
        let values: [[Float]] = [[1, 0], [9, 0], [0, 9], [8, 0], [2, 0], [0, 0]]
        // Model dim 1 × (2 KV heads · 2 query heads · 2 channels).
        let projection: [Float] = [1, 0, 1, 0, 1, 0, 1, 0]
        let method = "kvpress:criticalkv,scorer=cur,num_sinks=0,leverage_type=key,use_local_approximation=false,budget=3"
        // n_kept 3; the first stage keeps max(1, ⌊3 · 0.5⌋) = 1 by CUR alone.
        #expect(try Self.kept(method, Given(keys: [keys, keys], values: [values, values], projection: projection)) == [1, 3, 4])
        // Without the projection (a cache not given the weights) the scorer alone decides.
        #expect(try Self.kept(method, Given(keys: [keys, keys], values: [values, values])) == [2, 3, 4])
    }
}

extension KVPressScorerTests {
    @Test func criticaladakvSharesTheBudgetAcrossHeadsThenWeighsValues() throws {
        // CUR on keys alone: head 0 scores k² / 55.25, head 1 ties at 1/6 everywhere. budget=3:
        // one safe entry per head (4; the newest tie, 5); the layer's 6 best then give head 0
        // entries 4 and 3 (budget 2), head 1 the newest four (budget 4), as AdaKV would.
        let keys: [[[Float]]] = [[[1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [0.5, 0]], Array(repeating: [1, 0], count: 6)]
        let values: [[[Float]]] = [[[1, 0], [9, 0], [0, 9], [0.1, 0], [2, 0], [0, 0]], [[5, 0], [0, 1], [3, 0], [1, 0], [0, 0], [0, 0]]]
        let projection: [Float] = [1, 0, 1, 0, 1, 0, 1, 0]
        let method = "kvpress:criticaladakv,scorer=cur,num_sinks=0,leverage_type=key,use_local_approximation=false,budget=3"
        // Stage 1 keeps ⌊budget / 2⌋ (at least the safe one) by CUR: 4; 5 and 4. The rest by
        // score · |v₀|: head 0's entry 1 (0.65) over 3 (0.03); head 1's 0 (0.83) and 2 (0.5).
        let given = Given(keys: keys, values: values, projection: projection)
        #expect(KVPressMethodTests.finish(try KVPressMethodTests.policy(method), vectors: given) == [[1, 4], [0, 2, 4, 5]])
        // Without the projection the scorer alone fills the budgets.
        #expect(KVPressMethodTests.finish(try KVPressMethodTests.policy(method), vectors: Given(keys: keys, values: values)) == [[3, 4], [2, 3, 4, 5]])
        #expect(try EvictionMethod(parsing: "kvpress:criticaladakv,scorer=knorm,alpha_safeguard=0.5").description
                == "kvpress:criticaladakv,scorer=knorm,alpha_safeguard=0.5,epsilon=0.0001,first_stage_ratio=0.5,ratio=0.5")
    }
}
