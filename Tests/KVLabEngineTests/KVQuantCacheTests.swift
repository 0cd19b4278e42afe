@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Testing

@Suite struct KVQuantMethodTests {
    @Test func quantStringsParseAndPrintCanonically() throws {
        #expect(KVQuantMethod.fp32.description == "fp32")
        #expect(try KVQuantMethod(parsing: "kivi").description == "kivi:bits=2,group=32,residual=128")
        #expect(try KVQuantMethod(parsing: " KIVI:residual=64 , bits=4 ").description == "kivi:bits=4,group=32,residual=64")
        #expect(try KVQuantMethod(parsing: "uniform").description == "uniform:kbits=4,vbits=4,kaxis=channel,vaxis=token,group=32,residual=128")
        #expect(try KVQuantMethod(parsing: "q4_0").description == "q4_0:residual=0")
        #expect(try KVQuantMethod(parsing: "ggml:v=Q4_0").description == "ggml:k=q8_0,v=q4_0,residual=0")
        #expect(try KVQuantMethod(parsing: "fp8").description == "fp8:format=e4m3,scale=tensor,residual=0")
        let kivi = try KVQuantMethod(parsing: "kivi:bits=3,group=16,residual=8")
        #expect(kivi.key == .uniform(bits: 3, axis: .channel, group: 16))
        #expect(kivi.value == .uniform(bits: 3, axis: .token, group: 16))
        #expect(kivi.residual == 8)
        #expect(try KVQuantMethod(parsing: kivi.description) == kivi)
        let ggml = try KVQuantMethod(parsing: "ggml:k=q5_1,v=q4_0,residual=4")
        #expect(ggml.key == .block(.q5_1) && ggml.value == .block(.q4_0) && ggml.residual == 4)
        #expect(try KVQuantMethod(parsing: "q8_0").key == .block(.q8_0))
        #expect(try KVQuantMethod(parsing: "fp8:format=e5m2,scale=head").value == .fp8(.e5m2, scale: .head))
        #expect(try KVQuantMethod(parsing: "uniform:kaxis=token,vaxis=channel").value == .uniform(bits: 4, axis: .channel, group: 32))
    }

    @Test(arguments: [
        ("kivi:bits=5", "kivi: bits=5 is not one of 8, 4, 3, 2"),
        ("uniform:kaxis=row", "uniform: kaxis=row is not one of token, channel"),
        ("uniform:group=0", "uniform: group=0 is outside 1...4096"),
        ("kivi:residual=-1", "kivi: residual=-1 is outside 0...1048576"),
        ("ggml:k=q3_k", "ggml: k=q3_k is not one of q8_0, q4_0, q4_1, q5_0, q5_1"),
        ("fp8:scale=channel", "fp8: scale=channel is not one of tensor, head"),
        ("q8_0:bits=8", "q8_0: unknown parameter 'bits' (known: residual)"),
        ("fp32:residual=4", "fp32: unknown parameter 'residual' (it takes no parameters)"),
        ("kivi+merge", "unknown modifier 'merge' for kivi (prerope, rotate, outliers, nuq)"),
        ("int4", "unknown KV quantization 'int4' (fp32, uniform, kivi, mixed, q8_0, q4_0, q4_1, q5_0, q5_1, ggml, fp8)"),
    ])
    func badQuantStringsSayWhat(text: String, message: String) {
        #expect(throws: MethodSpecError(message)) { try KVQuantMethod(parsing: text) }
    }
}

@Suite struct KVQuantCacheTests {
    static func layout(headDim: Int = 32, layers: Int = 1, kvHeads: Int = 1, group: Int = 1, capacity: Int = 256) -> KVLayout {
        KVLayout(layerCount: layers, kvHeadCount: kvHeads, headDim: headDim, groupSize: group, capacity: capacity)
    }

