import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// stories260K converted at test time to GGUF and to Hugging Face safetensors (RoPE permutation
/// included) reproduces the reference outputs exactly as the original checkpoint does.
@Suite(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
struct ConvertedReferenceTests {
    let reference = Reference.shared!

    private func converted(to format: ModelFormat, weights type: WeightType = .f32) throws -> LoadedModel {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var model = Fixtures.stories!
        model.weights = model.weights.converted(to: type)
        let path = directory.appendingPathComponent(format == .gguf ? "stories.gguf" : "stories-hf").path
        try ModelLoader.write(model, to: path, as: format)
        return try ModelLoader.load(path: path)
    }

    @Test(arguments: [ModelFormat.gguf, .safetensors])
    func referenceOutputsAreReproduced(format: ModelFormat) throws {
        let model = try converted(to: format)
        #expect(model.format == format)
        #expect(model.config.ropeStyle == (format == .safetensors ? .halfRotation : .interleaved))
        for item in reference.encode {
            #expect(model.tokenizer.encode(item.text) == item.ids, "\(format) encoding of \(item.text.debugDescription)")
        }
        #expect(try ReferenceRun.greedy(model: model, count: reference.greedy.ids.count) == reference.greedy.ids)
        let engine = InferenceEngine(weights: model.weights)
        for (position, token) in reference.greedy.ids.prefix(128).enumerated() {
            try engine.decode(token)
            guard let expected = reference.logits[String(position)] else { continue }
            let difference = zip(engine.logits, expected).map { abs($0 - $1) }.max()!
            #expect(difference < 1e-3, "\(format) max |Δlogit| at \(position) is \(difference)")
        }
        let nll = try ReferenceRun.meanNLL(weights: model.weights, tokens: reference.greedy.ids)
        #expect(abs(nll - reference.mean_nll) < 1e-4, "\(format) mean NLL \(nll) vs \(reference.mean_nll)")
    }

    @Test func q8_0GGUFStaysWithinTwoPercent() throws {
        let model = try converted(to: .gguf, weights: .q8_0)
        #expect(model.weights.layers[0].query.type == .q8_0)
        let nll = try ReferenceRun.meanNLL(weights: model.weights, tokens: reference.greedy.ids)
        #expect(abs(nll - reference.mean_nll) / reference.mean_nll < 0.02, "q8_0 mean NLL \(nll) vs \(reference.mean_nll)")
    }
}
