import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

extension Python {
    static let kvBlockScript = Fixtures.packageRoot.appendingPathComponent("scripts/kv_block_check.py").path
}

/// The KV quantization codecs on their own: bit packing, uniform groups, ggml block formats, fp8,
/// the Hadamard rotation, non-uniform levels and dense-and-sparse outliers.
@Suite struct KVQuantizationTests {
    // MARK: - Sizes and bit packing

    @Test func storageSizesAreExact() {
        // (codes, bits, ⌈codes·bits/8⌉): 3-bit runs end mid-byte (9, 15, 18 bits) and round up.
        let payloads = [(0, 3, 0), (1, 3, 1), (3, 3, 2), (5, 3, 2), (6, 3, 3), (8, 3, 3), (32, 3, 12), (128, 3, 48),
                        (7, 2, 2), (32, 2, 8), (33, 4, 17), (32, 4, 16), (1, 8, 1), (128, 8, 128)]
        for (codes, bits, bytes) in payloads {
            #expect(UniformQuantizer(bits: bits)?.payloadByteCount(codes: codes) == bytes, "\(codes) × \(bits) bits")
            #expect(NonUniformQuantizer(bits: bits)?.payloadByteCount(codes: codes) == bytes, "\(codes) × \(bits) bits")
        }
        #expect(UniformQuantizer(bits: 5) == nil && NonUniformQuantizer(bits: 1) == nil)
        #expect(UniformQuantizer.metadataBytesPerGroup == 4 && OutlierSplit.metadataBytesPerOutlier == 4)
        #expect([2, 3, 4, 8].map { NonUniformQuantizer(bits: $0)!.metadataByteCount } == [8, 16, 32, 512])
        #expect(KVBlockFormat.allCases.map(\.bytesPerBlock) == [34, 18, 20, 22, 24])
        #expect(KVBlockFormat.allCases.map(\.bitsPerElement) == [8.5, 4.5, 5, 5.5, 6])
        #expect(KVBlockFormat.q5_1.byteCount(elements: 128) == 96)
    }

    @Test func packedCodesStraddleBytesAtOddOffsets() {
        // 3-bit codes 5, 3, 7, 1 LSB first: 5 + 3·2³ + 7·2⁶ + 1·2⁹ = 989 = 0x3DD; shifted by one bit, 0x7BA.
        var bytes = [UInt8](repeating: 0, count: 2)
        for (i, code) in [5, 3, 7, 1].enumerated() { PackedCodes.store(UInt8(code), bits: 3, at: i * 3, in: &bytes) }
        #expect(bytes == [0xDD, 0x03])
        bytes = [0, 0]
        for (i, code) in [5, 3, 7, 1].enumerated() { PackedCodes.store(UInt8(code), bits: 3, at: 1 + i * 3, in: &bytes) }
        #expect(bytes == [0xBA, 0x07])

        // Every width at offsets 0…9 over random background bits: the run reads back and no other bit moves.
        var rng = Xoshiro256(seed: 7)
        for bits in [2, 3, 4, 8] {
            for offset in 0..<10 {
                let codes = (0..<13).map { _ in UInt8(truncatingIfNeeded: rng.next()) & UInt8((1 << bits) - 1) }
                let background = (0..<16).map { _ in UInt8(truncatingIfNeeded: rng.next()) }  // 13·8 + 9 bits at most
                var buffer = background
                for (i, code) in codes.enumerated() { PackedCodes.store(code, bits: bits, at: offset + i * bits, in: &buffer) }
                let read = codes.indices.map { PackedCodes.load(bits: bits, at: offset + $0 * bits, in: buffer) }
                #expect(read == codes, "\(bits) bits at offset \(offset)")
                let run = offset..<(offset + codes.count * bits)
                for bit in 0..<(buffer.count * 8) {
                    let actual = buffer[bit / 8] >> (bit % 8) & 1
                    let expected = run.contains(bit)
                        ? codes[(bit - offset) / bits] >> ((bit - offset) % bits) & 1
                        : background[bit / 8] >> (bit % 8) & 1
                    #expect(actual == expected, "\(bits) bits at offset \(offset): bit \(bit)")
                }
            }
        }
    }

    // MARK: - Uniform

    /// The error bound the uniform quantizer guarantees for a group whose clean values span
    /// `lo...hi`, from its stored fp16 scale s and zero z: a value inside the coded range is at
    /// most s/2 from its code's value; a value clamped to an end code is off by at most what fp16
    /// rounding moved that end, |lo − z| at the bottom and |lo − z| + (2^b − 1)·|(hi − lo)/(2^b − 1) − s|
    /// at the top (each fp16 rounding is within 2^-11 relative, so this is at most
    /// s/2 + 2^-11·(|lo| + hi − lo)); fp32 arithmetic adds a few ulps of the group's magnitude.
    static func uniformBound(lo: Float, hi: Float, bits: Int, scaleBits: UInt16, zeroBits: UInt16) -> Float {
        let scale = Half.toFloat(scaleBits)
        let top = Float((1 << bits) - 1)
        return scale / 2 + abs(lo - Half.toFloat(zeroBits)) + top * abs((hi - lo) / top - scale) + 1e-6 * (abs(lo) + abs(hi))
    }

