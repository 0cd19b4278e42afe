import Foundation
import KVLabTUI
import Testing

/// Theme files: the shipped themes, bad files, fallbacks, and resolving styles at each depth.
@Suite struct ThemeTests {
    static let themesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("themes").path

    static func shipped(_ name: String) throws -> (theme: Theme, diagnostics: [ThemeDiagnostic]) {
        let path = themesDirectory + "/" + name + ".theme"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return ThemeParser.parse(text, path: path, name: name, fallback: .plain)
    }

    static func parse(_ text: String, fallback: Theme = .plain) -> (theme: Theme, diagnostics: [ThemeDiagnostic]) {
        ThemeParser.parse(text, path: "t.theme", name: "t", fallback: fallback)
    }

    @Test(arguments: ["dark", "light", "high-contrast", "mono"])
    func shippedThemesAreComplete(name: String) throws {
        let (theme, diagnostics) = try Self.shipped(name)
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        #expect(theme.roles.count == ThemeRole.allCases.count)
        #expect(theme.gradients.count == ThemeGradient.allCases.count)
    }

    @Test func shippedThemesListedByTheCatalog() {
        let catalog = ThemeCatalog(directories: [Self.themesDirectory])
        #expect(catalog.entries().map(\.name) == ["dark", "high-contrast", "light", "mono"])
        #expect(catalog.path(named: ThemeCatalog.defaultName) == Self.themesDirectory + "/dark.theme")
        #expect(ThemeCatalog.startingName(for: .mono) == "mono")
        #expect(ThemeCatalog.startingName(for: .palette256) == "dark")
    }

    @Test func monoThemeHasNoColours() throws {
        let mono = try Self.shipped("mono").theme
        #expect(mono.roles.values.allSatisfy { $0.color == .terminalDefault })
        #expect(mono[.title].attributes == .bold && mono[.kvEvicted].attributes == .dim)
    }

    @Test func readsColoursAttributesCommentsAndQuotes() {
        let (theme, diagnostics) = Self.parse("""
            # comment
              theme[title]="#ff0000 bold underline"   # trailing comment
            theme[ main_fg ] = 'bright_white'\r
            theme[main_bg]=""
            theme[border]="dim"
            theme[graph_start]="#000000"
            theme[graph_end]="#ffffff"
            """)
        #expect(diagnostics.count == 1 && diagnostics[0].line == nil && diagnostics[0].severity == .warning)
        #expect(theme[.title] == RoleStyle(.rgb(RGB(hex: 0xFF0000)), [.bold, .underline]))
        #expect(theme[.text] == RoleStyle(.indexed(15)))
        #expect(theme[.background] == RoleStyle(.terminalDefault))
        #expect(theme[.border] == RoleStyle(.terminalDefault, .dim))
        // Both ends and no middle: a straight gradient, not the fallback's middle stop.
        #expect(theme.gradients[.graph]?.color(at: 0.5) == .rgb(RGB(hex: 0x808080)))
    }

    @Test func missingKeysComeFromTheFallbackWithOneWarning() throws {
        let dark = try Self.shipped("dark").theme
        let (theme, diagnostics) = Self.parse("theme[title]=\"#123456\"\n", fallback: dark)
        #expect(theme[.title].color == .rgb(RGB(hex: 0x123456)))
        #expect(theme[.kvKept] == dark[.kvKept])
        #expect(theme.gradients[.heat] == dark.gradients[.heat])
        #expect(diagnostics.count == 1)
        let message = diagnostics[0].description
        #expect(message.hasPrefix("t.theme: warning: 26 keys missing, taken from the dark theme: main_bg, main_fg, dim_fg, border,"))
        #expect(message.hasSuffix("heat_start, heat_end"))
    }

