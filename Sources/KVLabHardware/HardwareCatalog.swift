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

    /// Bundled device names, sorted, then `this-machine`.
    public static var deviceNames: [String] { bundledNames("devices") + [thisMachine] }

    /// Bundled target names, sorted, then `live`.
    public static var targetNames: [String] { bundledNames("targets") + [live] }

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

    /// A bundled target by name, a shape file (`.json` in kvlab's shape format), or any model file
    /// kvlab reads (`config.json`, a safetensors directory, GGUF, llama2.c). `live` is not handled
    /// here (it is the loaded model). Model files are read by `readModel` (the engine's loaders:
    /// `HardwareCatalog.target(_:)` in KVLabRun), as this module reads no model format.
    public static func target(_ argument: String, readModel: (String) throws -> TargetShape) throws -> TargetShape {
        if isPath(argument) || FileManager.default.fileExists(atPath: argument) {
            // kvlab's shape files carry "kv_heads"; anything else is a model file (config.json included).
            if argument.hasSuffix(".json"), let data = try? InputFile.read(argument),
               (try? JSONValue.parse(data))?["kv_heads"] != nil {
                return try TargetShape(path: argument, data: data)
            }
            return try readModel(argument)
        }
        guard let path = PackageResources.file("targets/\(argument).json", inBundle: bundleName) else {
            throw UnknownProfileError.target(argument, known: targetNames)
        }
        return try TargetShape(path: path)
    }
}
