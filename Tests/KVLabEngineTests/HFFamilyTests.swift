import Crypto
import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
import Testing

/// Every family kvlab runs against transformers 5.25 (tiny random-weight models that
/// scripts/hf_families.py builds into .cache/hf-families) and, for the GGUFs llama.cpp's own
/// converter makes of the same folders, against llama.cpp's greedy continuation. Mistral's is
/// checked against transformers only: llama.cpp's converter drops its sliding window.
@Suite(.serialized, .enabled(if: FamilyFixtures.havePython, Comment(rawValue: FamilyFixtures.pythonSkipMessage)))
struct HFFamilyTests {
    /// mistral-swa, gemma2 and gemma3 score 240 tokens through 48-token windows: right only when
    /// the KV cache honours `.local` spans.
    static let transformersModels = ["llama", "llama-linear", "llama3", "llama-yarn", "qwen2", "qwen3", "mistral-swa",
                                     "phi3", "phi3-longrope", "phi3-longrope-short", "gemma2", "gemma3"]
    static let llamaCppModels = ["llama", "llama-linear", "llama3", "llama-yarn", "qwen2", "qwen3", "phi3", "phi3-longrope",
                                 "phi3-longrope-short", "gemma2", "gemma3"]

    @Test(arguments: transformersModels)
    func logitsNLLAndGreedyMatchTransformers(name: String) throws {
        try compareWithTransformers(name)
    }

    /// A cache that stores keys before RoPE rotates them as it reads them: with the model's own
    /// scaled RoPE (and Gemma 3's local one), or the logits drift from transformers'.
    @Test(arguments: ["llama-linear", "llama3", "llama-yarn", "phi3-longrope", "gemma3"])
    func preRoPEKeysRotateWithTheModelsRoPE(name: String) throws {
        try compareWithTransformers(name, quant: try KVQuantMethod(parsing: "fp32+prerope"))
    }

