import Foundation

/// The theme files kvlab can find by name: `*.theme` in a list of directories, earlier
/// directories first (a user's `dark.theme` overrides the shipped one).
public struct ThemeCatalog: Sendable {
    /// The resource bundle SwiftPM copies the repository's `themes/` into, beside the binary.
    public static let bundleName = "kvlab_KVLabTUI.resources"
    /// The themes' directory inside that bundle.
    public static let bundledDirectory = "themes"
    /// The theme used when none is chosen.
    public static let defaultName = "dark"

    /// A theme file found in the catalog.
    public struct Entry: Hashable, Sendable {
        /// The theme name (the file name without `.theme`).
        public var name: String
        /// The theme file.
        public var path: String

        /// An entry for the theme `name` in `path`.
        public init(name: String, path: String) {
            self.name = name
            self.path = path
        }
    }

    /// Directories searched, in order.
    public var directories: [String]

    /// A catalog searching `directories` in order.
    public init(directories: [String]) {
        self.directories = directories
    }

    /// The user's own theme directory: `$XDG_CONFIG_HOME/kvlab/themes`, else `~/.config/kvlab/themes`.
    public static func userDirectory(environment: [String: String]) -> String? {
        if let config = environment["XDG_CONFIG_HOME"], config.hasPrefix("/") { return config + "/kvlab/themes" }
        return environment["HOME"].map { $0 + "/.config/kvlab/themes" }
    }

    /// The theme to start with when none is chosen: mono when colours are off, else the default.
    public static func startingName(for depth: ColorDepth) -> String { depth == .mono ? "mono" : defaultName }

    /// Every theme found, by name; a name in an earlier directory hides later ones.
    public func entries() -> [Entry] {
        var found: [String: Entry] = [:]
        for directory in directories {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            for file in names where file.hasSuffix(".theme") {
                let name = String(file.dropLast(".theme".count))
                if found[name] == nil { found[name] = Entry(name: name, path: directory + "/" + file) }
            }
        }
        return found.values.sorted { $0.name < $1.name }
    }

    /// The file of a theme name, if the catalog has it.
    public func path(named name: String) -> String? {
        entries().first { $0.name == name }?.path
    }

    /// The name a theme file is known by: its file name without `.theme`.
    public static func name(ofFile path: String) -> String {
        let file = path.split(separator: "/").last.map(String.init) ?? path
        return file.hasSuffix(".theme") ? String(file.dropLast(".theme".count)) : file
    }
}
