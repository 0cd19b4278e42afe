import Foundation
import KVLabFoundation
import KVLabMethods

/// The file formats kvlab reads and writes.
public enum ModelFormat: String, Sendable, CaseIterable {
    case llama2c
    case gguf
    case safetensors
}

/// One tensor as the file stores it (for `kvlab info`).
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    /// Dimensions, outermost first (rows, cols).
    public var shape: [Int]
    public var type: WeightType
    public var byteCount: Int
}

/// A model loaded from disk: weights, tokenizer, and where they came from.
public struct LoadedModel: Sendable {
    public var weights: ModelWeights
    public var tokenizer: any Tokenizer
    public var format: ModelFormat
    public var path: String
    /// The tensors as the file stored them.
    public var tensors: [TensorInfo]
    /// Human-readable metadata worth showing (key, value), in file order.
    public var metadata: [(String, String)]
    /// The context a run limits the model to (`--context`, recorded by sessions); nil: the model's own.
    public private(set) var contextOverride: Int?

    public var config: ModelConfig { weights.config }
    /// The instruct model's chat template, stored with its tokenizer; nil for base models.
    public var chatTemplate: String? { tokenizer.spec.chatTemplate }

    public init(weights: ModelWeights, tokenizer: any Tokenizer, format: ModelFormat, path: String,
                tensors: [TensorInfo], metadata: [(String, String)] = []) {
        self.weights = weights
        self.tokenizer = tokenizer
        self.format = format
        self.path = path
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The model run with a `context`-token context (nil: as it is); see `ModelConfig.withContext`.
    public func withContext(_ context: Int?) throws -> LoadedModel {
        guard let context else { return self }
        var copy = self
        copy.weights.config = try config.withContext(context)
        copy.contextOverride = context
        return copy
    }
}

/// Finds a model's format from its path and content, and loads it.
public enum ModelLoader {
    /// Loads a llama2.c checkpoint, a GGUF file, or a safetensors model (a directory with
    /// config.json, or a `.safetensors` / `.safetensors.index.json` file inside one).
    /// `tokenizerPath` overrides where a llama2.c checkpoint's `tokenizer.bin` is looked for.
    public static func load(path: String, tokenizerPath: String? = nil) throws -> LoadedModel {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FileError(path: path, problem: "no such file or directory")
        }
        if isDirectory.boolValue || path.hasSuffix(".safetensors") || path.hasSuffix(".safetensors.index.json") {
            return try SafetensorsModel.load(path: path)
        }
        let data = try InputFile.read(path)
        if isGGUF(path: path, data: data) {
            return try GGUFModel.load(path: path, data: data)
        }
        return try Llama2cModel.load(path: path, data: data, tokenizerPath: tokenizerPath)
    }

    /// GGUF by content or by name: a `.gguf` file with a damaged magic is reported as a bad GGUF,
    /// not read as a llama2.c checkpoint (which has no magic to check).
    static func isGGUF(path: String, data: Data) -> Bool {
        data.starts(with: Array("GGUF".utf8)) || path.lowercased().hasSuffix(".gguf")
    }

    /// Writes `model` as `format` (GGUF: one file; safetensors: a directory with config.json,
    /// model.safetensors and tokenizer.json).
    public static func write(_ model: LoadedModel, to path: String, as format: ModelFormat) throws {
        switch format {
        case .gguf: try GGUFModel.write(model, to: path)
        case .safetensors: try SafetensorsModel.write(model, to: path)
        case .llama2c: throw FileError(path: path, problem: "writing llama2.c checkpoints is not supported; use gguf or safetensors")
        }
    }
}
