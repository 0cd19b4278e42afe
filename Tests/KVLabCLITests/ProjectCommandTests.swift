import Foundation
import Testing

/// `kvlab project` as a user runs it: tables, JSON, the list, one-line errors, this-machine.
@Suite struct ProjectCommandTests {
    /// Runs kvlab with `XDG_CACHE_HOME` pointed at `cache`, so this-machine's profile is written there.
    static func run(_ arguments: [String], cache: URL) throws -> CLITests.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["XDG_CACHE_HOME"] = cache.path
        process.environment = environment
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CLITests.Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                               stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test func listsDevicesAndTargets() throws {
        let result = try CLITests.run(["project", "--list"])
        #expect(result.status == 0, "\(result.stderr)")
        for name in ["a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l4", "rtx-4090", "m2-ultra", "this-machine",
                     "llama-2-7b", "llama-3-8b", "llama-3.1-70b", "mistral-7b", "qwen2.5-7b", "live"] {
            #expect(result.stdout.contains("\n  \(name) "), "\(name) is not listed")
        }
    }

    @Test func aMemoryBudgetNeedsItsUnit() throws {
        let bare = try CLITests.run(["project", "--fit", "--memory", "12"])
        #expect(bare.status != 0 && bare.stderr == "Error: --memory: '12' is not a size with a unit (B, KiB, MiB or GiB, e.g. 60GiB)\n", "\(bare.stderr)")
        let decimal = try CLITests.run(["project", "--fit", "--memory", "12GB"])
        #expect(decimal.status != 0 && decimal.stderr.hasPrefix("Error: --memory: '12GB' is not a size with a unit"), "\(decimal.stderr)")
        let given = try CLITests.run(["project", "--fit", "--memory", "12GiB"])
        #expect(given.status == 0 && given.stdout.contains("12.0 GiB per device"), "\(given.stdout)\(given.stderr)")
    }

