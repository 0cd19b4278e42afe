import Foundation
import Testing

/// Issue 16's screen items in the real `kvlab` in tmux, as a user at a workshop would see them:
/// the map's every layer at 80×24 and 120×40, `R` starting the divergence over, the help
/// scrolled to its last line at 80×24, a demo's whole caption and end card at 80×24, the tour.
@Suite(.serialized) struct WorkshopTmuxTests {
    /// Words of a screen (or caption) joined by single spaces: a wrapped caption reads as one line.
    static func words(_ text: String) -> String { text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ") }

    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func workbenchLayersDivergenceAndHelp() throws {
        let server = TmuxServer()
        let command = "sleep 0.3; '\(CLITests.binary)' --prompt 'ROMEO:' --ghost --policy h2o:heavy=16,recent=16; sleep 60"
        try server.run(["new-session", "-d", "-s", "w", "-x", "80", "-y", "24", "sh", "-c", command])
        let small = try server.wait("w", for: "every layer, two to a row") { screen in
            ["L0–1 ", "L2–3 ", "L4–5 ", "L6–7 ", "L0–L7 of 8"].allSatisfy(screen.contains)
        }
        #expect(small.contains("mean KL"), "\(small)")

        try server.run(["resize-window", "-t", "w", "-x", "120", "-y", "40"])
        _ = try server.wait("w", for: "one row per layer at 120×40") { screen in (0..<8).allSatisfy { screen.contains("│ L\($0) ") } }

        // Paused, R reruns the prompt and generates nothing: the divergence is this run's, so none yet.
        _ = try server.wait("w", for: "a divergence from the ghost", seconds: 60) { $0.contains("diverged: position") }
        try server.run(["send-keys", "-t", "w", "Space"])
        _ = try server.wait("w", for: "paused") { $0.contains("paused") }
        try server.run(["send-keys", "-t", "w", "R"])
        let rerun = try server.wait("w", for: "the divergence reset by R") { $0.contains("no top-1 divergence this run") }
        #expect(!rerun.contains("diverged: position"), "\(rerun)")

        try server.run(["resize-window", "-t", "w", "-x", "80", "-y", "24"])
        try server.run(["send-keys", "-t", "w", "?"])
        _ = try server.wait("w", for: "the help, with more below") { $0.contains("kvlab keys") && $0.contains("more: ↓ PgDn") }
        try server.run(["send-keys", "-t", "w", "End"])
        let end = try server.wait("w", for: "the help's last line") { $0.contains("a row joining layers") }
        #expect(end.contains("above: ↑ PgUp") && !end.contains("more: ↓ PgDn"), "\(end)")
        try server.run(["send-keys", "-t", "w", "PPage"])
        _ = try server.wait("w", for: "the help scrolled back up") { $0.contains("more: ↓ PgDn") }
        try server.run(["send-keys", "-t", "w", "q"])  // closes the help
        try server.run(["send-keys", "-t", "w", "q"])
        _ = try server.wait("w", for: "kvlab gone") { !$0.contains("Generation") }
    }

    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func demoAt80x24ShowsWholeCaptionsAndTheEndCard() throws {
        let server = TmuxServer()
        let name = "quest-vs-full"
        let captions = try String(contentsOf: DemoCLITests.demos.appendingPathComponent(name + ".kvlab.jsonl"), encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("{\"event\":\"caption\"") }
            .compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["text"] as? String }
        try server.run(["new-session", "-d", "-s", "d", "-x", "80", "-y", "24",
                        "env TERM=xterm-256color LANG=C.UTF-8 \(CLITests.binary) demo \(name); sleep 30"])
        let first = try server.wait("d", for: "the first caption, whole") { Self.words($0).contains("▶ " + Self.words(captions[0])) }
        #expect(first.contains("Generation") && first.contains("Traffic") && first.contains("KV map"), "\(first)")
        #expect(first.split(separator: "\n").first?.contains("replaying") == true, "\(first)")
        try server.run(["send-keys", "-t", "d", "g", "2", "0", "0", "Enter"])
        let end = try server.wait("d", for: "the last caption, whole, and the end card", seconds: 60) { screen in
            Self.words(screen).contains("▶ " + Self.words(captions.last!)) && screen.contains("End of session")
        }
        #expect(end.contains("mean KL") && end.contains("K+V/tok"), "\(end)")
        #expect(!end.contains("terminal too small"))
        try server.run(["send-keys", "-t", "d", "q"])
    }

    /// At the workshop's projector size and a roomier one: each stop's card whole, its key prompt included.
    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"), arguments: [(100, 30), (80, 24)])
    func tourWalksThePanels(width: Int, height: Int) throws {
        let server = TmuxServer()
        try server.run(["new-session", "-d", "-s", "t", "-x", "\(width)", "-y", "\(height)",
                        "env TERM=xterm-256color LANG=C.UTF-8 \(CLITests.binary) tour; sleep 30"])
        let keys = ["+", "e", "[", "g", "d", "s", "t"]
        for (index, key) in keys.enumerated() {
            _ = try server.wait("t", for: "tour stop \(index + 1) at \(width)×\(height)") {
                $0.contains("Tour \(index + 1)/8") && $0.contains("press \(key) · Esc ends the tour") && !$0.contains("terminal too small")
            }
            try server.run(["send-keys", "-t", "t", key])
        }
        _ = try server.wait("t", for: "the last stop") { $0.contains("Tour 8/8") }
        try server.run(["send-keys", "-t", "t", "?"])
        _ = try server.wait("t", for: "the help, the tour over") { $0.contains("kvlab keys") && !$0.contains("Tour 8/8") }
        try server.run(["send-keys", "-t", "t", "Escape"])
        try server.run(["send-keys", "-t", "t", "q"])
    }
}
