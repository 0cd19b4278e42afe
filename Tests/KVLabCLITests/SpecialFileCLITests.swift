import Foundation
import Testing

/// Special files at the paths kvlab reads and writes (issue 13): devices, FIFOs, directories and
/// symbolic links to them are refused in one line, nothing blocks, nothing that is not a regular
/// file is replaced; numeric options are range-checked before anything is allocated; tiny
/// temperatures sample greedily.
@Suite struct SpecialFileCLITests {
    static let embeddedModel = CLITests.packageRoot.appendingPathComponent("Sources/KVLabRun/Resources/kvlab-shakespeare.gguf").path

    /// `kvlab` with a time limit: a command that blocks (on a FIFO with no writer) is killed and
    /// reported rather than hanging the suite.
    static func run(_ arguments: [String], seconds: Double = 120) throws -> (result: CLITests.Result, timedOut: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        process.arguments = arguments
        // Files rather than pipes: polling for the deadline needs no reader to keep the child going.
        let base = NSTemporaryDirectory() + "kvlab-special-out-\(UUID().uuidString)"
        defer { for name in [".out", ".err"] { try? FileManager.default.removeItem(atPath: base + name) } }
        FileManager.default.createFile(atPath: base + ".out", contents: nil)
        FileManager.default.createFile(atPath: base + ".err", contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".out"))
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: base + ".err"))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(seconds)
        var timedOut = false
        while process.isRunning {
            if Date() > deadline {
                timedOut = true
                process.terminate()
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.waitUntilExit()
        let text = { (name: String) in (try? String(contentsOfFile: base + name, encoding: .utf8)) ?? "" }
        return (CLITests.Result(status: process.terminationStatus, stdout: text(".out"), stderr: text(".err")), timedOut)
    }

    /// A scratch directory with a FIFO, a directory, a regular file and symbolic links to each.
    final class Scratch {
        let directory = NSTemporaryDirectory() + "kvlab-special-\(UUID().uuidString)"
        var fifo: String { directory + "/pipe.kvlab.jsonl" }
        var subdirectory: String { directory + "/dir" }
        var file: String { directory + "/file" }
        var linkToFIFO: String { directory + "/to-pipe" }
        var linkToDirectory: String { directory + "/to-dir" }
        var linkToFile: String { directory + "/to-file" }

        init() throws {
            try FileManager.default.createDirectory(atPath: subdirectory, withIntermediateDirectories: true)
            #expect(mkfifo(fifo, 0o600) == 0)
            try Data("old\n".utf8).write(to: URL(fileURLWithPath: file))
            for (target, link) in [(fifo, linkToFIFO), (subdirectory, linkToDirectory), (file, linkToFile)] {
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
            }
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        /// The file type bits of `path` itself (`lstat`), 0 when nothing is there.
        func kind(_ path: String) -> mode_t {
            var info = stat()
            return lstat(path, &info) == 0 ? info.st_mode & S_IFMT : 0
        }

        /// The special files are as they were.
        func expectUntouched() {
            #expect(kind(fifo) == S_IFIFO)
            #expect(kind(subdirectory) == S_IFDIR)
            for link in [linkToFIFO, linkToDirectory, linkToFile] { #expect(kind(link) == S_IFLNK) }
            #expect(kind("/dev/null") == S_IFCHR)
        }
    }

    /// Expects a failure with one line on stderr containing `text`, within the time limit.
    static func expectRefused(_ arguments: [String], _ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (result, timedOut) = try run(arguments)
        #expect(!timedOut, "kvlab \(arguments.joined(separator: " ")) blocked", sourceLocation: sourceLocation)
        #expect(result.status != 0, sourceLocation: sourceLocation)
        #expect(result.stderr.contains(text), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("permission"), sourceLocation: sourceLocation)
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(result.stderr)",
                sourceLocation: sourceLocation)
    }

    // MARK: - Outputs

    @Test func recordingRefusesSpecialFiles() throws {
        let s = try Scratch()
        let run = ["run", "--prompt", "ROMEO:", "-n", "2"]
        try Self.expectRefused(run + ["--record", s.fifo], "\(s.fifo): is a FIFO, not a regular file; refusing to replace it")
        try Self.expectRefused(run + ["--record", "/dev/null"], "/dev/null: is a character device, not a regular file; refusing to replace it")
        try Self.expectRefused(run + ["--record", s.subdirectory], "\(s.subdirectory): is a directory, not a regular file")
        try Self.expectRefused(run + ["--record", s.linkToFIFO], "\(s.linkToFIFO): is a symbolic link to a FIFO, not a regular file")
        try Self.expectRefused(run + ["--record", s.linkToDirectory], "\(s.linkToDirectory): is a symbolic link to a directory")
        s.expectUntouched()
        // A link to a regular file is written through: the file holds the session, the link stays.
        let (through, _) = try Self.run(run + ["--record", s.linkToFile])
        #expect(through.status == 0, "\(through.stderr)")
        #expect(s.kind(s.linkToFile) == S_IFLNK)
        let recorded = try String(contentsOfFile: s.file, encoding: .utf8)
        #expect(recorded.hasPrefix("{") && recorded.contains("kvlab-session"))
    }

    @Test func convertAndExportRefuseSpecialFiles() throws {
        let s = try Scratch()
        let convert = ["convert", Self.embeddedModel, "--to", "gguf"]
        try Self.expectRefused(convert.prefix(2) + ["/dev/null"] + convert.suffix(2), "/dev/null: is a character device, not a regular file")
        try Self.expectRefused(convert.prefix(2) + [s.fifo] + convert.suffix(2), "\(s.fifo): is a FIFO, not a regular file")
        try Self.expectRefused(convert.prefix(2) + [s.linkToFIFO] + convert.suffix(2), "is a symbolic link to a FIFO")
        let (through, _) = try Self.run(convert.prefix(2) + [s.linkToFile] + convert.suffix(2))
        #expect(through.status == 0, "\(through.stderr)")
        #expect(s.kind(s.linkToFile) == S_IFLNK)
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.file)).starts(with: Array("GGUF".utf8)))
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: s.directory)) ?? []).allSatisfy { !$0.hasPrefix(".") },
                "no temporary file is left behind")

        let session = s.directory + "/session.kvlab.jsonl"
        let (recorded, _) = try Self.run(["run", "--prompt", "ROMEO:", "-n", "3", "--record", session])
        #expect(recorded.status == 0, "\(recorded.stderr)")
        try Self.expectRefused(["export", session, "--asciicast", s.fifo, "--playback"], "\(s.fifo): is a FIFO, not a regular file")
        try Self.expectRefused(["export", session, "--asciicast", "/dev/null", "--playback"], "/dev/null: is a character device")
        s.expectUntouched()
    }

    // MARK: - Inputs

    @Test func readersRefuseAFIFOWithoutBlocking() throws {
        let s = try Scratch()
        let fifoRefused = "\(s.fifo): is a FIFO, not a regular file"
        for arguments in [["replay", s.fifo, "--headless", "--check"], ["replay", s.fifo, "--headless", "--playback"],
                          ["replay", s.fifo, "--headless"], ["export", s.fifo, "--csv"],
                          ["export", s.fifo, "--asciicast", s.directory + "/cast", "--playback"],
                          ["info", s.fifo], ["generate", "--prompt-file", s.fifo, "-n", "1"],
                          ["eval", "--text", s.fifo], ["themes", "check", s.fifo], ["project", "--device", s.fifo],
                          ["project", "--target", s.fifo]] {
            try Self.expectRefused(arguments, fifoRefused)
        }
        try Self.expectRefused(["replay", s.linkToFIFO, "--headless", "--check"], "\(s.linkToFIFO): is a FIFO, not a regular file")
        try Self.expectRefused(["info", "/dev/zero"], "/dev/zero: is a character device, not a regular file")
        try Self.expectRefused(["replay", "/dev/zero", "--headless", "--check"], "/dev/zero: is a character device, not a regular file")
        try Self.expectRefused(["replay", s.subdirectory, "--headless", "--check"], "is a directory, expected a file")
    }

    // MARK: - Numbers

    @Test func numericOptionsAreRangeCheckedBeforeAllocating() throws {
        let cases: [([String], String)] = [
            (["bench", "--attention-io", "9999999999"], "--attention-io: 9999999999 is longer than 65536 tokens"),
            (["bench", "--attention-io", "4611686018427387904"], "--attention-io: 4611686018427387904 is longer than 65536 tokens"),
            (["bench", "--runs", "0"], "--runs must be between 1 and 1000, got 0"),
            (["bench", "--tokens", "0"], "--tokens must be between 1 and 1000000, got 0"),
            (["bench", "--prompt-tokens", "2000000"], "--prompt-tokens must be between 1 and 1000000, got 2000000"),
            (["bench", "--render", "--frames", "0"], "--frames must be between 1 and 1000000, got 0"),
            (["generate", "-n", "2000000"], "-n must be between 0 and 1000000, got 2000000"),
            (["run", "--tokens=-1"], "-n must be between 0 and 1000000, got -1"),
            (["run", "--checkpoint-every", "9999999"], "--checkpoint-every must be between 0 and 1000000"),
            (["generate", "--threads", "0"], "--threads must be between 1 and 256, got 0"),
            (["generate", "--temperature", "1e9"], "temperature must be between 0 and 1000"),
            (["generate", "--top-p", "0"], "top-p must be in (0, 1]"),
            (["generate", "--attention", "tiled", "--sram", "2GiB"], "--sram: 2GiB is more than 1.0 GiB"),
            (["eval", "--text", "x", "--tokens", "1"], "--tokens must be between 2 and 1000000, got 1"),
            (["eval", "--text", "x", "--chunks", "0"], "--chunks must be a number from 1 to 1000000 or 'all', got '0'"),
            (["eval", "--text", "x", "--prefill=-1"], "--prefill must be between 0 and 1000000, got -1"),
            (["eval", "--text", "x", "--depth", "2"], "--depth must be between 0.0 and 1.0, got 2.0"),
            (["project", "--live", "0"], "--live must be between 1 and 1000000, got 0"),
            (["project", "--batch", "0"], "--batch must be between 1 and 65536"),
            (["generate", "--policy", "random:seed=18446744073709551615"],
             "--policy: random: seed=18446744073709551615 is outside 0...2147483647"),
        ]
        for (arguments, message) in cases {
            let (result, timedOut) = try Self.run(arguments, seconds: 60)
            #expect(!timedOut && result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    // MARK: - Sampling

    @Test func tinyTemperaturesPrintTheGreedyText() throws {
        let generate = ["generate", "--prompt", "ROMEO:", "-n", "24"]
        let (greedy, _) = try Self.run(generate)
        #expect(greedy.status == 0, "\(greedy.stderr)")
        #expect(greedy.stdout.count > "ROMEO:\n".count + 10)
        for extra in [[], ["--top-k", "1"], ["--top-p", "0.5"], ["--top-k", "3", "--top-p", "0.5"]] {
            let (tiny, _) = try Self.run(generate + ["--temperature", "1e-40"] + extra)
            #expect(tiny.status == 0, "\(tiny.stderr)")
            #expect(tiny.stdout == greedy.stdout, "--temperature 1e-40 \(extra.joined(separator: " "))")
        }
    }
}
