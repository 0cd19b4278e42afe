import Foundation
import KVLabEngine
import KVLabFoundation

/// kvlab's own default model (`scripts/train_default_model.py`, trained on Tiny Shakespeare),
/// shipped as a package resource so the workbench runs with no download.
public enum EmbeddedModel {
    public static let fileName = "kvlab-shakespeare.gguf"
    /// SwiftPM copies the engine's resources into this directory beside the built products.
    static let bundleName = "kvlab_KVLabRun.resources"

    /// Where the embedded GGUF file is, or nil when the resource bundle is not beside the binary.
    public static var path: String? { PackageResources.file(fileName, inBundle: bundleName) }

    /// Loads the embedded model, or fails with a one-line error when its bundle is missing.
    public static func load() throws -> LoadedModel {
        guard let path else {
            throw FileError(path: bundleName + "/" + fileName,
                            problem: "the embedded default model is not beside the kvlab binary; pass --model FILE")
        }
        return try ModelLoader.load(path: path)
    }
}