    @Test func badLinesAreErrorsNamingFileLineAndKey() throws {
        let dark = try Self.shipped("dark").theme
        let text = """
            theme[main_fg]="#000000"
            theme[kv_kep]="#ffffff"
            theme[title]="#zzzzzz"
            theme[title "#ffffff"
            theme[border]="red blue"
            theme[graph_mid]="bold"
            theme[main_fg]="#ffffff"
            theme[heat_end]="#fff"  extra
            theme[error]="#ff0000 \u{1B}[31m"
            """
        let (theme, diagnostics) = ThemeParser.parse(text, path: "x.theme", name: "x", fallback: dark)
        #expect(diagnostics.filter { $0.line != nil }.map(\.description) == [
            "x.theme:2: warning: unknown key 'kv_kep' (did you mean 'kv_kept'?); ignored",
            "x.theme:3: error: theme[title]: '#zzzzzz' is neither a colour (#rrggbb, #rgb, 0-255, a colour name, default) nor an attribute (bold, dim, underline, reverse)",
            "x.theme:4: error: malformed line 'theme[title \"#ffffff\"': expected theme[key]=\"value\"",
            "x.theme:5: error: theme[border]: 'red blue' names two colours; give one colour and any of bold, dim, underline, reverse",
            "x.theme:6: error: theme[graph_mid]: 'bold' is not a colour; expected #rrggbb, #rgb, 0-255, a colour name or default",
            "x.theme:7: warning: key 'main_fg' was already set on line 1; this line wins",
            "x.theme:8: error: malformed line 'theme[heat_end]=\"#fff\"  extra': expected theme[key]=\"value\"",
            "x.theme:9: error: theme[error]: '\\u{1b}[31m' is neither a colour (#rrggbb, #rgb, 0-255, a colour name, default) nor an attribute (bold, dim, underline, reverse)",
        ])
        #expect(theme[.text].color == .rgb(RGB(hex: 0xFFFFFF)))  // the later line won
        #expect(theme[.title] == dark[.title])  // a bad value keeps the default
        #expect(theme[.error] == dark[.error])
        #expect(!diagnostics.contains { $0.description.contains("\u{1B}") })
    }

    @Test func paletteResolvesRolesGradientsAndDepth() throws {
        let dark = try Self.shipped("dark").theme
        let truecolor = dark.palette(depth: .truecolor)
        let title = truecolor.resolve(.role(.title))
        #expect(title.foreground == dark[.title].color && title.attributes.contains(.bold))
        #expect(truecolor.resolve(.plain) == ResolvedStyle(foreground: dark[.text].color, background: .terminalDefault, attributes: []))
        #expect(truecolor.resolve(Style(foreground: .gradient(.graph, 0))).foreground == dark.gradients[.graph]!.start)
        #expect(truecolor.resolve(Style(foreground: .gradient(.graph, 255))).foreground == dark.gradients[.graph]!.end)
        #expect(truecolor.resolve(Style(foreground: .gradient(.graph, 128))).foreground == dark.gradients[.graph]!.color(at: 128.0 / 255))

        let palette256 = dark.palette(depth: .palette256)
        guard case .indexed = palette256.resolve(.role(.kvKept)).foreground else { Issue.record("not quantized"); return }
        let mono = try Self.shipped("mono").theme.palette(depth: .mono)
        let evicted = mono.resolve(Style(foreground: .role(.kvEvicted), background: .role(.selectedBackground)))
        #expect(evicted == ResolvedStyle(foreground: .terminalDefault, background: .terminalDefault, attributes: [.dim, .reverse]))
        #expect(dark.palette(depth: .mono).resolve(Style(foreground: .color(.rgb(RGB(hex: 0x123456))))).foreground == .terminalDefault)
    }

    /// The KV map's read states keep apart from the others at every depth a shipped theme is
    /// drawn with: retrieved from every other state, skipped (its precision's role dimmed) from
    /// read. Glyphs differ too (retrieved is the middle shade), so this is about colour alone.
    @Test(arguments: ["dark", "light", "high-contrast", "mono"])
    func kvReadStatesStayApartAtEveryDepth(name: String) throws {
        let theme = try Self.shipped(name).theme
        for depth in name == "mono" ? [.mono] : ColorDepth.allCases.filter({ $0 != .mono }) {
            let palette = theme.palette(depth: depth)
            let retrieved = palette.resolve(.role(.kvRetrieved))
            for role in [ThemeRole.kvKept, .kvQuantized, .kvEvicted] {
                #expect(palette.resolve(.role(role)) != retrieved, "\(name) at \(depth): \(role) looks retrieved")
            }
            for role in [ThemeRole.kvKept, .kvQuantized] {
                #expect(palette.resolve(.role(role, .dim)) != palette.resolve(.role(role)), "\(name) at \(depth): skipped \(role) looks read")
            }
        }
    }

    @Test func catalogPrefersEarlierDirectories() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-themes-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for directory in ["user", "shipped"] { try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true) }
        for file in ["user/dark.theme", "shipped/dark.theme", "shipped/light.theme", "shipped/notes.txt"] {
            #expect(FileManager.default.createFile(atPath: root + "/" + file, contents: Data()))
        }
        let catalog = ThemeCatalog(directories: [root + "/user", root + "/missing", root + "/shipped"])
        #expect(catalog.entries() == [ThemeCatalog.Entry(name: "dark", path: root + "/user/dark.theme"),
                                      ThemeCatalog.Entry(name: "light", path: root + "/shipped/light.theme")])
        #expect(ThemeCatalog.userDirectory(environment: ["XDG_CONFIG_HOME": "/cfg", "HOME": "/home/u"]) == "/cfg/kvlab/themes")
        #expect(ThemeCatalog.userDirectory(environment: ["HOME": "/home/u"]) == "/home/u/.config/kvlab/themes")
        #expect(ThemeCatalog.name(ofFile: "/a/b/solarized.theme") == "solarized")
    }
}

/// Snapshot files: match, mismatch, missing, and recording.
@Suite struct SnapshotFileTests {
    @Test func checksRecordsAndExplains() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-snapshots-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard case .failed(let missing) = Snapshot.check("a\nb\n", named: "s", directory: directory, record: false) else { Issue.record("missing not reported"); return }
        #expect(missing.contains("no snapshot at \(directory)/s.txt") && missing.contains("KVLAB_RECORD_SNAPSHOTS=1"))
        guard case .recorded = Snapshot.check("a\nb\n", named: "s", directory: directory, record: true) else { Issue.record("not recorded"); return }
        #expect(Snapshot.check("a\nb\n", named: "s", directory: directory, record: false) == .matched)
        guard case .failed(let mismatch) = Snapshot.check("a\nc\n", named: "s", directory: directory, record: false) else { Issue.record("mismatch not reported"); return }
        #expect(mismatch.hasPrefix("\(directory)/s.txt:2 differs\n  expected: b\n  actual:   c\n"))
        #expect(Snapshot.recording(["KVLAB_RECORD_SNAPSHOTS": "1"]) && !Snapshot.recording([:]))
    }
}
