import ArgumentParser
import Foundation
import KVLabEngine

/// The `kvlab` command: a terminal workbench for LLM inference memory.
struct KVLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvlab",
        abstract: "A terminal workbench for LLM inference memory: KV-cache eviction, quantization and sparse attention on a live model.",
        subcommands: [Generate.self, Eval.self, Bench.self, Info.self, Convert.self]
    )
}

/// Options naming the model to load, shared by every command that runs one.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model file: llama2.c .bin, .gguf, or a safetensors directory (default: the embedded kvlab-shakespeare model).")
    var model: String?

    @Option(name: .long, help: "tokenizer.bin for a llama2.c checkpoint (default: beside the model).")
    var tokenizer: String?

    @Option(name: .long, help: "Store weights as f32, f16, q8_0, q4_0 or q4_1 (default: as in the file).")
    var weights: WeightType?

    @Option(name: .long, help: "Threads for matrix products.")
    var threads: Int = 1

    init() {}

    init(model: String?, tokenizer: String?) {
        self.model = model
        self.tokenizer = tokenizer
    }

    func validate() throws {
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256, got \(threads)") }
    }

    /// Loads the model, turning any file problem into a one-line error.
    func load() throws -> LoadedModel {
        guard let model else {
            if tokenizer != nil { throw ValidationError("--tokenizer needs --model (the embedded model carries its tokenizer)") }
            return try EmbeddedModel.load()
        }
        return try ModelLoader.load(path: model, tokenizerPath: tokenizer)
    }

    var engineOptions: EngineOptions { EngineOptions(threads: threads, weightType: weights) }
}

/// Sparse attention and KV quantization of a cache, shared by every command that builds one
/// (in `eval` they apply to every `--policy`). Bad strings are one-line errors naming the option.
struct CacheModeOptions: ParsableArguments {
    @Option(name: .long, help: "Sparse attention mode, e.g. quest:page=16,budget=128 (default: dense).")
    var sparse: String = "dense"

    @Option(name: .long, help: "KV quantization, e.g. kivi:bits=2, q8_0 or kivi:bits=2+prerope+outliers (default: fp32).")
    var kv: String = "fp32"

    func validate() throws {
        _ = try sparseMethod()
        do { _ = try KVQuantMethod(parsing: kv) } catch { throw CLIError("--kv: \(error)") }
    }

    func sparseMethod() throws -> SparseMethod {
        do { return try SparseMethod(parsing: sparse) } catch { throw CLIError("--sparse: \(error)") }
    }

    /// The quantization method, checked against the model's head size.
    func quantMethod(headDim: Int) throws -> KVQuantMethod {
        do {
            let method = try KVQuantMethod(parsing: kv)
            try method.check(headDim: headDim)
            return method
        } catch {
            throw CLIError("--kv: \(error)")
        }
    }

    /// Checks that an eviction method fits the quantization (`think` and the key frames of `--kv`).
    func check(policy: EvictionMethod, quant: KVQuantMethod) throws {
        do { try policy.check(quant: quant) } catch { throw CLIError("--policy: \(error)") }
    }
}

/// The KV methods of one engine, shared by the commands that run one.
struct KVOptions: ParsableArguments {
    @Option(name: .long, help: "KV eviction method, e.g. streaming:sinks=4,window=124 (default: full).")
    var policy: String = "full"

    @OptionGroup var modes: CacheModeOptions

    func validate() throws { _ = try evictionMethod() }

    func evictionMethod() throws -> EvictionMethod {
        do { return try EvictionMethod(parsing: policy) } catch { throw CLIError("--policy: \(error)") }
    }

    func makeCache(config: ModelConfig) throws -> PagedKVCache {
        let eviction = try evictionMethod(), quant = try modes.quantMethod(headDim: config.headDim)
        try modes.check(policy: eviction, quant: quant)
        return PagedKVCache(layout: KVLayout(config: config), eviction: eviction, sparse: try modes.sparseMethod(), quant: quant)
    }
}

extension WeightType: ExpressibleByArgument {}

/// A one-line user-facing error.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A whole UTF-8 text file, or a one-line error naming it.
func readTextFile(_ path: String) throws -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        let exists = FileManager.default.fileExists(atPath: path)
        throw CLIError("\(path): \(exists ? "cannot be read" : "no such file")")
    }
    guard let text = String(data: data, encoding: .utf8) else { throw CLIError("\(path): not valid UTF-8 text") }
    return text
}
