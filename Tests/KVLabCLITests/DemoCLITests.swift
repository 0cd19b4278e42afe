import Foundation
import Testing

/// `kvlab demo` (listing, errors, the screen in tmux), `kvlab replay` without --headless, and
/// `kvlab export --asciicast`.
@Suite struct DemoCLITests {
    static let demos = CLITests.packageRoot.appendingPathComponent("sessions/demos")

    static func demoNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: demos.path).filter { $0.hasSuffix(".kvlab.jsonl") }.sorted()
            .map { String($0.dropLast(".kvlab.jsonl".count)) }
    }

    /// The first caption of a demo, from its file.
    static func firstCaption(_ name: String) throws -> String {
        let text = try String(contentsOf: demos.appendingPathComponent(name + ".kvlab.jsonl"), encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("{\"event\":\"caption\"") })
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        return try #require(object?["text"] as? String)
    }

    @Test func listNamesEveryDemoWithItsFirstCaption() throws {
        let result = try CLITests.run(["demo", "--list"])
        #expect(result.status == 0, "\(result.stderr)")
        let rows = result.stdout.split(separator: "\n").map { $0.split(separator: "\t", maxSplits: 1).map(String.init) }
        let names = try Self.demoNames()
        #expect(rows.map { $0[0] } == names)
        for (row, name) in zip(rows, names) {
            let caption = try Self.firstCaption(name)
            #expect(row.count == 2 && row.last == caption)
        }
    }

    @Test func anUnknownDemoIsOneLineListingTheNames() throws {
        let result = try CLITests.run(["demo", "no-such-demo"])
        #expect(result.status != 0)
        let names = try Self.demoNames().joined(separator: ", ")
        #expect(result.stderr == "Error: no demo 'no-such-demo': the demos are \(names)\n")
    }

    @Test func theScreenNeedsATerminal() throws {
        let demo = try CLITests.run(["demo", "quest-vs-full"])
        #expect(demo.status != 0 && demo.stderr.contains("needs a terminal"), "\(demo.stderr)")
        let replay = try CLITests.run(["replay", Self.demos.appendingPathComponent("quest-vs-full.kvlab.jsonl").path])
        #expect(replay.status != 0 && replay.stderr.contains("needs a terminal"), "\(replay.stderr)")
        let check = try CLITests.run(["replay", Self.demos.appendingPathComponent("quest-vs-full.kvlab.jsonl").path, "--check"])
        #expect(check.status != 0 && check.stderr.contains("--check prints a verdict: use it with --headless"), "\(check.stderr)")
    }

    @Test func asciicastOfADemo() throws {
        let name = "naive-vs-tiled-sram"
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-\(UUID()).cast").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let result = try CLITests.run(["export", Self.demos.appendingPathComponent(name + ".kvlab.jsonl").path, "--asciicast", output,
                                       "--pace", "40", "--size", "90x28", "--color", "256"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("\(output): "))
        let lines = try String(contentsOfFile: output, encoding: .utf8).split(separator: "\n")
        let header = try #require(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(header["version"] as? Int == 2 && header["width"] as? Int == 90 && header["height"] as? Int == 28)
        var last = -1.0, text = ""
        for line in lines.dropFirst() {
            let event = try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Any])
            let time = try #require(event.first as? Double)
            #expect(time > last)
            last = time
            #expect(event.count == 3 && event[1] as? String == "o")
            text += event[2] as? String ?? ""
        }
        #expect(text.contains("\u{1B}[0;"), "SGR sequences")
        #expect(text.contains("38;5;"), "256-colour SGR")
        #expect(!text.contains("38;2;"), "no 24-bit colour at 256")
        let caption = String(try Self.firstCaption(name).prefix(60))
        #expect(text.contains(caption))
        let bad = try CLITests.run(["export", Self.demos.appendingPathComponent(name + ".kvlab.jsonl").path, "--asciicast", output, "--size", "20x5"])
        #expect(bad.status != 0 && bad.stderr.contains("--size: expected COLUMNSxROWS of at least 80x26"), "\(bad.stderr)")
    }

    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func demoPlaysCaptionsInATerminalAndRestoresIt() throws {
        let server = TmuxServer()
        @discardableResult
        func tmux(_ arguments: String...) throws -> String { try server.run(arguments) }
        /// The pane's text once it satisfies `condition` (or after the wait, for the failure message).
        func screen(until condition: (String) -> Bool) throws -> String { try server.wait("demo", for: "the screen", condition) }
        let name = "quest-vs-full"
        let caption = String(try Self.firstCaption(name).prefix(60))
        try tmux("new-session", "-d", "-s", "demo", "-x", "110", "-y", "32",
                 "env TERM=xterm-256color LANG=C.UTF-8 COLORTERM= NO_COLOR= \(CLITests.binary) demo \(name); echo EXIT=$?; sleep 30")
        let playing = try screen { $0.contains(caption) && $0.contains("step 3 /") }
        #expect(playing.contains("▶ " + caption), "\(playing)")
        #expect(playing.contains("┌ Generation"), "\(playing)")
        try tmux("send-keys", "-t", "demo", " ")
        #expect(try screen { $0.contains("paused") }.contains("paused"))
        try tmux("send-keys", "-t", "demo", "g", "1", "2", "0", "Enter")
        let jumped = try screen { $0.contains("step 120 /") }
        #expect(jumped.contains("step 120 /"), "\(jumped)")
        try tmux("send-keys", "-t", "demo", "q")
        let after = try screen { $0.contains("EXIT=") }
        #expect(after.contains("EXIT=0"), "\(after)")
        #expect(try tmux("display", "-p", "-t", "demo", "#{alternate_on}") == "0\n")  // left the alternate screen
    }
}
