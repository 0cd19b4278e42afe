import Foundation
import Testing

/// `kvlab demo` (listing, errors, the screen in tmux), `kvlab replay` without --headless, and
/// `kvlab export --asciicast`.
@Suite struct DemoCLITests {
    static let demos = CLITests.packageRoot.appendingPathComponent("sessions/demos")
    static let tmux = ["/usr/bin/tmux", "/usr/local/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }

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

    @Test(.enabled(if: tmux != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func demoPlaysCaptionsInATerminalAndRestoresIt() throws {
        let socket = "kvlab-test-\(UUID())"
        /// Runs tmux on the test's own server, spawned and reaped directly (as ThemePreviewTests
        /// does: the server keeps inherited pipes open, and test threads block signals).
        @discardableResult
        func tmux(_ arguments: String...) throws -> String {
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("\(socket)-\(UUID()).out").path
            defer { try? FileManager.default.removeItem(atPath: output) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            let argv = ([Self.tmux!, "-L", socket] + arguments).map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var noSignals = sigset_t()
            sigemptyset(&noSignals)
            posix_spawnattr_setsigmask(&attributes, &noSignals)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
            var pid: pid_t = 0, status: Int32 = 0
            guard posix_spawn(&pid, Self.tmux!, &actions, &attributes, argv, environ) == 0 else { throw POSIXError(.ECHILD) }
            waitpid(pid, &status, 0)
            return (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        }
        /// The pane's text once it satisfies `condition` (or after 20 s, for the failure message).
        func screen(until condition: (String) -> Bool) throws -> String {
            var text = ""
            for _ in 0..<400 {
                text = try tmux("capture-pane", "-p", "-t", "demo")
                if condition(text) { break }
                usleep(50_000)
            }
            return text
        }
        let name = "quest-vs-full"
        let caption = String(try Self.firstCaption(name).prefix(60))
        try tmux("new-session", "-d", "-s", "demo", "-x", "110", "-y", "32",
                 "env TERM=xterm-256color LANG=C.UTF-8 COLORTERM= NO_COLOR= \(CLITests.binary) demo \(name); echo EXIT=$?; sleep 30")
        let socketPath = try tmux("display", "-p", "#{socket_path}").trimmingCharacters(in: .newlines)
        defer {
            _ = try? tmux("kill-server")
            try? FileManager.default.removeItem(atPath: socketPath)  // tmux leaves it behind
        }
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
