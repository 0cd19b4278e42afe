import Foundation
import Testing

/// The workbench's Pareto view of a real sweep store, end to end in tmux: `kvlab sweep run` makes
/// the store, `kvlab --sweep` opens on it, `p` shows the view and the knob keys move the dot.
@Suite(.serialized) struct ParetoTmuxTests {
    /// Where the live dot sits in the plot, as (column, row) on the screen; the lines under the
    /// plot that start with it (`│ ◉ label: …`) are not the plot.
    static func dot(_ screen: String) -> (Int, Int)? {
        for (row, line) in screen.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let characters = Array(line)
            for (column, character) in characters.enumerated() where character == "◉" && column > 2 { return (column, row) }
        }
        return nil
    }

    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func theDotMovesWithTheKnobs() throws {
        let directory = try SweepCLITests.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = directory.appendingPathComponent("text.txt").path, store = directory.appendingPathComponent("store").path
        // Three cells of 160 tokens: the full cache, the window `e` switches to, and a small H2O.
        let sweep = try CLITests.run(["sweep", "run", "--store", store, "--text", text, "--tokens", "160", "--prefill", "80",
                                      "--policy", "full", "--policy", "window:window=128", "--policy", "h2o:heavy=16,recent=16",
                                      "--project", "h100-sxm@llama-3-8b", "--workers", "2", "--quiet"])
        #expect(sweep.status == 0, "\(sweep.stderr)")

        let server = TmuxServer()
        let statusFile = directory.appendingPathComponent("status").path
        let command = "sleep 0.3; '\(CLITests.binary)' --sweep '\(store)' --prompt 'ROMEO:'; echo $? > '\(statusFile)'; sleep 60"
        try server.run(["new-session", "-d", "-s", "main", "-x", "200", "-y", "50", "sh", "-c", command])
        _ = try server.wait("main", for: "the workbench") { $0.contains("Generation") && $0.contains("ROMEO:") }

        try server.run(["send-keys", "-t", "main", "p"])
        let full = try server.wait("main", for: "the Pareto view with the full cache's dot") {
            $0.contains("Pareto: ΔNLL vs resident KV") && $0.contains("◉ full: ΔNLL 0, resident KV") && Self.dot($0) != nil
        }
        #expect(full.contains("embedded kvlab-shakespeare · 3 configurations"))
        #expect(full.contains("on the frontier"))
        let atFull = try #require(Self.dot(full))

        try server.run(["send-keys", "-t", "main", "e"])  // full → window:window=128, a point of the sweep
        let window = try server.wait("main", for: "the dot on the window's point") {
            $0.contains("◉ window:window=128: ΔNLL") && Self.dot($0) != nil
        }
        let atWindow = try #require(Self.dot(window))
        #expect(atWindow.0 < atFull.0, "less resident KV: further left (\(atFull) → \(atWindow))")
        #expect(atWindow.1 < atFull.1, "a higher ΔNLL: further up (\(atFull) → \(atWindow))")

        try server.run(["send-keys", "-t", "main", "p"])
        _ = try server.wait("main", for: "the projected-latency axis") { $0.contains("Pareto: ΔNLL vs projected latency") }
        try server.run(["send-keys", "-t", "main", "p"])
        _ = try server.wait("main", for: "the generation panel back") { $0.contains("Generation") && !$0.contains("Pareto:") }

        try server.run(["send-keys", "-t", "main", "q"])
        var status = ""
        for _ in 0..<300 where status.isEmpty {
            status = (try? String(contentsOfFile: statusFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if status.isEmpty { usleep(100_000) }
        }
        #expect(status == "0", "kvlab's exit status: '\(status)'")
    }

    @Test func aStoreThatIsNotOneIsAOneLineError() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-no-store-\(UUID().uuidString)").path
        let result = try CLITests.run(["--sweep", missing])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--sweep: \(missing): is not a sweep store"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }
}
