import Foundation
import ArgumentParser
import KVLabCurses
import KVLabFoundation
import KVLabTUI

/// `kvlab themes`: the colour themes kvlab can find, and a checker for theme files.
struct Themes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List colour themes or check theme files.",
        subcommands: [List.self, Check.self, Preview.self]
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

extension Themes {
    /// `kvlab themes preview [THEME]`: every widget on screen in a theme, to choose one (on a
    /// projector, say) before starting the workbench.
    struct Preview: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show every widget in a theme on the terminal (y: next theme, Y: previous, ?: help, q: quit).")

        @Argument(help: "A theme name or file (default: dark, or mono without colours).")
        var theme: String?

        @Option(name: .long, help: "Colours: auto (COLORTERM, NO_COLOR, the terminal), truecolor, 256, 16, 8 or mono.")
        var color: ColorSetting = .auto

        static let keys = KeyTable<String>([
            // The workbench's theme key (`t` there is the projected target).
            KeyBinding([.character("y")], "next theme", group: "Preview", action: "next theme"),
            KeyBinding([.character("Y")], "previous theme", group: "Preview", action: "previous theme"),
            KeyBinding([.character("?")], "show or hide this help", group: "Preview", action: "help"),
            KeyBinding([.character("q"), .escape], "quit", group: "Preview", action: "quit"),
        ])

        func run() throws {
            let catalog = themeCatalog()
            let terminal = try CursesTerminal.openInteractive()
            var notes: [ThemeDiagnostic] = []
            defer {
                terminal.stop()
                for note in notes { FileHandle.standardError.write(Data("\(note)\n".utf8)) }
            }
            let depth = color.depth(environment: ProcessInfo.processInfo.environment, terminal: terminal.colorSupport)
            let names = catalog.entries().map(\.name)
            var name = theme ?? ThemeCatalog.startingName(for: depth)
            var (current, diagnostics) = try loadTheme(name, catalog: catalog)
            notes += diagnostics
            var showsHelp = false, step = 0
            while true {
                var buffer = Buffer(width: terminal.width, height: terminal.height)
                WidgetGallery(glyphs: terminal.glyphs, patterned: depth == .mono || !terminal.glyphs.isUnicode, step: step,
                              showsHelp: showsHelp, keys: Self.keys).render(into: &buffer)
                buffer.put(Line(" \(current.name) · \(depth.rawValue) ", style: .role(.highlight), alignment: .right),
                           row: buffer.area.row(buffer.height - 1), glyphs: terminal.glyphs)
                terminal.draw(buffer, palette: current.palette(depth: depth))
                let key = terminal.readKey(timeoutMilliseconds: 200)
                if let signal = terminal.stopSignal { throw ExitCode(128 + signal) }
                guard let key else { step += 1; continue }
                switch Self.keys.action(for: key) {
                case "quit": return
                case "help": showsHelp.toggle()
                case let action? where action.hasSuffix("theme") && !names.isEmpty:
                    let index = names.firstIndex(of: name) ?? -1
                    name = names[(index + (action == "next theme" ? 1 : names.count - 1)) % names.count]
                    (current, diagnostics) = try loadTheme(name, catalog: catalog)
                    notes += diagnostics
                default: break
                }
            }
        }
    }
}

extension ColorSetting: ExpressibleByArgument {}

/// The theme and colours of a full-screen command (the workbench, replay, demo).
struct ScreenOptions: ParsableArguments {
    @Option(name: .long, help: "Colour theme: a name from kvlab themes list, or a theme file.")
    var theme: String?

    @Option(name: .long, help: "Colours: auto (COLORTERM, NO_COLOR, the terminal), truecolor, 256, 16, 8 or mono.")
    var color: ColorSetting = .auto

    /// The theme catalog and the starting theme (`--theme`, or the default), as the argument
    /// names it; a bad theme is a one-line error naming `--theme`.
    func startingTheme() throws -> (catalog: ThemeCatalog, argument: String, theme: Theme) { try Self.startingTheme(theme) }

    /// The theme catalog and the theme named `name` (or the default), for any `--theme` option.
    static func startingTheme(_ name: String?) throws -> (catalog: ThemeCatalog, argument: String, theme: Theme) {
        let catalog = themeCatalog()
        let argument = name ?? ThemeCatalog.defaultName
        do { return (catalog, argument, try loadTheme(argument, catalog: catalog).theme) } catch { throw CLIError("--theme: \(error)") }
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
    // A bare word is a theme name: one the catalog lacks is named with the ones it has.
    if catalog.path(named: argument) == nil, !argument.contains("/"), !argument.hasSuffix(".theme"), !FileManager.default.fileExists(atPath: argument) {
        throw CLIError("unknown theme '\(argument.prefix(40))' (\(catalog.entries().map(\.name).joined(separator: ", ")), or a theme file)")
    }
    let path = catalog.path(named: argument) ?? argument
    return ThemeParser.parse(try readTextFile(path), path: path, name: ThemeCatalog.name(ofFile: path), fallback: fallback)
}