    /// Quantizes `values` as one group (stride 1) at bit `offset` and returns the parameters, the codes
    /// and the decoded values.
    static func uniformRoundTrip(_ values: [Float], bits: Int, offset: Int = 0)
        -> (scaleBits: UInt16, zeroBits: UInt16, codes: [UInt8], decoded: [Float]) {
        let quantizer = UniformQuantizer(bits: bits)!
        // A run starting at bit `offset` may spill into one byte past the whole bytes it skips.
        var packed = [UInt8](repeating: 0, count: quantizer.payloadByteCount(codes: values.count) + offset / 8 + 1)
        let parameters = quantizer.quantize(values, count: values.count, stride: 1, into: &packed, bitOffset: offset)
        var decoded = [Float](repeating: .nan, count: values.count)
        quantizer.dequantize(packed, bitOffset: offset, count: values.count, scaleBits: parameters.scaleBits,
                             zeroBits: parameters.zeroBits, into: &decoded, stride: 1)
        let codes = values.indices.map { PackedCodes.load(bits: bits, at: offset + $0 * bits, in: packed) }
        return (parameters.scaleBits, parameters.zeroBits, codes, decoded)
    }

    @Test func uniformGroupsMatchHandComputedCodes() {
        // 2 bits over [-1, 2]: scale 3/3 = 1, zero -1; (x + 1)/1 = 0, 1, 1.4, 3 → codes 0, 1, 1, 3,
        // packed 0 | 1·2² | 1·2⁴ | 3·2⁶ = 0xD4.
        let two = Self.uniformRoundTrip([-1, 0, 0.4, 2], bits: 2)
        #expect(two.scaleBits == 0x3C00 && two.zeroBits == 0xBC00)
        #expect(two.codes == [0, 1, 1, 3] && two.decoded == [-1, 0, 0, 2])
        // 3 bits over [0, 7]: scale 1, zero 0; 3.5 rounds half away to 4, 3.49 to 3;
        // packed 0 | 7·2³ | 4·2⁶ | 3·2⁹ | 1·2¹² = 0x1738, 15 bits in 2 bytes.
        let quantizer = UniformQuantizer(bits: 3)!
        let values: [Float] = [0, 7, 3.5, 3.49, 1]
        var packed = [UInt8](repeating: 0, count: quantizer.payloadByteCount(codes: 5))
        let parameters = quantizer.quantize(values, count: 5, stride: 1, into: &packed, bitOffset: 0)
        #expect(parameters.scaleBits == 0x3C00 && parameters.zeroBits == 0)
        #expect(packed == [0x38, 0x17])
        // The same group read as one channel of a 5 × 3 matrix (stride 3, per-channel) gives the same codes,
        // and decoding with stride 3 writes only that channel.
        var matrix = [Float](repeating: 100, count: 15)
        for (t, x) in values.enumerated() { matrix[t * 3 + 1] = x }
        var strided = [UInt8](repeating: 0, count: 2)
        _ = matrix.withUnsafeBufferPointer {
            quantizer.quantize($0.baseAddress! + 1, count: 5, stride: 3, into: &strided, bitOffset: 0)
        }
        #expect(strided == packed)
        var out = [Float](repeating: -9, count: 15)
        out.withUnsafeMutableBufferPointer {
            quantizer.dequantize(strided, bitOffset: 0, count: 5, scaleBits: 0x3C00, zeroBits: 0, into: $0.baseAddress! + 1, stride: 3)
        }
        #expect(out == [-9, 0, -9, -9, 7, -9, -9, 4, -9, -9, 3, -9, -9, 1, -9])
    }

    @Test(arguments: UniformQuantizer.supportedBits)
    func uniformRoundTripStaysWithinBound(bits: Int) {
        var rng = Xoshiro256(seed: UInt64(bits))
        for trial in 0..<200 {
            let count = [32, 7, 128, 1][trial % 4]
            let magnitude = Float(pow(10, Double.random(in: -3...4, using: &rng)))
            let center = Float.random(in: -magnitude...magnitude, using: &rng)
            let values = (0..<count).map { _ in center + Float.random(in: -magnitude...magnitude, using: &rng) }
            let offset = trial % 11
            let result = Self.uniformRoundTrip(values, bits: bits, offset: offset)
            let bound = Self.uniformBound(lo: values.min()!, hi: values.max()!, bits: bits,
                                          scaleBits: result.scaleBits, zeroBits: result.zeroBits)
            for (x, y) in zip(values, result.decoded) {
                #expect(abs(x - y) <= bound, "\(bits) bits, trial \(trial): \(x) → \(y), bound \(bound)")
            }
            // The codes are round((x − zero)/scale) against the fp16 parameters, clamped to the code range.
            let scale = Half.toFloat(result.scaleBits), zero = Half.toFloat(result.zeroBits)
            let expected = values.map { scale == 0 ? 0 : UInt8(min(max((($0 - zero) / scale).rounded(), 0), Float((1 << bits) - 1))) }
            #expect(result.codes == expected, "\(bits) bits, trial \(trial)")
        }
    }

