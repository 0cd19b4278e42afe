import Foundation
import Testing

/// `kvlab run --kept-out` and `--policy kvpress:<press>` as a user runs them, and kvpress itself
/// as the oracle of every press (scripts/kvpress_check.py in the venv scripts/kvpress-venv makes).
@Suite struct KVPressCLITests {
    static let prompt = "ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun.\n"

    static func keptPositions(_ arguments: [String]) throws -> (result: CLITests.Result, positions: [[[Int]]]?) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kept-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLITests.run(["run", "--prompt", prompt] + arguments + ["--kept-out", path])
        guard let data = FileManager.default.contents(atPath: path) else { return (result, nil) }
        let document = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        return (result, document?["positions"] as? [[[Int]]])
    }

    /// The prompt's token count, from the session's prompt event.
    static func promptTokens() throws -> Int {
        let result = try CLITests.run(["run", "--prompt", prompt, "-n", "0", "--json"])
        for line in result.stdout.split(separator: "\n") {
            let event = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            if event?["event"] as? String == "prompt", let tokens = event?["tokens"] as? [Int] { return tokens.count }
        }
        Issue.record("no prompt event in: \(result.stdout.prefix(300))")
        return 0
    }

    @Test func keptOutWritesEachHeadsPositionsAfterThePrompt() throws {
        let n = try Self.promptTokens()
        let (result, positions) = try Self.keptPositions(["-n", "0", "--policy", "kvpress:streamingllm,ratio=0.5,n_sink=4"])
        #expect(result.status == 0, "\(result.stderr)")
        let kept = n / 2
        let expected = Array(0..<4) + Array((n - (kept - 4))..<n)
        #expect(positions?.isEmpty == false)
        for layer in positions ?? [] {
            for head in layer { #expect(head == expected) }
        }
    }

    @Test func keptOutAtTheEndOfAGenerationHoldsTheWindow() throws {
        let n = try Self.promptTokens()
        let (result, positions) = try Self.keptPositions(["-n", "5", "--temperature", "0", "--policy", "window:window=8"])
        #expect(result.status == 0, "\(result.stderr)")
        // Each generated token runs through the model as it is chosen: the cache ends at position n + 4.
        let last = n + 5
        for layer in positions ?? [[]] {
            for head in layer { #expect(head == Array((last - 8)..<last)) }
        }
    }

    @Test func kvpressBudgetsKeepExactlyTheirCount() throws {
        let (result, positions) = try Self.keptPositions(["-n", "0", "--policy", "kvpress:snapkv,window_size=8,budget=20"])
        #expect(result.status == 0, "\(result.stderr)")
        for layer in positions ?? [[]] {
            for head in layer {
                #expect(head.count == 20)
                #expect(head == head.sorted())
            }
        }
        // AdaKV: unequal heads, the layer's total exact.
        let ada = try Self.keptPositions(["-n", "0", "--policy", "kvpress:adakv,window_size=8,budget=20"])
        for layer in ada.positions ?? [[]] { #expect(layer.map(\.count).reduce(0, +) == 20 * layer.count) }
    }

    /// `+every:steps=8` on kvzip: after the prompt, and again every eighth decode step, the forks
    /// repeat the sequence so far and the lowest half of what is kept then goes.
    @Test func kvzipEveryNStepsCompressesTheSequenceSoFar() throws {
        let n = try Self.promptTokens()
        let (result, positions) = try Self.keptPositions(["-n", "16", "--temperature", "0", "--policy",
                                                          "kvpress:kvzip,ratio=0.5,chunk_size=16+every:steps=8"])
        #expect(result.status == 0, "\(result.stderr)")
        let heads = Array((positions ?? []).joined())
        var total = heads.count * n - heads.count * n / 2
        for _ in 0..<2 {
            total += 8 * heads.count
            total -= total / 2
        }
        #expect(!heads.isEmpty)
        #expect(heads.reduce(0) { $0 + $1.count } == total)
        for head in heads {
            #expect(Array(head.prefix(4)) == [0, 1, 2, 3])
            #expect(head.allSatisfy { $0 < n + 16 })
        }
    }

    @Test func badKeptOutAndPressAreOneLineErrors() throws {
        let directory = FileManager.default.temporaryDirectory.path
        let result = try CLITests.run(["run", "--prompt", "ROMEO:", "-n", "0", "--kept-out", directory])
        #expect(result.status != 0)
        #expect(result.stderr.contains("\(directory): is a directory"))
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
        let press = try CLITests.run(["run", "--prompt", "ROMEO:", "-n", "0", "--policy", "kvpress:snapkv,kernel_size=4"])
        #expect(press.status != 0)
        #expect(press.stderr.contains("kvpress:snapkv: kernel_size must be odd"))
    }

    /// The venv's python when scripts/kvpress-venv made it (scripts/test does); nil otherwise.
    static let venvPython: String? = {
        let python = CLITests.packageRoot.appendingPathComponent(".cache/kvpress-venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            print("KVPressCLITests: kvpress oracle skipped: no .cache/kvpress-venv (scripts/kvpress-venv creates it)")
            return nil
        }
        return python
    }()

    /// Runs scripts/kvpress_check.py (or another oracle script of the venv) with `arguments`: its
    /// exit status and table.
    static func check(_ arguments: [String], script: String = "kvpress_check.py") throws -> (status: Int32, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: venvPython!)
        process.arguments = [CLITests.packageRoot.appendingPathComponent("scripts/\(script)").path, "--kvlab", CLITests.binary] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        print(text)
        return (process.terminationStatus, text)
    }

    /// Every press and option set of the script's default list on the tiny Llama, at ratios 0.25, 0.5, 0.75.
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func keptSetsEqualKvpresss() throws {
        let (status, text) = try Self.check([])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        #expect(text.split(separator: "\n").count == 1 + 16 * 3)
    }

    /// One case of each wrapper, composition and budget press on the tiny Llama, at ratios 0.25, 0.5, 0.75
    /// (`--presses wrappers` runs more).
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func wrapperKeptSetsEqualKvpresss() throws {
        let cases = ["chunk/scorer=keydiff/chunk_length=48", "block/block_size=32", "perlayer/scorer=keydiff", "keyrerotation/window_size=16",
                     "composed/window_size=16/then=knorm", "prefilldecoding/window_size=16/compression_interval=8",
                     "compressionratiodecoding/scorer=keydiff/compression_interval=10", "finch/window_size=12/chunk_length=100",
                     "simlayerkv/n_recent=32", "lukv/window_size=16", "entropygatedchunkkv", "dms/sliding_window_size=16/decoding=True"]
        let (status, text) = try Self.check(["--presses", cases.joined(separator: ",")])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        #expect(text.split(separator: "\n").count == 1 + cases.count * 3)
    }

    @Test func wrapperParametersThatDoNotFitTheModelAreOneLineErrors() throws {
        for (policy, message) in [("kvpress:perlayer,scorer=knorm,compression_ratios=0.5", "kvpress:perlayer: compression_ratios has 1 values, the model has"),
                                  ("kvpress:lukv,curve=/nonexistent.npy", "kvpress:lukv: curve /nonexistent.npy: cannot be read")] {
            let result = try CLITests.run(["run", "--prompt", "ROMEO:", "-n", "0", "--policy", policy])
            #expect(result.status != 0)
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
        }
    }

    /// The other families kvlab loads (Qwen3's query and key norms, Qwen2's biases, Mistral) on a few presses.
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func keptSetsEqualKvpresssOnOtherFamilies() throws {
        let (status, text) = try Self.check(["--models", "qwen3,qwen2,mistral", "--presses", "snapkv/window_size=16,adakv/window_size=16,keydiff",
                                             "--ratios", "0.5"])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        #expect(text.split(separator: "\n").count == 1 + 3 * 3)
    }
}

/// The scorer presses (kvpress_check.py --presses scorers) against kvpress itself.
extension KVPressCLITests {
    /// Every scorer case on the tiny Llama at ratios 0.25, 0.5 and 0.75.
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func scorerPressesKeepKvpresssSets() throws {
        let (status, text) = try Self.check(["--presses", "scorers"])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        // LagKV with cross_scoring at 0.75 ties (kvpress's scores equal within rounding at the boundary).
        #expect(text.split(separator: "\n").filter { $0.contains(" llama ") && ($0.contains("exact") || $0.contains("tie")) }.count == 23 * 3)
    }

    /// Gemma 3 (query and key norms, local layers with their own RoPE, query_pre_attn_scalar) and
    /// Phi-3 (fused qkv) on a few presses; kvpress's ExpectedAttention fails on Gemma 3 itself.
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func pressesKeepKvpresssSetsOnGemma3AndPhi3() throws {
        let (status, text) = try Self.check(["--models", "gemma3,phi3", "--presses", "snapkv/window_size=16,expectedattention,compactor/chunk_size=48",
                                             "--ratios", "0.5"])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        let rows = text.split(separator: "\n").filter { $0.contains(" gemma3 ") || $0.contains(" phi3 ") }
        #expect(rows.count == 6)
        #expect(rows.filter { $0.contains("exact") || $0.contains("tie") }.count == 5)
    }
}

/// CriticalAdaKV, and every deterministic scorer press on the other families, against kvpress itself.
extension KVPressCLITests {
    /// Each press of `cases` keeps kvpress's sets (exact, or a tie at the boundary) on the tiny
    /// Llama and Qwen3 at the script's three ratios.
    static func expectKvpresssSets(_ cases: [String]) throws {
        let (status, text) = try check(["--models", "llama,qwen3", "--presses", cases.joined(separator: ",")])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        #expect(text.split(separator: "\n").filter { $0.contains("exact") || $0.contains("tie") }.count == cases.count * 3 * 2)
    }

    /// CriticalAdaKV's head-wise budgets (physical here, masks in kvpress) on the tiny Llama and Qwen3.
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func criticalAdaKVKeepsKvpresssSets() throws {
        let cases = ["criticaladakv", "criticaladakv/scorer=knorm/alpha_safeguard=0.5", "criticaladakv/scorer=lagkv/lag_size=32/cross_scoring=true/first_stage_ratio=0.25"]
        try Self.expectKvpresssSets(cases)
    }

    /// `--presses deterministic` (each deterministic scorer press, AdaKV, ChunkKV, CriticalKV and
    /// CriticalAdaKV over their default scorers and CUR, and KVzip) on Qwen3 and Gemma 3 at ratios 0.25, 0.5
    /// and 0.75; kvpress's ExpectedAttention fails on Gemma 3 itself, and kvpress refuses KVzip there (those
    /// rows say so, no oracle).
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func deterministicPressesKeepKvpresssSetsOnQwen3AndGemma3() throws {
        let (status, text) = try Self.check(["--models", "qwen3,gemma3", "--presses", "deterministic"])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        #expect(text.split(separator: "\n").count == 1 + 20 * 3 * 2)
    }

    /// KVzip (a second pass that repeats the prompt; the whole model's lowest scores go) on the tiny
    /// Llama and Qwen3: its defaults (one chunk), chunks of 64 (later requests end with the previous
    /// chunk's last tokens), and per-layer budgets with two sinks.
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func kvzipKeepsKvpresssSets() throws {
        let cases = ["kvzip", "kvzip/chunk_size=64", "kvzip/layerwise=true/n_sink=2"]
        try Self.expectKvpresssSets(cases)
    }
}

/// ThinK (`kvpress:think`, and `+think` after a press as kvpress's ComposedPress runs ThinKPress) against kvpress itself.
extension KVPressCLITests {
    /// `--presses think` on the tiny Llama, Qwen3 and Gemma 3 at key-channel ratios 0.25, 0.5 and 0.75: every
    /// (layer, KV head) keeps kvpress's key channels (and entries, after SnapKV and Knorm).
    @Test(.enabled(if: venvPython != nil, "needs kvpress 0.5.5 in .cache/kvpress-venv (scripts/kvpress-venv)"))
    func thinkKeepsKvpresssChannels() throws {
        let (status, text) = try Self.check(["--models", "llama,qwen3,gemma3", "--presses", "think"])
        #expect(status == 0, "\(text)")
        #expect(!text.contains("DIFF"))
        #expect(text.split(separator: "\n").filter { $0.contains("exact") || $0.contains("tie") }.count == 4 * 3 * 3)
    }

    /// `--kept-out`'s document for `policy` after the prompt.
    static func keptDocument(_ policy: String) throws -> (result: CLITests.Result, document: [String: Any]?) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kept-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLITests.run(["run", "--prompt", prompt, "-n", "0", "--policy", policy, "--kept-out", path])
        let data = FileManager.default.contents(atPath: path) ?? Data("null".utf8)
        return (result, try JSONSerialization.jsonObject(with: data, options: .fragmentsAllowed) as? [String: Any])
    }

    @Test func keptOutListsThinksChannels() throws {
        let (result, document) = try Self.keptDocument("kvpress:think,key_channel_compression_ratio=0.25,window_size=8")
        #expect(result.status == 0, "\(result.stderr)")
        let channels = document?["channels"] as? [[[Int]]]
        #expect(channels?.isEmpty == false)
        for head in (channels ?? []).flatMap({ $0 }) {
            // The embedded model's heads have 32 channels: ⌊0.25 · 32⌋ = 8 go.
            #expect(head.count == 24 && head == head.sorted() && Set(head).count == 24 && head.allSatisfy { (0..<32).contains($0) })
        }
        // Without think there is no "channels".
        let plain = try Self.keptDocument("full")
        #expect(plain.result.status == 0, "\(plain.result.stderr)")
        #expect(plain.document?["positions"] != nil && plain.document?["channels"] == nil)
    }
}
