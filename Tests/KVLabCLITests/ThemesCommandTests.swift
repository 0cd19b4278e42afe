import Foundation
import Testing

/// `kvlab themes` and `kvlab bench --render` as a user runs them.
@Suite struct ThemesCommandTests {
    /// A user theme directory of its own, so the user's real themes do not change the results.
    static func withUserThemes(_ files: [String: String], _ body: (String, [String: String]) throws -> Void) throws {
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-config-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: config) }
        try FileManager.default.createDirectory(atPath: config + "/kvlab/themes", withIntermediateDirectories: true)
        for (name, text) in files { #expect(FileManager.default.createFile(atPath: config + "/kvlab/themes/" + name, contents: Data(text.utf8))) }
        try body(config + "/kvlab/themes", ["XDG_CONFIG_HOME": config])
    }

    @Test func listShowsShippedThemesAndUserOnesFirst() throws {
        try Self.withUserThemes(["solarized.theme": "", "light.theme": ""]) { directory, environment in
            let result = try CLITests.run(["themes", "list"], environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            let lines = result.stdout.split(separator: "\n")
            #expect(lines.map { String($0.prefix { $0 != " " }) } == ["dark", "high-contrast", "light", "mono", "solarized"])
            #expect(lines[0].hasSuffix("kvlab_KVLabTUI.resources/themes/dark.theme  (default)"))
            #expect(lines[2].hasSuffix(directory + "/light.theme"))  // the user's light theme hides the shipped one
        }
    }

    @Test func checkPassesShippedThemesByNameAndPath() throws {
        let path = CLITests.packageRoot.appendingPathComponent("themes/light.theme").path
        try Self.withUserThemes([:]) { _, environment in
            let result = try CLITests.run(["themes", "check", "high-contrast", path], environment: environment)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.hasSuffix("high-contrast.theme: ok\n\(path): ok\n"))
        }
    }

    @Test func checkReportsLinesAndFailsOnErrors() throws {
        try Self.withUserThemes(["bad.theme": "theme[main_fg]=\"#ffffff\"\ntheme[kv_kep]=\"red\"\ntheme[title]=\"#12\"\n"]) { directory, environment in
            let result = try CLITests.run(["themes", "check", "bad"], environment: environment)
            #expect(result.status == 1)
            let path = directory + "/bad.theme"
            #expect(result.stdout.hasPrefix("""
                \(path):2: warning: unknown key 'kv_kep' (did you mean 'kv_kept'?); ignored
                \(path):3: error: theme[title]: '#12' is neither a colour
                """))
            #expect(result.stdout.contains("\(path): warning: 25 keys missing, taken from the dark theme: main_bg, dim_fg,"))
            #expect(result.stdout.hasSuffix("\(path): 1 error, 2 warnings\n"))
        }
    }

    @Test func checkOfAMissingFileIsOneLine() throws {
        let result = try CLITests.run(["themes", "check", "/nonexistent/x.theme"])
        #expect(result.status != 0)
        #expect(result.stderr == "Error: /nonexistent/x.theme: no such file\n")
    }

    @Test func renderBenchmarkRunsWithoutAModel() throws {
        let result = try CLITests.run(["bench", "--render", "--size", "80x24", "--frames", "3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("render     80x24 frame of every widget"))
        #expect(result.stdout.contains("frame      ") && result.stdout.contains(" ms median"))
        let bad = try CLITests.run(["bench", "--render", "--size", "80by24"])
        #expect(bad.status != 0 && bad.stderr.contains("--size: expected COLUMNSxROWS"))
    }
}