    @Test func uniformHandlesDegenerateAndNonFiniteGroups() {
        for bits in UniformQuantizer.supportedBits {
            // Constant group: scale 0, every code 0, decoded as the fp16 zero.
            let constant = Self.uniformRoundTrip([Float](repeating: 0.1, count: 9), bits: bits, offset: 3)
            #expect(constant.scaleBits == 0 && constant.codes.allSatisfy { $0 == 0 })
            #expect(constant.decoded.allSatisfy { $0 == Half.toFloat(Half.fromFloat(0.1)) })
            let zeros = Self.uniformRoundTrip([Float](repeating: 0, count: 5), bits: bits)
            #expect(zeros.scaleBits == 0 && zeros.zeroBits == 0 && zeros.decoded == [0, 0, 0, 0, 0])
            // A range below half fp16's smallest step: the scale rounds to 0 and codes are 0 rather than a division by 0.
            let tiny = Self.uniformRoundTrip([0.001, Float(0.001).nextUp, 0.001], bits: bits)
            #expect(tiny.scaleBits == 0 && tiny.codes == [0, 0, 0])
            #expect(tiny.decoded.allSatisfy { $0 == Half.toFloat(Half.fromFloat(0.001)) })
            // Non-finite values are coded as 0 and finite ones clamped to ±65504, so the fp16 metadata stays finite.
            let dirty = Self.uniformRoundTrip([.nan, .infinity, -.infinity, 1e30, -1e30, 3, -2], bits: bits, offset: 5)
            let clean = Self.uniformRoundTrip([0, 0, 0, 65504, -65504, 3, -2], bits: bits, offset: 5)
            #expect(dirty.scaleBits == clean.scaleBits && dirty.zeroBits == clean.zeroBits && dirty.codes == clean.codes)
            #expect(dirty.decoded.allSatisfy { $0.isFinite })
            let bound = Self.uniformBound(lo: -65504, hi: 65504, bits: bits, scaleBits: clean.scaleBits, zeroBits: clean.zeroBits)
            #expect(zip([0, 0, 0, 65504, -65504, 3, -2] as [Float], dirty.decoded).allSatisfy { abs($0 - $1) <= bound })
        }
    }

    // MARK: - ggml block formats

