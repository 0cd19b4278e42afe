import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// The engine against an independent implementation's outputs on stories260K
/// (`../shared/reference/stories260K.json`).
@Suite(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
struct ReferenceTests {
    let model = Fixtures.stories!
    let reference = Reference.shared!

    @Test func tokenizerEncodingsMatch() {
        for case let item in reference.encode {
            #expect(model.tokenizer.encode(item.text) == item.ids, "encoding of \(item.text.debugDescription)")
        }
    }

    @Test func tokenizerDecodesWhatItEncodes() {
        for item in reference.encode {
            #expect(model.tokenizer.decode(item.ids) == item.text)
        }
    }

    @Test func greedyDecodingMatchesAllTokens() throws {
        let ids = try ReferenceRun.greedy(model: model, count: reference.greedy.ids.count)
        #expect(ids == reference.greedy.ids)
        #expect(model.tokenizer.decode(ids) == reference.greedy.text)
    }

    @Test func logitsMatchWithinTolerance() throws {
        let engine = InferenceEngine(weights: model.weights)
        let positions = Set(reference.logits.keys.compactMap(Int.init))
        for (position, token) in reference.greedy.ids.enumerated() where position <= positions.max()! {
            try engine.decode(token)
            guard let expected = reference.logits[String(position)] else { continue }
            let difference = zip(engine.logits, expected).map { abs($0 - $1) }.max()!
            #expect(difference < 1e-3, "max |Δlogit| at position \(position) is \(difference)")
        }
    }

    @Test func meanNLLMatches() throws {
        let nll = try ReferenceRun.meanNLL(weights: model.weights, tokens: reference.greedy.ids)
        #expect(abs(nll - reference.mean_nll) < 1e-4, "mean NLL \(nll) vs \(reference.mean_nll)")
    }

    @Test func batchedPrefillAgreesWithDecode() throws {
        let tokens = Array(reference.greedy.ids.prefix(96))
        let engine = InferenceEngine(weights: model.weights)
        let (_, all) = try engine.prefill(tokens, allLogits: true)
        let vocabulary = model.config.vocabSize
        for position in [0, 1, 2, 63] {
            let expected = reference.logits[String(position)]!
            let difference = (0..<vocabulary).map { abs(all[position * vocabulary + $0] - expected[$0]) }.max()!
            #expect(difference < 1e-3, "prefill logits at \(position) differ by \(difference)")
        }
        // Decoding continues correctly from a prefilled cache.
        try engine.decode(reference.greedy.ids[96])
        #expect(engine.logits.indices.max { engine.logits[$0] < engine.logits[$1] } == reference.greedy.ids[97])
    }

    @Test(arguments: [WeightType.f16, .q8_0])
    func quantizedWeightsStayClose(type: WeightType) throws {
        let nll = try ReferenceRun.meanNLL(weights: model.weights.converted(to: type), tokens: reference.greedy.ids)
        let relative = abs(nll - reference.mean_nll) / reference.mean_nll
        #expect(relative < (type == .f16 ? 0.001 : 0.02), "\(type) mean NLL \(nll) vs f32 \(reference.mean_nll)")
    }

    /// Quantized weights run the integer kernels against the input quantized to 8 bits per block of
    /// 32; the mean NLL stays within a stated relative distance of f32's (stories260K is small and
    /// its 64-wide rows are two blocks, so 4-bit types cost it more than they cost larger models:
    /// measured 0.4%, 11% and 16%). The input's quantization alone, against the same weights
    /// dequantized to f32, stays within 1% (measured 0.03%, 0.3%, 0.2%).
    @Test(arguments: [(WeightType.q8_0, 0.01), (.q4_1, 0.15), (.q4_0, 0.20)])
    func integerKernelsKeepNLLClose(type: WeightType, tolerance: Double) throws {
        let quantized = model.weights.converted(to: type)
        let nll = try ReferenceRun.meanNLL(weights: quantized, tokens: reference.greedy.ids)
        let relative = abs(nll - reference.mean_nll) / reference.mean_nll
        #expect(relative < tolerance, "\(type) mean NLL \(nll) vs f32 \(reference.mean_nll)")
        let floatInput = try ReferenceRun.meanNLL(weights: quantized.converted(to: .f32), tokens: reference.greedy.ids)
        #expect(abs(nll - floatInput) / floatInput < 0.01, "\(type) mean NLL \(nll) vs \(floatInput) with a float input")
    }

    @Test func halfRotationConventionGivesIdenticalLogits() throws {
        let permuted = model.weights.withRoPEStyle(.halfRotation)
        let a = InferenceEngine(weights: model.weights), b = InferenceEngine(weights: permuted)
        for token in reference.greedy.ids.prefix(40) {
            try a.decode(token)
            try b.decode(token)
            #expect(zip(a.logits, b.logits).allSatisfy { abs($0 - $1) < 1e-4 })
        }
        let restored = permuted.withRoPEStyle(.interleaved)
        #expect(restored.layers[0].query.decodedValues() == model.weights.layers[0].query.decodedValues())
        #expect(restored.layers[0].key.decodedValues() == model.weights.layers[0].key.decodedValues())
    }

    @Test func quantizedPrefillDoesNotDependOnThreadCount() throws {
        let weights = model.weights.converted(to: .q4_0)
        let tokens = Array(reference.greedy.ids.prefix(48))
        let one = try InferenceEngine(weights: weights, options: EngineOptions(threads: 1)).prefill(tokens, allLogits: true).logits
        let three = try InferenceEngine(weights: weights, options: EngineOptions(threads: 3)).prefill(tokens, allLogits: true).logits
        #expect(one == three)
    }

    @Test func resultsDoNotDependOnThreadCount() throws {
        let one = InferenceEngine(weights: model.weights, options: EngineOptions(threads: 1))
        let two = InferenceEngine(weights: model.weights, options: EngineOptions(threads: 2))
        for token in reference.greedy.ids.prefix(32) {
            try one.decode(token)
            try two.decode(token)
            #expect(Array(one.logits) == Array(two.logits))
        }
    }
}

/// Helpers that run the reference protocols on an engine.
enum ReferenceRun {
    /// Greedy ids from BOS, `count` long (BOS included), one decode step per token.
    static func greedy(model: LoadedModel, count: Int) throws -> [Int] {
        let engine = InferenceEngine(weights: model.weights)
        var ids = [model.tokenizer.spec.bosID!]
        while ids.count < count {
            let report = try engine.decode(ids.last!)
            ids.append(report.top.id)
        }
        return ids
    }

    /// Mean NLL (nats) of tokens[1...] under streaming teacher forcing.
    static func meanNLL(weights: ModelWeights, tokens: [Int]) throws -> Double {
        let engine = InferenceEngine(weights: weights)
        var total = 0.0
        for t in 0..<(tokens.count - 1) {
            try engine.decode(tokens[t])
            let stats = LogitStatistics(engine.logits.baseAddress!, count: engine.logits.count)
            total += Double(stats.logSumExp - engine.logits[tokens[t + 1]])
        }
        return total / Double(tokens.count - 1)
    }
}
