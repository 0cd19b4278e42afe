import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Testing

/// The `think` modifier (ThinK key-channel pruning): its syntax, the channel choice on hand-built
/// keys and queries, exact storage, composition with eviction, quantization and sparse reads, and
/// switching it mid-stream.
@Suite struct ThinKTests {
    typealias Q = KVQuantCacheTests

    /// One step on every layer with the given keys, values and queries (per KV head, per query
    /// head); returns the whole attention output of the last layer and the ledger of its attention.
    @discardableResult
    static func step(_ cache: PagedKVCache, position: Int, keys: [Float], values: [Float], queries: [Float]) -> (output: [Float], ledger: IOLedger) {
        var output = [Float](repeating: 0, count: queries.count)
        var ledger = IOLedger()
        for layer in 0..<cache.layout.layerCount {
            var appendLedger = IOLedger()
            cache.append(layer: layer, position: position, keys: keys, values: values, ledger: &appendLedger)
            ledger = IOLedger()
            cache.attend(layer: layer, position: position, queries: queries, output: &output, ledger: &ledger)
        }
        return (output, ledger)
    }

    static func residency(payload: Int = 0, quantized: Int = 0, metadata: Int = 0, residual: Int = 0, slack: Int, state: Int) -> KVResidency {
        var r = Q.residency(payload: quantized, metadata: metadata, residual: residual, slack: slack, state: state)
        r.fullPrecisionPayload = payload
        return r
    }

    // MARK: - Syntax

