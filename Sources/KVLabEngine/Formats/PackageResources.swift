import Foundation

/// Files SwiftPM copies into resource bundles beside the built binary, found without
/// `Bundle.module` (which traps when the bundle is missing instead of letting the CLI explain).
public enum PackageResources {
    /// The path of `relativePath` inside the resource bundle named `bundle` (`<package>_<target>.resources`)
    /// next to the running binary or its resolved symlink, if it is there and readable.
    public static func path(bundle: String, _ relativePath: String) -> String? {
        var directories = [Bundle.main.bundleURL]
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            directories.append(executable.deletingLastPathComponent())
        }
        for directory in directories {
            let candidate = directory.appendingPathComponent(bundle).appendingPathComponent(relativePath).path
            if FileManager.default.isReadableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
