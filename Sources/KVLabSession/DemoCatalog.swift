import Foundation
import KVLabFoundation

/// The demo scenarios: session files in `sessions/demos/`, shipped beside the binary and found in
/// a repository checkout too.
public enum DemoCatalog {
    /// The resource bundle SwiftPM copies `sessions/demos` into.
    public static let bundleName = "kvlab_KVLabSession.resources"
    /// The ending of a session file's name.
    public static let fileSuffix = ".kvlab.jsonl"

    /// One demo: its name (the file name without the suffix) and file.
    public struct Demo: Sendable, Equatable {
        /// The name `kvlab demo NAME` takes.
        public var name: String
        /// The session file.
        public var path: String
    }

    /// The directory holding the demos: the shipped one beside the binary, else `sessions/demos`
    /// under the current directory (a checkout); nil when neither exists.
    public static func directory(currentDirectory: String = FileManager.default.currentDirectoryPath) -> String? {
        if let shipped = PackageResources.file("demos", inBundle: bundleName) { return shipped }
        let checkout = URL(fileURLWithPath: currentDirectory).appendingPathComponent("sessions/demos").path
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: checkout, isDirectory: &isDirectory) && isDirectory.boolValue ? checkout : nil
    }

    /// The demos in `directory`, by name.
    public static func demos(in directory: String) -> [Demo] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasSuffix(fileSuffix) }.sorted().map {
            Demo(name: String($0.dropLast(fileSuffix.count)), path: URL(fileURLWithPath: directory).appendingPathComponent($0).path)
        }
    }

    /// The first caption of a session file (nil when it has none).
    public static func firstCaption(of path: String) throws -> String? {
        let reader = try SessionReader(path: path)
        while let record = try reader.next() {
            if case .caption(let caption) = record.event { return caption.text }
        }
        return nil
    }
}
