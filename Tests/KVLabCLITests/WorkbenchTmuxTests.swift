import Foundation
import Testing

/// The real `kvlab` workbench in a detached tmux session: keys go in with `send-keys`, the screen
/// comes back with `capture-pane`, as a user would see it.
@Suite(.serialized) struct WorkbenchTmuxTests {
    static let tmux = ["/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// A private tmux server (its own socket), killed at the end.
    final class Server {
        let socket = "kvlab-test-\(UUID().uuidString.prefix(8))"

        /// Runs a tmux command and returns its output. posix_spawn and waitpid rather than
        /// Foundation's Process: the server a command starts inherits the client's descriptors,
        /// so Process's end-of-file watch on them would never fire.
        @discardableResult
        func run(_ arguments: [String]) throws -> String {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(socket)-\(UUID().uuidString).out").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            // The test process's blocked and ignored signals would pass to the tmux server, which
            // then never hears kill-server's SIGTERM: start it with the defaults.
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            var none = sigset_t(), all = sigset_t()
            sigemptyset(&none)
            sigfillset(&all)
            posix_spawnattr_setsigmask(&attributes, &none)
            posix_spawnattr_setsigdefault(&attributes, &all)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
            let argv = ([WorkbenchTmuxTests.tmux!, "-L", socket] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, WorkbenchTmuxTests.tmux!, &actions, &attributes, argv, environ)
            guard spawned == 0 else { throw CocoaError(.fileReadUnknown) }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
            return String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
        }

        func screen() throws -> String { try run(["capture-pane", "-p", "-t", "main"]) }

        /// Waits (up to 30 s) until the screen satisfies `condition`; returns the last capture.
        func wait(for what: String, _ condition: (String) -> Bool) throws -> String {
            var last = ""
            for _ in 0..<300 {
                last = try screen()
                if condition(last) { return last }
                usleep(100_000)
            }
            Issue.record("timed out waiting for \(what); screen:\n\(last)")
            return last
        }

        deinit { _ = try? run(["kill-server"]) }
    }

    @Test(.enabled(if: tmux != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func keysResizeAndQuitInTmux() throws {
        let server = Server()
        // kvlab is the pane's process (its exit status is the pane's); the pane stays after it
        // exits, for the capture after quitting.
        let command = "sleep 0.3; exec '\(CLITests.binary)' --prompt 'ROMEO:'"
        try server.run(["new-session", "-d", "-s", "main", "-x", "120", "-y", "40", "sh", "-c", command])
        try server.run(["set-option", "-t", "main", "remain-on-exit", "on"])

        let started = try server.wait(for: "generated text") { $0.contains("Generation") && $0.contains("ROMEO:") && $0.contains("generating") }
        #expect(started.contains("evict   full"))

        try server.run(["send-keys", "-t", "main", "e"])
        _ = try server.wait(for: "the window policy in the knobs panel") { $0.contains("evict   window window 128") }

        try server.run(["send-keys", "-t", "main", "b"])
        _ = try server.wait(for: "KIVI in the knobs panel") { $0.contains("kv      kivi bits 2") }

        try server.run(["resize-window", "-t", "main", "-x", "100", "-y", "30"])
        let resized = try server.wait(for: "a 100-column frame") { screen in
            screen.split(separator: "\n").contains { $0.count == 100 && ($0.hasPrefix("└") || $0.hasPrefix("+")) }
        }
        #expect(resized.contains("Knobs"))

        try server.run(["resize-window", "-t", "main", "-x", "70", "-y", "20"])
        _ = try server.wait(for: "the too-small message") { $0.contains("terminal too small: 70×20") || $0.contains("terminal too small: 70") }
        try server.run(["resize-window", "-t", "main", "-x", "120", "-y", "40"])
        _ = try server.wait(for: "the workbench again") { $0.contains("Generation") }

        try server.run(["send-keys", "-t", "main", "q"])
        func pane(_ format: String) throws -> String {
            try server.run(["display-message", "-p", "-t", "main", format]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // tmux marks the pane dead a moment before it records the exit status.
        _ = try server.wait(for: "kvlab to exit") { _ in (try? pane("#{pane_dead}#{pane_dead_status}#{pane_dead_signal}"))?.count ?? 0 > 1 }
        let status = try pane("#{pane_dead_status}/#{pane_dead_signal}")
        #expect(status == "0/", "kvlab's exit status/signal: \(status)")
        #expect(try !server.screen().contains("Generation"), "the workbench's screen is gone: the alternate screen was left")
        #expect(try pane("#{alternate_on}") == "0")
    }

    @Test func notATerminalPointsToRun() throws {
        let result = try CLITests.run([])
        #expect(result.status != 0)
        #expect(result.stderr.contains("kvlab run"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }
}