    /// Phi-3's LongRoPE by the context of the run (`--context`): with the original context of 16,
    /// a 16-token context takes the short factors, as transformers does on passes of at most 16
    /// tokens, and a 48-token one the long factors, as it does on longer passes.
    @Test(arguments: [(16, "short"), (48, "long")])
    func longRoPEFactorsFollowTheContext(context: Int, factors: String) throws {
        guard let directory = try FamilyFixtures.directory() else { return }
        let folder = directory.appendingPathComponent("phi3-longrope")
        let output = try Python.output(Fixtures.packageRoot.appendingPathComponent("scripts/hf_prefix_oracle.py").path,
                                       [folder.path, String(context)])
        let oracle = try JSONValue.parse(Data(try #require(output.split(separator: "\n").last).utf8))
        let model = try ModelLoader.load(path: folder.path).withContext(context)
        #expect(model.config.contextLength == context && model.contextOverride == context)
        #expect(model.config.ropeScaling.summary.hasPrefix("longrope, \(factors) factors (context \(context), original 16)"))
        try compare(model, with: oracle, name: "phi3-longrope at context \(context)")
    }

    func compareWithTransformers(_ name: String, quant: KVQuantMethod = .fp32) throws {
        guard let directory = try FamilyFixtures.directory() else { return }
        let folder = directory.appendingPathComponent(name)
        let oracle = try JSONValue.parse(try Data(contentsOf: folder.appendingPathComponent("oracle.json")))
        try compare(try ModelLoader.load(path: folder.path), with: oracle, name: name, quant: quant)
    }

    /// kvlab's logits, mean NLL and greedy continuation against transformers' (an oracle.json).
    func compare(_ model: LoadedModel, with oracle: JSONValue, name: String, quant: KVQuantMethod = .fp32) throws {
        #expect(model.config.family.rawValue == oracle["family"]?.string)
        let tokens = try #require(oracle["tokens"]?.array?.compactMap { $0.integer })
        let sampled = try #require(oracle["sampled_ids"]?.array?.compactMap { $0.integer })
        let expected = try #require(oracle["logits"]?.array).map { $0.array?.compactMap { $0.double } ?? [] }
        let argmax = try #require(oracle["argmax"]?.array?.compactMap { $0.integer })
        let margins = try #require(oracle["margins"]?.array?.compactMap { $0.double })

        let engine = InferenceEngine(weights: model.weights, cache: PagedKVCache(layout: KVLayout(config: model.config), quant: quant))
        let vocabulary = model.config.vocabSize
        var nll = 0.0, worst = 0.0
        // Chunks keep the all-positions logits small (the vocabulary has 151,936 entries).
        for start in stride(from: 0, to: tokens.count, by: 48) {
            let chunk = Array(tokens[start..<min(start + 48, tokens.count)])
            let logits = try engine.prefill(chunk, allLogits: true).logits
            for row in 0..<chunk.count {
                let t = start + row
                let values = logits[(row * vocabulary)..<((row + 1) * vocabulary)]
                let reference = expected[t]
                let scale = max(1, reference.map(abs).max() ?? 1)
                for (id, value) in zip(sampled, reference) {
                    worst = max(worst, abs(Double(values[values.startIndex + id]) - value) / scale)
                }
                let stats = values.withUnsafeBufferPointer { LogitStatistics($0.baseAddress!, count: vocabulary) }
                // A near-tie (random weights, 151,936 logits) is decided by rounding, not by the model.
                #expect(stats.argmax == argmax[t] || margins[t] < 1e-3 * scale, "\(name): argmax at position \(t)")
                if t + 1 < tokens.count {
                    nll += Double(stats.logSumExp) - Double(values[values.startIndex + tokens[t + 1]])
                }
            }
        }
        nll /= Double(tokens.count - 1)
        let oracleNLL = try #require(oracle["nll"]?.double)
        #expect(worst <= 1e-4, "\(name): largest relative logit difference \(worst)")
        #expect(abs(nll - oracleNLL) <= 1e-4 * oracleNLL, "\(name): mean NLL \(nll), transformers \(oracleNLL)")

        let prompt = try #require(oracle["greedy_prompt"]?.integer)
        let greedy = try #require(oracle["greedy"]?.array?.compactMap { $0.integer })
        #expect(try Self.greedy(engine, prompt: Array(tokens[..<prompt]), count: greedy.count) == greedy, "\(name): greedy continuation")
    }

    /// The context llama-completion ran with when the fixtures were built (hf_families.py's `-c`).
    static let llamaCppContext = 256

    @Test(arguments: llamaCppModels)
    func greedyTextMatchesLlamaCpp(name: String) throws {
        guard let directory = try FamilyFixtures.directory() else { return }
        let oracle = try JSONValue.parse(try Data(contentsOf: directory.appendingPathComponent("\(name)/oracle.json")))
        guard let llamaCpp = oracle["llama_cpp"], let file = llamaCpp["gguf"]?.string else {
            print("skipped: \(name) has no llama.cpp oracle (llama.cpp was not built when the fixtures were)")
            return
        }
        let model = try ModelLoader.load(path: directory.appendingPathComponent(file).path).withContext(Self.llamaCppContext)
        #expect(model.config.family.rawValue == oracle["family"]?.string)
        let stdout = try #require(llamaCpp["completion_hex"]?.string.flatMap(Self.bytes))
        let text = try Self.greedyText(model, prompt: try #require(llamaCpp["prompt"]?.string))
        // llama-completion ends its output with blank lines of its own.
        let margin = llamaCpp["greedy_margin"]?.double ?? .nan
        #expect(stdout.starts(with: text) && stdout.dropFirst(text.count).allSatisfy { $0 == 0x0A },
                "\(name) (transformers' smallest top-2 margin on this prompt: \(margin)): kvlab \(String(decoding: text, as: UTF8.self).debugDescription), llama.cpp \(String(decoding: stdout, as: UTF8.self).debugDescription)")
    }

    /// llama.cpp picks Phi-3's LongRoPE factors by its context (`-c`, rounded up to a multiple of
    /// 256): with phi3-longrope's original context patched from 16 to 256 in a copy of its GGUF,
    /// `-c 256` takes the short factors and `-c 512` the long ones; kvlab at `--context` 256 and
    /// 512 must write the same greedy text, and the two texts must differ.
    @Test func longRoPEFactorsFollowTheContextAsInLlamaCpp() throws {
        guard let directory = try FamilyFixtures.directory() else { return }
        let oracle = try JSONValue.parse(try Data(contentsOf: directory.appendingPathComponent("phi3-longrope/oracle.json")))
        guard LlamaCpp.binaries != nil, let llamaCpp = oracle["llama_cpp"], let file = llamaCpp["gguf"]?.string else {
            print(LlamaCpp.skipMessage)
            return
        }
        var data = try Data(contentsOf: directory.appendingPathComponent(file))
        // The key is followed by its type (4: uint32) and its value.
        let key = try #require(data.range(of: Data("phi3.rope.scaling.original_context_length".utf8))).upperBound
        #expect(data[key..<(key + 8)] == Data([4, 0, 0, 0, 16, 0, 0, 0]))
        data.replaceSubrange((key + 4)..<(key + 8), with: Data([0, 1, 0, 0]))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-longrope-\(UUID().uuidString).gguf").path
        try data.write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let prompt = try #require(llamaCpp["prompt"]?.string)
        var texts: [String] = []
        for (context, factors) in [(256, "short"), (512, "long")] {
            let model = try ModelLoader.load(path: path).withContext(context)
            #expect(model.config.ropeScaling.summary.hasPrefix("longrope, \(factors) factors (context \(context), original 256)"))
            let stdout = try LlamaCpp.run("llama-completion", [
                "-m", path, "-p", prompt, "-n", "16", "--temp", "0", "--top-k", "1", "--ignore-eos", "--no-display-prompt", "-no-cnv",
                "--simple-io", "--no-warmup", "-t", "2", "-c", String(context), "-ctk", "f32", "-ctv", "f32", "-fa", "off"])
            let text = String(decoding: try Self.greedyText(model, prompt: prompt), as: UTF8.self)
            #expect(stdout.hasPrefix(text) && stdout.dropFirst(text.count).allSatisfy { $0 == "\n" },
                    "context \(context): kvlab \(text.debugDescription), llama.cpp \(stdout.debugDescription)")
            texts.append(text)
        }
        #expect(texts[0] != texts[1], "the short and long factors give the same text: the check cannot tell them apart")
    }

    /// kvlab's greedy text of 16 tokens after `prompt`, as llama-completion prints it.
    static func greedyText(_ model: LoadedModel, prompt text: String) throws -> [UInt8] {
        let prompt = model.tokenizer.encode(text)
        let ids = try greedy(InferenceEngine(weights: model.weights), prompt: prompt, count: 16)
        var bytes: [UInt8] = []
        var previous = prompt.last
        for id in ids {
            bytes += model.tokenizer.decode(id, after: previous)
            previous = id
        }
        return bytes
    }

    @Test func everyConfigAttributeIsImplementedIrrelevantOrRefused() throws {
        // The JSON is the last line; transformers may warn before it.
        let output = try Python.output(FamilyFixtures.script, "--config-attributes")
        let line = try #require(output.split(separator: "\n").last)
        let families = try #require(try JSONValue.parse(Data(line.utf8)).members)
        #expect(Set(families.map(\.key)) == Set(ModelFamily.allCases.map(\.rawValue)))
        for (family, keys) in families {
            for key in try #require(keys.array?.compactMap { $0.string }) {
                #expect(HFConfig.keyRoles[key] != nil, "\(family): config attribute \(key) is not classified")
            }
        }
    }