    /// Encodes `values` (whole blocks) as `format`.
    static func encode(_ values: [Float], as format: KVBlockFormat) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: format.byteCount(elements: values.count))
        bytes.withUnsafeMutableBytes { format.encode(values, count: values.count, into: $0.baseAddress!) }
        return bytes
    }

    /// Decodes `count` elements of `format` from `bytes`.
    static func decode(_ bytes: [UInt8], count: Int, as format: KVBlockFormat) -> [Float] {
        var values = [Float](repeating: .nan, count: count)
        bytes.withUnsafeBytes { format.decode($0.baseAddress!, count: count, into: &values) }
        return values
    }

    @Test func q5BlocksMatchHandComputedBytes() {
        // q5_0 of x_j = j − 16: the largest magnitude is x_0 = −16, so d = −16/−16 = 1 (fp16 0x3C00) and
        // code_j = trunc(x_j + 16.5) = j. Low nibbles: byte j = j | (j + 16 & 15) << 4 = 0x11·j; fifth
        // bits set for codes 16…31 only, qh = 0xFFFF0000 little-endian.
        let ramp = (0..<32).map { Float($0 - 16) }
        let nibbles = (0..<16).map { UInt8(0x11 * $0) }
        let q50 = Self.encode(ramp, as: .q5_0)
        #expect(q50 == [0x00, 0x3C, 0x00, 0x00, 0xFF, 0xFF] + nibbles)
        #expect(Self.decode(q50, count: 32, as: .q5_0) == ramp)

        // q5_0 of (3.2, −8, 0, …): largest magnitude −8, d = 0.5 (0x3800), 1/d = 2; codes trunc(2x + 16.5):
        // 3.2 → 22 (0b10110), −8 → 0, 0 → 16. Fifth bits: all but code 1, qh = 0xFFFFFFFD; byte 0 = 22 & 15 = 6.
        var sparse = [Float](repeating: 0, count: 32)
        sparse[0] = 3.2
        sparse[1] = -8
        let q50b = Self.encode(sparse, as: .q5_0)
        #expect(q50b == [0x00, 0x38, 0xFD, 0xFF, 0xFF, 0xFF, 0x06] + [UInt8](repeating: 0, count: 15))
        // Decoded (q − 16)·0.5: 3.2 comes back as 3, −8 and the zeros exactly.
        #expect(Self.decode(q50b, count: 32, as: .q5_0) == [3, -8] + [Float](repeating: 0, count: 30))
        // A positive extreme flips the sign of d: +8 gives d = −0.5 (0xB800) and code trunc(−16 + 16.5) = 0.
        sparse[1] = 8
        #expect(Self.encode(sparse, as: .q5_0).prefix(2) == [0x00, 0xB8])

        // q5_1 of x_j = j/2 − 3: min −3 (0xC200), max 12.5, d = 15.5/31 = 0.5 (0x3800); codes
        // trunc((x + 3)·2 + 0.5) = j, laid out as for the q5_0 ramp; decoded j·0.5 − 3 exactly.
        let shifted = (0..<32).map { Float($0) / 2 - 3 }
        let q51 = Self.encode(shifted, as: .q5_1)
        #expect(q51 == [0x00, 0x38, 0x00, 0xC2, 0x00, 0x00, 0xFF, 0xFF] + nibbles)
        #expect(Self.decode(q51, count: 32, as: .q5_1) == shifted)

        // All-zero blocks: d = 0, and every format decodes to zeros.
        for format in KVBlockFormat.allCases {
            let zeros = [Float](repeating: 0, count: 64)
            #expect(Self.decode(Self.encode(zeros, as: format), count: 64, as: format) == zeros, "\(format)")
        }
    }

    /// 320 seeded blocks: all zeros, constants, exact halves (ties for q8_0's roundf), equal magnitudes
    /// of both signs, one-signed ramps, a single huge outlier, then random blocks at scales 1e-4…1e3,
    /// uniform and Gaussian, some shifted away from zero.
    static func blockCorpus() -> [Float] {
        var rng = Xoshiro256(seed: 0x4B56_5135)
        var blocks: [[Float]] = [
            [Float](repeating: 0, count: 32),
            [Float](repeating: 0.25, count: 32),
            [Float](repeating: -3, count: 32),
            (0..<32).map { Float($0) - 15.5 },
            (0..<31).map { Float($0) - 15.5 } + [127],
            (0..<32).map { $0 % 2 == 0 ? 2 : -2 },
            (0..<32).map { $0 % 2 == 0 ? -2 : 2 },
            (0..<32).map { -Float($0 + 1) * 0.37 },
            (0..<32).map { Float($0 + 1) * 0.37 },
        ]
        for (position, outlier) in [(0, Float(1e5)), (13, -3e4), (31, 3e4)] {
            var block = (0..<32).map { _ in Float.random(in: -0.01...0.01, using: &rng) }
            block[position] = outlier
            blocks.append(block)
        }
        while blocks.count < 320 {
            let magnitude = Float(pow(10, Double.random(in: -4...3, using: &rng)))
            let shift = blocks.count % 3 == 0 ? magnitude * Float.random(in: -4...4, using: &rng) : 0
            let gaussian = blocks.count % 2 == 1
            blocks.append((0..<32).map { _ in
                if !gaussian { return shift + Float.random(in: -magnitude...magnitude, using: &rng) }
                // Box–Muller: a Gaussian sample with its heavier tails.
                let u = Double.random(in: Double.ulpOfOne...1, using: &rng), v = Double.random(in: 0..<1, using: &rng)
                return shift + magnitude * Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
            })
        }
        return blocks.flatMap { $0 }
    }

    @Test(.enabled(if: Python.hasGGUF, Comment(rawValue: Python.ggufSkipMessage)))
    func blockFormatsMatchGGUFPy() throws {
        let values = Self.blockCorpus()
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("blocks.f32")
        let output = directory.appendingPathComponent("blocks.json")
        try values.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: input)
        try Python.run(Python.kvBlockScript, input.path, output.path)
        let record = try JSONValue.parse(try Data(contentsOf: output))
        let blockCount = values.count / KVBlockFormat.blockSize
        for format in KVBlockFormat.allCases {
            let entry = try #require(record[format.rawValue], "\(format) missing from the script's output")
            let raw = [UInt8](try #require(entry["raw"]?.string.flatMap { Data(base64Encoded: $0) }))
            let decoded = try Python.floats(entry["decoded"])
            // Our encoder against theirs, and our decoder on their bytes against theirs: each side alone.
            let bytes = Self.encode(values, as: format)
            let ours = Self.decode(raw, count: values.count, as: format)
            try #require(raw.count == bytes.count && decoded.count == values.count, "\(format): sizes differ")
            let size = format.bytesPerBlock
            let encodeMismatches = (0..<blockCount).filter { block in
                bytes[(block * size)..<((block + 1) * size)] != raw[(block * size)..<((block + 1) * size)]
            }
            let decodeMismatches = (0..<blockCount).filter { block in
                (0..<32).contains { ours[block * 32 + $0].bitPattern != decoded[block * 32 + $0].bitPattern }
            }
            #expect(encodeMismatches.isEmpty, "\(format): blocks \(encodeMismatches.prefix(8)) differ from gguf.quants.quantize")
            #expect(decodeMismatches.isEmpty, "\(format): blocks \(decodeMismatches.prefix(8)) differ from gguf.quants.dequantize")
        }
    }

    @Test func blockFormatsEncodeNonFiniteValuesAsZero() {
        var rng = Xoshiro256(seed: 3)
        let finite = (0..<64).map { _ in Float.random(in: -2...2, using: &rng) }
        var dirty = finite
        var clean = finite
        for (position, value) in [(0, Float.nan), (5, .infinity), (40, -.infinity), (63, -.nan)] {
            dirty[position] = value
            clean[position] = 0
        }
        for format in KVBlockFormat.allCases {
            let bytes = Self.encode(dirty, as: format)
            #expect(bytes == Self.encode(clean, as: format), "\(format)")
            #expect(Self.decode(bytes, count: 64, as: format).allSatisfy { $0.isFinite }, "\(format)")
        }
    }

    // MARK: - FP8

    /// An fp8 code's value from the format's definition, written independently of `FP8Format`:
    /// (−1)^s · 2^(e − bias) · (1 + m/2^M), or 2^(1 − bias) · m/2^M when e = 0; nil for NaN.
    static func fp8Value(_ code: UInt8, _ format: FP8Format) -> Double? {
        let (exponentBits, mantissaBits, bias) = format == .e4m3 ? (4, 3, 7) : (5, 2, 15)
        let e = Int(code >> mantissaBits) & ((1 << exponentBits) - 1)
        let m = Double(Int(code) & ((1 << mantissaBits) - 1))
        let sign: Double = code >= 0x80 ? -1 : 1
        if format == .e4m3 && code & 0x7F == 0x7F { return nil }
        if format == .e5m2 && e == 31 { return m == 0 ? sign * .infinity : nil }
        let fraction = m / Double(1 << mantissaBits)
        return sign * (e == 0 ? fraction * pow(2, Double(1 - bias)) : (1 + fraction) * pow(2, Double(e - bias)))
    }

    @Test(arguments: FP8Format.allCases)
    func fp8CodesDecodeToTheirValuesAndReencodeToThemselves(format: FP8Format) {
        for code in UInt8.min...UInt8.max {
            let value = format.decode(code)
            guard let expected = Self.fp8Value(code, format) else {
                #expect(value.isNaN, "\(format) 0x\(String(code, radix: 16))")
                continue
            }
            #expect(value.bitPattern == Float(expected).bitPattern, "\(format) 0x\(String(code, radix: 16))")
            #expect(format.encode(value) == code, "\(format) 0x\(String(code, radix: 16))")
        }
        // Landmarks: the largest finite value, the smallest normal and subnormal, e5m2's infinity.
        if format == .e4m3 {
            #expect(format.decode(0x7E) == 448 && format.decode(0x08) == 0x1p-6 && format.decode(0x01) == 0x1p-9)
            #expect(format.decode(0x38) == 1 && format.decode(0x80).bitPattern == (-0.0 as Float).bitPattern)
        } else {
            #expect(format.decode(0x7B) == 57344 && format.decode(0x04) == 0x1p-14 && format.decode(0x01) == 0x1p-16)
            #expect(format.decode(0x7C) == .infinity && format.decode(0xFC) == -.infinity && format.decode(0x3C) == 1)
        }
        #expect(format.maxFinite == format.decode(format.maxCode))
    }

    @Test(arguments: FP8Format.allCases)
    func fp8RoundsToNearestTiesToEven(format: FP8Format) {
        // Between every two adjacent finite codes (subnormals included), the exact midpoint goes to the
        // even code, anything off the midpoint to the nearer one; negatives mirror with the sign bit.
        for lower in UInt8(0)..<format.maxCode {
            let a = format.decode(lower), b = format.decode(lower + 1)
            let midpoint = (a + b) / 2  // exact: fp8 values have at most 4 significant bits
            let even = lower % 2 == 0 ? lower : lower + 1
            #expect(format.encode(midpoint) == even, "\(format): \(a)…\(b)")
            #expect(format.encode(midpoint.nextDown) == lower && format.encode(midpoint.nextUp) == lower + 1, "\(format): \(a)…\(b)")
            #expect(format.encode(-midpoint) == 0x80 | even && format.encode(-midpoint.nextUp) == 0x80 | (lower + 1))
        }
        // Below half the smallest subnormal everything flushes to a signed zero.
        #expect(format.encode(1e-30) == 0x00 && format.encode(-1e-30) == 0x80)
    }

    @Test func fp8SaturatesAndKeepsNaN() {
        // e4m3: 464 is the tie between 448 (even mantissa) and 480 (the NaN code), so it rounds to 448;
        // anything larger would round past the largest finite value and saturates there.
        for x: Float in [449, 464, 464.0001, 480, 1e6, .greatestFiniteMagnitude, .infinity] {
            #expect(FP8Format.e4m3.encode(x) == 0x7E && FP8Format.e4m3.encode(-x) == 0xFE, "\(x)")
        }
        // e5m2: 61440 ties 57344 (odd mantissa) with 65536 (the infinity code), so it saturates too;
        // only an infinite input stays infinite.
        for x: Float in [57345, 61440, 65536, 1e9, .greatestFiniteMagnitude] {
            #expect(FP8Format.e5m2.encode(x) == 0x7B && FP8Format.e5m2.encode(-x) == 0xFB, "\(x)")
        }
        #expect(FP8Format.e5m2.encode(.infinity) == 0x7C && FP8Format.e5m2.encode(-.infinity) == 0xFC)
        #expect(FP8Format.e4m3.encode(.nan) == 0x7F && FP8Format.e4m3.encode(-.nan) == 0xFF)
        #expect(FP8Format.e5m2.encode(.nan) == 0x7E && FP8Format.e5m2.encode(-.nan) == 0xFE)
    }

    @Test func fp8ScalesMapTheLargestMagnitudeOntoTheMaximum() {
        // One head's values: non-finite entries do not count towards the absolute maximum.
        let head: [Float] = [0.5, -896, 3, .nan, .infinity]
        let amax = FP8Format.absMax(head, count: head.count)
        #expect(amax == 896 && FP8Format.e4m3.scale(absMax: amax) == 2 && FP8Format.e5m2.scale(absMax: amax) == 896 / 57344)
        var codes = [UInt8](repeating: 0, count: head.count)
        FP8Format.e4m3.encode(head, count: head.count, scale: 2, into: &codes)
        // 0.5/2 = 2⁻² → 0 0101 000; −896/2 = −448 → 0xFE; 3/2 = 1.5 → 0 0111 100; NaN stays NaN; ∞ saturates.
        #expect(codes == [0x28, 0xFE, 0x3C, 0x7F, 0x7E])
        var decoded = [Float](repeating: 0, count: head.count)
        FP8Format.e4m3.decode(codes, count: codes.count, scale: 2, into: &decoded)
        #expect(Array(decoded.prefix(3)) == [0.5, -896, 3] && decoded[3].isNaN && decoded[4] == 896)
        #expect(FP8Format.e4m3.scale(absMax: 0) == 1 && FP8Format.e5m2.scale(absMax: .infinity) == 1)

        // Per-head against per-tensor scales: with its own scale a small head keeps fp8's relative
        // precision (2^-(M+1), half an ulp), while a tensor-wide scale set by a head of magnitude 1e7
        // pushes its values into the subnormals or to zero.
        var rng = Xoshiro256(seed: 11)
        let small = (0..<64).map { _ in Float.random(in: 0.001...0.002, using: &rng) }
        for format in FP8Format.allCases {
            let precision = Float(sign: .plus, exponent: -(format.mantissaBits + 1), significand: 1)
            func roundTrip(scale: Float) -> [Float] {
                var codes = [UInt8](repeating: 0, count: small.count)
                var out = [Float](repeating: 0, count: small.count)
                format.encode(small, count: small.count, scale: scale, into: &codes)
                format.decode(codes, count: codes.count, scale: scale, into: &out)
                return out
            }
            let perHead = roundTrip(scale: format.scale(absMax: FP8Format.absMax(small, count: small.count)))
            #expect(zip(small, perHead).allSatisfy { abs($0 - $1) <= precision * $0 * 1.0001 }, "\(format)")
            let perTensor = roundTrip(scale: format.scale(absMax: 1e7))
            #expect(zip(small, perTensor).map { abs($0 - $1) / $0 }.max()! > 0.25, "\(format)")
        }
    }

    // MARK: - Hadamard

    @Test func hadamardMatchesHandComputedLength4() {
        // H₄ = [[1,1,1,1],[1,−1,1,−1],[1,1,−1,−1],[1,−1,−1,1]]; H₄·(1,2,3,4) = (10,−2,−4,0); /√4.
        var x: [Float] = [1, 2, 3, 4]
        Hadamard.transform(&x, count: 4)
        #expect(x == [5, -1, -2, 0])
        var one: [Float] = [-3]
        Hadamard.transform(&one, count: 1)
        #expect(one == [-3])
    }

    @Test func hadamardIsOrthonormal() {
        var rng = Xoshiro256(seed: 5)
        for log2 in 0...9 {
            let n = 1 << log2
            let q = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
            let k = (0..<n).map { _ in Float.random(in: -2...2, using: &rng) }
            var rq = q, rk = k
            Hadamard.transform(&rq, count: n)
            Hadamard.transform(&rk, count: n)
            // q·k and ‖q‖ are unchanged by the rotation (fp32 sums over n terms: relative slack ~n·ε).
            func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }
            let tolerance = 1e-5 * Double(n).squareRoot() * (dot(q, q) * dot(k, k)).squareRoot()
            #expect(abs(dot(rq, rk) - dot(q, k)) <= tolerance, "n = \(n)")
            #expect(abs(dot(rq, rq) - dot(q, q)) <= 1e-5 * Double(n).squareRoot() * dot(q, q), "n = \(n)")
            // Applying it twice is the identity.
            Hadamard.transform(&rq, count: n)
            #expect(zip(q, rq).allSatisfy { abs($0 - $1) <= 1e-5 * Float(log2 + 1) }, "n = \(n)")
        }
    }

    // MARK: - Non-uniform levels

    /// The fp16 levels fitted to `sample` (fitted on a copy: the fit sorts its sample in place).
    static func fitBits(_ sample: [Float], bits: Int) -> [UInt16] {
        var copy = sample
        var levels = [UInt16](repeating: 0xFFFF, count: 1 << bits)
        copy.withUnsafeMutableBufferPointer { NonUniformQuantizer(bits: bits)!.fitLevels($0, into: &levels) }
        return levels
    }

    static func fit(_ sample: [Float], bits: Int) -> [Float] { fitBits(sample, bits: bits).map(Half.toFloat) }

    @Test func nuqFitsHandComputedLevels() {
        // k = 4 on (0, 1, 2, 3, 10, 11, 12, 13): quantile starts values[(2j + 1)·8/8] = 1, 3, 11, 13.
        // 2 is as near 1 as 3 and 12 as near 11 as 13, so both join the lower level; the means are
        // 1, 3, 11, 13 again and Lloyd stops.
        #expect(Self.fit([13, 0, 12, 1, 11, 2, 10, 3], bits: 2) == [1, 3, 11, 13])
        // (0 … 6, 100): starts 1, 3, 5, 100; clusters {0,1,2} {3,4} {5,6} {100} (ties go low) move the
        // levels to 1, 3.5, 5.5, 100; then 3 is nearer 3.5 than 1 and 5 nearer 5.5, nothing changes.
        #expect(Self.fit([0, 1, 2, 3, 4, 5, 6, 100], bits: 2) == [1, 3.5, 5.5, 100])
        // Encoding against (1, 3, 11, 13): 2 and 7 are ties and take the lower level.
        let quantizer = NonUniformQuantizer(bits: 2)!
        let levels: [Float] = [1, 3, 11, 13]
        let values: [Float] = [0, 2, 7, 12.5, 100, -5]
        var packed = [UInt8](repeating: 0, count: 2)
        quantizer.encode(values, count: 6, stride: 1, levels: levels, into: &packed, bitOffset: 0)
        // Codes 0, 0, 1, 3, 3, 0 at 2 bits: 0 | 0 | 1·2⁴ | 3·2⁶, then 3 | 0.
        #expect(packed == [0xD0, 0x03])
        var decoded = [Float](repeating: 0, count: 6)
        quantizer.decode(packed, bitOffset: 0, count: 6, levels: levels, into: &decoded, stride: 1)
        #expect(decoded == [1, 1, 3, 13, 13, 1])
    }

    @Test(arguments: NonUniformQuantizer.supportedBits)
    func nuqCodesAreTheNearestLevel(bits: Int) {
        var rng = Xoshiro256(seed: 100 + UInt64(bits))
        let quantizer = NonUniformQuantizer(bits: bits)!
        let sample = (0..<2000).map { _ in Float.random(in: -1...1, using: &rng) * Float.random(in: 0...3, using: &rng) }
        let levelBits = Self.fitBits(sample, bits: bits)
        #expect(levelBits == Self.fitBits(sample.reversed(), bits: bits), "the fit is deterministic and order-free")
        let levels = levelBits.map(Half.toFloat)
        #expect(levels.count == quantizer.levelCount && levels == levels.sorted())
        // Per-channel layout: 50 tokens × 4 channels, channel 2 encoded at an odd bit offset.
        let tokens = (0..<200).map { _ in Float.random(in: -4...4, using: &rng) }
        let offset = 5
        var packed = [UInt8](repeating: 0xA5, count: quantizer.payloadByteCount(codes: 50) + 1)
        tokens.withUnsafeBufferPointer {
            quantizer.encode($0.baseAddress! + 2, count: 50, stride: 4, levels: levels, into: &packed, bitOffset: offset)
        }
        #expect(packed[0] & 0x1F == 0xA5 & 0x1F, "bits before the offset are kept")
        var decoded = [Float](repeating: .nan, count: 200)
        decoded.withUnsafeMutableBufferPointer {
            quantizer.decode(packed, bitOffset: offset, count: 50, levels: levels, into: $0.baseAddress! + 2, stride: 4)
        }
        for t in 0..<50 {
            let x = tokens[t * 4 + 2]
            let code = Int(PackedCodes.load(bits: bits, at: offset + t * bits, in: packed))
            // Brute force: the lowest index among the levels at the smallest distance.
            let best = levels.indices.min { (abs(x - levels[$0]), $0) < (abs(x - levels[$1]), $1) }!
            #expect(code == best && decoded[t * 4 + 2] == levels[best], "\(bits) bits: \(x)")
            #expect(decoded[t * 4].isNaN, "other channels untouched")
        }
    }

    @Test func nuqBeatsUniformOnAGaussianSample() {
        // Lloyd's levels crowd where a bell-shaped sample is dense; min-max uniform steps spend levels on the tails.
        var rng = Xoshiro256(seed: 21)
        let sample = (0..<4096).map { _ in
            let u = Double.random(in: Double.ulpOfOne...1, using: &rng), v = Double.random(in: 0..<1, using: &rng)
            return Float((-2 * log(u)).squareRoot() * cos(2 * .pi * v))
        }
        for bits in [2, 3, 4] {
            let levels = Self.fit(sample, bits: bits)
            let quantizer = NonUniformQuantizer(bits: bits)!
            var packed = [UInt8](repeating: 0, count: quantizer.payloadByteCount(codes: sample.count))
            quantizer.encode(sample, count: sample.count, stride: 1, levels: levels, into: &packed, bitOffset: 0)
            var nuq = [Float](repeating: 0, count: sample.count)
            quantizer.decode(packed, bitOffset: 0, count: sample.count, levels: levels, into: &nuq, stride: 1)
            let uniform = Self.uniformRoundTrip(sample, bits: bits).decoded
            func mse(_ y: [Float]) -> Double {
                zip(sample, y).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } / Double(sample.count)
            }
            #expect(mse(nuq) < 0.75 * mse(uniform), "\(bits) bits: nuq \(mse(nuq)), uniform \(mse(uniform))")
        }
    }

    @Test func nuqHandlesDegenerateAndNonFiniteSamples() {
        #expect(Self.fit([], bits: 3) == [Float](repeating: 0, count: 8))
        #expect(Self.fit([Float](repeating: 2.5, count: 10), bits: 2) == [2.5, 2.5, 2.5, 2.5])
        // Non-finite values count as 0, huge ones as ±65504: (0, 0, 0, 65504, −65504, 1, 1, 1).
        let levels = Self.fit([.nan, .infinity, -.infinity, 1e30, -1e30, 1, 1, 1], bits: 2)
        #expect(levels == [-65504, 0, 1, 65504])
        // Equal levels (a constant sample): every value takes the lowest index; NaN encodes like 0.
        let quantizer = NonUniformQuantizer(bits: 2)!
        var packed: [UInt8] = [0]
        quantizer.encode([7, -7, .nan, 2.5], count: 4, stride: 1, levels: [2.5, 2.5, 2.5, 2.5], into: &packed, bitOffset: 0)
        #expect(packed == [0])
        quantizer.encode([.nan, .infinity, -1e30, 0.6], count: 4, stride: 1, levels: levels, into: &packed, bitOffset: 0)
        // 0 → code 1, +∞ → 0 → code 1, −1e30 → −65504 → code 0, 0.6 → code 2.
        #expect(packed == [0b10_00_01_01])
    }

    // MARK: - Dense-and-sparse outliers

    @Test func outlierCountRoundsUp() {
        #expect(OutlierSplit.outlierCount(elements: 128, percent: 1) == 2)  // 1.28
        #expect(OutlierSplit.outlierCount(elements: 100, percent: 1) == 1)
        #expect(OutlierSplit.outlierCount(elements: 1000, percent: 0.7) == 7)
        #expect(OutlierSplit.outlierCount(elements: 30, percent: 10) == 3)
        #expect(OutlierSplit.outlierCount(elements: 64, percent: 0) == 0)
        #expect(OutlierSplit.outlierCount(elements: 64, percent: 100) == 64)
        #expect(OutlierSplit.outlierCount(elements: 64, percent: 150) == 64)
    }

    /// The range of `vector` without the values at `indices`.
    static func inlierRange(_ vector: [Float], excluding indices: [UInt16]) -> (min: Float, max: Float) {
        var mask = [Bool](repeating: false, count: vector.count)
        for i in indices { mask[Int(i)] = true }
        return OutlierSplit.inlierRange(vector, count: vector.count, stride: 1, outliers: mask)
    }

    /// The outliers of `vector`: indices ascending and fp16 values.
    static func outliers(_ vector: [Float], count k: Int) -> (indices: [UInt16], values: [UInt16]) {
        var indices = [UInt16](repeating: 0, count: k)
        var values = [UInt16](repeating: 0, count: k)
        OutlierSplit.select(vector, count: vector.count, outlierCount: k, indices: &indices, values: &values)
        return (indices, values)
    }

    @Test func outliersAreTheLargestMagnitudesLowerIndexFirst() {
        // |−3| = |3| = |3| at indices 1, 3, 5: the two kept are 1 and 3; with three, 5 joins.
        let vector: [Float] = [0.5, -3, 2, 3, -0.1, 3]
        let two = Self.outliers(vector, count: 2)
        #expect(two.indices == [1, 3] && two.values == [Half.fromFloat(-3), Half.fromFloat(3)])
        #expect(Self.outliers(vector, count: 3).indices == [1, 3, 5])
        #expect(Self.outliers(vector, count: 6).indices == [0, 1, 2, 3, 4, 5])
        // The dense rest without 1 and 3 spans −0.1…3 (index 5 is not excluded).
        let range = Self.inlierRange(vector, excluding: two.indices)
        #expect(range.min == -0.1 && range.max == 3)
        // Later, larger values displace earlier ones; indices come back ascending.
        #expect(Self.outliers([1, 2, 3, 4, 5, 6], count: 2).indices == [4, 5])
        #expect(Self.outliers([6, 1, 5, 2, 4, 3], count: 3).indices == [0, 2, 4])
        // All zeros: ties all the way, so the lowest indices.
        #expect(Self.outliers([0, 0, 0, 0], count: 2).indices == [0, 1])
    }

    @Test func denseAndSparseRoundTripKeepsOutliersExactly() {
        var rng = Xoshiro256(seed: 33)
        let quantizer = UniformQuantizer(bits: 4)!
        for trial in 0..<50 {
            var vector = (0..<128).map { _ in Float.random(in: -1...1, using: &rng) }
            vector[Int(rng.next() % 128)] = 40
            vector[Int(rng.next() % 128)] = -25
            let k = OutlierSplit.outlierCount(elements: 128, percent: 1)
            let split = Self.outliers(vector, count: k)
            let range = Self.inlierRange(vector, excluding: split.indices)
            let parameters = quantizer.parameters(min: range.min, max: range.max)
            var packed = [UInt8](repeating: 0, count: quantizer.payloadByteCount(codes: 128))
            quantizer.encode(vector, count: 128, stride: 1, scaleBits: parameters.scaleBits, zeroBits: parameters.zeroBits,
                             into: &packed, bitOffset: 0)
            var decoded = [Float](repeating: 0, count: 128)
            quantizer.dequantize(packed, bitOffset: 0, count: 128, scaleBits: parameters.scaleBits,
                                 zeroBits: parameters.zeroBits, into: &decoded, stride: 1)
            OutlierSplit.restore(indices: split.indices, values: split.values, outlierCount: k, into: &decoded)
            // Outliers come back as their fp16 values; the rest within the uniform bound of the inlier range
            // (about −1…1), a small fraction of what the full range (−25…40) would allow.
            let bound = Self.uniformBound(lo: range.min, hi: range.max, bits: 4,
                                          scaleBits: parameters.scaleBits, zeroBits: parameters.zeroBits)
            #expect(bound < 0.1)
            for i in 0..<128 {
                if split.indices.contains(UInt16(i)) {
                    #expect(decoded[i] == Half.toFloat(Half.fromFloat(vector[i])), "trial \(trial), outlier \(i)")
                } else {
                    #expect(abs(decoded[i] - vector[i]) <= bound, "trial \(trial), \(i): \(vector[i]) → \(decoded[i])")
                }
            }
        }
    }

    @Test func outliersHandleNonFiniteAndDegenerateVectors() {
        // NaN and ±∞ weigh as 0; 1e30 is clamped to 65504 (fp16 0x7BFF) and outranks −2.
        let dirty: [Float] = [.nan, .infinity, 1e30, -2, -.infinity]
        let split = Self.outliers(dirty, count: 2)
        #expect(split.indices == [2, 3] && split.values == [0x7BFF, Half.fromFloat(-2)])
        let range = Self.inlierRange(dirty, excluding: split.indices)
        #expect(range.min == 0 && range.max == 0)
        // Every entry an outlier: nothing left for the dense part.
        let all = Self.outliers([1, 2], count: 2)
        let none = Self.inlierRange([1, 2], excluding: all.indices)
        #expect(none.min == 0 && none.max == 0)
        #expect(Self.outliers([1, 2], count: 0).indices.isEmpty)
    }
}