    @Test func printsTheBreakdownAndJSON() throws {
        let arguments = ["project", "--device", "a100-40gb", "--target", "llama-2-7b", "--context", "1024"]
        let table = try CLITests.run(arguments)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.hasPrefix("Llama-2-7B on NVIDIA A100 SXM4 40GB: weights f16, context 1024, batch 1"))
        for op in ["q_proj", "qk", "softmax", "pv", "gate_proj", "classifier", "total"] { #expect(table.stdout.contains("\n\(op) ")) }
        #expect(table.stdout.contains("decode           8.86 ms per step"))
        #expect(table.stdout.contains("TTFT "))
        #expect(table.stdout.contains("largest batch at this context"))
        let json = try CLITests.run(arguments + ["--kv", "kivi:bits=2", "--json"])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["kv"] as? String == "kivi:bits=2,group=32,residual=128")
        let seconds = try #require(object["decodeSeconds"] as? Double)
        let ideal = try #require((object["idealDecode"] as? [String: Any])?["seconds"] as? Double)
        #expect(ideal < seconds && seconds < 0.00886)
        #expect((object["decode"] as? [String: Any])?["ops"] is [Any])
    }

    @Test func unknownNamesAndBadFilesAreOneLine() throws {
        let device = try CLITests.run(["project", "--device", "h100"])
        #expect(device.status != 0)
        #expect(device.stderr.contains("--device: unknown device 'h100' (a100-40gb, a100-80gb, h100-pcie, h100-sxm"))
        let target = try CLITests.run(["project", "--target", "llama-4"])
        #expect(target.stderr.contains("--target: unknown target 'llama-4' (llama-2-7b"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-device-\(UUID()).json").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data("{\n  \"name\": \"x\",\n  \"kind\": \"gpu\",\n  \"tiers\": 3\n}".utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let file = try CLITests.run(["project", "--device", path])
        #expect(file.status != 0)
        #expect(file.stderr.contains("\(path): line 4: tiers: is a number, expected a non-empty string"))
        let kv = try CLITests.run(["project", "--kv", "kivi:bits=5"])
        #expect(kv.stderr.contains("--kv: kivi: bits=5 is not one of 8, 4, 3, 2"))
        for result in [device, target, file, kv] {
            #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(result.stderr)")
        }
    }

    /// The live model as target and as the source of the cache state.
    @Test func liveTargetAndLiveState() throws {
        let result = try CLITests.run(["project", "--device", "h100-sxm", "--target", "live", "--context", "512",
                                       "--policy", "window:window=32", "--live", "48"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("kvlab-shakespeare on NVIDIA H100 SXM5 80GB"))
        #expect(result.stdout.contains("32.0 entries kept per (layer, KV head)"))
        #expect(result.stdout.contains("note: live state"))
    }

    /// this-machine is measured on first use, cached, then read back.
    @Test func thisMachineIsMeasuredOnceAndCached() throws {
        let cache = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-cache-\(UUID())")
        defer { try? FileManager.default.removeItem(at: cache) }
        let arguments = ["project", "--device", "this-machine", "--target", "live", "--context", "256", "--float", "f32"]
        let first = try Self.run(arguments, cache: cache)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.hasPrefix("measured this-machine (first use) → \(cache.path)/kvlab/this-machine.json"))
        #expect(FileManager.default.fileExists(atPath: cache.appendingPathComponent("kvlab/this-machine.json").path))
        let second = try Self.run(arguments, cache: cache)
        #expect(second.status == 0)
        #expect(second.stdout.hasPrefix("kvlab-shakespeare on this machine ("))
        #expect(second.stdout.contains("DRAM (main memory)"))
    }

    /// The limits are said before the figures: a model that does not fit, a context past the target's.
    @Test func warnsWhenItDoesNotFitOrPassesTheContext() throws {
        let big = try CLITests.run(["project", "--device", "h100-sxm", "--target", "llama-3.1-70b"])
        #expect(big.status == 0, "\(big.stderr)")
        #expect(big.stdout.hasPrefix("warning: does not fit: "), "\(big.stdout.prefix(200))")
        let long = try CLITests.run(["project", "--target", "llama-2-7b", "--context", "100000"])
        #expect(long.stdout.contains("warning: beyond the target's context: 100000 tokens, Llama-2-7B is trained for 4096\n"))
        let split = try CLITests.run(["project", "--device", "h100-sxm", "--devices", "2", "--target", "llama-3.1-70b", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(split.stdout.utf8)) as? [String: Any])
        #expect(object["fits"] as? Bool == true && (object["warnings"] as? [String])?.isEmpty == true && object["devices"] as? Int == 2)
        let bad = try CLITests.run(["project", "--devices", "0"])
        #expect(bad.status != 0 && bad.stderr.contains("--devices must be between 1 and 64"))
    }

    /// `--fit`: the largest context and batch, and a row per KV setting with ΔNLL from an eval
    /// results file where it measured the setting.
    @Test func fitTableWithDeltaNLL() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-eval-\(UUID()).json").path
        let eval = #"{"results": [{"method": "full kivi:bits=2,group=32,residual=128", "meanNLL": 2.5, "ghostMeanNLL": 2.375}]}"#
        #expect(FileManager.default.createFile(atPath: path, contents: Data(eval.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let result = try CLITests.run(["project", "--fit", "--device", "h100-sxm", "--target", "llama-3-8b", "--context", "32768",
                                       "--batch", "8", "--latency", "20", "--results", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("largest context at batch 8: "))
        #expect(result.stdout.contains("largest batch at context 32768: "))
        let kivi = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("full kivi:bits=2,group=32,residual=128 ") })
        #expect(kivi.hasSuffix("+0.1250"), "\(kivi)")
        #expect(result.stdout.contains("\nstreaming:sinks=4,window=4092 "))
        // A real kvlab eval --json: its method label is the row's, its ΔNLL the mean NLL above the ghost.
        let textPath = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-fit-\(UUID()).txt").path
        let text = String(repeating: "First Citizen:\nBefore we proceed any further, hear me speak.\n\n", count: 40)
        #expect(FileManager.default.createFile(atPath: textPath, contents: Data(text.utf8)))
        defer { try? FileManager.default.removeItem(atPath: textPath) }
        let measured = try CLITests.run(["eval", "--text", textPath, "--tokens", "400", "--policy", "h2o:heavy=32,recent=32", "--json"])
        #expect(measured.status == 0, "\(measured.stderr)")
        let evalFile = textPath + ".json"
        #expect(FileManager.default.createFile(atPath: evalFile, contents: Data(measured.stdout.utf8)))
        defer { try? FileManager.default.removeItem(atPath: evalFile) }
        let summary = try #require(((try JSONSerialization.jsonObject(with: Data(measured.stdout.utf8)) as? [String: Any])?["results"] as? [[String: Any]])?.first)
        let delta = try #require(summary["meanNLL"] as? Double) - (try #require(summary["ghostMeanNLL"] as? Double))
        let fromEval = try CLITests.run(["project", "--fit", "--target", "llama-3-8b", "--results", evalFile, "--setting", "policy=h2o:heavy=32,recent=32"])
        let row = try #require(fromEval.stdout.split(separator: "\n").first { $0.hasPrefix("h2o:heavy=32,recent=32 ") }, "\(fromEval.stderr)")
        #expect(row.hasSuffix(String(format: "%+.4f", delta)), "\(row)")
        // A sweep directory: its cells' ΔNLL, averaged per setting.
        let sweep = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-sweep-\(UUID())")
        defer { try? FileManager.default.removeItem(at: sweep) }
        try FileManager.default.createDirectory(at: sweep.appendingPathComponent("results"), withIntermediateDirectories: true)
        for (id, delta) in [("a", 0.25), ("b", 0.75)] {
            let cell = #"{"cell": {"policy": "h2o:heavy=2048,recent=2048", "kv": "fp32", "sparse": "dense"}, "quality": {"deltaNLL": "# + "\(delta)}}"
            try Data(cell.utf8).write(to: sweep.appendingPathComponent("results/\(id).json"))
        }
        let swept = try CLITests.run(["project", "--fit", "--target", "llama-3-8b", "--results", sweep.path])
        let h2o = try #require(swept.stdout.split(separator: "\n").first { $0.hasPrefix("h2o:heavy=2048,recent=2048 ") }, "\(swept.stderr)")
        #expect(h2o.hasSuffix("+0.5000"), "\(h2o)")
        let custom = try CLITests.run(["project", "--fit", "--target", "deepseek-v3", "--devices", "8", "--device", "h200",
                                       "--weights", "q8_0", "--setting", "kv=q4_0", "--memory", "120GiB"])
        #expect(custom.status == 0, "\(custom.stderr)")
        #expect(custom.stdout.contains("\nfull q4_0:residual=0 "))
        let bad = try CLITests.run(["project", "--fit", "--setting", "kv=q4_0 kv=q8_0"])
        #expect(bad.status != 0 && bad.stderr.contains("--setting 'kv=q4_0 kv=q8_0': kv given twice"))
        let stray = try CLITests.run(["project", "--latency", "5"])
        #expect(stray.status != 0 && stray.stderr.contains("need --fit"))
    }

    /// `--fit --target all`: one row per bundled target (the README's table).
    @Test func fitEveryTarget() throws {
        let result = try CLITests.run(["project", "--fit", "--target", "all", "--device", "h200", "--devices", "8", "--weights", "q8_0"])
        #expect(result.status == 0, "\(result.stderr)")
        for name in ["llama-3.1-70b", "deepseek-v3", "qwen3-next-80b-a3b", "gemma-3-27b"] { #expect(result.stdout.contains("\n\(name) ")) }
        #expect(result.stdout.contains("  deepseek-v3: MLA latent 512+64; MoE 8 of 256 experts + shared on 58 layers"))
    }
}
