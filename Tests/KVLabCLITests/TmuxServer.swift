import Foundation
import Testing

/// A private tmux server (its own socket) for tests that drive the real `kvlab` in a terminal, as
/// a user would: keys in with `send-keys`, the screen back with `capture-pane`. Killed, and its
/// socket removed, when released.
final class TmuxServer {
    /// The tmux binary, or nil where it is not installed (the tests then skip).
    static let executable = ["/usr/bin/tmux", "/usr/local/bin/tmux", "/bin/tmux"].first { FileManager.default.isExecutableFile(atPath: $0) }

    let socket = "kvlab-test-\(UUID().uuidString.prefix(8))"

    /// Runs a tmux command and returns its output (stdout and stderr). posix_spawn and waitpid
    /// rather than Foundation's Process: the server a command starts inherits the client's
    /// descriptors, so Process's end-of-file watch on them would never fire. The test process's
    /// blocked and ignored signals would pass to the server (which then never hears kill-server's
    /// SIGTERM) and to kvlab: both start with the defaults.
    @discardableResult
    func run(_ arguments: [String]) throws -> String {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(socket)-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, file, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([Self.executable!, "-L", socket] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, Self.executable!, &actions, &attributes, argv, environ) == 0 else { throw POSIXError(.ECHILD) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        return String(decoding: FileManager.default.contents(atPath: file) ?? Data(), as: UTF8.self)
    }

    /// The text of the pane of session `target`.
    func screen(_ target: String) throws -> String { try run(["capture-pane", "-p", "-t", target]) }

    /// A format of the pane of session `target`, e.g. `#{alternate_on}`.
    func pane(_ target: String, _ format: String) throws -> String {
        try run(["display-message", "-p", "-t", target, format]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits (up to `seconds`) until the screen of `target` satisfies `condition`; returns the
    /// last capture, and records an issue naming `what` on a timeout.
    @discardableResult
    func wait(_ target: String, for what: String, seconds: Int = 30, _ condition: (String) -> Bool) throws -> String {
        var last = ""
        for _ in 0..<(seconds * 10) {
            last = try screen(target)
            if condition(last) { return last }
            usleep(100_000)
        }
        Issue.record("timed out waiting for \(what); screen:\n\(last)")
        return last
    }

    deinit {
        let socketPath = (try? run(["display-message", "-p", "#{socket_path}"]))?.trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try? run(["kill-server"])
        if let socketPath, !socketPath.isEmpty { try? FileManager.default.removeItem(atPath: socketPath) }  // tmux leaves it behind
    }
}