    @Test func thinkParsesAsAModifierAndPrintsCanonically() throws {
        #expect(try EvictionMethod(parsing: "full+think").description == "full+think:lambda=0.5,observation=16")
        #expect(try EvictionMethod(parsing: "snapkv:budget=128+think:lambda=0.25").description
                == "snapkv:budget=128,observation=16,pool=7+think:lambda=0.25,observation=16")
        let method = try EvictionMethod(parsing: "h2o:heavy=8,recent=8+think:observation=4,lambda=0.75+merge")
        #expect(method.description == "h2o:heavy=8,recent=8+merge+think:lambda=0.75,observation=4")
        #expect(method.think == ThinK(lambda: 0.75, observation: 4) && method.merge)
        #expect(try EvictionMethod(parsing: method.description) == method)
        #expect(EvictionMethod.full.think == nil)
        #expect(!EvictionMethod.names.contains("think") && EvictionMethod.modifierNames == ["merge", "think"])
    }

    @Test(arguments: [
        ("full+think:lambda=0", "think: lambda=0 must be above 0 and below 1"),
        ("full+think:lambda=1", "think: lambda=1 must be above 0 and below 1"),
        ("full+think:lambda=1.5", "think: lambda=1.5 is outside 0...1"),
        ("full+think:observation=65", "think: observation=65 is outside 1...64"),
        ("full+think:ratio=0.5", "think: unknown parameter 'ratio' (known: lambda, observation)"),
        ("full+think+think", "think is given twice"),
        ("think", "unknown eviction method 'think' (full, window, streaming, h2o, a2sf, tova, scissorhands, snapkv, pyramidkv, adakv, cam, headkv, knorm, random, duo)"),
    ])
    func badThinkStringsSayWhat(text: String, message: String) {
        #expect(throws: MethodSpecError(message)) { try EvictionMethod(parsing: text) }
    }

    /// Pruning channels needs keys stored as attention scores them.
    @Test func thinkRefusesKeyFramesItCannotPrune() throws {
        let think = try EvictionMethod(parsing: "full+think")
        try think.check(quant: try KVQuantMethod(parsing: "kivi+outliers+nuq"))
        try EvictionMethod.full.check(quant: try KVQuantMethod(parsing: "kivi+rotate"))
        #expect(throws: MethodSpecError("think prunes key channels as attention scores them; it does not combine with rotate")) {
            try think.check(quant: try KVQuantMethod(parsing: "q8_0+rotate"))
        }
        #expect(throws: MethodSpecError("think prunes key channels as attention scores them; it does not combine with prerope")) {
            try think.check(quant: try KVQuantMethod(parsing: "fp32+prerope"))
        }
    }

    // MARK: - The channel choice

    @Test func keptChannelsFollowKvpressRounding() {
        #expect([0.25, 0.5, 0.75].map { ThinK(lambda: $0, observation: 16).keptChannelCount(headDim: 32) } == [24, 16, 8])
        #expect(ThinK(lambda: 0.3, observation: 16).keptChannelCount(headDim: 10) == 7)
        #expect(ThinK(lambda: 0.01, observation: 16).keptChannelCount(headDim: 32) == 32)
        #expect(ThinK(lambda: 0.99, observation: 16).keptChannelCount(headDim: 8) == 1)
    }

    @Test func selectionKeepsTheBestScoresAndTheLowerChannelOnTies() {
        let scores: [Float] = [1, 3, 3, 0, 2, 2]
        func select(_ keep: Int) -> [Int32] {
            var channels = [Int32](repeating: -1, count: scores.count)
            ThinK.selectChannels(scores: scores, count: scores.count, keep: keep, into: &channels)
            return Array(channels.prefix(keep))
        }
        #expect(select(3) == [1, 2, 4])
        #expect(select(1) == [1])
        #expect(select(5) == [0, 1, 2, 4, 5])
        var out = [Float](repeating: 0, count: 3)
        ThinK.scoreChannels(querySquares: [4, 9, 0], keySquares: [9, 1, 25], count: 3, into: &out)
        #expect(out == [6, 3, 0])
    }

    /// Hand-built: channel scores ‖Q_c‖·‖K_c‖ over two queries of a two-head group are
    /// [2, 2, 2, 0, 2, 4, 2, 2]; the four kept are channel 5 and, of the tied ones, 0, 1 and 2.
    /// Channel 3 has the largest keys but no query weight; channel 5's weight comes from the
    /// second query head alone.
    static let k0: [Float] = [2, 1, 0, 3, 1, 0, 2, 0], k1: [Float] = [0, 0, 2, 0, 0, 1, 0, 4]
    static let q0: [Float] = [1, 2, 0, 0, 0, 0, 0, 0.5] + [0, 0, 0, 0, 0, 4, 0, 0]
    static let q1: [Float] = [0, 0, 1, 0, 2, 0, 1, 0] + [0, 0, 0, 0, 0, 0, 0, 0]
    static let values: [[Float]] = [[1, 2, 3, 4, 5, 6, 7, 8], [-1, 0, 2, 0, 1, 3, 0, -2], [0.5, 0.5, -1, 4, 0, 2, 1, 1]]

    @Test func handBuiltKeysAndQueriesPruneTheKnownChannels() throws {
        let layout = Q.layout(headDim: 8, group: 2, capacity: 64)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "full+think:lambda=0.5,observation=2"))
        Self.step(cache, position: 0, keys: Self.k0, values: Self.values[0], queries: Self.q0)
        // One entry of 32 + 32 B in a 16-slot page; 4 B of position.
        #expect(cache.keptChannels(layer: 0, head: 0) == nil && cache.keyWidth == 8)
        #expect(cache.residency == Self.residency(payload: 64, slack: 15 * 64, state: 4))
        // The second query completes the window: think acts at the end of this step.
        Self.step(cache, position: 1, keys: Self.k1, values: Self.values[1], queries: Self.q1)
        #expect(cache.keptChannels(layer: 0, head: 0) == [0, 1, 2, 5])
        #expect(cache.keysPruned && cache.keyWidth == 4)
        // Keys of 4 channels (16 B) beside 32 B values in a page of 16 × 48 B; 4 kept indices of 4 B.
        #expect(cache.residency == Self.residency(payload: 2 * 16 + 2 * 32, slack: 14 * 48, state: 2 * 4 + 4 * 4))
        #expect(cache.allocatedBytes == 16 * 48)
        #expect(cache.entry(layer: 0, head: 0, 0).key == [2, 1, 0, 0, 0, 0, 0, 0])
        #expect(cache.entry(layer: 0, head: 0, 1).key == [0, 0, 2, 0, 0, 1, 0, 0])
        #expect(cache.entry(layer: 0, head: 0, 1).value == Self.values[1])
    }

    /// After pruning, attention is softmax(q·k over the kept channels / √d)·V, and reading a key
    /// counts only its stored channels.
    @Test func attentionReadsTheKeptChannelsOnly() throws {
        let layout = Q.layout(headDim: 8, group: 2, capacity: 64)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "full+think:lambda=0.5,observation=2"))
        Self.step(cache, position: 0, keys: Self.k0, values: Self.values[0], queries: Self.q0)
        Self.step(cache, position: 1, keys: Self.k1, values: Self.values[1], queries: Self.q1)
        let k2: [Float] = [1, -1, 2, 5, 5, 0.5, 5, 5]
        let q2: [Float] = [0.5, -1, 1, 3, 3, 2, 3, 3] + [1, 0.25, -0.5, -3, 2, 1, 1, 4]
        let (output, ledger) = Self.step(cache, position: 2, keys: k2, values: Self.values[2], queries: q2)
        let kept = [0, 1, 2, 5], keys = [Self.k0, Self.k1, k2]
        for g in 0..<2 {
            let scores = keys.map { key in kept.reduce(Float(0)) { $0 + q2[g * 8 + $1] * key[$1] } / Float(8).squareRoot() }
            let top = scores.max()!
            let weights = scores.map { expf($0 - top) }
            let total = weights.reduce(0, +)
            for c in 0..<8 {
                let expected = (0..<3).reduce(Float(0)) { $0 + weights[$1] / total * Self.values[$1][c] }
                #expect(abs(output[g * 8 + c] - expected) < 1e-6, "query head \(g), channel \(c)")
            }
        }
        #expect(ledger.bytesRead(.keys) == 3 * 4 * 4)
        #expect(ledger.bytesRead(.values) == 3 * 8 * 4)
    }

    /// At the end of a batched prompt the window is the prompt's last `observation` queries: a
    /// query before it does not count.
    @Test func aPromptEndUsesItsLastQueries() throws {
        let layout = Q.layout(headDim: 8, group: 2, capacity: 64)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "full+think:lambda=0.5,observation=2"))
        let ones = [Float](repeating: 1, count: 8), zero = [Float](repeating: 0, count: 8)
        func e(_ c: Int, _ x: Float) -> [Float] { (0..<8).map { $0 == c ? x : 0 } }
        let queries: [[Float]] = [e(3, 10) + zero, e(6, 2) + e(1, 1), zero + e(7, 3)]
        var ledger = IOLedger()
        cache.beginPrefill(end: 3)
        for position in 0..<3 { cache.append(layer: 0, position: position, keys: ones, values: ones, ledger: &ledger) }
        var output = [Float](repeating: 0, count: 16)
        for position in 0..<3 { cache.attend(layer: 0, position: position, queries: queries[position], output: &output, ledger: &ledger) }
        #expect(!cache.keysPruned)
        cache.endPrefill(ledger: &ledger)
        // Scores 0 but for channels 7 (3), 6 (2) and 1 (1); the fourth is the lowest of the ties.
        #expect(cache.keptChannels(layer: 0, head: 0) == [0, 1, 6, 7])
    }

    /// SnapKV acts first at a prompt's end; think then weighs the keys SnapKV kept.
    @Test func thinkScoresTheKeysSnapKVKept() throws {
        let layout = Q.layout(headDim: 16, kvHeads: 2, group: 2, capacity: 64)
        let snap = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "snapkv:budget=16,observation=4,pool=3"))
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "snapkv:budget=16,observation=4,pool=3+think:lambda=0.5,observation=4"))
        for c in [snap, cache] {
            var ledger = IOLedger()
            c.beginPrefill(end: 40)
            for position in 0..<40 {
                let step = Q.data(layout, position: position, seed: 9)
                c.append(layer: 0, position: position, keys: step.keys, values: step.values, ledger: &ledger)
            }
            var output = [Float](repeating: 0, count: 64)
            for position in 0..<40 { c.attend(layer: 0, position: position, queries: Q.data(layout, position: position, seed: 9).queries, output: &output, ledger: &ledger) }
            c.endPrefill(ledger: &ledger)
        }
        for head in 0..<2 {
            #expect(cache.keptPositions(layer: 0, head: head) == snap.keptPositions(layer: 0, head: head))
            var querySquares = [Float](repeating: 0, count: 16), keySquares = querySquares
            for position in 36..<40 {
                let queries = Q.data(layout, position: position, seed: 9).queries
                for c in 0..<16 { querySquares[c] += (0..<2).reduce(0) { $0 + queries[(head * 2 + $1) * 16 + c] * queries[(head * 2 + $1) * 16 + c] } }
            }
            for i in 0..<16 {
                let key = snap.entry(layer: 0, head: head, i).key
                for c in 0..<16 { keySquares[c] += key[c] * key[c] }
            }
            let scores = (0..<16).map { querySquares[$0].squareRoot() * keySquares[$0].squareRoot() }
            let best = (0..<16).sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.prefix(8).sorted()
            #expect(cache.keptChannels(layer: 0, head: head) == best, "head \(head)")
            for i in 0..<16 {
                let pruned = cache.entry(layer: 0, head: head, i).key, key = snap.entry(layer: 0, head: head, i).key
                #expect((0..<16).allSatisfy { pruned[$0] == (best.contains($0) ? key[$0] : 0) })
            }
        }
    }

    // MARK: - Storage and composition

    /// 100 entries of headDim 32; think (λ = 0.5, window 4) acts after step 3 and keeps 16 channels.
    @Test(arguments: [
        // 50 key records of two entries (one 32-element block: 32 B codes + 2 B d), 8 per page
        // (6 unused); 100 value records of 34 B, 16 per page (12 unused); no fp32 left.
        ("q8_0", Self.residency(quantized: 50 * 32 + 100 * 32, metadata: 50 * 2 + 100 * 2, slack: 6 * 34 + 12 * 34, state: 400 + 16 * 4)),
        // K per channel over 16 channels: 2 records of 32 entries (16 × 32 × 2 bits = 128 B codes,
        // 16 × 4 B scales/zeros), 20 keys wait; V as without think. fp32: 36 keys of 64 B and 16
        // values of 128 B in 36 page slots of 192 B (20 dead values, 12 unused slots).
        ("kivi:bits=2,group=32,residual=16",
         Self.residency(quantized: 2 * 128 + 84 * 8, metadata: 2 * 64 + 84 * 4, residual: 36 * 64 + 16 * 128,
                        slack: 12 * 12 + 20 * 128 + 12 * 192, state: 400 + 16 * 4)),
        ("fp32", Self.residency(payload: 100 * (64 + 128), slack: 12 * 192, state: 400 + 16 * 4)),
    ])
    func residentBytesAreExactWithQuantization(method: String, expected: KVResidency) throws {
        let cache = PagedKVCache(layout: Q.layout(), eviction: try EvictionMethod(parsing: "full+think:lambda=0.5,observation=4"),
                                 quant: try KVQuantMethod(parsing: method))
        Q.run(cache, 0..<100) { Q.expectPooled(cache) }
        #expect(cache.keyWidth == 16)
        #expect(cache.residency == expected)
    }

    /// think with h2o (and merge), quantized records and sparse reads: storage stays exact while
    /// entries come and go, and sparse modes that read everything equal dense attention.
    @Test(arguments: ["fp32", "kivi:bits=4,group=8,residual=8", "q8_0", "q4_1", "fp8:scale=head", "mixed:group=8,residual=8+outliers+nuq"])
    func thinkComposesWithEvictionQuantizationAndSparseReads(method: String) throws {
        let quant = try KVQuantMethod(parsing: method)
        let layout = Q.layout(headDim: 16, layers: 2, kvHeads: 2, group: 2, capacity: 200)
        let think = "+think:lambda=0.5,observation=4"
        let dense = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "full" + think), quant: quant)
        let reference = Q.run(dense, 0..<90) { Q.expectPooled(dense) }
        for sparse in ["topk:k=200", "quest:page=16,budget=112", "threshold:theta=0"] {
            let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "full" + think),
                                     sparse: try SparseMethod(parsing: sparse), quant: quant)
            #expect(Q.maxDifference(Q.run(cache, 0..<90), reference) < 1e-5, "\(sparse)")
        }
        for eviction in ["h2o:heavy=12,recent=12", "window:window=20+merge", "knorm:budget=20"] {
            let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: eviction + think), quant: quant)
            let plain = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: eviction), quant: quant)
            let outputs = Q.run(cache, 0..<90) { Q.expectPooled(cache) }
            Q.run(plain, 0..<90)
            #expect(outputs.allSatisfy { $0.allSatisfy(\.isFinite) }, "\(eviction)")
            #expect(cache.entryCount(layer: 1, head: 1) == plain.entryCount(layer: 1, head: 1))
            // What holds data shrinks; page slack need not (records of ggml blocks straddling 8
            // channels group 4 entries, and up to 3 wait in an fp32 page).
            let stored = { (r: KVResidency) in r.fullPrecisionPayload + r.quantizedPayload + r.quantMetadata + r.residualWindow }
            #expect(stored(cache.residency) < stored(plain.residency), "\(eviction)")
            #expect(cache.keptChannels(layer: 1, head: 0)?.count == 8)
            cache.reset()
            #expect(cache.allocatedBytes == 0 && !cache.keysPruned)
        }
    }

    // MARK: - Mid-stream

    /// Switching think on prunes at once on the most recent window of queries; switching it off
    /// stores keys at full width again with the pruned channels still zero. Quantized values are
    /// left as they are.
    @Test func switchingMidStream() throws {
        let layout = Q.layout(headDim: 16, kvHeads: 2, group: 2, capacity: 128)
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "kivi:bits=4,group=4,residual=4"))
        Q.run(cache, 0..<20)
        let before = (0..<20).map { cache.entry(layer: 0, head: 1, $0) }
        var ledger = IOLedger()
        cache.setEviction(try EvictionMethod(parsing: "full+think:lambda=0.5,observation=8"), ledger: &ledger)
        Q.expectPooled(cache)
        // By hand: head 1's queries at positions 12–19 and its 20 keys as they were read.
        var querySquares = [Float](repeating: 0, count: 16), keySquares = querySquares
        for position in 12..<20 {
            let queries = Q.data(layout, position: position, seed: 5).queries
            for c in 0..<16 { querySquares[c] += (0..<2).reduce(0) { $0 + queries[(2 + $1) * 16 + c] * queries[(2 + $1) * 16 + c] } }
        }
        for entry in before { for c in 0..<16 { keySquares[c] += entry.key[c] * entry.key[c] } }
        let scores = (0..<16).map { querySquares[$0].squareRoot() * keySquares[$0].squareRoot() }
        let kept = (0..<16).sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }.prefix(8).sorted()
        #expect(cache.keptChannels(layer: 0, head: 1) == kept)
        for i in 0..<20 {
            let entry = cache.entry(layer: 0, head: 1, i)
            // Values in records are untouched; keys are re-quantized over the kept channels.
            #expect(entry.value == before[i].value, "entry \(i)")
            #expect((0..<16).allSatisfy { kept.contains($0) || entry.key[$0] == 0 })
            #expect((0..<16).allSatisfy { !kept.contains($0) || abs(entry.key[$0] - before[i].key[$0]) < 0.3 })
        }
        Q.run(cache, 20..<40) { Q.expectPooled(cache) }
        let thin = cache.residency.total
        // λ 0.5 → 0.75 keeps a subset; 0.75 → 0.25 stores more channels, the ones pruned before stay zero.
        cache.setEviction(try EvictionMethod(parsing: "full+think:lambda=0.75,observation=8"), ledger: &ledger)
        let narrow = try #require(cache.keptChannels(layer: 0, head: 1))
        #expect(narrow.count == 4 && narrow.allSatisfy(kept.contains))
        cache.setEviction(try EvictionMethod(parsing: "full+think:lambda=0.25,observation=8"), ledger: &ledger)
        #expect(cache.keptChannels(layer: 0, head: 1)?.count == 12)
        for i in 0..<40 { #expect(cache.entry(layer: 0, head: 1, i).key.filter { $0 != 0 }.count <= 4) }
        Q.expectPooled(cache)
        cache.setEviction(.full, ledger: &ledger)
        #expect(!cache.keysPruned && cache.keyWidth == 16 && cache.keptChannels(layer: 0, head: 1) == nil)
        #expect(cache.residency.total > thin)
        Q.run(cache, 40..<50) { Q.expectPooled(cache) }
        for i in 0..<40 { #expect(cache.entry(layer: 0, head: 1, i).key.filter { $0 != 0 }.count <= 4) }
        #expect(cache.entry(layer: 0, head: 1, 45).key.filter { $0 != 0 }.count > 4)
    }

    /// Pruning counts what it moves: every key read once (scoring and re-storing share the read),
    /// the window's query squares, the narrower keys and the fp32 values written to new pages,
    /// and the kept indices.
    @Test func pruningCountsItsTraffic() throws {
        let layout = Q.layout(headDim: 8, capacity: 64)
        let cache = PagedKVCache(layout: layout)
        Q.run(cache, 0..<10)
        var ledger = IOLedger()
        cache.setEviction(try EvictionMethod(parsing: "full+think:lambda=0.5,observation=4"), ledger: &ledger)
        #expect(ledger.bytesRead(.keys) == 10 * 32 && ledger.bytesWritten(.keys) == 10 * 16)
        #expect(ledger.bytesRead(.values) == 10 * 32 && ledger.bytesWritten(.values) == 10 * 32)
        #expect(ledger.bytesRead(.activations) == 4 * 32)
        #expect(ledger.bytesWritten(.policyState) == 4 * 4)
    }

    /// Changing the quantization while keys are pruned keeps them pruned, in the new format.
    @Test func changingTheQuantizationKeepsKeysPruned() throws {
        let layout = Q.layout(headDim: 16, kvHeads: 2, group: 2, capacity: 128)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "h2o:heavy=16,recent=16+think:lambda=0.5,observation=4"))
        Q.run(cache, 0..<40)
        let kept = try #require(cache.keptChannels(layer: 0, head: 0))
        var ledger = IOLedger()
        for method in ["q8_0", "kivi:bits=2,group=8,residual=8", "fp32"] {
            cache.setKVQuant(try KVQuantMethod(parsing: method), ledger: &ledger)
            Q.expectPooled(cache, "\(method)")
            #expect(cache.keptChannels(layer: 0, head: 0) == kept)
            for i in 0..<32 {
                let key = cache.entry(layer: 0, head: 0, i).key
                #expect((0..<16).allSatisfy { kept.contains($0) || key[$0] == 0 })
            }
            Q.run(cache, 40..<48) { Q.expectPooled(cache, "\(method)") }
        }
    }

    // MARK: - A real model

    /// The embedded model on a short text: think keeps the NLL near the full cache's and stores
    /// keys of (1 − λ) of the channels.
    @Test func thinkOnTheEmbeddedModel() throws {
        let model = try EmbeddedModelTests.loaded()
        let text = String(repeating: "ROMEO:\nBut, soft! what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n\n", count: 4)
        let ids = model.tokenizer.encode(text)
        let full = try StreamingEvaluator(weights: model.weights, eviction: .full, withGhost: false).evaluate(ids, prefill: 64)
        var previous = full.peakResidentKVBytes
        for lambda in ["0.25", "0.5", "0.75"] {
            let method = try EvictionMethod(parsing: "full+think:lambda=\(lambda)")
            let summary = try StreamingEvaluator(weights: model.weights, eviction: method, withGhost: false).evaluate(ids, prefill: 64)
            #expect(summary.meanNLL.isFinite && summary.meanNLL < full.meanNLL + 0.5, "λ \(lambda): \(summary.meanNLL) vs \(full.meanNLL)")
            #expect(summary.peakResidentKVBytes < previous)
            previous = summary.peakResidentKVBytes
        }
    }
}
