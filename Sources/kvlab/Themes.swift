import ArgumentParser
import Foundation
import KVLabEngine
import KVLabTUI

/// `kvlab themes`: the colour themes kvlab can find, and a checker for theme files.
struct Themes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List colour themes or check theme files.",
        subcommands: [List.self, Check.self]
    )

    /// `kvlab themes list`
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the themes kvlab finds (user themes first, then the shipped ones).")

        func run() throws {
            let catalog = themeCatalog()
            let entries = catalog.entries()
            guard !entries.isEmpty else { throw CLIError("no themes found in \(catalog.directories.joined(separator: ", "))") }
            let width = entries.map(\.name.count).max()!
            for entry in entries {
                let name = entry.name.padding(toLength: width, withPad: " ", startingAt: 0)
                print("\(name)  \(entry.path)\(entry.name == ThemeCatalog.defaultName ? "  (default)" : "")")
            }
        }
    }

    /// `kvlab themes check FILE...`
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check theme files: warnings and errors name file:line; exits non-zero when a file has errors.")

        @Argument(help: "Theme files (or names of themes kvlab finds).")
        var themes: [String]

        func run() throws {
            let catalog = themeCatalog()
            var errors = 0
            for argument in themes {
                let diagnostics = try loadTheme(argument, catalog: catalog).diagnostics
                let count = diagnostics.filter { $0.severity == .error }.count
                let warnings = diagnostics.count - count
                for diagnostic in diagnostics { print(diagnostic) }
                let path = catalog.path(named: argument) ?? argument
                print("\(path): \(count == 0 && warnings == 0 ? "ok" : "\(count) error\(count == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s")")")
                errors += count
            }
            if errors > 0 { throw ExitCode(1) }
        }
    }
}

/// Where kvlab finds themes: the user's directory, then the ones shipped beside the binary.
func themeCatalog(environment: [String: String] = ProcessInfo.processInfo.environment) -> ThemeCatalog {
    var directories: [String] = []
    if let user = ThemeCatalog.userDirectory(environment: environment) { directories.append(user) }
    if let shipped = PackageResources.file(ThemeCatalog.bundledDirectory, inBundle: ThemeCatalog.bundleName) { directories.append(shipped) }
    return ThemeCatalog(directories: directories)
}

/// A theme by name from the catalog or by file path, with what is wrong with its file. Keys the
/// file leaves out come from the default theme (or the terminal's own colours without one).
func loadTheme(_ argument: String, catalog: ThemeCatalog) throws -> (theme: Theme, diagnostics: [ThemeDiagnostic]) {
    var fallback = Theme.plain
    if let path = catalog.path(named: ThemeCatalog.defaultName) {
        fallback = ThemeParser.parse(try readTextFile(path), path: path, name: ThemeCatalog.defaultName, fallback: .plain).theme
    }
    let path = catalog.path(named: argument) ?? argument
    return ThemeParser.parse(try readTextFile(path), path: path, name: ThemeCatalog.name(ofFile: path), fallback: fallback)
}
