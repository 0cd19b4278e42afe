import Foundation
import Testing

/// The real `kvlab` workbench in a detached tmux session: keys go in with `send-keys`, the screen
/// comes back with `capture-pane`, as a user would see it.
@Suite(.serialized) struct WorkbenchTmuxTests {
    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func keysResizeAndQuitInTmux() throws {
        let server = TmuxServer()
        // The shell writes kvlab's exit status to a file and stays, so the pane (and what kvlab
        // left on it) can be read after quitting. tmux's own pane_dead_status is not used: it is
        // sometimes never set when the pane's terminal closes before the child is reaped.
        let statusFile = FileManager.default.temporaryDirectory.appendingPathComponent("\(server.socket).status").path
        defer { try? FileManager.default.removeItem(atPath: statusFile) }
        let command = "sleep 0.3; '\(CLITests.binary)' --prompt 'ROMEO:'; echo $? > '\(statusFile)'; sleep 60"
        try server.run(["new-session", "-d", "-s", "main", "-x", "120", "-y", "40", "sh", "-c", command])

        let started = try server.wait("main", for: "generated text") { $0.contains("Generation") && $0.contains("ROMEO:") && $0.contains("generating") }
        #expect(started.contains("evict   full"))

        try server.run(["send-keys", "-t", "main", "e"])
        _ = try server.wait("main", for: "the window policy in the knobs panel") { $0.contains("evict   window window 128") }

        try server.run(["send-keys", "-t", "main", "b"])
        _ = try server.wait("main", for: "KIVI in the knobs panel") { $0.contains("kv      kivi bits 2") }

        try server.run(["resize-window", "-t", "main", "-x", "100", "-y", "30"])
        // Both borders: on a loaded machine a capture can land while curses is still repainting the top.
        let resized = try server.wait("main", for: "a whole 100-column frame") { screen in
            let lines = screen.split(separator: "\n")
            func border(_ corners: [String]) -> Bool { lines.contains { $0.count == 100 && corners.contains(where: $0.hasPrefix) } }
            return border(["┌", "+"]) && border(["└", "+"])
        }
        #expect(resized.contains("Knobs"))

        try server.run(["resize-window", "-t", "main", "-x", "70", "-y", "20"])
        _ = try server.wait("main", for: "the too-small message") { $0.contains("terminal too small: 70×20") || $0.contains("terminal too small: 70") }
        try server.run(["resize-window", "-t", "main", "-x", "120", "-y", "40"])
        _ = try server.wait("main", for: "the workbench again") { $0.contains("Generation") }

        try server.run(["send-keys", "-t", "main", "q"])
        var status = ""
        for _ in 0..<300 where status.isEmpty {
            status = (try? String(contentsOfFile: statusFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if status.isEmpty { usleep(100_000) }
        }
        #expect(status == "0", "kvlab's exit status: '\(status)'")
        #expect(try !server.screen("main").contains("Generation"), "the workbench's screen is gone: the alternate screen was left")
        #expect(try server.pane("main", "#{alternate_on}") == "0")
    }

    /// SIGQUIT quits like SIGTERM; a crash signal gives the terminal back, names a backtrace file
    /// and ends the process at once (the runtime's reporter would hold the terminal for 30 s).
    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"),
          arguments: [(SIGQUIT, Int32(131)), (SIGSEGV, 128 + SIGSEGV), (SIGABRT, 128 + SIGABRT)] as [(Int32, Int32)])
    func signalsEndTheWorkbenchAndRestoreTheTerminal(signal: Int32, status expected: Int32) throws {
        let server = TmuxServer()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(server.socket)-crash").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let statusFile = directory + "/status", pidFile = directory + "/pid"
        // The inner shell writes its pid and becomes kvlab, in the foreground (it keeps the terminal).
        let command = "sleep 0.3; TMPDIR='\(directory)' sh -c 'echo $$ > \"$0\"; exec \"$1\" --prompt ROMEO:' '\(pidFile)' '\(CLITests.binary)'; "
            + "echo $? > '\(statusFile)'; sleep 60"
        try server.run(["new-session", "-d", "-s", "main", "-x", "120", "-y", "40", "sh", "-c", command])
        _ = try server.wait("main", for: "generated text") { $0.contains("Generation") && $0.contains("generating") }
        let pid = try #require(Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        let sent = Date()
        kill(pid, signal)
        var status = ""
        for _ in 0..<100 where status.isEmpty {
            status = (try? String(contentsOfFile: statusFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if status.isEmpty { usleep(100_000) }
        }
        #expect(status == "\(expected)", "kvlab's exit status: '\(status)'")
        #expect(Date().timeIntervalSince(sent) < 5, "kvlab ended at once")
        #expect(try server.pane("main", "#{alternate_on}") == "0", "the alternate screen was left")
        let report = directory + "/kvlab-crash-\(pid).txt"
        if signal == SIGQUIT {
            #expect(!FileManager.default.fileExists(atPath: report))
        } else {
            #expect(try server.screen("main").contains("backtrace in \(report)"))
            let frames = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
            #expect(frames.first?.hasPrefix("kvlab: fatal signal \(signal)") == true)
            #expect(frames.count > 3)
        }
    }

    @Test func notATerminalPointsToRun() throws {
        let result = try CLITests.run([])
        #expect(result.status != 0)
        #expect(result.stderr.contains("kvlab run"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }
}
