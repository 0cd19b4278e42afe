import Foundation
import Testing

/// `kvlab serve` end to end on the embedded model: the headless summary, record and replay,
/// one-line errors, and the serve view in tmux.
@Suite(.serialized) struct ServeCLITests {
    /// A small stream that overfills a small pool: ten requests within a few steps, each of up
    /// to 64 tokens (three 192 KiB page sets of the embedded model) in a 2 MiB pool.
    static let stream = ["--requests", "10", "--rate", "500", "--prompt-len", "20..40", "--output-len", "8..24", "--seed", "5",
                         "--pool", "2MiB", "--token-budget", "64"]

    static func directory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-serve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    static func summary(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func aFullPoolPreemptsBySwapAndEveryRequestFinishes() throws {
        let result = try CLITests.run(["serve", "--headless", "--preempt", "swap", "--json", "-"] + Self.stream)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try Self.summary(result.stdout)
        #expect(summary["finished"] as? Int == 10)
        let counters = try #require(summary["counters"] as? [String: Any])
        #expect((counters["preemptions"] as? Int ?? 0) > 0)
        #expect(counters["swapOuts"] as? Int == counters["swapIns"] as? Int)
        #expect((summary["peakPoolUsed"] as? Int ?? .max) <= 2 << 20)
        #expect(summary["ttft"] != nil && summary["measuredTPOT"] != nil)
    }

    @Test func waitNeverPreemptsAndRecomputeCountsItsTokens() throws {
        let wait = try Self.summary(try CLITests.run(["serve", "--headless", "--preempt", "wait", "--json", "-"] + Self.stream).stdout)
        let recompute = try Self.summary(try CLITests.run(["serve", "--headless", "--preempt", "recompute", "--json", "-"] + Self.stream).stdout)
        let waited = try #require(wait["counters"] as? [String: Any]), recomputed = try #require(recompute["counters"] as? [String: Any])
        #expect(waited["preemptions"] as? Int == 0)
        #expect((recomputed["preemptions"] as? Int ?? 0) > 0 && (recomputed["recomputedTokens"] as? Int ?? 0) > 0)
        #expect((waited["peakRunning"] as? Int ?? .max) < (recomputed["peakRunning"] as? Int ?? 0))
    }

    @Test func aRecordingReplaysLineForLineAndAChangedLineIsNamed() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("run.kvlab-serve.jsonl").path
        let record = try CLITests.run(["serve", "--headless", "--system-prompt", "32", "--record", path] + Self.stream)
        #expect(record.status == 0, "\(record.stderr)")
        let replay = try CLITests.run(["serve", "--replay", path])
        #expect(replay.status == 0, "\(replay.stderr)")
        #expect(replay.stderr.contains("lines identical"))

        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let index = try #require(lines.firstIndex { $0.contains("\"tokens\":[[") })
        lines[index] = lines[index].replacingOccurrences(of: "\"poolUsed\":", with: "\"poolUsed\":1")
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let changed = try CLITests.run(["serve", "--replay", path])
        #expect(changed.status != 0)
        #expect(changed.stderr.contains("\(path): line \(index + 1): the replay differs"), "\(changed.stderr)")
        #expect(changed.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
    }

    @Test(arguments: [
        (["--pool", "12XB"], "--pool: '12XB' is not a positive size"),
        (["--preempt", "later"], "--preempt: 'later' is not wait, swap or recompute"),
        (["--prompt-len", "0..4"], "--prompt-len: '0..4' is not N or A..B"),
        (["--trace", "/nonexistent/trace.jsonl"], "/nonexistent/trace.jsonl: no such file"),
        (["--replay", "/nonexistent/run.jsonl"], "/nonexistent/run.jsonl: no such file"),
        (["--policy", "window:size=3"], "--policy:"),
    ])
    func badInputIsOneLine(arguments: [String], message: String) throws {
        let result = try CLITests.run(["serve", "--headless"] + arguments)
        #expect(result.status != 0)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(result.stderr)")
    }

