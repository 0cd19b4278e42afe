import Foundation

/// Finds the resource bundles SwiftPM copies beside the built products (`kvlab_<Target>.resources`).
/// SwiftPM's generated `Bundle.module` would trap when a bundle is missing; this returns nil
/// instead, so the CLI can explain what is absent.
public enum PackageResources {
    /// The resource bundle directory named `bundleName` beside the running binary (or beside the
    /// symlink-resolved executable), or nil when there is none.
    public static func directory(named bundleName: String) -> URL? {
        var candidates = [Bundle.main.bundleURL]
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            candidates.append(executable.deletingLastPathComponent())
        }
        for directory in candidates {
            let bundle = directory.appendingPathComponent(bundleName)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: bundle.path, isDirectory: &isDirectory), isDirectory.boolValue { return bundle }
        }
        return nil
    }

    /// The readable file at `relativePath` inside the bundle `bundleName`, or nil.
    public static func file(_ relativePath: String, inBundle bundleName: String) -> String? {
        guard let bundle = directory(named: bundleName) else { return nil }
        let path = bundle.appendingPathComponent(relativePath).path
        return FileManager.default.isReadableFile(atPath: path) ? path : nil
    }
}
