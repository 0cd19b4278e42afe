import Foundation
import Testing

/// The `kvlab` executable as a user runs it: exit codes, one-line errors, streamed output.
@Suite struct CLITests {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let shared = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    static let stories = shared.appendingPathComponent("models/stories260K/stories260K.bin").path
    static let haveStories = FileManager.default.fileExists(atPath: stories)

    /// The kvlab binary built beside the test bundle.
    static let binary: String = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kvlab").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return packageRoot.appendingPathComponent(".build/debug/kvlab").path
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], rawArguments: [Data] = [], environment: [String: String]? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test func missingModelFileIsOneLineNamingIt() throws {
        let result = try Self.run(["generate", "--model", "/nonexistent/model.gguf", "-n", "4"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("/nonexistent/model.gguf: no such file"))
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
    }

    @Test func noModelRunsTheEmbeddedModel() throws {
        let result = try Self.run(["generate", "-n", "12", "--prompt", "ROMEO:"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("ROMEO:"))
        #expect(result.stdout.count > "ROMEO:\n".count)
    }

    @Test func infoDescribesTheEmbeddedModel() throws {
        let result = try Self.run(["info"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("model        kvlab-shakespeare\n"))
        #expect(result.stdout.contains("crossover    KV = weights at 641 tokens"))
        #expect(result.stdout.contains("types        f16 ×57 (7.5 MiB), f32 ×17 (12.8 KiB)\n"))
        #expect(result.stdout.contains("meta         kvlab.eval.val_ids_sha256 = "))
    }

    @Test func tokenizerWithoutModelIsRefused() throws {
        let result = try Self.run(["generate", "--tokenizer", "tok.bin", "-n", "1"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--tokenizer needs --model"))
    }

    @Test func evalComparesMethodsOnAText() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-eval-\(UUID()).txt").path
        let text = String(repeating: "First Citizen:\nBefore we proceed any further, hear me speak.\n\n", count: 12)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["eval", "--text", path, "--tokens", "128", "--policy", "window:window=16",
                                   "--policy", "h2o:heavy=8,recent=8", "--sparse", "quest:page=16,budget=32"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("full cache (ghost)"))
        #expect(result.stdout.contains("window:window=16 quest:page=16,budget=32"))
        #expect(result.stdout.contains("h2o:heavy=8,recent=8 quest:page=16,budget=32"))
        let json = try Self.run(["eval", "--text", path, "--tokens", "64", "--policy", "tova:budget=8", "--json"])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        let results = try #require(object?["results"] as? [[String: Any]])
        #expect(results.first?["method"] as? String == "tova:budget=8")
        #expect((results.first?["meanNLL"] as? Double ?? 0) > 0)
    }

    @Test func evalErrorsAreOneLine() throws {
        let missing = try Self.run(["eval", "--text", "/nonexistent/text.txt"])
        #expect(missing.status != 0)
        #expect(missing.stderr == "Error: /nonexistent/text.txt: no such file\n")
        let badPolicy = try Self.run(["eval", "--text", "/nonexistent/text.txt", "--policy", "h2o:heavyy=1"])
        #expect(badPolicy.status != 0)
        #expect(badPolicy.stderr == "Error: --policy: h2o: unknown parameter 'heavyy' (known: heavy, recent, ratio, budget, bytes)\n")
        let badChunks = try Self.run(["eval", "--text", "x", "--chunks", "zero"])
        #expect(badChunks.status != 0)
        // A prompt-end method without a prompt would keep everything and read as free.
        for policy in ["snapkv:budget=32", "kvpress:snapkv,ratio=0.5"] {
            let idle = try Self.run(["eval", "--text", "/nonexistent/text.txt", "--policy", "full", "--policy", policy])
            #expect(idle.status != 0)
            #expect(idle.stderr.hasPrefix("Error: --policy \(policy.hasPrefix("snapkv") ? "snapkv" : "kvpress:snapkv")"), "\(idle.stderr)")
            #expect(idle.stderr.contains("give --prefill N"))
        }
    }

    @Test func attentionFlagsAreOneLineErrors() throws {
        let cases: [([String], String)] = [
            (["--attention", "flash"], "Error: --attention: 'flash' is not naive or tiled\n"),
            (["--attention", "tiled", "--sram", "12XB"], "Error: --sram: '12XB' is not a positive size (bytes, or a number with KiB, MiB or GiB)\n"),
            (["--sram", "64KiB"], "Error: --sram sizes the tiled kernel: add --attention tiled\n"),
            (["--attention", "tiled", "--sram", "100"], "Error: --sram: 100 B cannot hold one tile row of 4 × 32 fp32 (at least 512 B)\n"),
            (["--attention", "tiled", "--sram", "16KiB,64KiB"], "Error: --sram: one size for --attention tiled, got 2\n"),
        ]
        for (arguments, message) in cases {
            let result = try Self.run(["generate", "-n", "1"] + arguments)
            #expect(result.status != 0)
            #expect(result.stderr == message, "\(arguments)")
        }
        let bench = try Self.run(["bench", "--attention-io", "512,0"])
        #expect(bench.stderr == "Error: --attention-io: '0' is not a prompt length (a positive number)\n")
    }

    /// Also with `think`, whose prompt records its query window in the batched kernels and whose pruned keys take the naive path.
    @Test(arguments: [[String](), ["--policy", "full+think:lambda=0.5,observation=8"],
                      ["--policy", "snapkv:budget=16,observation=4+think:lambda=0.25,observation=4"]])
    func tiledAttentionGeneratesTheSameText(policy: [String]) throws {
        let arguments = ["generate", "-n", "40", "--prompt", "ROMEO:\nWhat light through yonder window breaks?\n"] + policy
        let naive = try Self.run(arguments), tiled = try Self.run(arguments + ["--attention", "tiled", "--sram", "2KiB"])
        #expect(naive.status == 0 && tiled.status == 0, "\(tiled.stderr)")
        #expect(tiled.stdout == naive.stdout)
    }

    @Test func benchPrintsTheAttentionTrafficCurve() throws {
        let result = try Self.run(["bench", "--attention-io", "32,64", "--sram", "2KiB,16KiB"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("tiled      tiled, SRAM 2.0 KiB: key/value tiles of 4 entries, query blocks of 4 rows"))
        let header = try #require(lines.firstIndex { $0.hasPrefix("N ") })
        #expect(["naive", "÷ N²", "tiled 2.0 KiB", "tiled 16.0 KiB", "÷ N²d²/M"].allSatisfy { lines[header].contains($0) })
        #expect(lines.count == header + 3)
        #expect(lines[header + 1].hasPrefix("32 ") && lines[header + 2].hasPrefix("64 "))
    }

    @Test func thinkWithARotatedKeyFrameIsOneLine() throws {
        let result = try Self.run(["bench", "--runs", "1", "--tokens", "1", "--policy", "full+think", "--kv", "q8_0+rotate"])
        #expect(result.status != 0)
        #expect(result.stderr == "Error: --policy: think prunes key channels as attention scores them; it does not combine with rotate\n")
    }

    @Test func garbageFileIsRejectedCleanly() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-garbage-\(UUID()).gguf").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data("GGUF this is not a model".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try Self.run(["info", path])
        #expect(result.status != 0)
        #expect(result.stderr.hasPrefix("Error: \(path): "))
    }

    @Test func badFlagsAreValidationErrors() throws {
        #expect(try Self.run(["generate", "--threads", "0"]).status != 0)
        #expect(try Self.run(["generate", "--temperature", "-1"]).status != 0)
        #expect(try Self.run(["generate", "--weights", "q3_k"]).status != 0)
    }

    @Test func badKVQuantizationIsOneLineNamingTheOption() throws {
        let result = try Self.run(["eval", "--text", "/nonexistent/text.txt", "--kv", "kivi:bits=5"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--kv: kivi: bits=5 is not one of 8, 4, 3, 2"))
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
    }

    @Test(.enabled(if: haveStories, "skipped: ../shared/models/stories260K is absent"))
    func evalRunsEveryPolicyWithTheKVQuantization() throws {
        let text = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-eval-\(UUID()).txt").path
        #expect(FileManager.default.createFile(atPath: text, contents: Data("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.".utf8)))
        defer { try? FileManager.default.removeItem(atPath: text) }
        let result = try Self.run(["eval", "--model", Self.stories, "--text", text, "--policy", "full", "--policy", "window:window=8",
                                   "--kv", "q8_0", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let results = try #require(report["results"] as? [[String: Any]])
        #expect(results.compactMap { $0["method"] as? String } == ["full q8_0:residual=0", "window:window=8 q8_0:residual=0"])
        for summary in results {
            #expect((summary["peakResidentKVBytes"] as? Int ?? .max) < (summary["ghostPeakResidentKVBytes"] as? Int ?? 0))
        }
    }

    /// `--policy`, `--sparse` and `--kv` repeat in eval (every combination, policies outermost);
    /// a pair that does not combine is one line naming both; a command that runs one cache refuses
    /// a repeat instead of keeping the last.
    @Test(.enabled(if: haveStories, "skipped: ../shared/models/stories260K is absent"))
    func evalRunsTheGridOfPoliciesSparseModesAndQuantizations() throws {
        let text = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-grid-\(UUID()).txt").path
        #expect(FileManager.default.createFile(atPath: text, contents: Data("Once upon a time, there was a little girl named Lily.".utf8)))
        defer { try? FileManager.default.removeItem(atPath: text) }
        let result = try Self.run(["eval", "--model", Self.stories, "--text", text, "--policy", "full", "--policy", "window:window=8",
                                   "--sparse", "dense", "--sparse", "topk:k=4", "--kv", "fp32", "--kv", "q8_0", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let methods = (report["results"] as? [[String: Any]] ?? []).compactMap { $0["method"] as? String }
        #expect(methods == ["full", "full q8_0:residual=0", "full topk:k=4", "full topk:k=4 q8_0:residual=0", "window:window=8",
                            "window:window=8 q8_0:residual=0", "window:window=8 topk:k=4", "window:window=8 topk:k=4 q8_0:residual=0"])
        let bad = try Self.run(["eval", "--model", Self.stories, "--text", text, "--policy", "full", "--policy", "window+think",
                                "--kv", "fp32", "--kv", "fp32+prerope"])
        #expect(bad.status != 0)
        #expect(bad.stderr == "Error: --policy window:window=128+think:lambda=0.5,observation=16 with --kv fp32+prerope: think prunes key "
            + "channels as attention scores them; it does not combine with prerope\n")
        let repeated = try Self.run(["generate", "--prompt", "x", "--kv", "q8_0", "--kv", "q4_0"])
        #expect(repeated.status != 0 && repeated.stderr.contains("--kv is given 2 times; only eval compares several"), "\(repeated.stderr)")
    }

    /// `eval --sequence`: one sequence past stories260K's 512-token context; the full cache stops
    /// at it, a streaming cache runs to the end.
    @Test(.enabled(if: haveStories, "skipped: ../shared/models/stories260K is absent"))
    func evalSequenceRunsPastTheContext() throws {
        let text = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-sequence-\(UUID()).txt").path
        let story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
        #expect(FileManager.default.createFile(atPath: text, contents: Data(String(repeating: story, count: 40).utf8)))
        defer { try? FileManager.default.removeItem(atPath: text) }
        let result = try Self.run(["eval", "--model", Self.stories, "--text", text, "--sequence", "700", "--policy", "full",
                                   "--policy", "streaming:sinks=4,window=60", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let results = report["results"] as? [[String: Any]] ?? []
        #expect(results.map { $0["tokens"] as? Int } == [700, 512, 700])
        #expect(results.map { $0["stoppedAt"] as? Int } == [nil, 512, nil])
        let bad = try Self.run(["eval", "--text", text, "--sequence", "700", "--chunks", "2"])
        #expect(bad.status != 0 && bad.stderr.contains("--sequence runs one sequence"))
    }

    @Test func invalidUTF8ArgumentIsRefused() throws {
        // Foundation's Process takes Strings; pass the raw bytes through a shell's printf.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exec \"$0\" generate --prompt \"$(printf '\\377\\376')\"", Self.binary]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = Pipe()
        try process.run()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        #expect(stderr.contains("not valid UTF-8"))
    }

    @Test(.enabled(if: haveStories, "skipped: ../shared/models/stories260K is absent"))
    func generateStreamsGreedyText() throws {
        let result = try Self.run(["generate", "--model", Self.stories, "--prompt", "Once upon a time", "-n", "20"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("Once upon a time, there was a little girl named Lily."))
    }

    @Test(.enabled(if: haveStories, "skipped: ../shared/models/stories260K is absent"))
    func samplingIsDeterministicForASeed() throws {
        let arguments = ["generate", "--model", Self.stories, "-n", "40", "--temperature", "0.9", "--top-p", "0.9", "--seed", "5"]
        let first = try Self.run(arguments), second = try Self.run(arguments)
        let other = try Self.run(arguments.dropLast() + ["6"])
        #expect(first.status == 0 && first.stdout == second.stdout)
        #expect(first.stdout != other.stdout)
    }

    @Test(.enabled(if: haveStories, "skipped: ../shared/models/stories260K is absent"))
    func infoPrintsConfigurationAndTensors() throws {
        let result = try Self.run(["info", Self.stories])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("dim 64, hidden 172, layers 5, heads 8, KV heads 4"))
        #expect(result.stdout.contains("parameters   260,032"))
        #expect(result.stdout.contains("blk.4.ffn_down.weight"))
    }

    @Test(.enabled(if: haveStories, "skipped: ../shared/models/stories260K is absent"),
          arguments: [[], ["--policy", "h2o:heavy=32,recent=32", "--sparse", "quest:page=16,budget=64"],
                      ["--policy", "scissorhands:budget=64,recent=8,drop=16+merge", "--sparse", "topk:k=16"],
                      ["--sparse", "block-retrieval:block=16,reps=2,top=2,local=32,sinks=4,lru=4", "--kv", "kivi:bits=2,residual=32"],
                      ["--kv", "kivi:bits=2,residual=32+prerope+rotate:protect-sinks=4+outliers+nuq", "--sparse", "threshold:theta=0.01"],
                      ["--policy", "h2o:heavy=32,recent=32", "--sparse", "quest:page=16,budget=64", "--kv", "mixed:residual=32+rotate+outliers+nuq"],
                      ["--attention", "tiled", "--sram", "4KiB"],
                      ["--attention", "tiled", "--sram", "1KiB", "--policy", "h2o:heavy=32,recent=32", "--sparse", "topk:k=16"],
                      ["--attention", "tiled", "--sparse", "block-retrieval:block=16,reps=2,top=2,local=32,sinks=4,lru=4", "--kv", "kivi:bits=2,residual=32+prerope"],
                      ["--attention", "tiled", "--sram", "2KiB", "--policy", "tova:budget=64", "--sparse", "threshold:theta=0.01", "--kv", "mixed:residual=32"],
                      ["--policy", "h2o:heavy=32,recent=32+think:lambda=0.5,observation=8", "--kv", "q8_0"],
                      ["--policy", "full+think:lambda=0.25", "--kv", "kivi:bits=2,residual=32+outliers", "--sparse", "quest:page=16,budget=64"]])
    func decodeLoopDoesNotAllocate(methods: [String]) throws {
        // Count mallocs of whole `kvlab bench` processes through an LD_PRELOAD counter: each extra
        // run decodes 256 tokens, so per-token allocation would add at least 256 per run.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-malloc-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let library = directory.appendingPathComponent("count.so").path
        let source = Self.packageRoot.appendingPathComponent("Tests/KVLabCLITests/Support/malloc_count.c").path
        let compiler = Process()
        compiler.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        compiler.arguments = ["cc", "-O2", "-shared", "-fPIC", "-o", library, source, "-ldl"]
        try compiler.run()
        compiler.waitUntilExit()
        try #require(compiler.terminationStatus == 0, "cannot build the malloc counter with cc")
        // Six runs: a process's own count varies by a few mallocs (timing text, threads starting),
        // which over three runs came close to the bound on a loaded machine.
        let runs = 6
        func mallocs(tokens: Int) throws -> Int {
            let countFile = directory.appendingPathComponent("count-\(tokens)").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = ["bench", "--model", Self.stories, "--runs", "\(runs)", "--tokens", "\(tokens)", "--prompt-tokens", "1"] + methods
            process.environment = ["LD_PRELOAD": library, "MALLOC_COUNT_FILE": countFile]
            process.standardOutput = Pipe()
            try process.run()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            let text = try String(contentsOfFile: countFile, encoding: .utf8)
            return try #require(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        // The same runs (each with its own prompt and setup) with 256 more decode steps each: the
        // difference is what decoding allocates, at least 256 per run if a step allocated at all (a warm-up run only adds to it).
        let short = try mallocs(tokens: 64), long = try mallocs(tokens: 320)
        // A few per run come from no single step (idle: about 3 with the plain cache, 6-12 with
        // KIVI; 16.7 under a full test run's load); a step that allocated would add 256.
        let perRun = Double(long - short) / Double(runs)
        #expect(perRun < 64, "\(perRun) mallocs per 256 extra decode steps")
    }
}