    /// Keys, values and queries of one step: seeded by the position, so every cache sees the same data.
    static func data(_ layout: KVLayout, position: Int, seed: UInt64) -> (keys: [Float], values: [Float], queries: [Float]) {
        var generator = Xoshiro256(seed: seed &* 1_000_003 &+ UInt64(position))
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &generator) } }
        let kv = layout.kvHeadCount * layout.headDim
        return (random(kv), random(kv), random(kv * layout.groupSize).map { $0 * 3 })
    }

    /// Runs decode steps `positions` (append, attend) on every layer; returns each step's output of layer 0.
    /// Appends the seeded entry at `position` to layer 0 and returns the ledger of its attention alone.
    static func attendLedger(_ cache: PagedKVCache, _ layout: KVLayout, position: Int) -> IOLedger {
        let step = data(layout, position: position, seed: 5)
        var ledger = IOLedger()
        var output = [Float](repeating: 0, count: step.queries.count)
        cache.append(layer: 0, position: position, keys: step.keys, values: step.values, ledger: &ledger)
        ledger = IOLedger()
        cache.attend(layer: 0, position: position, queries: step.queries, output: &output, ledger: &ledger)
        return ledger
    }

    @discardableResult
    static func run(_ cache: PagedKVCache, _ positions: Range<Int>, seed: UInt64 = 5, check: () -> Void = {}) -> [[Float]] {
        let l = cache.layout
        var outputs: [[Float]] = []
        for position in positions {
            let step = data(l, position: position, seed: seed)
            var output = [Float](repeating: 0, count: step.queries.count)
            var ledger = IOLedger()
            for layer in (0..<l.layerCount).reversed() {
                cache.append(layer: layer, position: position, keys: step.keys, values: step.values, ledger: &ledger)
                cache.attend(layer: layer, position: position, queries: step.queries, output: &output, ledger: &ledger)
            }
            outputs.append(output)
            check()
        }
        return outputs
    }

    static func maxDifference(_ a: [[Float]], _ b: [[Float]]) -> Float {
        zip(a, b).map { zip($0, $1).map { abs($0 - $1) }.max()! }.max()!
    }

    /// What the pools handed out equals the resident bytes besides policy state (no Quest summaries here).
    static func expectPooled(_ cache: PagedKVCache, _ comment: Comment? = nil) {
        let r = cache.residency
        #expect(r.total - r.policyState == cache.allocatedBytes, comment)
    }

    static func residency(payload: Int = 0, metadata: Int = 0, residual: Int = 0, slack: Int = 0, state: Int) -> KVResidency {
        var r = KVResidency()
        r.quantizedPayload = payload
        r.quantMetadata = metadata
        r.residualWindow = residual
        r.pageSlack = slack
        r.policyState = state
        return r
    }

    // MARK: - Exact storage

    /// 100 entries of headDim 32 in one (layer, head); a record page holds 16 entries' records (or
    /// one record when a record holds more), an fp32 page 16 slots of 2 × 128 bytes.
    @Test(arguments: [
        // K per channel: 84 left the window, 2 groups of 32 quantized (2 × 256 B codes, 2 × 32 × 4 B
        // scales/zeros) and 20 wait; V per token: 84 records of 8 + 4 B in 6 pages (12 unused).
        // fp32: 36 K halves + 16 V halves in 36 page slots (20 dead V halves, 12 unused slots).
        ("kivi:bits=2,group=32,residual=16",
         Self.residency(payload: 512 + 84 * 8, metadata: 256 + 84 * 4, residual: 52 * 128, slack: 12 * 12 + 20 * 128 + 12 * 256, state: 400)),
        // 100 records of 34 B (32 codes + fp16 d) per tensor, 7 pages of 16 (12 unused).
        ("q8_0", Self.residency(payload: 2 * 100 * 32, metadata: 2 * 100 * 2, slack: 2 * 12 * 34, state: 400)),
        ("q4_0", Self.residency(payload: 2 * 100 * 16, metadata: 2 * 100 * 2, slack: 2 * 12 * 18, state: 400)),
        ("q4_1", Self.residency(payload: 2 * 100 * 16, metadata: 2 * 100 * 4, slack: 2 * 12 * 20, state: 400)),
        ("q5_0", Self.residency(payload: 2 * 100 * 20, metadata: 2 * 100 * 2, slack: 2 * 12 * 22, state: 400)),
        ("ggml:k=q8_0,v=q5_1,residual=10",
         Self.residency(payload: 90 * (32 + 20), metadata: 90 * (2 + 4), residual: 2 * 10 * 128, slack: 6 * (34 + 24) + 6 * 256, state: 400)),
        // One byte per element, an fp32 scale per layer's K and V tensor.
        ("fp8", Self.residency(payload: 2 * 100 * 32, metadata: 8, slack: 2 * 12 * 32, state: 400)),
        // 3-bit per token: 12 B of codes, fp16 scale and zero per group of 16 channels.
        ("uniform:kbits=3,vbits=3,kaxis=token,vaxis=token,group=16,residual=4",
         Self.residency(payload: 2 * 96 * 12, metadata: 2 * 96 * 8, residual: 2 * 4 * 128, slack: 12 * 256, state: 400)),
    ])
    func residentBytesAreExact(method: String, expected: KVResidency) throws {
        let cache = PagedKVCache(layout: Self.layout(), quant: try KVQuantMethod(parsing: method))
        Self.run(cache, 0..<100)
        #expect(cache.residency == expected)
        Self.expectPooled(cache)
    }

    /// headDim 8: a 32-element ggml block spans 4 entries, which are quantized together.
    @Test func shortHeadsStraddleBlocksOverEntries() throws {
        let layout = Self.layout(headDim: 8)
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "q4_0"))
        var originals: [[Float]] = []
        Self.run(cache, 0..<10) { originals.append(Self.data(layout, position: originals.count, seed: 5).keys) }
        // Two records of one 18-byte block per tensor (one page of 4 records), 2 entries waiting at fp32.
        #expect(cache.residency == Self.residency(payload: 2 * 2 * 16, metadata: 2 * 2 * 2, residual: 2 * 2 * 32,
                                                  slack: 2 * 2 * 18 + 14 * 64, state: 40))
        Self.expectPooled(cache)
        for record in 0..<2 {
            let block = Array(originals[(4 * record)..<(4 * record + 4)].joined())
            let expected = KVQuantizationTests.decode(KVQuantizationTests.encode(block, as: .q4_0), count: 32, as: .q4_0)
            for member in 0..<4 {
                #expect(cache.entry(layer: 0, head: 0, 4 * record + member).key == Array(expected[(8 * member)..<(8 * member + 8)]))
            }
        }
        #expect(cache.entry(layer: 0, head: 0, 9).key == originals[9])
    }

    /// q8_0 keys and values read back exactly as ggml's round trip of what was appended.
    @Test func q8BlocksDecodeExactlyAsGGML() throws {
        let layout = Self.layout(headDim: 64, layers: 2, kvHeads: 2)
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "q8_0"))
        Self.run(cache, 0..<5)
        for position in 0..<5 {
            let step = Self.data(layout, position: position, seed: 5)
            for layer in 0..<2 {
                for head in 0..<2 {
                    let key = Array(step.keys[(head * 64)..<(head * 64 + 64)]), value = Array(step.values[(head * 64)..<(head * 64 + 64)])
                    let entry = cache.entry(layer: layer, head: head, position)
                    #expect(entry.key == KVQuantizationTests.decode(KVQuantizationTests.encode(key, as: .q8_0), count: 64, as: .q8_0))
                    #expect(entry.value == KVQuantizationTests.decode(KVQuantizationTests.encode(value, as: .q8_0), count: 64, as: .q8_0))
                    #expect(entry.key != key)
                }
            }
        }
    }

    /// kivi keys: one group per channel over 8 entries, exactly the uniform quantizer's codes.
    @Test func perChannelGroupsDecodeAsTheUniformQuantizer() throws {
        let layout = Self.layout(headDim: 8)
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "kivi:bits=2,group=8,residual=0"))
        Self.run(cache, 0..<8)
        let keys = (0..<8).map { Self.data(layout, position: $0, seed: 5).keys }
        let quantizer = UniformQuantizer(bits: 2)!
        for c in 0..<8 {
            let channel = keys.map { $0[c] }
            var codes = [UInt8](repeating: 0, count: 2)
            let stored = quantizer.quantize(channel, count: 8, stride: 1, into: &codes, bitOffset: 0)
            var decoded = [Float](repeating: 0, count: 8)
            quantizer.dequantize(codes, bitOffset: 0, count: 8, scaleBits: stored.scaleBits, zeroBits: stored.zeroBits, into: &decoded, stride: 1)
            for t in 0..<8 { #expect(cache.entry(layer: 0, head: 0, t).key[c] == decoded[t], "channel \(c), entry \(t)") }
        }
    }

    // MARK: - Attention reads what is stored

    /// Outputs against the fp32 cache on the same data: tiny at 8 bits, visible at 2 bits.
    @Test func attentionErrorFollowsTheBits() throws {
        let layout = Self.layout(layers: 1, kvHeads: 2, group: 2)
        let reference = Self.run(PagedKVCache(layout: layout), 0..<80)
        func error(_ method: String) throws -> Float {
            Self.maxDifference(Self.run(PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: method)), 0..<80), reference)
        }
        let q8 = try error("q8_0"), kivi8 = try error("kivi:bits=8,group=16,residual=0"), fp8 = try error("fp8:scale=head")
        let kivi4 = try error("kivi:bits=4,group=16,residual=0"), kivi2 = try error("kivi:bits=2,group=16,residual=0")
        let q4 = try error("q4_0")
        #expect(q8 > 0 && q8 < 0.02)
        #expect(kivi8 > 0 && kivi8 < 0.02)
        #expect(fp8 > q8 && fp8 < 0.1)
        #expect(kivi4 > kivi8 && kivi4 < 0.15)
        #expect(q4 > q8 && q4 < 0.15)
        #expect(kivi2 > kivi4 && kivi2 < 0.6)
        // The residual window keeps the newest entries exact: with one as large as the run, nothing changes.
        #expect(try error("kivi:bits=2,group=16,residual=80") == 0)
    }

    /// The ledger counts what a dense step reads: fp32 halves, record payload, scales and zeros.
    @Test func ledgerCountsPackedBytes() throws {
        let layout = Self.layout()
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "kivi:bits=2,group=32,residual=16"))
        Self.run(cache, 0..<100)
        let ledger = Self.attendLedger(cache, layout, position: 100)
        // 101 entries: K has 2 groups of 32 quantized and 37 at fp32; V has 85 records and 16 at fp32.
        #expect(ledger.bytesRead(.keys) == 37 * 128 + 2 * 256)
        #expect(ledger.bytesRead(.values) == 16 * 128 + 85 * 8)
        #expect(ledger.bytesRead(.quantMetadata) == 2 * 128 + 85 * 4)
    }

    // MARK: - Composition

    /// h2o evicts quantized entries: their records free, a group's dead members count as slack,
    /// and what is resident always equals what the pools handed out.
    @Test func evictionFreesQuantizedBytes() throws {
        let layout = Self.layout(layers: 2, kvHeads: 2, group: 2, capacity: 200)
        let kivi = try KVQuantMethod(parsing: "kivi:bits=2,group=8,residual=8")
        let full = PagedKVCache(layout: layout, quant: kivi)
        Self.run(full, 0..<150)
        let h2o = PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: "h2o:heavy=16,recent=16"), quant: kivi)
        Self.run(h2o, 0..<150) { Self.expectPooled(h2o) }
        #expect(h2o.entryCount(layer: 1, head: 1) == 32)
        // 32 of 150 entries kept; both hold the residual window and the pending key groups at fp32.
        let quantized = { (r: KVResidency) in r.quantizedPayload + r.quantMetadata }
        #expect(quantized(h2o.residency) > 0 && quantized(h2o.residency) < quantized(full.residency) / 3)
        #expect(h2o.residency.total < full.residency.total)
        var ledger = IOLedger()
        h2o.setEviction(try EvictionMethod(parsing: "window:window=4"), ledger: &ledger)
        // Four entries, all inside the residual window: no record is left.
        #expect(h2o.residency.quantizedPayload == 0 && h2o.residency.quantMetadata == 0)
        Self.expectPooled(h2o)
        h2o.reset()
        #expect(h2o.allocatedBytes == 0)
    }

    /// A per-channel group keeps its place while a member is gone; its codes are slack until all go.
    @Test func deadGroupMembersAreSlackUntilTheGroupEmpties() throws {
        let cache = PagedKVCache(layout: Self.layout(headDim: 8), quant: try KVQuantMethod(parsing: "kivi:bits=2,group=4,residual=0"))
        Self.run(cache, 0..<8)
        // K: 2 records of 8 B codes + 32 B scales/zeros (a page of 4); V: 8 records of 2 + 8 B (a page of 16).
        #expect(cache.residency == Self.residency(payload: 2 * 8 + 8 * 2, metadata: 2 * 32 + 8 * 8, slack: 2 * 40 + 8 * 10, state: 32))
        var ledger = IOLedger()
        cache.setEviction(try EvictionMethod(parsing: "window:window=7"), ledger: &ledger)
        // Position 0 is gone: a quarter of its group's codes is slack; its value record is freed.
        #expect(cache.residency == Self.residency(payload: 8 + 6 + 7 * 2, metadata: 2 * 32 + 7 * 8, slack: 2 + 2 * 40 + 9 * 10, state: 28))
        cache.setEviction(try EvictionMethod(parsing: "window:window=4"), ledger: &ledger)
        #expect(cache.residency == Self.residency(payload: 8 + 4 * 2, metadata: 32 + 4 * 8, slack: 3 * 40 + 12 * 10, state: 16))
        Self.expectPooled(cache)
        #expect(cache.keptPositions(layer: 0, head: 0) == [4, 5, 6, 7])
    }

    /// `merge` into quantized entries re-encodes their records; storage stays exact.
    @Test func mergeComposesWithQuantization() throws {
        let cache = PagedKVCache(layout: Self.layout(kvHeads: 2, group: 2), eviction: try EvictionMethod(parsing: "window:window=12+merge"),
                                 quant: try KVQuantMethod(parsing: "kivi:bits=4,group=4,residual=2"))
        let outputs = Self.run(cache, 0..<60) { Self.expectPooled(cache) }
        #expect(outputs.allSatisfy { $0.allSatisfy(\.isFinite) })
        #expect(cache.entryCount(layer: 0, head: 1) == 12)
    }

    /// Sparse modes that read everything equal dense attention over the same quantized entries.
    @Test(arguments: ["kivi:bits=2,group=8,residual=8", "q4_0", "fp8"])
    func sparseComposesWithQuantization(method: String) throws {
        let quant = try KVQuantMethod(parsing: method)
        let layout = Self.layout(kvHeads: 2, group: 2)
        let dense = Self.run(PagedKVCache(layout: layout, quant: quant), 0..<90)
        for sparse in ["topk:k=200", "quest:page=16,budget=112", "threshold:theta=0"] {
            let cache = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: sparse), quant: quant)
            #expect(Self.maxDifference(Self.run(cache, 0..<90), dense) < 1e-5, "\(sparse)")
        }
        let topk = PagedKVCache(layout: layout, sparse: try SparseMethod(parsing: "topk:k=4"), quant: quant)
        let sparseOutputs = Self.run(topk, 0..<90)
        #expect(Self.maxDifference(sparseOutputs, dense) > 1e-4)
        Self.expectPooled(topk)
    }

    // MARK: - Changing the method mid-stream

    /// Max |stored − appended| over every kept key and value.
    static func storageError(_ cache: PagedKVCache, seed: UInt64 = 5) -> Float {
        var worst: Float = 0
        for (i, position) in cache.keptPositions(layer: 0, head: 0).enumerated() {
            let step = data(cache.layout, position: position, seed: seed)
            let entry = cache.entry(layer: 0, head: 0, i)
            for c in 0..<cache.layout.headDim {
                worst = max(worst, abs(entry.key[c] - step.keys[c]), abs(entry.value[c] - step.values[c]))
            }
        }
        return worst
    }

    @Test func changingBitsRequantizesWhatIsKept() throws {
        let perToken = { (bits: Int) in try KVQuantMethod(parsing: "uniform:kbits=\(bits),vbits=\(bits),kaxis=token,vaxis=token,residual=0") }
        let cache = PagedKVCache(layout: Self.layout(), quant: try perToken(4))
        Self.run(cache, 0..<40)
        let four = Self.storageError(cache)
        var ledger = IOLedger()
        cache.setKVQuant(try perToken(2), ledger: &ledger)
        let two = Self.storageError(cache)
        #expect(two > 2 * four)
        Self.expectPooled(cache)
        // Back to 8 bits: the 2-bit values are what is kept, so the error does not shrink.
        cache.setKVQuant(try perToken(8), ledger: &ledger)
        let eight = Self.storageError(cache)
        #expect(eight >= 0.9 * two)
        let fresh = PagedKVCache(layout: Self.layout(), quant: try perToken(8))
        Self.run(fresh, 0..<40)
        #expect(eight > 10 * Self.storageError(fresh))
        // fp32 keeps the current (decoded) values as they are; new entries are exact.
        let kept = (0..<40).map { cache.entry(layer: 0, head: 0, $0) }
        cache.setKVQuant(.fp32, ledger: &ledger)
        #expect((0..<40).allSatisfy { cache.entry(layer: 0, head: 0, $0) == kept[$0] })
        #expect(cache.residency.quantizedPayload == 0 && cache.residency.fullPrecisionPayload == 40 * 256)
        Self.run(cache, 40..<41)
        #expect(cache.entry(layer: 0, head: 0, 40).key == Array(Self.data(cache.layout, position: 40, seed: 5).keys))
        Self.expectPooled(cache)
    }

    /// Switching on a method with a residual window keeps the newest entries fp32 from then on.
    @Test func switchingOnAppliesTheResidualWindow() throws {
        let cache = PagedKVCache(layout: Self.layout())
        Self.run(cache, 0..<50)
        var ledger = IOLedger()
        cache.setKVQuant(try KVQuantMethod(parsing: "kivi:bits=4,group=16,residual=10"), ledger: &ledger)
        // K: 40 left the window, 2 groups of 16 quantized, 8 wait; V: 40 per-token records.
        let r = cache.residency
        #expect(r.residualWindow == (18 + 10) * 128)
        #expect(r.quantizedPayload == 2 * 256 + 40 * 16)
        #expect(Self.storageError(cache) > 0)
        Self.run(cache, 50..<60)
        #expect(cache.residency.residualWindow == (12 + 10) * 128)
        Self.expectPooled(cache)
    }

    /// A batched prompt attends at full precision; what left the window is quantized at its end.
    @Test func batchedPromptQuantizesAtItsEnd() throws {
        let layout = Self.layout()
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "q8_0:residual=8"))
        let reference = PagedKVCache(layout: layout)
        var ledger = IOLedger()
        for c in [cache, reference] { c.beginPrefill(end: 30) }
        for position in 0..<30 {
            let step = Self.data(layout, position: position, seed: 5)
            for c in [cache, reference] { c.append(layer: 0, position: position, keys: step.keys, values: step.values, ledger: &ledger) }
        }
        for position in 0..<30 {
            let step = Self.data(layout, position: position, seed: 5)
            var a = [Float](repeating: 0, count: 32), b = a
            cache.attend(layer: 0, position: position, queries: step.queries, output: &a, ledger: &ledger)
            reference.attend(layer: 0, position: position, queries: step.queries, output: &b, ledger: &ledger)
            #expect(a == b)
        }
        #expect(cache.residency.quantizedPayload == 0)
        cache.endPrefill(ledger: &ledger)
        #expect(cache.residency.quantizedPayload == 2 * 22 * 32)
        #expect(cache.residency.residualWindow == 2 * 8 * 128)
        Self.expectPooled(cache)
    }

    /// fp8 scales are fixed from the entries held at fp32 when the first ones leave the window.
    @Test func fp8ScaleComesFromTheFirstEntriesQuantized() throws {
        let layout = Self.layout(headDim: 32, kvHeads: 2)
        let cache = PagedKVCache(layout: layout, quant: try KVQuantMethod(parsing: "fp8:scale=head,residual=3"))
        Self.run(cache, 0..<10)
        // Head 1's scale: amax/200 over its first 4 keys (the window and the one leaving it).
        let sample = (0..<4).flatMap { Array(Self.data(layout, position: $0, seed: 5).keys[32..<64]) }
        let scale = sample.map(abs).max()! / 200
        let key = Array(Self.data(layout, position: 5, seed: 5).keys[32..<64])
        var codes = [UInt8](repeating: 0, count: 32), decoded = [Float](repeating: 0, count: 32)
        FP8Format.e4m3.encode(key, count: 32, scale: scale, into: &codes)
        FP8Format.e4m3.decode(codes, count: 32, scale: scale, into: &decoded)
        #expect(cache.entry(layer: 0, head: 1, 5).key == decoded)
        #expect(cache.residency.quantMetadata == 4 * 4)
    }

    // MARK: - A real model

    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func quantizedCachesCostLittleOnStories() throws {
        let model = try #require(Fixtures.stories)
        let ids = try #require(Reference.shared).greedy.ids
        let fp32 = try StreamingEvaluator(weights: model.weights, eviction: .full, withGhost: false).evaluate(ids)
        for method in ["kivi:bits=2,residual=32", "q4_0"] {
            let quant = try KVQuantMethod(parsing: method)
            let evaluator = StreamingEvaluator(weights: model.weights, eviction: .full, quant: quant, withGhost: false)
            #expect(evaluator.label == "full \(quant)")
            let summary = try evaluator.evaluate(ids)
            #expect(summary.meanNLL.isFinite)
            #expect(summary.meanNLL > fp32.meanNLL && summary.meanNLL < fp32.meanNLL + 1, "\(method): \(summary.meanNLL) vs \(fp32.meanNLL)")
            #expect(summary.peakResidentKVBytes < fp32.peakResidentKVBytes)
        }
    }
}
