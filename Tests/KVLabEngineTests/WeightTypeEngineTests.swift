import Foundation
@testable import KVLabEngine
import KVLabFoundation
import KVLabMethods
import Testing

/// Every weight type through the engine: the decode and prefill products against the decoded
/// values, the bytes they count, and stories260K's NLL in each type against f32.
@Suite struct WeightTypeEngineTests {
    @Test(arguments: WeightType.allCases)
    func matVecAndPrefillReadEveryType(type: WeightType) {
        var rng = Xoshiro256(seed: 21)
        let rows = 40, cols = 512, tokens = 3
        let w = WeightMatrix(rows: rows, cols: cols, values: (0..<(rows * cols)).map { _ in Float.random(in: -1...1, using: &rng) }, type: type)
        #expect(w.type == type && w.byteCount == type.byteCount(elements: rows * cols))
        let x = (0..<(tokens * cols)).map { _ in Float.random(in: -1...1, using: &rng) }
        // The products' input: the floats, or (for quantized types) each token's 8-bit codes times their scales.
        let input = type.readsQuantizedActivation ? (0..<tokens).flatMap { KernelTests.quantized(Array(x[($0 * cols)..<(($0 + 1) * cols)])) } : x
        let decoded = w.decodedValues()
        func expected(_ t: Int, _ r: Int) -> Double { (0..<cols).reduce(0.0) { $0 + Double(decoded[r * cols + $1]) * Double(input[t * cols + $1]) } }
        for threads in [1, 2] {
            var out = [Float](repeating: 0, count: rows)
            var ledger = IOLedger()
            out.withUnsafeMutableBufferPointer { o in
                MatVec.multiply(.init(w, into: o.baseAddress!), input: x, scratch: QuantizedActivation(capacity: cols),
                                pool: WorkerPool(threads: threads), ledger: &ledger)
            }
            let error = (0..<rows).map { abs(Double(out[$0]) - expected(0, $0)) }.max()!
            #expect(error < 1e-4, "\(type) matvec on \(threads) threads: max error \(error)")
            #expect(ledger.bytesRead(.weights) == UInt64(w.byteCount), "\(type): traffic counts the stored bytes")
        }
        for threads in [1, 2] {
            var out = [Float](repeating: 0, count: tokens * rows)
            var scratch = [Float](repeating: 0, count: MatMul.tileRows * cols)
            var ledger = IOLedger()
            out.withUnsafeMutableBufferPointer { o in
                scratch.withUnsafeMutableBufferPointer { s in
                    MatMul.multiply(x, rows: tokens, w, into: o.baseAddress!, scratch: s.baseAddress!, pool: WorkerPool(threads: threads), ledger: &ledger)
                }
            }
            let error = (0..<(tokens * rows)).map { abs(Double(out[$0]) - expected($0 / rows, $0 % rows)) }.max()!
            #expect(error < 1e-4, "\(type) prefill product on \(threads) threads: max error \(error)")
            #expect(ledger.bytesRead(.weights) == UInt64(w.byteCount))
        }
    }

    @Test func ggufWrittenInAK_QuantRoundTripsAndDeclaresItsRecipe() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var model = try LlamaQuantizeTests.superBlockModel()
        model.weights = model.weights.converted(to: .q4_K)
        let path = directory.appendingPathComponent("q4_K.gguf").path
        try ModelLoader.write(model, to: path, as: .gguf)
        let loaded = try ModelLoader.load(path: path)
        #expect(loaded.weights.withRoPEStyle(.halfRotation).isBitIdentical(to: model.weights.withRoPEStyle(.halfRotation)))
        #expect(loaded.tensors.filter { $0.shape.count == 2 }.allSatisfy { $0.type == .q4_K })
        #expect(loaded.metadata.contains { $0 == ("general.file_type", "14 (Q4_K_S)") })
    }

    /// stories260K's rows are 64 and 172 elements long, so the 256-element types fall back to
    /// their 32-element partners (and the 172-long rows to f16), as llama-quantize would store them.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func storiesNLLInEveryTypeStaysNearF32() throws {
        let reference = try #require(Reference.shared)
        let model = try #require(Fixtures.stories)
        let tokens = Array(reference.greedy.ids.prefix(128))
        let base = try ReferenceRun.meanNLL(weights: model.weights.converted(to: .f32), tokens: tokens)
        var report: [String] = []
        for type in WeightType.allCases {
            let nll = try ReferenceRun.meanNLL(weights: model.weights.converted(to: type), tokens: tokens)
            report.append("\(type.rawValue) \(String(format: "%.4f", nll))")
            let tolerance = Self.nllTolerance[type.storing(rowLength: 64)]!
            #expect(abs(nll - base) / base < tolerance, "\(type) mean NLL \(nll) vs f32 \(base)")
        }
        print("stories260K mean NLL over 127 tokens: f32 \(String(format: "%.4f", base)); " + report.joined(separator: ", "))
    }

    /// Relative NLL tolerance per stored type, about 1.5× what was measured (f32 0.4880 over these
    /// 127 tokens; f16 and bf16 0.4879, q8_0 0.4887, q5_0 0.4999, q5_1 0.5043, q4_1 0.5125,
    /// iq4_nl 0.5562, q4_0 0.5930): a 260K-parameter model is far more sensitive than real ones.
    static let nllTolerance: [WeightType: Double] = [
        .f32: 1e-6, .f16: 0.002, .bf16: 0.002, .q8_0: 0.005, .q5_0: 0.04, .q5_1: 0.05, .q4_1: 0.08, .iq4_nl: 0.2, .q4_0: 0.3,
    ]
}
