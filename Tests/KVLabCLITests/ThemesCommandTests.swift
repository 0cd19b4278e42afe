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

    @Test func anUnknownThemeNameListsTheThemes() throws {
        let result = try CLITests.run(["export", "sessions/demos/quest-vs-full.kvlab.jsonl", "--asciicast", "/tmp/kvlab-unused.cast", "--theme", "nope"])
        #expect(result.status != 0)
        #expect(result.stderr == "Error: --theme: unknown theme 'nope' (dark, high-contrast, light, mono, or a theme file)\n", "\(result.stderr)")
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

/// `kvlab themes preview` in a real terminal (tmux): drawn, keys, resize, and the terminal given
/// back on quit; and a clear error without a terminal.
@Suite struct ThemePreviewTests {
    @Test func withoutATerminalPointsToKvlabRun() throws {
        let result = try CLITests.run(["themes", "preview"])
        #expect(result.status != 0)
        #expect(result.stderr == "Error: the workbench needs a terminal, but standard output is not one; use `kvlab run` for output to pipes and files\n")
    }

    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func drawsFollowsKeysAndResizeAndRestoresTheTerminal() throws {
        let server = TmuxServer()
        @discardableResult
        func tmux(_ arguments: String...) throws -> String { try server.run(arguments) }
        /// The pane's text once it satisfies `condition` (or after the wait, for the failure message).
        func screen(until condition: (String) -> Bool) throws -> String { try server.wait("preview", for: "the screen", condition) }
        try tmux("new-session", "-d", "-s", "preview", "-x", "100", "-y", "30",
                 "env TERM=xterm-256color LANG=C.UTF-8 COLORTERM= NO_COLOR= \(CLITests.binary) themes preview light; echo EXIT=$?; sleep 30")

        let first = try screen { $0.contains("light · 256") }
        #expect(first.contains("┌ Generation"), "\(first)")
        #expect(first.split(separator: "\n").first?.count == 100)
        try tmux("send-keys", "-t", "preview", "y")  // the workbench's theme key (issue 16)
        #expect(try screen { $0.contains("mono · 256") }.contains("mono · 256"))
        try tmux("send-keys", "-t", "preview", "?")
        #expect(try screen { $0.contains("┌ Keys") }.contains("y      next theme"))

        try tmux("resize-window", "-t", "preview", "-x", "120", "-y", "35")
        let resized = try screen { $0.split(separator: "\n").first?.count == 120 }
        #expect(resized.split(separator: "\n").first?.count == 120, "\(resized)")

        try tmux("send-keys", "-t", "preview", "q")
        let after = try screen { $0.contains("EXIT=") }
        #expect(after.contains("EXIT=0"), "\(after)")
        #expect(try tmux("display", "-p", "-t", "preview", "#{alternate_on}") == "0\n")  // left the alternate screen
    }
}
