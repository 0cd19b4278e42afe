import Foundation
import Testing

/// `kvlab run`, `replay` and `export` as a user runs them, on the embedded model.
@Suite struct SessionCLITests {
    static let demos = CLITests.packageRoot.appendingPathComponent("sessions/demos")

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-cli-\(UUID().uuidString).kvlab.jsonl").path
    }

    static let scripted = ["run", "--prompt", "ROMEO:\n", "-n", "48", "--ghost", "--checkpoint-every", "8",
                           "--at", "12:policy=streaming:sinks=4,window=12", "--at", "20:kv=kivi:bits=2,residual=8",
                           "--at", "28:ghost=off", "--at", "32:sparse=quest:page=16,budget=16", "--at", "36:weights=q8_0",
                           "--at", "40:attention=tiled:sram=16KiB",
                           "--caption", "0:full cache", "--caption", "12:streaming, 16 entries per head"]

    @Test func aRecordedRunReplaysAndExports() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CLITests.run(Self.scripted + ["--record", path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix("ROMEO:\n") && run.stdout.count > 60)
        #expect(run.stderr.contains("[step 12] policy: full → streaming:sinks=4,window=12"))
        #expect(run.stderr.contains("[step 12] streaming, 16 entries per head"))

        let check = try CLITests.run(["replay", path, "--headless", "--check", "--strict"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout == "\(path): ok: 1 prompt(s), 48 tokens, 5 knob change(s), 7 checkpoints (bit-identical)\n")

        let replay = try CLITests.run(["replay", path, "--headless"])
        #expect(replay.status == 0 && replay.stdout == run.stdout, "a replay prints the same text")

        let playback = try CLITests.run(["replay", path, "--headless", "--playback"])
        #expect(playback.status == 0)
        #expect(playback.stdout.contains("── step 12: streaming, 16 entries per head"))
        #expect(playback.stdout.split(separator: "\n").count { $0.first?.isNumber == true } == 48)

        let csv = try CLITests.run(["export", path, "--csv"])
        #expect(csv.status == 0)
        let rows = Self.csvRecords(csv.stdout)
        #expect(rows.first?.prefix(5) == ["step", "position", "token", "text", "latency_ns"])
        #expect(rows.count == 49 && rows.allSatisfy { $0.count == rows[0].count }, "a header row and a row per token")
        #expect(rows.last?.suffix(7) == ["q8_0", "tiled:sram=16KiB", "off", "", "", "", "streaming, 16 entries per head"], "no projection: empty projection cells")
    }

    /// StreamingLLM past the context (README, Past the context): 2,500 tokens on the embedded
    /// model (context 1,024), with the resident KV the same at every step once its window is full.
    @Test func streamingRunsPastTheContextWithFlatResidentKV() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CLITests.run(["run", "--prompt", "ROMEO:", "-n", "2500", "--policy", "streaming", "--record", path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stderr.contains("context full"), "\(run.stderr)")
        let csv = try CLITests.run(["export", path, "--csv"])
        #expect(csv.status == 0, "\(csv.stderr)")
        let rows = Self.csvRecords(csv.stdout)
        let position = try #require(rows.first?.firstIndex(of: "position")), kv = try #require(rows.first?.firstIndex(of: "kv_bytes"))
        let tokens = rows.dropFirst().compactMap { row in Int(row[position]).flatMap { p in Int(row[kv]).map { (position: p, kv: $0) } } }
        #expect(tokens.count == 2500)
        #expect((tokens.last?.position ?? 0) >= 2500, "past the 1,024-token context")
        // The default window fills within the first few hundred positions; from then on nothing grows.
        let resident = Set(tokens.filter { $0.position >= 512 }.map(\.kv))
        #expect(resident.count == 1, "resident KV past position 512: \(resident.sorted())")
        #expect((tokens.map(\.kv).max() ?? .max) == resident.first, "never more than when flat")
    }

    /// `--context N` runs the model with an N-token context: the full cache stops there, a bounded
    /// one goes on past it; a session records it and replays bit-identically without being told;
    /// `info` shows it; a bad value is one line naming the flag.
    @Test func contextLimitsARunAndSessionsRecordIt() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CLITests.run(["run", "--prompt", "ROMEO:", "-n", "100", "--context", "64", "--checkpoint-every", "16", "--record", path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("stopped: context full"), "\(run.stderr)")
        let header = try #require(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").first)
        #expect(header.contains(#""context":64"#), "\(header)")
        let check = try CLITests.run(["replay", path, "--headless", "--check", "--strict"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.contains(": ok: 1 prompt(s), ") && check.stdout.contains("(bit-identical)"), "\(check.stdout)")

        let streaming = try CLITests.run(["run", "--prompt", "ROMEO:", "-n", "100", "--context", "64", "--policy", "streaming:sinks=4,window=28"])
        #expect(streaming.status == 0 && !streaming.stderr.contains("context full"), "\(streaming.stderr)")

        let info = try CLITests.run(["info", "--context", "64"])
        #expect(info.status == 0, "\(info.stderr)")
        #expect(info.stdout.contains("context      64 tokens (--context; the model's own is 1024), RoPE"), "\(info.stdout)")

        let bad: [([String], String)] = [
            (["generate", "-n", "1", "--context", "0"], "Error: --context must be at least 1, got 0"),
            (["run", "-n", "1", "--context=-5"], "Error: --context must be at least 1, got -5"),
            (["eval", "--text", "/nonexistent/text.txt", "--context", "1025"], "Error: --context: 1025 is not between 1 and the model's 1024-token context"),
            (["info", "--context", "4096"], "Error: --context: 4096 is not between 1 and the model's 1024-token context"),
            (["replay", path, "--headless", "--context", "32"], "Error: --context: a replay takes the context from the session"),
        ]
        for (arguments, message) in bad {
            let result = try CLITests.run(arguments)
            #expect(result.status != 0 && result.stderr.hasPrefix(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
        }
    }

    /// RFC 4180 records (quoted fields may hold commas, quotes and line breaks).
    static func csvRecords(_ text: String) -> [[String]] {
        var records: [[String]] = [], record: [String] = [], field = "", quoted = false, afterQuote = false
        for c in text {
            if quoted {
                if c == "\"" { quoted = false; afterQuote = true } else { field.append(c) }
                continue
            }
            switch c {
            case "\"":
                if afterQuote { field.append("\"") }
                quoted = true
            case ",": record.append(field); field = ""
            case "\n": record.append(field); records.append(record); record = []; field = ""
            default: field.append(c)
            }
            afterQuote = false
        }
        return records
    }

    @Test func jsonOutputIsTheSessionStream() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let json = try CLITests.run(Self.scripted + ["--json", "--record", path])
        #expect(json.status == 0, "\(json.stderr)")
        #expect(json.stdout == (try String(contentsOfFile: path, encoding: .utf8)), "--json prints exactly the recorded lines")
        let objects = try json.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objects.first?["format"] as? String == "kvlab-session")
        #expect(objects.count { $0["event"] as? String == "token" } == 48)
        #expect(objects.count { $0["event"] as? String == "knob" } == 5)
    }

    @Test func aChangedTokenFailsTheCheckNamingTheStep() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try CLITests.run(Self.scripted + ["--record", path]).status == 0)
        var lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        let index = try #require(lines.firstIndex { $0.contains(#""event":"token""#) && $0.contains(#""step":30,"#) })
        var object = try #require(try JSONSerialization.jsonObject(with: Data(lines[index].utf8)) as? [String: Any])
        let token = try #require(object["token"] as? Int)
        object["token"] = token == 0 ? 1 : token - 1
        lines[index] = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let check = try CLITests.run(["replay", path, "--headless", "--check"])
        #expect(check.status != 0)
        #expect(check.stderr.hasPrefix("Error: \(path):\(index + 1): step 30: token expected \(token == 0 ? 1 : token - 1) "))
        #expect(check.stderr.contains("observed \(token) "))
        #expect(check.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
    }

    /// `kill -9` while the session is written: the file replays to its last complete event.
    @Test func aKilledWriterLeavesAReplayableFile() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        // Checkpoints at every token slow the run down enough to be killed mid-way.
        process.arguments = ["run", "--prompt", "ROMEO:\n", "-n", "1000", "--ghost", "--policy", "h2o:heavy=32,recent=32",
                             "--checkpoint-every", "1", "--record", path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        var lines = 0
        while process.isRunning, lines < 150, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.05)
            // Readable while being written.
            lines = (try? String(contentsOfFile: path, encoding: .utf8))?.count { $0 == "\n" } ?? 0
        }
        #expect(process.isRunning, "the run ended before it could be killed")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        // Every complete event verifies; the missing end event reports the recording cut.
        let check = try CLITests.run(["replay", path, "--headless", "--check", "--strict"])
        #expect(check.status == 2, "\(check.stderr)")
        let tokens = try #require(check.stderr.firstMatch(of: /recording cut after step (\d+): no end-of-recording event\n/).map { Int($0.1)! })
        // Every complete token line was replayed.
        let complete = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(tokens == complete.count { $0.contains(#""event":"token""#) } && tokens >= 60, "\(check.stderr)")
    }

    /// `replay --headless` exits 0 for a whole recording, 1 for a mismatch, 2 for a cut recording
    /// (after verifying what it holds), 3 for a session it cannot replay; playback of a cut one
    /// lists what it holds and says where it was cut.
    @Test func replayExitStatusesTellCutFromMismatchAndBadInput() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CLITests.run(["run", "--prompt", "ROMEO:\n", "-n", "12", "--ghost", "--checkpoint-every", "4", "--record", path])
        #expect(run.status == 0, "\(run.stderr)")
        let whole = try String(contentsOfFile: path, encoding: .utf8)
        var lines = whole.split(separator: "\n").map(String.init)
        #expect(lines.last?.hasPrefix(#"{"event":"end","events":\#(lines.count - 2),"step":12}"#) == true, "\(lines.last ?? "")")
        func replay(_ content: String, _ options: [String] = ["--check"]) throws -> CLITests.Result {
            try content.write(toFile: path, atomically: true, encoding: .utf8)
            return try CLITests.run(["replay", path, "--headless"] + options)
        }
        let ok = try replay(whole)
        #expect(ok.status == 0 && ok.stdout.hasPrefix("\(path): ok: 1 prompt(s), 12 tokens"), "\(ok.stderr)")

        let cuts = [(lines[0] + "\n", 0), (lines.dropLast().joined(separator: "\n") + "\n", 12), (String(whole.dropLast(30)), 12)]
        for (content, step) in cuts {
            for options in [["--check"], []] {
                let cut = try replay(content, options)
                #expect(cut.status == 2, "\(cut.stderr)")
                #expect(cut.stderr.hasSuffix("Error: \(path): recording cut after step \(step): no end-of-recording event\n"), "\(cut.stderr)")
                // Without --check the text of what the file holds, as a whole one prints it.
                #expect(options.isEmpty ? cut.stdout.hasPrefix(step > 0 ? "ROMEO:\n" : "") : cut.stdout.isEmpty)
            }
            let playback = try replay(content, ["--playback"])
            #expect(playback.status == 0, "\(playback.stderr)")
            #expect(playback.stdout.hasSuffix("── recording cut after step \(step): no end-of-recording event\n"), "\(playback.stdout)")
        }
        let played = try replay(whole, ["--playback"])
        #expect(played.stdout.hasSuffix("── step 12: end of recording (\(lines.count - 2) events)\n"), "\(played.stdout)")

        let index = try #require(lines.firstIndex { $0.contains(#""event":"token""#) && $0.contains(#""step":5,"#) })
        let nll = try #require(lines[index].firstMatch(of: /"nll":([0-9.e-]+)/).map { String($0.1) })
        lines[index] = lines[index].replacingOccurrences(of: "\"nll\":\(nll)", with: "\"nll\":\"nan\"")
        let mismatch = try replay(lines.joined(separator: "\n") + "\n")
        #expect(mismatch.status == 1)
        #expect(mismatch.stderr == "Error: \(path):\(index + 1): step 5: nll expected nan, observed \(nll)\n", "\(mismatch.stderr)")

        lines[index] = "{"
        let corrupt = try replay(lines.joined(separator: "\n") + "\n")
        #expect(corrupt.status == 3 && corrupt.stderr.hasPrefix("Error: \(path):\(index + 1): not valid JSON"), "\(corrupt.stderr)")
        let missing = try CLITests.run(["replay", path + ".missing", "--headless", "--check"])
        #expect(missing.status == 3 && missing.stderr == "Error: \(path).missing: no such file\n", "\(missing.stderr)")
    }

    @Test func sessionErrorsAreOneLine() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(#"{"format":"kvlab-session","version":7,"kvlab":"3.0"}"#.utf8 + [0x0A]).write(to: URL(fileURLWithPath: path))
        for arguments in [["replay", path, "--headless", "--check"], ["replay", path, "--headless", "--playback"], ["export", path, "--csv"]] {
            let result = try CLITests.run(arguments)
            #expect(result.status != 0)
            #expect(result.stderr.hasPrefix("Error: \(path):1: session format 7 (written by kvlab 3.0) is newer than this kvlab"))
            #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
        }
        let badKnob = try CLITests.run(["run", "-n", "8", "--at", "2:colour=red"])
        #expect(badKnob.status != 0 && badKnob.stderr == "Error: --at 2:colour=red: unknown knob 'colour' (policy, sparse, kv, weights, attention, ghost, device, target, context)\n")
        let late = try CLITests.run(["run", "-n", "8", "--at", "8:policy=window"])
        #expect(late.stderr == "Error: --at 8:policy=window: step 8 is not before -n 8\n")
        let badMethod = try CLITests.run(["run", "-n", "8", "--at", "2:kv=kivi:bits=5"])
        #expect(badMethod.stderr == "Error: --at 2:kv=kivi:bits=5: kivi: bits=5 is not one of 8, 4, 3, 2\n")
        let noScreen = try CLITests.run(["replay", path])
        #expect(noScreen.status != 0 && noScreen.stderr.contains("use --headless"))
    }

    @Test func aProjectedRunRecordsReplaysAndExportsItsLatencies() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = try CLITests.run(["run", "--prompt", "ROMEO:\n", "-n", "24", "--kv", "kivi:bits=2", "--device", "a100-80gb",
                                    "--target", "llama-3-8b", "--at", "12:device=h200", "--at", "16:context=8192", "--record", path])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("[step 12] projection device: a100-80gb → h200"))
        let check = try CLITests.run(["replay", path, "--headless", "--check"])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stdout.hasSuffix(", 24 projected latencies (2 projection change(s))\n"), "\(check.stdout)")
        let rows = Self.csvRecords(try CLITests.run(["export", path, "--csv"]).stdout)
        let column = { (name: String) in rows[0].firstIndex(of: name)! }
        #expect(rows.count == 25)
        let latency = rows.dropFirst().map { Double($0[column("projected_latency_s")]) }
        #expect(latency.allSatisfy { $0 != nil && $0! > 0 }, "every token has its projected latency")
        #expect(rows[12][column("device")] == "a100-80gb" && rows[13][column("device")] == "h200")
        // H200 reads HBM 2.35× as fast as an A100 80GB; at 8K the KV read is smaller still.
        #expect(latency[12]! < latency[11]! / 2 && latency[16]! < latency[15]!)
        #expect(rows[17][column("projected_context")] == "8192")
        let playback = try CLITests.run(["replay", path, "--headless", "--playback"])
        #expect(playback.stdout.contains("projected onto llama-3-8b on a100-80gb at 32768 tokens"))
    }

    @Test func badProjectionNamesAreOneLineErrorsListingTheValidOnes() throws {
        let devices = "a100-40gb, a100-80gb, h100-pcie, h100-sxm, h200, l4, m2-ultra, rtx-4090"
        let device = try CLITests.run(["run", "-n", "8", "--device", "h900"])
        #expect(device.status != 0 && device.stderr == "Error: --device: unknown device 'h900' (\(devices))\n")
        let thisMachine = try CLITests.run(["run", "-n", "8", "--device", "this-machine"])
        #expect(thisMachine.status != 0 && thisMachine.stderr.hasPrefix("Error: --device: unknown device 'this-machine' ("))
        let at = try CLITests.run(["run", "-n", "8", "--device", "h200", "--at", "2:device=h900"])
        #expect(at.status != 0 && at.stderr == "Error: --at 2:device=h900: unknown device 'h900' (\(devices))\n")
        let target = try CLITests.run(["run", "-n", "8", "--target", "llama"])
        #expect(target.status != 0 && target.stderr.hasPrefix("Error: --target: unknown target 'llama' (llama-2-7b, llama-3-8b, ")
            && target.stderr.hasSuffix(", live)\n") && target.stderr.split(separator: "\n").count == 1)
        let context = try CLITests.run(["run", "-n", "8", "--device", "h200", "--project-context", "0"])
        #expect(context.status != 0 && context.stderr.hasPrefix("Error: --project-context: projected context must be between 1 and "))
        let off = try CLITests.run(["run", "-n", "8", "--at", "2:device=h200"])
        #expect(off.status != 0 && off.stderr == "Error: --at 2:device=h200: needs --device or --target (the run projects nothing)\n")
    }

    /// Every shipped demo passes `replay --headless --check` on the embedded model.
    @Test func everyDemoPassesTheCheck() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.demos.path).filter { $0.hasSuffix(".kvlab.jsonl") }.sorted()
        #expect(!files.isEmpty, "no demos in sessions/demos")
        for file in files {
            let check = try CLITests.run(["replay", Self.demos.appendingPathComponent(file).path, "--headless", "--check"])
            #expect(check.status == 0, "\(file): \(check.stderr)")
            #expect(check.stdout.contains(": ok: "))
        }
    }
}
