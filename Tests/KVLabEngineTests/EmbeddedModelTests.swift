import Foundation
import Crypto
@testable import KVLabEngine
@testable import KVLabFoundation
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Testing

/// The default model shipped as a package resource (scripts/train_default_model.py).
@Suite struct EmbeddedModelTests {
    static let model = Result { try EmbeddedModel.load() }

    static func loaded() throws -> LoadedModel { try model.get() }

    static func metadata(_ model: LoadedModel, _ key: String) throws -> String {
        try #require(model.metadata.first { $0.0 == key }?.1, "\(key) missing from the embedded model")
    }

    @Test func shapesAndStorage() throws {
        let model = try Self.loaded()
        let c = model.config
        #expect(c.name == "kvlab-shakespeare")
        #expect([c.dim, c.hiddenDim, c.layerCount, c.headCount, c.kvHeadCount] == [192, 512, 8, 6, 6] as [Int])
        #expect(c.vocabSize == 2048 && c.contextLength == 1024)
        #expect(model.weights.tiedClassifier)
        #expect(model.tensors.count == 2 + 9 * c.layerCount)
        for tensor in model.tensors {
            #expect(tensor.type == (tensor.shape.count == 2 ? .f16 : .f32), "\(tensor.name)")
        }
        let size = try FileManager.default.attributesOfItem(atPath: try #require(EmbeddedModel.path))[.size] as? Int
        #expect(try #require(size) <= 16 << 20)
    }

    @Test(arguments: ["ROMEO:\nO, she doth teach the torches to burn bright!", "  two  spaces,\ttab\n\nblank line",
                      "héllo wörld 🙂 — Ünïcödé falls back to bytes", ""])
    func tokenizerRoundTrips(text: String) throws {
        let tokenizer = try Self.loaded().tokenizer
        let ids = tokenizer.encode(text)
        #expect(ids.first == 1)
        #expect(tokenizer.decode(ids) == text)
    }

    /// 32 sampled tokens for a seed: the same twice, and the same as when the model was made.
    @Test func samplesDeterministically() throws {
        let model = try Self.loaded()
        func sample() throws -> [Int] {
            let run = try LiveRun(model: model, settings: RunSettings(sampler: SamplerSettings(temperature: 0.8, topK: 0, topP: 0.95, seed: 7)))
            try run.submit(prompt: "ROMEO:\n")
            for _ in 0..<32 { _ = try run.step() }
            return Array(run.tokens.dropFirst(model.tokenizer.encode("ROMEO:\n").count))
        }
        let ids = try sample()
        #expect(ids.count == 32)
        #expect(try sample() == ids)
        #expect(Set(ids).count >= 12, "generation loops: \(ids)")
        #expect(ids == Self.expectedSample)
    }

    static let expectedSample: [Int] = [2015, 1999, 743, 349, 540, 891, 2008, 382, 2021, 333, 296, 615, 1731, 276, 423, 1996,
                                         331, 349, 773, 755, 324, 261, 924, 1999, 634, 349, 743, 272, 2004, 501, 325, 309]

    /// The engine reproduces the training script's held-out tokenization and its NLL.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: Fixtures.corpus),
                   "skipped: ../shared/corpus/tinyshakespeare.txt is absent"))
    func heldOutTextMatchesTheTrainingScript() throws {
        let model = try Self.loaded()
        let text = try String(contentsOfFile: Fixtures.corpus, encoding: .utf8)
        let heldOut = Fixtures.heldOut(text)
        var ids = model.tokenizer.encode(heldOut)
        #expect(ids.removeFirst() == 1)
        #expect(ids.count == Int(try Self.metadata(model, "kvlab.eval.val_tokens")))
        var digest = SHA256()
        for id in ids { withUnsafeBytes(of: Int32(id).littleEndian) { digest.update(bufferPointer: $0) } }
        #expect(digest.finalizeHex() == (try Self.metadata(model, "kvlab.eval.val_ids_sha256")))

        let expected = Double(try Self.metadata(model, "kvlab.eval.val_first_chunk_mean_nll"))!
        let evaluator = StreamingEvaluator(weights: model.weights, eviction: .full, withGhost: false)
        let summary = try evaluator.evaluate([1] + ids.prefix(1023))
        #expect(abs(summary.meanNLL - expected) / expected < 0.01, "engine \(summary.meanNLL) vs script \(expected)")
    }
}
