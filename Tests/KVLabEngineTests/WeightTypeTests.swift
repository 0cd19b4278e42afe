import Foundation
import KVLabEngine
import KVLabFoundation
@testable import KVLabMethods
import Testing

extension Python {
    static let weightTypeScript = Fixtures.packageRoot.appendingPathComponent("scripts/weight_type_check.py").path
}

/// The weight types' layouts and codecs: sizes and ids as ggml defines them, decoding bit-exact
/// with gguf-py on random and edge-case blocks, encoding bit-exact with gguf-py where it can
/// quantize (the K-quant and iq4 encoders are checked against llama-quantize in
/// LlamaQuantizeTests), and llama.cpp's fallback for rows that are not whole blocks.
@Suite struct WeightTypeTests {
    @Test func layoutsAndIDsAreGGML() {
        // (type, ggml id, elements per block, bytes per block) from ggml's type traits.
        let table: [(WeightType, UInt32, Int, Int)] = [
            (.f32, 0, 1, 4), (.f16, 1, 1, 2), (.bf16, 30, 1, 2), (.q8_0, 8, 32, 34), (.q6_K, 14, 256, 210),
            (.q5_1, 7, 32, 24), (.q5_K, 13, 256, 176), (.q5_0, 6, 32, 22), (.q4_1, 3, 32, 20), (.q4_K, 12, 256, 144),
            (.q4_0, 2, 32, 18), (.iq4_nl, 20, 32, 18), (.iq4_xs, 23, 256, 136), (.q3_K, 11, 256, 110), (.q2_K, 10, 256, 84),
        ]
        #expect(table.map(\.0) == WeightType.allCases)
        for (type, id, block, bytes) in table {
            #expect(type.ggmlTypeID == id && WeightType(ggmlTypeID: id) == type, "\(type)")
            #expect(type.blockSize == block && type.bytesPerBlock == bytes, "\(type)")
        }
        #expect(WeightType.allCases.map(\.bitsPerWeight)
                == [32, 16, 16, 8.5, 6.5625, 6, 5.5, 5.5, 5, 4.5, 4.5, 4.5, 4.25, 3.4375, 2.625])
        #expect(WeightType.allCases.map(\.bitsPerWeight) == WeightType.allCases.map(\.bitsPerWeight).sorted(by: >),
                "the knob cycles from most to fewest bits")
        #expect(WeightType(ggmlTypeID: 16) == nil)
    }

    @Test func rowsThatAreNotWholeBlocksTakeLlamaCppsFallback() {
        // llama-quant.cpp's tensor_type_fallback, then f16 when the fallback does not fit either.
        let fallbacks: [WeightType: WeightType] = [.q2_K: .q4_0, .q3_K: .q4_0, .q4_K: .q5_0, .q5_K: .q5_1, .q6_K: .q8_0, .iq4_xs: .iq4_nl]
        for type in WeightType.allCases {
            #expect(type.storing(rowLength: 512) == type)
            #expect(type.storing(rowLength: 192) == (type.blockSize == 256 ? fallbacks[type]! : type), "\(type)")
            #expect(type.storing(rowLength: 100) == (type.blockSize == 1 ? type : .f16), "\(type)")
        }
        let matrix = WeightMatrix(rows: 2, cols: 192, values: (0..<384).map { Float($0 % 7) - 3 }, type: .f32)
        #expect(matrix.converted(to: .q4_K).type == .q5_0 && matrix.converted(to: .q6_K).type == .q8_0)
    }

    /// Values covering the encoders' edge cases, in 256-element super-blocks.
    static func edgeValues() -> [Float] {
        var rng = Xoshiro256(seed: 15)
        func normal(_ scale: Float) -> Float { (0..<4).reduce(Float(0)) { sum, _ in sum + Float.random(in: -1...1, using: &rng) } * scale }
        var blocks: [[Float]] = []
        blocks.append([Float](repeating: 0, count: 256))                                       // all zero
        blocks.append((0..<256).map { _ in normal(1) })
        blocks.append((0..<256).map { $0 == 77 ? 100 : normal(1e-3) })                         // one outlier
        blocks.append((0..<256).map { _ in normal(1e-39) })                                    // subnormal floats
        blocks.append((0..<256).map { $0 % 3 == 0 ? 1e7 : normal(1e6) })                       // fp16 scales overflow
        blocks.append((0..<256).map { Float($0 % 17) * 0.5 - 4 })                              // exact ties
        blocks.append([Float](repeating: 0.3, count: 256))                                     // constant
        blocks.append((0..<256).map { _ in -abs(normal(0.02)) })                               // one sign
        blocks.append((0..<256).map { $0 < 128 ? 0 : normal(0.05) })                           // zero sub-blocks
        blocks.append((0..<256).map { _ in Float(Half.toFloat(UInt16.random(in: 1...0x3ff, using: &rng))) })  // fp16 subnormals
        for scale: Float in [0.01, 0.1, 3, 60] { blocks.append((0..<256).map { _ in normal(scale) }) }
        return blocks.flatMap { $0 }
    }

    static func encode(_ values: [Float], as type: WeightType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: type.byteCount(elements: values.count))
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { BlockCodec.encode(src.baseAddress!, count: values.count, as: type, into: $0.baseAddress!) }
        }
        return out
    }

    static func decode(_ bytes: [UInt8], as type: WeightType) -> [Float] {
        let count = bytes.count / type.bytesPerBlock * type.blockSize
        var out = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBufferPointer { BlockCodec.decode(src.baseAddress!, count: count, as: type, into: $0.baseAddress!) }
        }
        return out
    }

    @Test(.enabled(if: Python.hasGGUF, Comment(rawValue: Python.ggufSkipMessage)))
    func codecsMatchGGUFPy() throws {
        let values = Self.edgeValues()
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("values.f32"), output = directory.appendingPathComponent("expected.json")
        try values.withUnsafeBytes { try Data($0).write(to: input) }
        try Python.run(Python.weightTypeScript, input.path, output.path)
        let record = try JSONValue.parse(try Data(contentsOf: output))

        for type in WeightType.allCases {
            let entry = try #require(record["dequantized"]?[type.rawValue], "\(type.rawValue) missing from the script's output")
            let raw = [UInt8](try #require(entry["raw"]?.string.flatMap { Data(base64Encoded: $0) }))
            let expected = try Python.floats(entry["decoded"])
            let decoded = Self.decode(raw, as: type)
            try #require(decoded.count == expected.count, "\(type): sizes differ")
            let mismatches = decoded.indices.filter { i in
                decoded[i].bitPattern != expected[i].bitPattern && !(decoded[i].isNaN && expected[i].isNaN)
            }
            #expect(mismatches.isEmpty, "\(type): elements \(mismatches.prefix(8)) differ from gguf.quants.dequantize")
        }

        var quantizable = 0
        for type in WeightType.allCases {
            guard let encoded = record["quantized"]?[type.rawValue] else { continue }
            quantizable += 1
            let expected = [UInt8](try #require(encoded.string.flatMap { Data(base64Encoded: $0) }))
            let ours = Self.encode(values, as: type)
            try #require(ours.count == expected.count, "\(type): sizes differ")
            let size = type.bytesPerBlock
            let mismatches = (0..<(ours.count / size)).filter { ours[($0 * size)..<(($0 + 1) * size)] != expected[($0 * size)..<(($0 + 1) * size)] }
            #expect(mismatches.isEmpty, "\(type): blocks \(mismatches.prefix(8)) differ from gguf.quants.quantize")
        }
        #expect(quantizable == 7, "f16, bf16, q8_0, q5_0, q5_1, q4_0 and q4_1")
    }

    /// Without llama.cpp at hand, the K-quant and iq4 encoders at least reconstruct well: relative
    /// RMS error per type on Gaussian-like weights, bounds about 1.5× what ggml's reference gives.
    @Test func superBlockEncodersReconstruct() {
        var rng = Xoshiro256(seed: 4)
        let values = (0..<(64 * 256)).map { _ in (0..<4).reduce(Float(0)) { s, _ in s + Float.random(in: -1...1, using: &rng) } * 0.02 }
        let rms = (values.reduce(0) { $0 + $1 * $1 } / Float(values.count)).squareRoot()
        let bounds: [WeightType: Float] = [.q2_K: 0.45, .q3_K: 0.25, .q4_K: 0.12, .q5_K: 0.06, .q6_K: 0.03, .iq4_nl: 0.12, .iq4_xs: 0.12]
        for (type, bound) in bounds {
            let decoded = Self.decode(Self.encode(values, as: type), as: type)
            let error = (zip(values, decoded).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / Float(values.count)).squareRoot()
            #expect(error / rms < bound, "\(type): relative RMS error \(error / rms)")
        }
    }
}
