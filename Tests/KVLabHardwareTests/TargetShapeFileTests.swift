import Foundation
import Testing
import KVLabEngine
import KVLabFoundation
import KVLabRun
@testable import KVLabHardware

/// `--target` accepts any model file kvlab reads; only the shape is read, never the weights.
@Suite struct TargetShapeFileTests {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-hw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A Hugging Face config.json of a model the engine would not run (RoPE scaling, Qwen2's
    /// biases) still gives its shape.
    @Test func configJSONGivesItsShape() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = """
            {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
             "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064, "max_position_embeddings": 32768,
             "rope_theta": 1000000.0, "rope_scaling": {"type": "yarn", "factor": 4.0}, "sliding_window": 4096,
             "tie_word_embeddings": false, "hidden_act": "silu"}
            """
        let path = directory.appendingPathComponent("config.json").path
        try Data(config.utf8).write(to: URL(fileURLWithPath: path))
        for argument in [path, directory.path] {
            let shape = try HardwareCatalog.target(argument)
            #expect(shape.layers == 28 && shape.hidden == 3584 && shape.kvHeads == 4 && shape.headDim == 128)
            #expect(shape.ffn == 18944 && shape.vocab == 152064 && shape.maxContext == 32768 && !shape.tiedEmbeddings)
        }
        // The engine itself still refuses to run it.
        #expect(throws: FileError.self) { try ModelLoader.load(path: directory.path) }
    }

    @Test func ggufHeaderGivesTheLoadedShape() throws {
        let path = try #require(EmbeddedModel.path, "the embedded model's bundle is beside the test binary")
        let shape = try HardwareCatalog.target(path)
        let loaded = try EmbeddedModel.load()
        #expect(shape == TargetShape(config: loaded.config, tiedEmbeddings: loaded.weights.tiedClassifier, id: shape.id, source: shape.source))
    }

    /// A llama2.c header alone is enough (the weights are not read); a negative vocabulary size
    /// means a separate classifier.
    @Test func llama2cHeaderGivesItsShape() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("tiny.bin").path
        let header: [Int32] = [64, 172, 5, 8, 4, -512, 256]
        try header.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: path))
        let shape = try HardwareCatalog.target(path)
        #expect(shape.layers == 5 && shape.hidden == 64 && shape.heads == 8 && shape.kvHeads == 4 && shape.headDim == 8)
        #expect(shape.vocab == 512 && shape.maxContext == 256 && !shape.tiedEmbeddings)
        let bad = directory.appendingPathComponent("bad.bin").path
        try [Int32](arrayLiteral: 64, 172, 5, 7, 4, 512, 256).withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: bad))
        do {
            _ = try HardwareCatalog.target(bad)
            Issue.record("a head count that does not divide the width must be refused")
        } catch {
            #expect("\(error)".hasPrefix("\(bad): "))
            #expect(!"\(error)".contains("\n"))
        }
    }
}
