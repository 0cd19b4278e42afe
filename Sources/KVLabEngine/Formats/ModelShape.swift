import Foundation
import KVLabFoundation
import KVLabMethods

/// A model's shape as its file declares it, read without loading any weights: what a hardware
/// projection needs from a checkpoint it does not run.
public struct ModelShape: Sendable, Equatable {
    /// Layers, widths, heads, vocabulary, context.
    public var config: ModelConfig
    /// Whether the classifier reuses the token embedding (stored once).
    public var tiedEmbeddings: Bool
    /// The file format it was read from.
    public var format: ModelFormat
}

extension ModelLoader {
    /// Reads the shape of a model file kvlab can load: a Hugging Face `config.json` (or a
    /// safetensors directory holding one), a GGUF file (header and metadata only; the file is
    /// mapped, not read) or a llama2.c checkpoint (its header). A `config.json` may describe a
    /// model the engine cannot run (another model type, RoPE scaling, biases): only its shape is
    /// used. Problems are one-line errors naming the file.
    public static func readShape(path: String) throws -> ModelShape {
        try singleLineErrors {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw FileError(path: path, problem: "no such file or directory")
            }
            if isDirectory.boolValue || path.hasSuffix(".json") {
                let file = isDirectory.boolValue ? (path as NSString).appendingPathComponent(SafetensorsModel.configFile) : path
                let data = try InputFile.read(file)
                return try withFileContext(file) {
                    let directory = URL(fileURLWithPath: file).deletingLastPathComponent().lastPathComponent
                    let hf = try HFConfig(try JSONValue.parse(data), defaultName: directory, runnable: false)
                    return ModelShape(config: hf.config, tiedEmbeddings: hf.tiedEmbeddings, format: .safetensors)
                }
            }
            let data = try InputFile.read(path)
            return try withFileContext(path) {
                try data.withUnsafeBytes { bytes in
                    if ModelLoader.isGGUF(path: path, data: data) { return try ggufShape(bytes, path: path) }
                    var reader = ByteReader(bytes)
                    let (config, shared) = try Llama2cModel.parseHeader(&reader, name: Llama2cModel.modelName(path))
                    return ModelShape(config: config, tiedEmbeddings: shared, format: .llama2c)
                }
            }
        }
    }

    private static func ggufShape(_ bytes: UnsafeRawBufferPointer, path: String) throws -> ModelShape {
        let file = try GGUFFile(bytes)
        let metadata = GGUFMetadata(file: file)
        guard let architecture = try metadata.string("general.architecture") else { throw FormatError("has no general.architecture") }
        guard let family = GGUFModel.architectures[architecture] else {
            throw FormatError("architecture \(architecture) is not supported (kvlab reads llama-family shapes)")
        }
        guard let vocabulary = try metadata.integer("\(architecture).vocab_size") ?? metadata.strings("tokenizer.ggml.tokens")?.count else {
            throw FormatError("has neither \(architecture).vocab_size nor tokenizer.ggml.tokens")
        }
        let config = try GGUFModel.modelConfig(metadata, vocabularySize: vocabulary,
                                               defaultName: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent)
        // A vocab-only GGUF (no tensors, like llama.cpp's ggml-vocab-*.gguf) still describes a shape;
        // a file with tensors must hold the ones its block_count implies.
        if !file.tensors.isEmpty { try GGUFModel.checkTensorNames(file.tensors, layerCount: config.layerCount, family: family) }
        return ModelShape(config: config, tiedEmbeddings: !file.tensors.contains { $0.name == "output.weight" }, format: .gguf)
    }
}
