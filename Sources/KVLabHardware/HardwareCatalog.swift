import Foundation
import KVLabFoundation

/// A name that is neither a bundled profile nor a file; the one-line message lists the valid names.
public enum UnknownProfileError: Error, CustomStringConvertible {
    case device(String, known: [String])
    case target(String, known: [String])

    public var description: String {
        switch self {
        case .device(let name, let known): "unknown device '\(name)' (\(known.joined(separator: ", ")), or a FILE.json)"
        case .target(let name, let known): "unknown target '\(name)' (\(known.joined(separator: ", ")), or a model file)"
        }
    }
}

/// The device profiles and target shapes shipped as package resources
/// (`kvlab_KVLabHardware.resources/devices/*.json`, `.../targets/*.json`), found beside the binary.
public enum HardwareCatalog {
    static let bundleName = "kvlab_KVLabHardware.resources"
    /// The device measured on first use rather than read from the bundle.
    public static let thisMachine = "this-machine"
    /// The target that is the loaded model itself.
    public static let live = "live"

    /// The device a projection uses when none is given.
    public static let defaultDevice = "h100-sxm"
    /// The target a projection uses when none is given: a current dense model whose own context
    /// (128K) holds `defaultContext`.
    public static let defaultTarget = "llama-3.1-8b"
    /// The projected context when none is given (`kvlab run`, `project`, `sweep`, the workbench):
    /// long enough that the KV cache matters, within `defaultTarget`'s context.
    public static let defaultContext = 32768

    /// Bundled device names, sorted, then `this-machine`.
    public static var deviceNames: [String] { bundledNames("devices") + [thisMachine] }

    /// Bundled target names, then `live`: the dense shapes in kvlab's own format first (the ones
    /// cross-checked against LLM-Viewer), then the Hugging Face configs of sliding-window, MLA,
    /// MoE and hybrid models, each group sorted.
    public static var targetNames: [String] {
        let names = bundledNames("targets")
        let dense = names.filter { name in
            guard let path = PackageResources.file("targets/\(name).json", inBundle: bundleName),
                  let data = try? InputFile.read(path) else { return false }
            return (try? JSONValue.parse(data))?["kv_heads"] != nil
        }
        return dense + names.filter { !dense.contains($0) } + [live]
    }

    private static func bundledNames(_ folder: String) -> [String] {
        guard let directory = PackageResources.directory(named: bundleName)?.appendingPathComponent(folder),
              let files = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Whether an argument names a file rather than a bundled profile.
    static func isPath(_ argument: String) -> Bool { argument.contains("/") || argument.hasSuffix(".json") }

    /// A bundled device by name, or a device file by path. `this-machine` is not handled here
    /// (it may need measuring): see `MachineProbe.profile(remeasure:)`.
    public static func device(_ argument: String) throws -> DeviceProfile {
        if isPath(argument) { return try DeviceProfile(path: argument) }
        guard let path = PackageResources.file("devices/\(argument).json", inBundle: bundleName) else {
            throw UnknownProfileError.device(argument, known: deviceNames)
        }
        return try DeviceProfile(path: path)
    }

    /// A bundled target by name, a shape file (`.json` in kvlab's shape format), a Hugging Face
    /// `config.json` (or a directory holding one; any model type, see `HuggingFaceConfig`), or a
    /// GGUF or llama2.c model file. `live` is not handled here (it is the loaded model). Model
    /// weights files are read by `readModel` (the engine's loaders: `HardwareCatalog.target(_:)` in
    /// KVLabRun), as this module reads no weights format.
    public static func target(_ argument: String, readModel: (String) throws -> TargetShape) throws -> TargetShape {
        if isPath(argument) || FileManager.default.fileExists(atPath: argument) {
            var isDirectory: ObjCBool = false
            let config = (argument as NSString).appendingPathComponent("config.json")
            if FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory), isDirectory.boolValue,
               FileManager.default.fileExists(atPath: config) {
                return try shapeFile(config, id: URL(fileURLWithPath: argument).lastPathComponent)
            }
            if argument.hasSuffix(".json") { return try shapeFile(argument, id: URL(fileURLWithPath: argument).deletingPathExtension().lastPathComponent) }
            return try readModel(argument)
        }
        guard let path = PackageResources.file("targets/\(argument).json", inBundle: bundleName) else {
            throw UnknownProfileError.target(argument, known: targetNames)
        }
        return try shapeFile(path, id: argument)
    }

    /// A `.json` target: kvlab's shape format (it has "kv_heads"), or a Hugging Face config.json.
    static func shapeFile(_ path: String, id: String) throws -> TargetShape {
        let data = try InputFile.read(path)
        if (try? JSONValue.parse(data))?["kv_heads"] != nil { return try TargetShape(path: path, data: data) }
        return try TargetShape(huggingFace: HuggingFaceConfig(path: path, data: data), id: id)
    }
}