    static func greedy(_ engine: InferenceEngine, prompt: [Int], count: Int) throws -> [Int] {
        engine.reset()
        try engine.prefill(prompt)
        var ids: [Int] = []
        for _ in 0..<count {
            let next = LogitStatistics(engine.logits.baseAddress!, count: engine.config.vocabSize).argmax
            ids.append(next)
            try engine.decode(next)
        }
        return ids
    }

    static func bytes(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        return stride(from: 0, to: digits.count, by: 2).compactMap { UInt8(String(decoding: digits[$0..<($0 + 2)], as: UTF8.self), radix: 16) }
    }
}

/// The fixtures of HFFamilyTests, built once per version of the scripts into .cache/hf-families/<digest>.
enum FamilyFixtures {
    static let script = Fixtures.packageRoot.appendingPathComponent("scripts/hf_families.py").path
    static let havePython = Python.canImport("torch, transformers, gguf, tokenizers, safetensors, sentencepiece, google.protobuf")
    static let pythonSkipMessage = "skipped: python3 with torch, transformers, gguf, tokenizers, sentencepiece and protobuf is not available "
        + "(pip install -r scripts/requirements.txt)"

    /// The fixture directory, or nil (with the reason printed) when llama.cpp's source, which holds
    /// the Qwen2 vocabulary the models use, cannot be built here.
    static func directory() throws -> URL? {
        switch built {
        case .success(let url): return url
        case .failure(let failure as Skip):
            print(failure.description)
            return nil
        case .failure(let error): throw error
        }
    }

    struct Skip: Error, CustomStringConvertible { var description: String }

    private static let built: Result<URL, any Error> = Result {
        let setup = Process()
        setup.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        setup.arguments = ["bash", Fixtures.packageRoot.appendingPathComponent("scripts/llama-cpp").path]
        let pipe = Pipe()
        setup.standardOutput = pipe
        setup.standardError = FileHandle.nullDevice
        try setup.run()
        let printed = pipe.fileHandleForReading.readDataToEndOfFile()
        setup.waitUntilExit()
        let lines = String(decoding: printed, as: UTF8.self).split(separator: "\n")
        guard setup.terminationStatus == 0, let last = lines.last else {
            throw Skip(description: "skipped: scripts/llama-cpp could not build llama.cpp (cmake and g++ needed)")
        }
        let llamaCpp = last.hasPrefix("/") ? String(last) : Fixtures.packageRoot.appendingPathComponent(String(last)).path
        var digest = SHA256()
        // hf_families.py imports spm_tokenizer_check.py for Gemma 2's tokenizer.
        for file in [script, Fixtures.packageRoot.appendingPathComponent("scripts/spm_tokenizer_check.py").path] {
            digest.update(data: try Data(contentsOf: URL(fileURLWithPath: file)))
        }
        let root = Fixtures.packageRoot.appendingPathComponent(".cache/hf-families")
        let directory = root.appendingPathComponent(String(digest.finalizeHex().prefix(16)))
        let complete = directory.appendingPathComponent("complete")
        if FileManager.default.fileExists(atPath: complete.path) { return directory }
        try? FileManager.default.removeItem(at: directory)
        try Python.run(script, directory.path, "--llama-cpp", llamaCpp)
        try Data().write(to: complete)
        return directory
    }
}
