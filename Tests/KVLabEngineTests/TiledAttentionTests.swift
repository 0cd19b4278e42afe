import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// The tiled (FlashAttention) kernel against the naive one: the same outputs to fp32 rounding for
/// every method, and traffic counts that equal the closed forms of both kernels.
@Suite struct TiledAttentionTests {
    /// Two KV heads of three query heads each.
    static let gqa = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 8, groupSize: 3, capacity: 160)
    /// 640 B of SRAM: M = 160 fp32, tiles of ⌈160 / 32⌉ = 5 entries and query blocks of 5 rows.
    static let small = AttentionKernel.tiled(sramBytes: 640)
    /// 256 B: tiles of 2 entries, query blocks of 2 rows (fewer rows than a query group).
    static let tiny = AttentionKernel.tiled(sramBytes: 256)

    static func random(_ n: Int, _ generator: inout Xoshiro256) -> [Float] {
        (0..<n).map { _ in Float.random(in: -2...2, using: &generator) }
    }

    static func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Decode steps of seeded random keys, values and queries through a naive cache and one whose
    /// kernel `kernel(step)` picks; returns the largest output difference and whether both kept
    /// the same positions after every step.
    static func lockstep(_ eviction: String = "full", sparse: String = "dense", kv: String = "fp32", steps: Int = 120,
                         kernel: (Int) -> AttentionKernel) throws -> (difference: Float, sameEntries: Bool) {
        let layout = gqa
        func make() throws -> PagedKVCache {
            PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: eviction), sparse: try SparseMethod(parsing: sparse),
                         quant: try KVQuantMethod(parsing: kv))
        }
        let naive = try make(), other = try make()
        var generator = Xoshiro256(seed: 3)
        let width = layout.kvHeadCount * layout.headDim, queryWidth = width * layout.groupSize
        var a = [Float](repeating: 0, count: queryWidth), b = a
        var difference: Float = 0, same = true
        for position in 0..<steps {
            other.attentionKernel = kernel(position)
            let keys = random(width, &generator), values = random(width, &generator), queries = random(queryWidth, &generator)
            var ledger = IOLedger()
            for cache in [naive, other] { cache.append(layer: 0, position: position, keys: keys, values: values, ledger: &ledger) }
            naive.attend(layer: 0, position: position, queries: queries, output: &a, ledger: &ledger)
            other.attend(layer: 0, position: position, queries: queries, output: &b, ledger: &ledger)
            difference = max(difference, maxDifference(a, b))
            for head in 0..<layout.kvHeadCount where naive.keptPositions(layer: 0, head: head) != other.keptPositions(layer: 0, head: head) {
                same = false
            }
        }
        return (difference, same)
    }

    @Test(arguments: [
        ("full", "dense", "fp32"), ("h2o:heavy=16,recent=16", "dense", "fp32"), ("tova:budget=24", "dense", "fp32"),
        ("scissorhands:budget=32,history=8,recent=4,drop=8+merge", "dense", "fp32"),
        ("full", "topk:k=10", "fp32"), ("full", "quest:page=16,budget=32", "fp32"), ("full", "threshold:theta=0.01", "fp32"),
        ("full", "block-retrieval:block=8,reps=2,top=2,local=16,sinks=2,lru=2", "fp32"),
        ("full", "dense", "kivi:bits=2,residual=16"), ("full", "dense", "q8_0"),
        ("full", "dense", "uniform:residual=16+prerope+rotate"), ("full", "dense", "mixed:residual=16"),
        ("h2o:heavy=16,recent=16", "quest:page=16,budget=32", "kivi:bits=4,residual=16"),
        ("full", "topk:k=10", "q4_0+prerope"),
    ])
    func tiledDecodeEqualsNaive(eviction: String, sparse: String, kv: String) throws {
        for kernel in [Self.small, Self.tiny, AttentionKernel.tiled(sramBytes: 228 * 1024)] {
            let run = try Self.lockstep(eviction, sparse: sparse, kv: kv) { _ in kernel }
            #expect(run.difference < 1e-5, "\(kernel): outputs differ by \(run.difference)")
            #expect(run.sameEntries, "\(kernel): the method kept different entries")
        }
    }

    @Test func kernelSwitchesMidStream() throws {
        let kernels: [AttentionKernel] = [.naive, Self.small, .tiled(sramBytes: 4096), Self.tiny]
        let run = try Self.lockstep("h2o:heavy=16,recent=16", kv: "kivi:bits=4,residual=16") { kernels[($0 / 10) % kernels.count] }
        #expect(run.difference < 1e-5)
        #expect(run.sameEntries)
    }

    /// A prompt attended three ways: the per-query path (one `attend` per position), the naive
    /// batched kernel and the tiled one; `decodeFirst` steps run before it (with quantization
    /// and eviction acting on them).
    static func prefill(_ eviction: String = "full", kv: String = "fp32", decodeFirst: Int = 0, tokens n: Int = 90,
                        kernel: AttentionKernel = small) throws -> (batched: Float, tiled: Float, sameEntries: Bool) {
        let layout = gqa
        func make() throws -> PagedKVCache {
            PagedKVCache(layout: layout, eviction: try EvictionMethod(parsing: eviction), quant: try KVQuantMethod(parsing: kv))
        }
        let perQuery = try make(), naive = try make(), tiled = try make()
        var generator = Xoshiro256(seed: 9)
        let width = layout.kvHeadCount * layout.headDim, queryWidth = width * layout.groupSize
        var scratch = [Float](repeating: 0, count: queryWidth)
        var ledger = IOLedger()
        for position in 0..<decodeFirst {
            let keys = random(width, &generator), values = random(width, &generator), queries = random(queryWidth, &generator)
            for cache in [perQuery, naive, tiled] {
                cache.append(layer: 0, position: position, keys: keys, values: values, ledger: &ledger)
                cache.attend(layer: 0, position: position, queries: queries, output: &scratch, ledger: &ledger)
            }
        }
        tiled.attentionKernel = kernel
        let keys = random(n * width, &generator), values = random(n * width, &generator), queries = random(n * queryWidth, &generator)
        var outputs = [[Float]](repeating: [Float](repeating: 0, count: n * queryWidth), count: 3)
        let end = decodeFirst + n
        for cache in [perQuery, naive, tiled] {
            cache.beginPrefill(end: end)
            for t in 0..<n {
                cache.append(layer: 0, position: decodeFirst + t, keys: Array(keys[(t * width)..<((t + 1) * width)]),
                             values: Array(values[(t * width)..<((t + 1) * width)]), ledger: &ledger)
            }
        }
        for t in 0..<n {
            perQuery.attend(layer: 0, position: decodeFirst + t, queries: Array(queries[(t * queryWidth)..<((t + 1) * queryWidth)]),
                            output: &scratch, ledger: &ledger)
            outputs[0].replaceSubrange((t * queryWidth)..<((t + 1) * queryWidth), with: scratch)
        }
        naive.attend(layer: 0, positions: decodeFirst..<end, queries: queries, output: &outputs[1], ledger: &ledger)
        tiled.attend(layer: 0, positions: decodeFirst..<end, queries: queries, output: &outputs[2], ledger: &ledger)
        for cache in [perQuery, naive, tiled] { cache.endPrefill(ledger: &ledger) }
        let same = (0..<layout.kvHeadCount).allSatisfy { head in
            let kept = perQuery.keptPositions(layer: 0, head: head)
            return naive.keptPositions(layer: 0, head: head) == kept && tiled.keptPositions(layer: 0, head: head) == kept
        }
        return (maxDifference(outputs[0], outputs[1]), maxDifference(outputs[0], outputs[2]), same)
    }

    @Test(arguments: [
        ("full", "fp32", 0), ("snapkv:budget=32,observation=8,pool=3", "fp32", 0), ("pyramidkv:budget=32,observation=8,pool=3", "fp32", 0),
        ("duo:sinks=2,window=14,ratio=0.5", "fp32", 0), ("full", "mixed:residual=16", 0), ("full", "kivi:bits=2,residual=16", 40),
        ("snapkv:budget=32,observation=8,pool=3", "q8_0+prerope+rotate", 30),
    ])
    func batchedPrefillEqualsPerQueryAttention(eviction: String, kv: String, decodeFirst: Int) throws {
        for kernel in [Self.small, Self.tiny, AttentionKernel.tiled(sramBytes: 1 << 20)] {
            let run = try Self.prefill(eviction, kv: kv, decodeFirst: decodeFirst, kernel: kernel)
            #expect(run.batched < 1e-5, "naive batched differs by \(run.batched)")
            #expect(run.tiled < 1e-5, "\(kernel) differs by \(run.tiled)")
            #expect(run.sameEntries, "\(kernel): the prompt's policy kept different entries")
        }
    }

    @Test func tileShapesFollowFlashAttention() {
        func shape(_ bytes: Int, _ d: Int, _ element: Int = 4) -> [Int] {
            let s = AttentionTileShape(sramBytes: bytes, headDim: d, elementBytes: element)
            return [s.entries, s.rows]
        }
        // 228 KiB, d = 32: M = 58,368 fp32, B_c = ⌈M / 128⌉ = 456, B_r = min(456, 32).
        #expect(shape(228 * 1024, 32) == [456, 32])
        // d = 128: B_c = ⌈58,368 / 512⌉ = 114 < d; fp16 elements double M.
        #expect(shape(228 * 1024, 128) == [114, 114])
        #expect(shape(228 * 1024, 128, 2) == [228, 128])
        #expect(shape(640, 8) == [5, 5])
        #expect(AttentionTileShape.minimumSRAMBytes(headDim: 32) == 512)
    }

    // MARK: - Traffic

    /// One KV head of two query heads, d = 8: the closed forms below are per call.
    static let single = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 8, groupSize: 2, capacity: 80)

    /// Naive attention of `queries` tokens over `entries` entries (each query sees a causal
    /// prefix, the last all of them): Q read and O written once, K and V read once, and per query
    /// row the whole score row written (S), read and written (softmax), read (P·V).
    static func naiveLedger(queries: Int, entries: Int, layout: KVLayout) -> IOLedger {
        let d = layout.headDim, rows = queries * layout.groupSize
        var expected = IOLedger()
        expected.read(.keys, entries * d * 4)
        expected.read(.values, entries * d * 4)
        expected.write(.scores, 2 * rows * entries * 4)
        expected.read(.scores, 2 * rows * entries * 4)
        expected.read(.activations, rows * d * 4)
        expected.write(.activations, rows * d * 4)
        return expected
    }

    /// FlashAttention's Algorithm 1 over `entries` entries in tiles of B_c, query rows (token-major,
    /// the first token seeing `entries − queries + 1` entries) in blocks of B_r: K and V read once;
    /// each block visits the ⌈visible / B_c⌉ tiles its last row sees, loading its queries every
    /// visit and its output and statistics (8 B per row) after the first, storing both every
    /// visit; each visit's score tile (rows × tile entries) is written and read on chip.
    static func tiledLedger(queries: Int, entries: Int, layout: KVLayout, shape: AttentionTileShape) -> IOLedger {
        let d = layout.headDim, g = layout.groupSize, rows = queries * g
        let bc = shape.entries, br = shape.rows
        var expected = IOLedger()
        expected.read(.keys, entries * d * 4)
        expected.read(.values, entries * d * 4)
        for block in stride(from: 0, to: rows, by: br) {
            let n = min(br, rows - block)
            let visible = entries - queries + 1 + (block + n - 1) / g
            let visits = (visible + bc - 1) / bc
            expected.read(.activations, n * d * 4 * (2 * visits - 1))
            expected.write(.activations, n * d * 4 * visits)
            expected.read(.softmaxStatistics, n * 8 * (visits - 1))
            expected.write(.softmaxStatistics, n * 8 * visits)
            for tile in 0..<visits { expected.onChip(.scores, n * min(bc, entries - tile * bc) * 8) }
        }
        return expected
    }

    @Test func prefillTrafficEqualsTheClosedForms() throws {
        let layout = Self.single, d = layout.headDim
        let kernels: [AttentionKernel] = [.naive, .tiled(sramBytes: 256), .tiled(sramBytes: 1000), .tiled(sramBytes: 4096)]
        var generator = Xoshiro256(seed: 1)
        for n in 1...64 {
            let keys = Self.random(n * d, &generator), queries = Self.random(n * 2 * d, &generator)
            for kernel in kernels {
                let cache = PagedKVCache(layout: layout)
                cache.attentionKernel = kernel
                var ledger = IOLedger()
                cache.beginPrefill(end: n)
                for t in 0..<n {
                    let row = Array(keys[(t * d)..<((t + 1) * d)])
                    cache.append(layer: 0, position: t, keys: row, values: row, ledger: &ledger)
                }
                ledger = IOLedger()
                var output = [Float](repeating: 0, count: n * 2 * d)
                cache.attend(layer: 0, positions: 0..<n, queries: queries, output: &output, ledger: &ledger)
                let expected: IOLedger
                if case .tiled(let bytes) = kernel {
                    expected = Self.tiledLedger(queries: n, entries: n, layout: layout, shape: AttentionTileShape(sramBytes: bytes, headDim: d))
                } else {
                    expected = Self.naiveLedger(queries: n, entries: n, layout: layout)
                }
                #expect(ledger == expected, "N = \(n), \(kernel)")
                // Nothing N×N reaches HBM with the tiled kernel.
                if case .tiled = kernel { #expect(ledger.hbmTraffic(.scores) == 0) }
                // Then a decode step over n + 1 entries: the same forms with one query.
                cache.endPrefill(ledger: &ledger)
                let next = Self.random(d, &generator), query = Self.random(2 * d, &generator)
                cache.append(layer: 0, position: n, keys: next, values: next, ledger: &ledger)
                ledger = IOLedger()
                var out = [Float](repeating: 0, count: 2 * d)
                cache.attend(layer: 0, position: n, queries: query, output: &out, ledger: &ledger)
                let step: IOLedger
                if case .tiled(let bytes) = kernel {
                    step = Self.tiledLedger(queries: 1, entries: n + 1, layout: layout, shape: AttentionTileShape(sramBytes: bytes, headDim: d))
                } else {
                    step = Self.naiveLedger(queries: 1, entries: n + 1, layout: layout)
                }
                #expect(ledger == step, "decode after N = \(n), \(kernel)")
            }
        }
    }

    @Test func closedFormsGrowAsTheirBoundsSay() {
        // Naive: Θ(Nd + N²); tiled: Θ(N²d²/M) (here d = 8, M = 64 and 1,024 fp32).
        let layout = Self.single
        func hbm(_ l: IOLedger) -> Double { Double(l.totalRead + l.totalWritten) }
        let naive = (hbm(Self.naiveLedger(queries: 64, entries: 64, layout: layout)), hbm(Self.naiveLedger(queries: 32, entries: 32, layout: layout)))
        #expect(naive.0 / naive.1 > 3.5)
        let small = AttentionTileShape(sramBytes: 256, headDim: 8), large = AttentionTileShape(sramBytes: 4096, headDim: 8)
        let tiledSmall = hbm(Self.tiledLedger(queries: 64, entries: 64, layout: layout, shape: small))
        let tiledLarge = hbm(Self.tiledLedger(queries: 64, entries: 64, layout: layout, shape: large))
        #expect(tiledSmall > 4 * tiledLarge)
        #expect(tiledLarge < naive.0)
    }

    @Test func scorePoliciesPayForASecondPassInTiledMode() throws {
        // Position 10 of a decode with no eviction yet: tiled h2o reads the keys twice (the
        // probabilities pass) and writes s_t per entry; tiled full reads them once.
        func step(_ eviction: String, _ kernel: AttentionKernel) throws -> IOLedger {
            let cache = PagedKVCache(layout: Self.gqa, eviction: try EvictionMethod(parsing: eviction))
            cache.attentionKernel = kernel
            var generator = Xoshiro256(seed: 2)
            var output = [Float](repeating: 0, count: 48)
            var ledger = IOLedger()
            for position in 0...10 {
                ledger = IOLedger()
                let keys = Self.random(16, &generator)
                cache.append(layer: 0, position: position, keys: keys, values: keys, ledger: &ledger)
                ledger = IOLedger()
                cache.attend(layer: 0, position: position, queries: Self.random(48, &generator), output: &output, ledger: &ledger)
            }
            return ledger
        }
        let full = try step("full", Self.small), h2o = try step("h2o:heavy=16,recent=16", Self.small)
        let entryBytes = UInt64(2 * 11 * 8 * 4)
        #expect(full.bytesRead(.keys) == entryBytes)
        #expect(h2o.bytesRead(.keys) == 2 * entryBytes)
        #expect(h2o.bytesRead(.values) == entryBytes)
        #expect(h2o.bytesWritten(.policyState) >= UInt64(2 * 11 * 4))
        #expect(h2o.bytes(.scores, .sram) == 2 * full.bytes(.scores, .sram))
        #expect(h2o.hbmTraffic(.scores) == 0)
        let naive = try step("h2o:heavy=16,recent=16", .naive)
        #expect(naive.bytesRead(.keys) == entryBytes)
        #expect(naive.bytesWritten(.scores) == UInt64(2 * 2 * 3 * 11 * 4))
    }

    // MARK: - Ledger

    @Test func ledgerRoundTripsThroughReadableJSON() throws {
        var ledger = IOLedger()
        ledger.read(.weights, 1 << 20)
        ledger.read(.keys, 512)
        ledger.write(.activations, 96)
        ledger.onChip(.scores, 64)
        ledger.fetch(.values, 4096)
        ledger.write(.softmaxStatistics, 8)
        let data = try JSONEncoder().encode(ledger)
        #expect(try JSONDecoder().decode(IOLedger.self, from: data) == ledger)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: [String: Int]])
        #expect(object == ["hbmToSRAM": ["weights": 1 << 20, "keys": 512], "sramToHBM": ["activations": 96, "softmaxStatistics": 8],
                           "sram": ["scores": 64], "dramToHBM": ["values": 4096]])
        #expect(try JSONEncoder().encode(IOLedger()) == Data("{}".utf8))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(IOLedger.self, from: Data(#"{"l2": {"keys": 1}}"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(IOLedger.self, from: Data(#"{"sram": {"hostFetch": 1}}"#.utf8)) }
        var sum = ledger
        sum.add(ledger)
        #expect(sum.bytes(.values, .dramToHBM) == 8192 && sum.total(.hbmToSRAM) == 2 * ((1 << 20) + 512))
    }

    @Test func layerLedgersSumToTheStep() throws {
        let model = try EmbeddedModelTests.loaded()
        let prompt = Array((0..<40).map { ($0 * 37 + 5) % model.config.vocabSize })
        for (eviction, kernel) in [("full", AttentionKernel.naive), ("full", .tiled(sramBytes: 4096)), ("h2o:heavy=8,recent=8", .tiled(sramBytes: 4096))] {
            let cache = PagedKVCache(layout: KVLayout(config: model.config), eviction: try EvictionMethod(parsing: eviction))
            let engine = InferenceEngine(weights: model.weights, options: EngineOptions(attention: kernel), cache: cache)
            func check(_ report: StepReport) {
                var sum = engine.unlayeredLedger
                for l in 0..<model.config.layerCount { sum.add(engine.layerLedger(l)) }
                #expect(sum == report.ledger, "\(eviction) \(kernel) \(report.phase)")
                // Keys move only in the cache.
                #expect(engine.attentionLedger.bytesRead(.keys) == report.ledger.bytesRead(.keys))
                #expect(engine.attentionLedger.bytesRead(.weights) == 0)
                // Layers are alike: each one's weights are the same bytes.
                #expect(engine.layerLedger(0).bytesRead(.weights) == engine.layerLedger(model.config.layerCount - 1).bytesRead(.weights))
            }
            check(try engine.prefill(prompt).report)
            check(try engine.decode(7))
        }
    }

    // MARK: - Engine

    @Test func engineResultsDoNotDependOnTheKernel() throws {
        let model = try EmbeddedModelTests.loaded()
        let prompt = model.tokenizer.encode("ROMEO:\nO, she doth teach the torches to burn bright! It seems she hangs upon the cheek of night")
        let naive = InferenceEngine(weights: model.weights)
        let tiled = InferenceEngine(weights: model.weights, options: EngineOptions(attention: .tiled(sramBytes: 2048)))
        let a = try naive.prefill(prompt, allLogits: true), b = try tiled.prefill(prompt, allLogits: true)
        #expect(Self.maxDifference(a.logits, b.logits) < 1e-3)
        #expect(a.report.ledger.bytesWritten(.scores) > 0 && b.report.ledger.bytesWritten(.scores) == 0)
        #expect(b.report.ledger.bytes(.scores, .sram) > 0 && a.report.ledger.total(.sram) == 0)
        // Decode, switching the tiled engine's kernel mid-stream.
        let kernels: [AttentionKernel] = [.tiled(sramBytes: 228 * 1024), .naive, .tiled(sramBytes: 512)]
        var token = a.report.top.id
        for step in 0..<30 {
            if step % 10 == 0 { tiled.setAttentionKernel(kernels[step / 10]) }
            let x = try naive.decode(token), y = try tiled.decode(token)
            #expect(Self.maxDifference(Array(naive.logits), Array(tiled.logits)) < 1e-3, "step \(step)")
            #expect(x.top.id == y.top.id)
            #expect((y.ledger.bytesWritten(.scores) == 0) == (tiled.attentionKernel != .naive))
            token = x.top.id
        }
    }
}
