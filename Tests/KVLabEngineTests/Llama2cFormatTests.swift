import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// llama2.c checkpoints and tokenizers: bad files give one clear error, never a trap.
@Suite(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
struct Llama2cFormatTests {
    let modelBytes = FileManager.default.contents(atPath: Fixtures.storiesModel)!
    let tokenizerBytes = FileManager.default.contents(atPath: Fixtures.storiesTokenizer)!

    private func parseModel(_ data: Data) throws -> ModelWeights {
        try data.withUnsafeBytes { try Llama2cModel.parseWeights(ByteReader($0), name: "fuzz").0 }
    }

    private func parseTokenizer(_ data: Data) throws -> TokenizerSpec {
        try data.withUnsafeBytes { try Llama2cModel.parseTokenizer(ByteReader($0), vocabSize: 512) }
    }

    private func header(_ values: [Int32]) -> Data {
        var data = Data()
        for v in values { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    @Test func headerDescribesTheModel() throws {
        let weights = try parseModel(modelBytes)
        #expect(weights.config.dim == 64 && weights.config.hiddenDim == 172 && weights.config.layerCount == 5)
        #expect(weights.config.headCount == 8 && weights.config.kvHeadCount == 4 && weights.config.vocabSize == 512)
        #expect(weights.tiedClassifier)
    }

    @Test func separateClassifierIsRead() throws {
        // A negative vocabulary size means an untied classifier follows the rope tables.
        var data = modelBytes
        data.replaceSubrange(20..<24, with: header([-512]))
        let classifier = (0..<(512 * 64)).map { Float($0 % 7) * 0.01 }
        classifier.withUnsafeBytes { data.append(contentsOf: $0) }
        let weights = try parseModel(data)
        #expect(!weights.tiedClassifier)
        #expect(weights.output.decodedValues() == classifier)
    }

    @Test(arguments: [
        ([Int32](arrayLiteral: 64, 172, 5, 8, 4, 1 << 30, 512), "vocabulary size"),
        ([64, 172, 5, 8, 3, 512, 512], "does not divide"),
        ([64, 172, 0, 8, 4, 512, 512], "block count"),
        ([63, 172, 5, 8, 4, 512, 512], "not a multiple"),
        ([64, 172, 5, 8, 4, 512, -1], "context length"),
        ([64, 172, 6, 8, 4, 512, 512], "needs"),
    ])
    func inconsistentHeadersAreRejected(values: [Int32], message: String) {
        var data = modelBytes
        data.replaceSubrange(0..<28, with: header(values))
        #expect {
            try parseModel(data)
        } throws: { error in
            "\(error)".contains(message)
        }
    }

    @Test func nanWeightsAreRejected() {
        var data = modelBytes
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { data.replaceSubrange(28 + 4000..<28 + 4004, with: $0) }
        #expect { try parseModel(data) } throws: { "\($0)".contains("NaN") }
    }

    @Test func trailingBytesAreRejected() {
        #expect { try parseModel(modelBytes + Data([0, 0, 0, 0])) } throws: { "\($0)".contains("unexpected bytes") }
    }

    @Test func loaderNamesTheFileAndMissingTokenizer() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let copy = directory.appendingPathComponent("model.bin").path
        #expect(FileManager.default.createFile(atPath: copy, contents: modelBytes))
        #expect { try ModelLoader.load(path: copy) } throws: { error in
            let text = "\(error)"
            return text.hasPrefix(copy) && text.contains("no tokenizer") && !text.contains("\n")
        }
        let truncated = directory.appendingPathComponent("truncated.bin").path
        #expect(FileManager.default.createFile(atPath: truncated, contents: modelBytes.prefix(5000)))
        #expect { try ModelLoader.load(path: truncated, tokenizerPath: Fixtures.storiesTokenizer) } throws: { error in
            "\(error)".hasPrefix(truncated)
        }
    }

    @Test func mutatedCheckpointsNeverTrap() {
        var mutator = Mutator(rng: Xoshiro256(seed: 7))
        var outcomes = (loaded: 0, rejected: 0)
        for _ in 0..<1000 {
            let data = mutator.mutate(modelBytes, focus: 28)
            do {
                _ = try parseModel(data)
                outcomes.loaded += 1
            } catch {
                #expect(!"\(error)".isEmpty && !"\(error)".contains("\n"))
                outcomes.rejected += 1
            }
        }
        #expect(outcomes.loaded + outcomes.rejected == 1000)
        #expect(outcomes.rejected > 0)
    }

    @Test func mutatedTokenizersNeverTrap() {
        var mutator = Mutator(rng: Xoshiro256(seed: 11))
        var rejected = 0
        for _ in 0..<1000 {
            let data = mutator.mutate(tokenizerBytes, focus: 256)
            do {
                let spec = try parseTokenizer(data)
                let tokenizer = try spec.makeTokenizer()
                _ = tokenizer.decode(tokenizer.encode("Once upon a time 🙂"))
            } catch {
                rejected += 1
            }
        }
        #expect(rejected > 0)
    }
}
