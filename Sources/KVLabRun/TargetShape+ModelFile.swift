import Foundation
import KVLabEngine
import KVLabHardware

extension TargetShape {
    /// The shape of a model file kvlab reads (config.json, a safetensors directory, GGUF,
    /// llama2.c), without loading its weights.
    public static func read(modelFile path: String) throws -> TargetShape {
        let shape = try ModelLoader.readShape(path: path)
        return TargetShape(config: shape.config, tiedEmbeddings: shape.tiedEmbeddings,
                           id: URL(fileURLWithPath: path).lastPathComponent, source: "\(path) (\(shape.format.rawValue))")
    }
}

extension HardwareCatalog {
    /// A bundled target, a shape file or a model file, read with the engine's loaders.
    public static func target(_ argument: String) throws -> TargetShape {
        try target(argument, readModel: TargetShape.read(modelFile:))
    }
}
