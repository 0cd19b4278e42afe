import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Testing

/// The KVQuant / RotateKV options (`prerope`, `rotate`, `outliers`, `nuq`) and `mixed`: syntax,
/// exact storage, what attention reads, composition and switching.
@Suite struct KVQuantOptionTests {
    typealias Q = KVQuantCacheTests

    static func method(_ text: String) throws -> KVQuantMethod { try KVQuantMethod(parsing: text) }

    // MARK: - Syntax

    @Test func optionsParseAndPrintCanonically() throws {
        let all = try Self.method("KIVI:bits=2 + nuq + outliers:percent=2 + ROTATE:protect-sinks=4 + prerope")
        #expect(all.description == "kivi:bits=2,group=32,residual=128+prerope+rotate:protect-sinks=4+outliers:percent=2+nuq")
        #expect(all.preRoPE && all.rotate && all.protectedSinks == 4 && all.outlierPercent == 2 && all.nuq)
        #expect(try Self.method(all.description) == all)
        #expect(try Self.method("fp32+prerope").description == "fp32+prerope")
        #expect(try Self.method("fp32+rotate").description == "fp32+rotate:protect-sinks=0")
        #expect(try Self.method("q4_0+prerope").preRoPE)
        #expect(try Self.method("uniform+outliers").description
            == "uniform:kbits=4,vbits=4,kaxis=channel,vaxis=token,group=32,residual=128+outliers:percent=1")
        let plain = try Self.method("kivi")
        #expect(!plain.preRoPE && !plain.rotate && plain.outlierPercent == 0 && !plain.nuq && plain.mixed == nil)
        #expect(plain != (try Self.method("kivi+prerope")))
        let mixed = try Self.method("mixed:low=3,threshold=0.25")
        #expect(mixed.description == "mixed:high=8,low=3,group=32,residual=128,threshold=0.25")
        #expect(mixed.key == .uniform(bits: 8, axis: .channel, group: 32) && mixed.value == .uniform(bits: 8, axis: .token, group: 32))
        #expect(mixed.mixed == MixedPrecision(lowBits: 3, threshold: 0.25))
        #expect(try Self.method("mixed+outliers+nuq").description == "mixed:high=8,low=2,group=32,residual=128,threshold=1+outliers:percent=1+nuq")
    }

    @Test(arguments: [
        ("kivi+rotat", "unknown modifier 'rotat' for kivi (prerope, rotate, outliers, nuq)"),
        ("kivi+nuq+nuq", "nuq is given twice"),
        ("q4_0+outliers", "outliers needs a uniform method (uniform, kivi, mixed), not q4_0"),
        ("fp8+nuq", "nuq needs a uniform method (uniform, kivi, mixed), not fp8"),
        ("fp32+nuq", "nuq needs a uniform method (uniform, kivi, mixed), not fp32"),
        ("kivi+outliers:percent=0", "outliers: percent=0 is outside 0.01...100"),
        ("kivi+outliers:count=2", "outliers: unknown parameter 'count' (known: percent)"),
        ("kivi+prerope:on=1", "prerope: unknown parameter 'on' (it takes no parameters)"),
        ("kivi+rotate:protect-sinks=-1", "rotate: protect-sinks=-1 is outside 0...1048576"),
        ("mixed:high=2,low=4", "mixed: high=2 must be more bits than low=4"),
        ("mixed:residual=0", "mixed: residual=0 is outside 1...1048576"),
        ("mixed:threshold=-1", "mixed: threshold=-1 is outside 0...1048576"),
        ("prerope", "unknown KV quantization 'prerope' (fp32, uniform, kivi, mixed, q8_0, q4_0, q4_1, q5_0, q5_1, ggml, fp8)"),
    ])
    func badOptionStringsSayWhat(text: String, message: String) {
        #expect(throws: MethodSpecError(message)) { try KVQuantMethod(parsing: text) }
    }

    @Test func rotateNeedsPowerOfTwoHeads() throws {
        let rotate = try Self.method("kivi+rotate")
        #expect(throws: MethodSpecError("rotate needs a power-of-two head size; this model's is 48")) { try rotate.check(headDim: 48) }
        try rotate.check(headDim: 64)
        try Self.method("kivi").check(headDim: 48)
    }

    // MARK: - RoPE and rotation frames

    /// Runs decode steps where `data`'s keys are pre-RoPE: a cache that takes keys before RoPE
    /// gets them as they are, others rotated to their position (queries are always rotated).
    @discardableResult
    static func runRoPE(_ cache: PagedKVCache, _ positions: Range<Int>, seed: UInt64 = 5, check: () -> Void = {}) -> [[Float]] {
        let l = cache.layout
        let angles = RoPEAngles(l.ropes[0], headDim: l.headDim, style: l.ropeStyle, positions: l.capacity)
        var outputs: [[Float]] = []
        for position in positions {
            var step = Q.data(l, position: position, seed: seed)
            if !cache.keysBeforeRoPE {
                for h in 0..<l.kvHeadCount { step.keys.withUnsafeMutableBufferPointer { angles.rotate($0.baseAddress! + h * l.headDim, position: position) } }
            }
            for h in 0..<(l.kvHeadCount * l.groupSize) {
                step.queries.withUnsafeMutableBufferPointer { angles.rotate($0.baseAddress! + h * l.headDim, position: position) }
            }
            var output = [Float](repeating: 0, count: step.queries.count)
            var ledger = IOLedger()
            for layer in 0..<l.layerCount {
                cache.append(layer: layer, position: position, keys: step.keys, values: step.values, ledger: &ledger)
                cache.attend(layer: layer, position: position, queries: step.queries, output: &output, ledger: &ledger)
            }
            outputs.append(output)
            check()
        }
        return outputs
    }

    /// fp32 keys stored before RoPE (rotated on every read) or Hadamard-transformed attend as the
    /// plain fp32 cache, also when eviction, merging and sparse reads depend on the scores.
    @Test(arguments: ["", "h2o:heavy=12,recent=12", "window:window=20+merge", "scissorhands:budget=24,recent=4,drop=8"])
    func fp32FramesAttendAsPostRoPE(eviction: String) throws {
        let layout = Q.layout(headDim: 16, kvHeads: 2, group: 2)
        let policy = eviction.isEmpty ? EvictionMethod.full : try EvictionMethod(parsing: eviction)
        for sparse in ["dense", "quest:page=16,budget=32", "topk:k=10"] {
            let mode = try SparseMethod(parsing: sparse)
            let reference = Self.runRoPE(PagedKVCache(layout: layout, eviction: policy, sparse: mode), 0..<70)
            for option in ["fp32+prerope", "fp32+rotate", "fp32+prerope+rotate"] {
                let cache = PagedKVCache(layout: layout, eviction: policy, sparse: mode, quant: try Self.method(option))
                let outputs = Self.runRoPE(cache, 0..<70)
                // Quest's page bounds are taken in the Hadamard frame with `rotate`: they may pick other pages.
                if sparse.hasPrefix("quest") && option == "fp32+rotate" { continue }
                #expect(Q.maxDifference(outputs, reference) < 1e-5, "\(option) \(eviction) \(sparse)")
            }
        }
    }

    /// The real model: logits with keys stored before RoPE, or rotated, equal the plain cache's
    /// through a batched prompt and decode steps, up to float rounding (sums run in another order
    /// over five layers).
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func engineWithPreRoPEKeysMatchesPostRoPE() throws {
        let weights = try #require(Fixtures.stories).weights
        let ids = Array(try #require(Reference.shared).greedy.ids.prefix(40))
        func logits(_ quant: KVQuantMethod) throws -> [Float] {
            let engine = InferenceEngine(weights: weights, cache: PagedKVCache(layout: KVLayout(config: weights.config), quant: quant))
            var all = try engine.prefill(Array(ids[..<16]), allLogits: true).logits
            for token in ids[16...] {
                try engine.decode(token)
                all += engine.logits
            }
            return all
        }
        let reference = try logits(.fp32)
        for option in ["fp32+prerope", "fp32+rotate", "fp32+prerope+rotate"] {
            let other = try logits(try Self.method(option))
            let difference = zip(other, reference).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            #expect(difference < 1e-4, "\(option): \(difference)")
        }
    }

    /// Pre-RoPE keys are quantized as they come, and RoPE is applied to the decoded key.
    @Test func preRoPEKeysAreQuantizedBeforeRoPE() throws {
        let layout = Q.layout(headDim: 8)
        let cache = PagedKVCache(layout: layout, quant: try Self.method("uniform:kbits=4,vbits=4,kaxis=token,vaxis=token,residual=2+prerope"))
        Self.runRoPE(cache, 0..<12)
        let codec = try #require(KVRecordCodec(format: .uniform(bits: 4, axis: .token, group: 32), headDim: 8))
        let angles = RoPEAngles(RoPE(theta: 10000), headDim: 8, style: .interleaved, positions: 12)
        var one: Float = 1
        for position in 0..<12 {
            var expected = Q.data(layout, position: position, seed: 5).keys
            if position < 10 {
                var record = [UInt8](repeating: 0, count: codec.recordBytes)
                codec.encode(expected, calibration: &one, into: &record)
                codec.decode(record, member: 0, calibration: &one, into: &expected)
            }
            angles.rotate(&expected, position: position)
            let stored = cache.entry(layer: 0, head: 0, position).key
            #expect(zip(stored, expected).allSatisfy { abs($0 - $1) < 1e-6 }, "position \(position)")
        }
    }

    /// Per-token 2-bit keys with one outlier channel: the Hadamard transform spreads it before
    /// quantization, so attention reads keys closer to the originals.
    @Test func rotationLowersTheErrorOfOutlierChannels() throws {
        let layout = Q.layout(headDim: 32, kvHeads: 2, group: 2)
        func run(_ quant: KVQuantMethod) -> [[Float]] {
            let cache = PagedKVCache(layout: layout, quant: quant)
            var outputs: [[Float]] = []
            for position in 0..<80 {
                var step = Q.data(layout, position: position, seed: 9)
                for h in 0..<2 { step.keys[h * 32 + 5] *= 5 }
                var output = [Float](repeating: 0, count: step.queries.count)
                var ledger = IOLedger()
                cache.append(layer: 0, position: position, keys: step.keys, values: step.values, ledger: &ledger)
                cache.attend(layer: 0, position: position, queries: step.queries.map { $0 / 3 }, output: &output, ledger: &ledger)
                outputs.append(output)
            }
            return outputs
        }
        let reference = run(.fp32)
        let base = "uniform:kbits=2,vbits=8,kaxis=token,vaxis=token,residual=0"
        let plain = Q.maxDifference(run(try Self.method(base)), reference)
        let rotated = Q.maxDifference(run(try Self.method(base + "+rotate")), reference)
        #expect(rotated < 0.6 * plain, "rotated \(rotated), plain \(plain)")
        // With fp32 storage the transform changes nothing.
        #expect(Q.maxDifference(run(try Self.method("fp32+rotate")), reference) < 1e-5)
    }

    /// `protect-sinks`: the first positions stay fp32, the others are quantized behind them.
    @Test func protectedSinksStayFullPrecision() throws {
        let layout = Q.layout(headDim: 8)
        let cache = PagedKVCache(layout: layout, quant: try Self.method("uniform:kbits=2,vbits=2,kaxis=token,vaxis=token,residual=3+rotate:protect-sinks=2"))
        Q.run(cache, 0..<10)
        for position in 0..<10 {
            let step = Q.data(layout, position: position, seed: 5), entry = cache.entry(layer: 0, head: 0, position)
            let exact = zip(entry.key, step.keys).allSatisfy { abs($0 - $1) < 1e-6 } && entry.value == step.values
            #expect(exact == (position < 2 || position >= 7), "position \(position)")
        }
        // 5 per-token records of 2 + 4 B per tensor (one page of 16); 5 entries at fp32.
        #expect(cache.residency == Q.residency(payload: 2 * 5 * 2, metadata: 2 * 5 * 4, residual: 2 * 5 * 32,
                                               slack: 2 * 11 * 6 + 11 * 64, state: 40))
        Q.expectPooled(cache)
    }

    // MARK: - Exact storage

    /// 100 entries of headDim 32 in one (layer, head), as `KVQuantCacheTests.residentBytesAreExact`.
    @Test(arguments: [
        // As plain kivi: frames change no byte.
        ("kivi:bits=2,group=32,residual=16+prerope+rotate",
         Q.residency(payload: 512 + 84 * 8, metadata: 256 + 84 * 4, residual: 52 * 128, slack: 12 * 12 + 20 * 128 + 12 * 256, state: 400)),
        // 5% of 32 channels: 2 outliers of 4 B per entry. K records: 32 × 2 × 4 = 256 B more each
        // (one per page); V records 8 + 4 + 8 = 20 B, 12 unused in the last page.
        ("kivi:bits=2,group=32,residual=16+outliers:percent=5",
         Q.residency(payload: 512 + 84 * 8, metadata: 2 * (128 + 256) + 84 * 12, residual: 52 * 128,
                     slack: 12 * 20 + 20 * 128 + 12 * 256, state: 400)),
        // nuq: the same records, plus 4 fp16 levels for the layer's keys and 4 for its values.
        ("kivi:bits=2,group=32,residual=16+nuq",
         Q.residency(payload: 512 + 84 * 8, metadata: 256 + 84 * 4 + 2 * 4 * 2, residual: 52 * 128,
                     slack: 12 * 12 + 20 * 128 + 12 * 256, state: 400)),
        // 4 protected sinks: 80 leave the window, K 2 groups of 32 (16 wait), V 80 records in 5 full pages;
        // fp32: 36 K halves (sinks, waiting, window) and 20 V halves in 36 page slots.
        ("kivi:bits=2,group=32,residual=16+rotate:protect-sinks=4",
         Q.residency(payload: 512 + 80 * 8, metadata: 256 + 80 * 4, residual: 56 * 128, slack: 16 * 128 + 12 * 256, state: 400)),
    ])
    func residentBytesAreExact(method: String, expected: KVResidency) throws {
        let cache = PagedKVCache(layout: Q.layout(), quant: try Self.method(method))
        Q.run(cache, 0..<100)
        #expect(cache.residency == expected)
        Q.expectPooled(cache)
    }

    /// A dense step reads each record's outliers with its scales and zeros, and each tensor's nuq
    /// levels once (as `KVQuantCacheTests.ledgerCountsPackedBytes`).
    @Test func ledgerCountsOutliersAndLevels() throws {
        let layout = Q.layout()
        let cache = PagedKVCache(layout: layout, quant: try Self.method("kivi:bits=2,group=32,residual=16+outliers:percent=5+nuq"))
        Q.run(cache, 0..<100)
        let ledger = Q.attendLedger(cache, layout, position: 100)
        // K: 2 records of 256 B codes and 128 + 32 × 2 × 4 B of metadata, 37 entries at fp32;
        // V: 85 records of 8 B codes and 4 + 2 × 4 B, 16 at fp32; 4 fp16 levels per tensor.
        #expect(ledger.bytesRead(.keys) == 37 * 128 + 2 * 256)
        #expect(ledger.bytesRead(.values) == 16 * 128 + 85 * 8)
        #expect(ledger.bytesRead(.quantMetadata) == 2 * 384 + 85 * 12 + 2 * 8)
    }

    /// `mixed` with zero queries: every step spreads attention evenly, so entry j has received
    /// `Σ_{t=j}^{j+R−1} 1/(t+1)` when it leaves a window of R = 4: 2.08 and 1.28 for the first two,
    /// then below 1. Key records of 4 entries leave 4 steps later: (0…3) has 2.59 (entry 0) and is
    /// high; (4…7) has at most 0.94 (entry 4), low, as are the later ones.
    @Test func mixedStoresEachRecordAtTheBitsItsScoreEarned() throws {
        let layout = Q.layout(headDim: 8)
        let cache = PagedKVCache(layout: layout, quant: try Self.method("mixed:high=8,low=2,group=4,residual=4,threshold=1"))
        for position in 0..<20 {
            let step = Q.data(layout, position: position, seed: 5)
            var output = [Float](repeating: 0, count: 8)
            var ledger = IOLedger()
            cache.append(layer: 0, position: position, keys: step.keys, values: step.values, ledger: &ledger)
            cache.attend(layer: 0, position: position, queries: [Float](repeating: 0, count: 8), output: &output, ledger: &ledger)
        }
        // K: 4 records of 4 entries (1 high: 32 B codes, 3 low: 8 B; 8 × 4 B of scales and zeros each),
        // 4 records per page. V: 16 records (2 high: 8 B, 14 low: 2 B; 2 groups × 4 B each), 16 per page.
        // 4 entries at fp32 in one page; state: position and received score per entry.
        let payload = 32 + 3 * 8 + 2 * 8 + 14 * 2
        let slack = 3 * 64 + 1 * 40 + 14 * 16 + 2 * 10 + 12 * 64
        #expect(cache.residency == Q.residency(payload: payload, metadata: 4 * 32 + 16 * 8, residual: 4 * 64, slack: slack, state: 20 * 8))
        Q.expectPooled(cache)
        // Each value reads back exactly as its lane's codec stores it.
        var one: Float = 1
        for position in 0..<16 {
            let value = Q.data(layout, position: position, seed: 5).values
            let codec = try #require(KVRecordCodec(format: .uniform(bits: position < 2 ? 8 : 2, axis: .token, group: 4), headDim: 8))
            var record = [UInt8](repeating: 0, count: codec.recordBytes)
            var decoded = [Float](repeating: 0, count: 8)
            codec.encode(value, calibration: &one, into: &record)
            codec.decode(record, member: 0, calibration: &one, into: &decoded)
            #expect(cache.entry(layer: 0, head: 0, position).value == decoded, "position \(position)")
        }
    }

    /// Outliers come back as their fp16 values; the rest within the error of the inlier range.
    @Test func outliersAreKeptExactlyAndNarrowTheRange() throws {
        let layout = Q.layout(headDim: 32)
        let cache = PagedKVCache(layout: layout, quant: try Self.method("uniform:kbits=4,vbits=4,kaxis=token,vaxis=token,residual=0+outliers:percent=5"))
        var appended: [[Float]] = []
        for position in 0..<20 {
            var step = Q.data(layout, position: position, seed: 7)
            step.keys[position % 32] = 40
            step.keys[(position * 7 + 3) % 32] -= 15
            appended.append(step.keys)
            var output = [Float](repeating: 0, count: 32)
            var ledger = IOLedger()
            cache.append(layer: 0, position: position, keys: step.keys, values: step.values, ledger: &ledger)
            cache.attend(layer: 0, position: position, queries: step.queries, output: &output, ledger: &ledger)
        }
        for (position, key) in appended.enumerated() {
            let stored = cache.entry(layer: 0, head: 0, position).key
            let outliers = key.indices.sorted { (abs(key[$0]), -$0) > (abs(key[$1]), -$1) }.prefix(2)
            let inliers = key.indices.filter { !outliers.contains($0) }.map { key[$0] }
            let step = (inliers.max()! - inliers.min()!) / 15
            for c in 0..<32 {
                if outliers.contains(c) {
                    #expect(stored[c] == Half.toFloat(Half.fromFloat(key[c])), "position \(position), outlier \(c)")
                } else {
                    #expect(abs(stored[c] - key[c]) <= step / 2 + 2e-3, "position \(position), channel \(c)")
                }
            }
        }
    }

    /// nuq fitted at the end of a batched prompt: the levels are Lloyd's on the prompt's normalized
    /// values, and every stored value is its group's zero plus one of them times its range.
    @Test func nuqFitsItsLevelsOnThePrompt() throws {
        let layout = Q.layout(headDim: 8, kvHeads: 2)
        let cache = PagedKVCache(layout: layout, quant: try Self.method("kivi:bits=2,group=4,residual=4+nuq"))
        var ledger = IOLedger()
        cache.beginPrefill(end: 24)
        for position in 0..<24 {
            let step = Q.data(layout, position: position, seed: 5)
            cache.append(layer: 0, position: position, keys: step.keys, values: step.values, ledger: &ledger)
        }
        #expect(cache.residency.quantMetadata == 0)
        cache.endPrefill(ledger: &ledger)
        // Levels of both heads' prompt values (per token: one group of 8 per entry), fitted once.
        let codec = try #require(KVRecordCodec(format: .uniform(bits: 2, axis: .token, group: 4), headDim: 8, nuq: true))
        var sample: [Float] = []
        for head in 0..<2 {
            for position in 0..<24 { sample += Q.data(layout, position: position, seed: 5).values[(head * 8)..<(head * 8 + 8)] }
        }
        var normalized = [Float](repeating: 0, count: sample.count)
        var n = 0
        normalized.withUnsafeMutableBufferPointer { buffer in
            for head in 0..<2 {
                n += codec.normalizedSample(Array(sample[(head * 192)..<(head * 192 + 192)]), entries: 24, into: buffer.baseAddress! + n)
            }
        }
        let levels = KVQuantizationTests.fit(Array(normalized[..<n]), bits: 2)
        for head in 0..<2 {
            for position in 0..<20 {
                let value = Array(sample[(head * 192 + position * 8)..<(head * 192 + position * 8 + 8)])
                var record = [UInt8](repeating: 0, count: codec.recordBytes)
                var decoded = [Float](repeating: 0, count: 8)
                codec.encode(value, calibration: levels, into: &record)
                codec.decode(record, member: 0, calibration: levels, into: &decoded)
                #expect(cache.entry(layer: 0, head: head, position).value == decoded, "head \(head), position \(position)")
            }
        }
        // 20 entries left the window: K 5 records of 4 (8 codes × 4 × 2 bits, 8 × 4 B), V 20 records (2 + 8 B);
        // levels: 4 × 2 B for the layer's keys and for its values.
        #expect(cache.residency.quantMetadata == 2 * (5 * 32 + 20 * 8) + 2 * 8)
    }

    /// On bell-shaped values nuq's levels beat the uniform grid at 2 bits.
    @Test func nuqLowersTheErrorOfNormalValues() throws {
        let layout = Q.layout(headDim: 32)
        var rng = Xoshiro256(seed: 17)
        func normal() -> Float {
            let u = Float.random(in: Float.ulpOfOne...1, using: &rng), v = Float.random(in: 0..<1, using: &rng)
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        let values = (0..<60).map { _ in (0..<32).map { _ in normal() } }
        func meanSquaredError(_ method: String) throws -> Float {
            let cache = PagedKVCache(layout: layout, quant: try Self.method(method))
            var ledger = IOLedger()
            cache.beginPrefill(end: 60)
            for (position, value) in values.enumerated() { cache.append(layer: 0, position: position, keys: value, values: value, ledger: &ledger) }
            cache.endPrefill(ledger: &ledger)
            return values.indices.reduce(0) { sum, p in
                sum + zip(cache.entry(layer: 0, head: 0, p).value, values[p]).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            } / Float(60 * 32)
        }
        let uniform = try meanSquaredError("kivi:bits=2,residual=0"), nuq = try meanSquaredError("kivi:bits=2,residual=0+nuq")
        #expect(nuq < 0.8 * uniform, "nuq \(nuq), uniform \(uniform)")
    }

    // MARK: - Composition and switching

    static let options = ["kivi:bits=2,group=8,residual=8+prerope", "kivi:bits=2,group=8,residual=8+rotate:protect-sinks=4",
                          "kivi:bits=2,group=8,residual=8+outliers:percent=10", "kivi:bits=2,group=8,residual=8+nuq",
                          "mixed:high=4,low=2,group=8,residual=8,threshold=0.5",
                          "mixed:group=8,residual=8+prerope+rotate:protect-sinks=2+outliers+nuq"]

    /// Eviction frees records of every option, resident bytes always equal what the pools handed
    /// out, and sparse modes that read everything equal dense attention.
    @Test(arguments: options)
    func optionsComposeWithEvictionAndSparseModes(option: String) throws {
        let quant = try Self.method(option)
        let layout = Q.layout(headDim: 16, layers: 2, kvHeads: 2, group: 2, capacity: 200)
        let full = PagedKVCache(layout: layout, quant: quant)
        let dense = Self.runRoPE(full, 0..<120) { Q.expectPooled(full) }
        let reference = Self.runRoPE(PagedKVCache(layout: layout), 0..<120)
        #expect(Q.maxDifference(dense, reference) < 0.6)
        let quest = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: "quest:page=16,budget=128"), quant: quant)
        #expect(Q.maxDifference(Self.runRoPE(quest, 0..<120), dense) < 1e-5)
        let h2o = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "h2o:heavy=16,recent=16"),
                               sparse: try SparseMethod(parsing: "quest:page=16,budget=32"), quant: quant)
        let outputs = Self.runRoPE(h2o, 0..<120) { Q.expectPooled(h2o) }
        #expect(outputs.allSatisfy { $0.allSatisfy(\.isFinite) })
        #expect(h2o.entryCount(layer: 1, head: 1) == 32)
        #expect(h2o.residency.total < full.residency.total)
        let merged = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "window:window=24+merge"), quant: quant)
        Self.runRoPE(merged, 0..<60) { Q.expectPooled(merged) }
        h2o.reset()
        #expect(h2o.allocatedBytes == 0)
    }

    /// Switching to and from each option mid-stream re-stores what is kept in the new frame and
    /// precision: decoded keys stay near the appended ones, and back at fp32 nothing moves.
    @Test(arguments: options)
    func optionsSwitchMidStream(option: String) throws {
        let layout = Q.layout(headDim: 16, kvHeads: 2, group: 2)
        let cache = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "h2o:heavy=24,recent=24"))
        let angles = RoPEAngles(RoPE(theta: 10000), headDim: 16, style: .interleaved, positions: layout.capacity)
        /// Max |read − appended| over the kept keys (after RoPE) and values of head 1.
        func storageError() -> Float {
            var worst: Float = 0
            for (i, position) in cache.keptPositions(layer: 0, head: 1).enumerated() {
                var step = Q.data(layout, position: position, seed: 5)
                step.keys.withUnsafeMutableBufferPointer { angles.rotate($0.baseAddress! + 16, position: position) }
                let entry = cache.entry(layer: 0, head: 1, i)
                for c in 0..<16 { worst = max(worst, abs(entry.key[c] - step.keys[16 + c]), abs(entry.value[c] - step.values[16 + c])) }
            }
            return worst
        }
        var ledger = IOLedger()
        Self.runRoPE(cache, 0..<40)
        #expect(storageError() < 1e-5)
        cache.setKVQuant(try Self.method(option), ledger: &ledger)
        Q.expectPooled(cache)
        let quantized = storageError()
        #expect(quantized > 1e-3 && quantized < 1.5)
        Self.runRoPE(cache, 40..<70) { Q.expectPooled(cache) }
        #expect(storageError() < 1.5)
        let kept = (0..<48).map { cache.entry(layer: 0, head: 1, $0) }
        cache.setKVQuant(try Self.method("fp32+prerope"), ledger: &ledger)
        cache.setKVQuant(.fp32, ledger: &ledger)
        for i in 0..<48 {
            let entry = cache.entry(layer: 0, head: 1, i)
            #expect(zip(entry.key, kept[i].key).allSatisfy { abs($0 - $1) < 1e-5 } && entry.value == kept[i].value, "entry \(i)")
        }
        Q.expectPooled(cache)
        Self.runRoPE(cache, 70..<75)
        #expect(cache.residency.quantizedPayload == 0)
    }

    // MARK: - A real model

    /// Every option on the reference greedy text: a finite NLL within 1 of the fp32 cache's.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)),
          arguments: ["kivi:bits=2,residual=32+prerope", "kivi:bits=2,residual=32+rotate:protect-sinks=4",
                      "kivi:bits=2,residual=32+outliers", "kivi:bits=2,residual=32+nuq", "mixed:residual=32",
                      "mixed:high=4,low=2,residual=32,threshold=2+prerope+rotate+outliers+nuq"])
    func optionsCostLittleOnStories(option: String) throws {
        let model = try #require(Fixtures.stories)
        let ids = try #require(Reference.shared).greedy.ids
        let fp32 = try StreamingEvaluator(weights: model.weights, eviction: .full, withGhost: false).evaluate(ids)
        for prefill in [0, 64] {
            let evaluator = StreamingEvaluator(weights: model.weights, eviction: .full, quant: try Self.method(option), withGhost: false)
            let summary = try evaluator.evaluate(ids, prefill: prefill)
            #expect(summary.meanNLL.isFinite && summary.meanNLL < fp32.meanNLL + 1, "\(option), prefill \(prefill): \(summary.meanNLL) vs \(fp32.meanNLL)")
            #expect(summary.peakResidentKVBytes < fp32.peakResidentKVBytes)
        }
    }
}