    @Test func aBadTraceLineIsNamed() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("trace.jsonl").path
        try "{\"arrival\": 0, \"text\": \"ROMEO:\", \"output\": 4}\n{\"arrival\": 0.1, \"text\": \"JULIET:\"}\n".write(toFile: path, atomically: true, encoding: .utf8)
        let result = try CLITests.run(["serve", "--headless", "--trace", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(path): line 2: 'output' must be a whole number of tokens"), "\(result.stderr)")
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
    }

    /// The fit count on the pool line.
    static func fits(_ screen: String) -> Int? {
        guard let range = screen.range(of: "fit for a whole life: ") else { return nil }
        return Int(screen[range.upperBound...].prefix { $0.isNumber })
    }

    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func theServeViewSwitchesTheMethodLive() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let server = TmuxServer()
        let statusFile = directory.appendingPathComponent("status").path
        // Long prompts: a full cache holds a life of about 300 tokens, the default window 128.
        let command = "sleep 0.3; '\(CLITests.binary)' serve --requests 400 --rate 20 --prompt-len 200..300 --output-len 32..64 --pool 16MiB "
            + "--system-prompt 32; echo $? > '\(statusFile)'; sleep 60"
        try server.run(["new-session", "-d", "-s", "main", "-x", "120", "-y", "32", "sh", "-c", command])
        let first = try server.wait("main", for: "the serve view with sequences running") {
            $0.contains("Sequences over time") && $0.contains("Pool") && Self.fits($0) != nil && $0.contains("decode")
        }
        #expect(first.contains("policy full"))
        // The engine's counted traffic of the live batch, against the projected device's ridge.
        #expect(first.range(of: #"per token +W [0-9.]+[KMGB]? · KV [0-9.]+[KMGB]?"#, options: .regularExpression) != nil, "\(first)")
        #expect(first.range(of: #"AI @ batch [0-9]+ +[0-9.]+ F/B · ridge [0-9]+"#, options: .regularExpression) != nil, "\(first)")
        let full = try #require(Self.fits(first))

        try server.run(["send-keys", "-t", "main", "e"])  // full → window
        let window = try server.wait("main", for: "the window method for every sequence") {
            $0.contains("policy window") && Self.fits($0).map { $0 > full } == true
        }
        #expect(window.contains("CoW copies"))

        try server.run(["send-keys", "-t", "main", "q"])
        var status = ""
        for _ in 0..<300 where status.isEmpty {
            status = (try? String(contentsOfFile: statusFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if status.isEmpty { usleep(100_000) }
        }
        #expect(status == "0", "kvlab's exit status: '\(status)'")
    }

    /// The figures that move with the live batch, read off a screen: the projected tokens/s, the
    /// weight bytes per token, the batch and its arithmetic intensity.
    struct BatchFigures {
        var tokensPerSecond: Double, weightBytesPerToken: Double, batch: Int, intensity: Double, running: Int

        init?(_ screen: String) {
            func match(_ pattern: String) -> [String]? {
                guard let regex = try? NSRegularExpression(pattern: pattern),
                      let m = regex.firstMatch(in: screen, range: NSRange(screen.startIndex..., in: screen)) else { return nil }
                return (1..<m.numberOfRanges).map { String(screen[Range(m.range(at: $0), in: screen)!]) }
            }
            let units: [String: Double] = ["B": 1, "K": 1024, "M": 1024 * 1024, "G": 1024 * 1024 * 1024]
            guard let rate = match(#"tokens/s +([0-9.]+) projected"#), let weights = match(#"per token +W ([0-9.]+)([BKMG]) · KV"#),
                  let ai = match(#"AI @ batch ([0-9]+) +([0-9.]+) F/B · ridge [0-9]+ · memory-bound"#),
                  let running = match(#"running ([0-9]+) · peak"#),
                  let tokensPerSecond = Double(rate[0]), let w = Double(weights[0]), let unit = units[weights[1]],
                  let batch = Int(ai[0]), let intensity = Double(ai[1]), let live = Int(running[0]) else { return nil }
            (self.tokensPerSecond, weightBytesPerToken, self.batch, self.intensity, self.running) = (tokensPerSecond, w * unit, batch, intensity, live)
        }
    }

    /// At the minimum size, 80×24, as requests keep arriving and none finishes: every row fits
    /// uncut, and as the batch grows the weight bytes per token fall, the arithmetic intensity
    /// rises (still below the H100's ridge: memory-bound) and so does the projected tokens/s.
    @Test(.enabled(if: TmuxServer.executable != nil, "skipped: tmux is not installed (scripts/test installs it)"))
    func theServeViewsFiguresMoveWithTheBatchAt80x24() throws {
        let server = TmuxServer()
        // Short prompts, so a step's rows are about its sequences (the exact per-row accounting is
        // EngineServeTests'); a request about every 20 projected decode steps, each living 400 or more.
        let command = "sleep 0.3; '\(CLITests.binary)' serve --requests 24 --rate 10 --prompt-len 1 --output-len 400..500 --pool 256MiB --seed 3; sleep 60"
        try server.run(["new-session", "-d", "-s", "main", "-x", "80", "-y", "24", "sh", "-c", command])
        var samples: [BatchFigures] = []
        _ = try server.wait("main", for: "a batch of 12", seconds: 120) { screen in
            let rows = screen.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(!rows.contains { $0.contains("…") }, "a row is cut at 80×24:\n\(screen)")
            #expect(rows.allSatisfy { $0.count <= 80 })
            guard let figures = BatchFigures(screen) else { return false }
            samples.append(figures)
            return figures.batch >= 12
        }
        let first = try #require(samples.first), last = try #require(samples.last)
        #expect(first.batch <= 4 && last.batch >= 12, "batches seen: \(samples.map(\.batch))")
        #expect(last.running > first.running)
        #expect(last.weightBytesPerToken < first.weightBytesPerToken)
        #expect(last.intensity > first.intensity)
        #expect(last.tokensPerSecond > first.tokensPerSecond)
        try server.run(["send-keys", "-t", "main", "q"])
    }
}
