import CKVLabKernels
import Foundation
@testable import KVLabEngine
import KVLabFoundation
import KVLabMethods
import KVLabRun
import Testing

/// The C kernels against scalar references on every vector path this CPU runs: each weight type's
/// row dot product and integer tile product on random blocks with edge values, the activation
/// quantizer, and the worker pool's row split.
@Suite struct KernelTests {
    /// Block scales at the edges of fp16: the largest finite, the smallest subnormal, a subnormal,
    /// zero, negative ones; then random ordinary scales.
    static let edgeScales: [UInt16] = [0x7BFF, 0x0001, 0x02A7, 0x0000, 0x8000, 0xFBFF, 0x8001]

    /// Seeded random bytes (the same every run).
    struct Bytes {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 11
        }
        mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
        mutating func normal() -> Float { Float(next() % 20001) / 10000 - 1 }
    }

    /// `rows` random rows of `type` (raw bytes), each block's scale (and q4_1's minimum) drawn from
    /// the edge scales half the time; row 0's first block is all zero.
    static func randomRows(_ type: WeightType, rows: Int, cols: Int, seed: UInt64) throws -> WeightMatrix {
        var random = Bytes(state: seed)
        var bytes = (0..<type.byteCount(elements: rows * cols)).map { _ in random.byte() }
        if type == .f32 {
            for i in 0..<(rows * cols) { withUnsafeBytes(of: random.normal() * 4) { bytes.replaceSubrange(i * 4..<(i * 4 + 4), with: $0) } }
        } else if type == .f16 {
            for i in 0..<(rows * cols) { withUnsafeBytes(of: Half.fromFloat(random.normal() * 4)) { bytes.replaceSubrange(i * 2..<(i * 2 + 2), with: $0) } }
        } else if type == .bf16 {
            for i in 0..<(rows * cols) { withUnsafeBytes(of: UInt16((random.normal() * 4).bitPattern >> 16)) { bytes.replaceSubrange(i * 2..<(i * 2 + 2), with: $0) } }
        } else {
            let blocks = rows * cols / type.blockSize
            func half(_ value: UInt16, at offset: Int) { bytes[offset] = UInt8(value & 0xff); bytes[offset + 1] = UInt8(value >> 8) }
            for b in 0..<blocks {
                let start = b * type.bytesPerBlock
                let scale = random.next() % 2 == 0 ? edgeScales[Int(random.next() % UInt64(edgeScales.count))] : Half.fromFloat(random.normal() * 0.1)
                // The block's fp16 scale d and, for the types with one, its minimum.
                half(scale, at: start + (scaleOffset[type] ?? 0))
                if let at = minimumOffset[type] {
                    half(random.next() % 3 == 0 ? edgeScales[b % edgeScales.count] : Half.fromFloat(random.normal()), at: start + at)
                }
            }
            for i in 0..<type.bytesPerBlock { bytes[i] = 0 }
        }
        return try bytes.withUnsafeBytes { try WeightMatrix(rows: rows, cols: cols, type: type, encoded: $0) }
    }

    /// Where a block's fp16 scale is, where it is not first; and its fp16 minimum, in types with one.
    static let scaleOffset: [WeightType: Int] = [.q6_K: 208, .q2_K: 80, .q3_K: 108]
    static let minimumOffset: [WeightType: Int] = [.q4_1: 2, .q5_1: 2, .q4_K: 2, .q5_K: 2, .q2_K: 82]

    /// The quantized types.
    static let quantizedTypes = WeightType.allCases.filter { ![.f32, .f16, .bf16].contains($0) }

    /// The vector paths this CPU runs.
    static let paths = [CKV_PATH_PORTABLE, CKV_PATH_AVX2, CKV_PATH_VNNI].map(Int32.init).filter { ckv_path_supported($0) != 0 }

    /// What a kernel of a quantized type multiplies: `x`'s 8-bit codes times their block scales.
    static func quantized(_ x: [Float]) -> [Float] {
        let a = QuantizedActivation(capacity: x.count)
        ckv_quantize_activation(x, Int32(x.count), a.view)
        return (0..<x.count).map { Float(a.view.qs[$0]) * a.view.d[$0 / 32] }
    }

    /// `tokens` inputs of `cols` each (`x` row-major), quantized one after another as prefill does.
    static func quantizedInputs(_ x: [Float], tokens: Int, cols: Int) -> QuantizedActivation {
        let a = QuantizedActivation(capacity: tokens * cols)
        let blocks = cols / 32
        for t in 0..<tokens {
            ckv_quantize_activation(Array(x[(t * cols)..<((t + 1) * cols)]), Int32(cols),
                                    ckv_activation(qs: a.view.qs + t * cols, d: a.view.d + t * blocks, s: a.view.s + t * blocks, h: a.view.h + 2 * t * blocks))
        }
        return a
    }

    /// The integer tiles' products of `w` with `tokens` quantized inputs on one path (tokens × rows).
    static func tileProducts(_ w: WeightMatrix, tokens: Int, activation a: QuantizedActivation, path: Int32) -> [Float] {
        var out = [Float](repeating: .nan, count: tokens * w.rows)
        out.withUnsafeMutableBufferPointer { o in
            var job = MatMul.job(w, tokens: tokens, activation: a.view, into: o.baseAddress!, stride: w.rows)
            job.path = path
            ckv_gemm_part(&job, 0, 1)
        }
        return out
    }

    /// The decode kernel's products of `w`'s interleaved copy with the first quantized input.
    static func packedProducts(_ w: WeightMatrix, activation a: QuantizedActivation, path: Int32) -> [Float] {
        var out = [Float](repeating: .nan, count: w.rows)
        out.withUnsafeMutableBufferPointer { o in
            var job = ckv_matvec()
            job.cols = Int32(w.cols)
            job.activation = a.view
            job.path = path
            job.count = 1
            job.matrices.0 = ckv_matrix(weights: w.packedBytes(), row_bytes: w.rowBytes, type: Int32(w.type.ggmlTypeID), rows: Int32(w.rows),
                                        out: o.baseAddress!, packed: 1)
            ckv_matvec_part(&job, 0, 1)
        }
        return out
    }

    /// Inputs with an all-zero block, a block of tiny values, a block of large ones, the rest random.
    static func input(cols: Int, seed: UInt64) -> [Float] {
        var random = Bytes(state: seed)
        var x = (0..<cols).map { _ in random.normal() }
        for j in 0..<32 { x[j] = 0 }
        if cols >= 96 {
            for j in 32..<64 { x[j] *= 1e-30 }
            for j in 64..<96 { x[j] *= 1e4 }
        }
        return x
    }

    /// The batched products' f16 tile decode is exact: every 16-bit pattern as the scalar codec
    /// decodes it (NaNs as NaNs), through the vector loop and its scalar tail.
    @Test func f16DecodeIsExactForEveryPattern() {
        let halves = (0...UInt16.max).map { $0 } + [0x3c00, 0x8001, 0x7bff, 0xfc00, 0x7e01]
        var ours = [Float](repeating: 0, count: halves.count), reference = ours
        halves.withUnsafeBytes { src in
            ckv_decode_f16(src.baseAddress!, Int32(halves.count), &ours)
            reference.withUnsafeMutableBufferPointer { BlockCodec.decode(src.baseAddress!, count: halves.count, as: .f16, into: $0.baseAddress!) }
        }
        let differing = zip(ours, reference).filter { $0.isNaN ? !$1.isNaN : $0.bitPattern != $1.bitPattern }.count
        #expect(differing == 0, "\(differing) of \(halves.count) patterns decode differently")
    }

    @Test func activationQuantizationMatchesScalarReference() {
        var x = Self.input(cols: 256, seed: 3)
        // A block whose scale is 1 (largest magnitude 127) and whose other values are halves and
        // near-halves: roundf rounds halves away from zero.
        let ties: [Float] = [0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999997, -0.49999997, 126.5, -126.5, 3.5000002, -0.0, 0]
        for j in 0..<32 { x[128 + j] = j == 0 ? 127 : ties[j % ties.count] }
        let a = QuantizedActivation(capacity: 256)
        ckv_quantize_activation(x, 256, a.view)
        for b in 0..<8 {
            let block = x[(b * 32)..<(b * 32 + 32)]
            let d = block.map(abs).max()! / 127
            #expect(a.view.d[b] == d)
            var sum = 0
            for j in 0..<32 {
                let q = d == 0 ? 0 : Int((block[b * 32 + j] * (1 / d)).rounded())
                #expect(Int(a.view.qs[b * 32 + j]) == q, "block \(b) element \(j)")
                sum += q
            }
            #expect(a.view.s[b] == d * Float(sum))
            let halves = [0, 16].map { h in (h..<(h + 16)).reduce(0) { $0 + Int(a.view.qs[b * 32 + $1]) } }
            #expect(a.view.h[2 * b] == d * Float(halves[0]) && a.view.h[2 * b + 1] == d * Float(halves[1]))
        }
        #expect(a.view.d[0] == 0 && (0..<32).allSatisfy { a.view.qs[$0] == 0 })
        // A block too small for 1 / d to be finite quantizes to zeros, as an all-zero one does.
        let tiny = (0..<32).map { Float($0 - 16) * 1e-38 }
        let t = QuantizedActivation(capacity: 32)
        ckv_quantize_activation(tiny, 32, t.view)
        #expect(t.view.d[0] == 0 && t.view.s[0] == 0 && t.view.h[0] == 0 && (0..<32).allSatisfy { t.view.qs[$0] == 0 })
    }

    @Test(arguments: [WeightType.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K])
    func rowDotMatchesDequantizedReference(type: WeightType) throws {
        let rows = 24, cols = 256
        let w = try Self.randomRows(type, rows: rows, cols: cols, seed: 11 + UInt64(type.ggmlTypeID))
        let x = Self.input(cols: cols, seed: 5)
        let a = QuantizedActivation(capacity: cols)
        ckv_quantize_activation(x, Int32(cols), a.view)
        // The kernel's input: the floats, or the quantized codes times their block scale.
        let effective = type.readsQuantizedActivation ? (0..<cols).map { Float(a.view.qs[$0]) * a.view.d[$0 / 32] } : x
        let decoded = w.decodedValues()
        for path in Self.paths {
            for r in 0..<rows {
                var exact = 0.0, magnitude = 0.0
                for c in 0..<cols {
                    let product = Double(decoded[r * cols + c]) * Double(effective[c])
                    exact += product
                    magnitude += abs(product)
                }
                let got = x.withUnsafeBufferPointer { ckv_dot_row(path, Int32(type.ggmlTypeID), w.row(r), Int32(cols), $0.baseAddress!, a.view) }
                #expect(abs(Double(got) - exact) <= 1e-5 * magnitude + 1e-30, "\(type) row \(r) on \(String(cString: ckv_path_name(path))): \(got) vs \(exact)")
            }
        }
    }

    /// The integer tiles of every quantized type on every vector path: several inputs, a row count
    /// that leaves a partial tile, edge scales; against the decoded rows times the quantized inputs.
    @Test(arguments: quantizedTypes)
    func tileProductMatchesDequantizedReference(type: WeightType) throws {
        let rows = 21, cols = 512, tokens = 6
        let w = try Self.randomRows(type, rows: rows, cols: cols, seed: 60 + UInt64(type.ggmlTypeID))
        let x = (0..<tokens).flatMap { Self.input(cols: cols, seed: 70 + UInt64($0)) }
        let a = Self.quantizedInputs(x, tokens: tokens, cols: cols)
        let effective = (0..<tokens).flatMap { Self.quantized(Array(x[($0 * cols)..<(($0 + 1) * cols)])) }
        let decoded = w.decodedValues()
        var x86: [Float]?
        for path in Self.paths {
            let out = Self.tileProducts(w, tokens: tokens, activation: a, path: path)
            // The AVX2 and AVX-512 tiles (8 and 32 rows) do the same integer sums and the same float
            // operations per row, so they agree bit for bit; the wide types' AVX2 sign trick leaves
            // out the offset term instead.
            if path != Int32(CKV_PATH_PORTABLE), ![.q8_0, .iq4_nl, .iq4_xs].contains(type) {
                if let x86 { #expect(out == x86, "\(type) tiles on \(String(cString: ckv_path_name(path))) differ from avx2's") }
                x86 = out
            }
            for t in 0..<tokens {
                for r in 0..<rows {
                    var exact = 0.0, magnitude = 0.0
                    for c in 0..<cols {
                        let product = Double(decoded[r * cols + c]) * Double(effective[t * cols + c])
                        exact += product
                        magnitude += abs(product)
                    }
                    let got = Double(out[t * rows + r])
                    #expect(abs(got - exact) <= 1e-5 * magnitude + 1e-30,
                            "\(type) on \(String(cString: ckv_path_name(path))), input \(t) row \(r): \(got) vs \(exact)")
                }
            }
        }
    }

    /// Every code at its largest against activations all at +127, so that no partial sum the vector
    /// paths keep in 16 bits (tiles, interleaved rows, row kernels) overflows: against the decoded rows.
    @Test(arguments: quantizedTypes)
    func largestCodesDoNotOverflowPartialSums(type: WeightType) throws {
        let rows = 16, cols = 512, tokens = 5
        // q8_0's largest tile code is +127 (0x7f); the other types' codes are largest at all ones.
        var bytes = [UInt8](repeating: type == .q8_0 ? 0x7f : 0xff, count: type.byteCount(elements: rows * cols))
        for b in 0..<(rows * cols / type.blockSize) {
            for at in [Self.scaleOffset[type] ?? 0] + (Self.minimumOffset[type].map { [$0] } ?? []) {
                let one = Half.fromFloat(0.01)
                bytes[b * type.bytesPerBlock + at] = UInt8(one & 0xff)
                bytes[b * type.bytesPerBlock + at + 1] = UInt8(one >> 8)
            }
        }
        let w = try bytes.withUnsafeBytes { try WeightMatrix(rows: rows, cols: cols, type: type, encoded: $0) }
        let x = [Float](repeating: 1, count: tokens * cols)
        let a = Self.quantizedInputs(x, tokens: tokens, cols: cols)
        #expect((0..<(tokens * cols)).allSatisfy { a.view.qs[$0] == 127 })
        let decoded = w.decodedValues()
        let exact = (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + Double(decoded[r * cols + $1]) * Double(a.view.d[$1 / 32]) * 127 } }
        let magnitude = (0..<rows).map { r in (0..<cols).reduce(0.0) { $0 + abs(Double(decoded[r * cols + $1]) * Double(a.view.d[$1 / 32]) * 127) } }
        func check(_ got: Float, row r: Int, _ what: String, _ path: Int32) {
            #expect(abs(Double(got) - exact[r]) <= 1e-5 * magnitude[r], "\(type) \(what) row \(r) on \(String(cString: ckv_path_name(path))): \(got) vs \(exact[r])")
        }
        for path in Self.paths {
            let out = Self.tileProducts(w, tokens: tokens, activation: a, path: path)
            for t in 0..<tokens { for r in 0..<rows { check(out[t * rows + r], row: r, "tile, input \(t)", path) } }
            if type.hasKernel {
                for r in 0..<rows {
                    let got = x.withUnsafeBufferPointer { ckv_dot_row(path, Int32(type.ggmlTypeID), w.row(r), Int32(cols), $0.baseAddress!, a.view) }
                    check(got, row: r, "row kernel", path)
                }
            }
            if w.isPackable {
                let packed = Self.packedProducts(w, activation: a, path: path)
                for r in 0..<rows { check(packed[r], row: r, "interleaved", path) }
            }
        }
    }

    @Test(arguments: [WeightType.f32, .q8_0, .q4_0, .q4_1, .q4_K, .q6_K])
    func rowSplitDoesNotChangeResults(type: WeightType) throws {
        let cols = 512
        let matrices = try [96, 32, 32].enumerated().map { try Self.randomRows(type, rows: $1, cols: cols, seed: 40 + UInt64($0)) }
        let x = Self.input(cols: cols, seed: 9)
        let a = QuantizedActivation(capacity: cols)
        func run(threads: Int) -> [[Float]] {
            let pool = WorkerPool(threads: threads)
            var out0 = [Float](repeating: .nan, count: matrices[0].rows), out1 = [Float](repeating: .nan, count: matrices[1].rows)
            var out2 = [Float](repeating: .nan, count: matrices[2].rows)
            var ledger = IOLedger()
            out0.withUnsafeMutableBufferPointer { o0 in
                out1.withUnsafeMutableBufferPointer { o1 in
                    out2.withUnsafeMutableBufferPointer { o2 in
                        for _ in 0..<3 {
                            MatVec.multiply(.init(matrices[0], into: o0.baseAddress!), .init(matrices[1], into: o1.baseAddress!),
                                            .init(matrices[2], into: o2.baseAddress!), input: x, scratch: a, pool: pool, ledger: &ledger)
                        }
                    }
                }
            }
            let weightBytes = UInt64(3 * matrices.reduce(0) { $0 + $1.byteCount })
            #expect(ledger.bytesRead(.weights) == weightBytes)
            return [out0, out1, out2]
        }
        let one = run(threads: 1)
        #expect(one.allSatisfy { $0.allSatisfy(\.isFinite) })
        #expect(run(threads: 2) == one)
        #expect(run(threads: 3) == one)
        #expect(run(threads: 7) == one)
    }

    /// Types without a row kernel go through the tiles with one input, on the pool too; results do
    /// not depend on the thread count.
    @Test(arguments: [WeightType.q5_K, .q3_K, .q5_0])
    func typesWithoutARowKernelTakeTheTiles(type: WeightType) throws {
        let cols = 512, rows = 160
        var random = Bytes(state: 77)
        let values = (0..<(rows * cols)).map { _ in random.normal() * 0.1 }
        let w = WeightMatrix(rows: rows, cols: cols, values: values, type: type)
        #expect(!type.hasKernel && type.hasTile && type.readsQuantizedActivation)
        let x = Self.input(cols: cols, seed: 13)
        let effective = Self.quantized(x)
        let decoded = w.decodedValues()
        func run(threads: Int) -> [Float] {
            var out = [Float](repeating: .nan, count: rows)
            var ledger = IOLedger()
            out.withUnsafeMutableBufferPointer { o in
                MatVec.multiply(.init(w, into: o.baseAddress!), input: x, scratch: QuantizedActivation(capacity: cols),
                                pool: WorkerPool(threads: threads), ledger: &ledger)
            }
            #expect(ledger.bytesRead(.weights) == UInt64(w.byteCount))
            #expect(ledger.bytesRead(.activations) == UInt64(cols * 4 + ckv_activation_bytes(Int32(cols))))
            return out
        }
        let out = run(threads: 1)
        for r in 0..<rows {
            let exact = (0..<cols).reduce(0.0) { $0 + Double(decoded[r * cols + $1]) * Double(effective[$1]) }
            let magnitude = (0..<cols).reduce(0.0) { $0 + abs(Double(decoded[r * cols + $1]) * Double(effective[$1])) }
            #expect(abs(Double(out[r]) - exact) <= 1e-5 * magnitude, "\(type) row \(r)")
        }
        #expect(run(threads: 2) == out && run(threads: 3) == out)
    }

    /// The interleaved copies the decode kernels read (q4_0, q4_K and q6_K in whole 8-row groups)
    /// on every vector path: eight rows at a time against the decoded reference, and the prefill
    /// tiles unpacked from them equal to those unpacked from the stored rows.
    @Test(arguments: [WeightType.q4_0, .q4_K, .q6_K])
    func packedRowsMatchDequantizedReference(type: WeightType) throws {
        let rows = 24, cols = 512, tokens = 5
        let w = try Self.randomRows(type, rows: rows, cols: cols, seed: 90 + UInt64(type.ggmlTypeID))
        #expect(w.isPackable)
        let x = (0..<tokens).flatMap { Self.input(cols: cols, seed: 95 + UInt64($0)) }
        let a = Self.quantizedInputs(x, tokens: tokens, cols: cols)
        let effective = Self.quantized(Array(x[0..<cols]))
        let decoded = w.decodedValues()
        for path in Self.paths {
            let out = Self.packedProducts(w, activation: a, path: path)
            for r in 0..<rows {
                var exact = 0.0, magnitude = 0.0
                for c in 0..<cols {
                    let product = Double(decoded[r * cols + c]) * Double(effective[c])
                    exact += product
                    magnitude += abs(product)
                }
                #expect(abs(Double(out[r]) - exact) <= 1e-5 * magnitude + 1e-30,
                        "packed \(type) row \(r) on \(String(cString: ckv_path_name(path))): \(out[r]) vs \(exact)")
            }
            func tiles(packed: Bool) -> [Float] {
                var target = [Float](repeating: .nan, count: tokens * rows)
                target.withUnsafeMutableBufferPointer { o in
                    var job = MatMul.job(w, tokens: tokens, activation: a.view, into: o.baseAddress!, stride: rows)
                    if !packed {
                        job.weights = UnsafeRawPointer(w.storage)
                        job.packed = 0
                    }
                    job.path = path
                    ckv_gemm_part(&job, 0, 1)
                }
                return target
            }
            let stored = tiles(packed: false)
            #expect(stored.allSatisfy(\.isFinite) && tiles(packed: true) == stored, "\(type) tiles on \(String(cString: ckv_path_name(path)))")
        }
    }

    /// A mapped matrix gives its pages back once its interleaved copy is made; what it stores still
    /// reads back the same, and products through the copy do not depend on the thread count.
    @Test func mappedMatrixReadsTheSameAfterPacking() throws {
        let rows = 64, cols = 1024
        let source = try Self.randomRows(.q4_K, rows: rows, cols: cols, seed: 123)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-packed-\(UUID().uuidString).bin").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(source.encodedBytes).write(to: URL(fileURLWithPath: path))
        final class Mapping { let data: Data; init(_ data: Data) { self.data = data } }
        let mapping = Mapping(try InputFile.read(path))
        let w = try mapping.data.withUnsafeBytes { try WeightMatrix(rows: rows, cols: cols, type: .q4_K, encoded: $0, mapping: mapping) }
        #expect(w.isMapped && w.isPackable)
        let before = w.decodedValues()
        let x = Self.input(cols: cols, seed: 17)
        func run(threads: Int) -> [Float] {
            var out = [Float](repeating: .nan, count: rows)
            var ledger = IOLedger()
            out.withUnsafeMutableBufferPointer { o in
                MatVec.multiply(.init(w, into: o.baseAddress!), input: x, scratch: QuantizedActivation(capacity: cols),
                                pool: WorkerPool(threads: threads), ledger: &ledger)
            }
            return out
        }
        let one = run(threads: 1)
        #expect(w.decodedValues() == before)
        #expect(one.allSatisfy(\.isFinite) && run(threads: 2) == one && run(threads: 3) == one)
    }

    @Test func poolRunsEveryShareOnceAcrossManyDispatches() {
        let pool = WorkerPool(threads: 4)
        var counts = [Int32](repeating: 0, count: 4)
        counts.withUnsafeMutableBufferPointer { buffer in
            for _ in 0..<300 {
                pool.run({ context, index, count in
                    let counts = context!.assumingMemoryBound(to: Int32.self)
                    precondition(count == 4)
                    counts[Int(index)] += 1
                }, buffer.baseAddress!)
            }
        }
        #expect(counts == [300, 300, 300, 300])
    }

    @Test func ggufWeightsRunFromTheMappedFile() throws {
        let weights = try EmbeddedModel.load().weights
        #expect(weights.tokenEmbedding.isMapped && weights.layers.allSatisfy { $0.ffnDown.isMapped && $0.value.isMapped })
        let converted = weights.converted(to: .q8_0)
        #expect(!converted.layers[0].ffnDown.isMapped)
        let engine = InferenceEngine(weights: weights)
        try engine.decode(1)
        let finite = engine.logits.allSatisfy { $0.isFinite }
        #expect(finite)
    }

    @Test func vectorPathIsChosenAtRunTime() {
        #expect(ckv_path_supported(Int32(CKV_PATH_PORTABLE)) != 0)
        #expect(Self.paths.contains(ckv_active_path()))
        #expect(String(cString: ckv_vector_path()) == String(cString: ckv_path_name(ckv_active_path())))
        #expect(["avx512-vnni", "avx2", "portable"].contains(String(cString: ckv_vector_path())))
    }
}
