import Foundation
import ArgumentParser
import KVLabEngine
import KVLabFoundation
import KVLabMethods
import KVLabRun

/// The `kvlab` command: a terminal workbench for LLM inference memory.
struct KVLab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvlab",
        abstract: "A terminal workbench for LLM inference memory: KV-cache eviction, quantization and sparse attention on a live model.",
        version: kvlabVersion,
        subcommands: [WorkbenchCommand.self, TourCommand.self, Generate.self, Run.self, Serve.self, Replay.self, Demo.self, Export.self, Eval.self, Heads.self, Sweep.self, Bench.self, Project.self, Info.self, Convert.self, Themes.self],
        defaultSubcommand: WorkbenchCommand.self
    )
}

/// Options naming the model to load, shared by every command that runs one.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model file: llama2.c .bin, .gguf, or a safetensors directory (default: the embedded kvlab-shakespeare model).")
    var model: String?

    @Option(name: .long, help: "tokenizer.bin for a llama2.c checkpoint (default: beside the model).")
    var tokenizer: String?

    @Option(name: .long, help: "Store weights as this type (default: as in the file).")
    var weights: WeightType?

    @Option(name: .long, help: "Threads for matrix products (1 to 256).")
    var threads: Int = 1

    @Option(name: .long, help: "Run with an N-token context, 1 to the model's (llama.cpp's -c): the cache holds N tokens, a run past N stops or shifts as past the model's context, and Phi-3's LongRoPE takes its short factors when N is at most its original context (default: the model's context).")
    var context: Int?

    init() {}

    init(model: String?, tokenizer: String?, context: Int? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.context = context
    }

    func validate() throws {
        try checkRange(threads, OptionRange.threads, option: "--threads")
        try Self.check(context: context)
    }

    /// `--context` is at least 1; the upper bound is the model's context, checked once it is loaded.
    static func check(context: Int?) throws {
        if let context, context < 1 { throw CLIError("--context must be at least 1, got \(context)") }
    }

    /// Loads the model run with `--context` when given, turning any file problem into a one-line error.
    func load() throws -> LoadedModel { try limitContext(loadAsStored()) }

    /// The model with its own context.
    func loadAsStored() throws -> LoadedModel {
        guard let model else {
            if tokenizer != nil { throw ValidationError("--tokenizer needs --model (the embedded model carries its tokenizer)") }
            return try EmbeddedModel.load()
        }
        return try ModelLoader.load(path: model, tokenizerPath: tokenizer)
    }

    /// `model` run with `--context` when given; a context past the model's is a one-line error.
    func limitContext(_ model: LoadedModel) throws -> LoadedModel {
        do { return try model.withContext(context) } catch { throw CLIError("--context: \(error)") }
    }

    var engineOptions: EngineOptions { EngineOptions(threads: threads, weightType: weights) }
}

/// Sparse attention, KV quantization and the attention kernel of a cache, shared by every command
/// that builds one. `--sparse` and `--kv` repeat only in `eval`, which runs the grid of every
/// `--policy`, `--sparse` and `--kv`; elsewhere a repeat is an error rather than a silent choice.
/// Bad strings are one-line errors naming the option.
struct CacheModeOptions: ParsableArguments {
    @Option(name: .long, help: "Sparse attention mode, e.g. quest:page=16,budget=128 (default: dense; eval: repeat to compare several).")
    var sparse: [String] = []

    @Option(name: .long, help: "KV quantization, e.g. kivi:bits=2, q8_0 or kivi:bits=2+prerope+outliers (default: fp32; eval: repeat to compare several).")
    var kv: [String] = []

    @Option(name: .long, help: "Attention kernel: naive (scores materialized in memory) or tiled (FlashAttention tiles sized by --sram).")
    var attention: String = "naive"

    @Option(name: .long, help: "SRAM of the tiled kernel, e.g. 228KiB (bytes, KiB, MiB; default 228KiB, an H100 SM's shared memory).")
    var sram: String?

    func validate() throws {
        _ = try sparseMethods()
        for text in kv { _ = try KVQuantMethod.parse(text, option: "--kv") }
        guard ["naive", "tiled"].contains(attention) else { throw CLIError("--attention: '\(attention)' is not naive or tiled") }
        _ = try sramSizes()
    }

    /// The `--sram` sizes (a comma-separated list), or `defaultSRAM`.
    func sramSizes(defaultSRAM: Int = AttentionKernel.defaultSRAMBytes) throws -> [Int] {
        guard let sram else { return [defaultSRAM] }
        return try sram.split(separator: ",", omittingEmptySubsequences: false).map {
            let bytes = try parseByteSize(String($0), option: "--sram")
            guard OptionRange.sram.contains(bytes) else { throw CLIError("--sram: \($0) is more than \(formatBytes(OptionRange.sram.upperBound))") }
            return bytes
        }
    }

    /// The attention kernel, its SRAM checked against the model's head size; without `--sram` a
    /// tiled kernel gets `defaultSRAM` (a projection passes its device's SRAM per SM).
    func attentionKernel(headDim: Int, defaultSRAM: Int = AttentionKernel.defaultSRAMBytes) throws -> AttentionKernel {
        guard attention == "tiled" else {
            if sram != nil { throw CLIError("--sram sizes the tiled kernel: add --attention tiled") }
            return .naive
        }
        let sizes = try sramSizes(defaultSRAM: defaultSRAM)
        guard sizes.count == 1 else { throw CLIError("--sram: one size for --attention tiled, got \(sizes.count)") }
        try Self.checkSRAM(sizes[0], headDim: headDim)
        return .tiled(sramBytes: sizes[0])
    }

    /// An SRAM must hold one entry of each tile (a query, a key, a value and an output row).
    static func checkSRAM(_ bytes: Int, headDim: Int) throws {
        let least = AttentionTileShape.minimumSRAMBytes(headDim: headDim)
        guard bytes >= least else {
            throw CLIError("--sram: \(formatBytes(bytes)) cannot hold one tile row of 4 × \(headDim) fp32 (at least \(least) B)")
        }
    }

    /// Every `--sparse` mode, in the order given (dense when there is none).
    func sparseMethods() throws -> [SparseMethod] {
        try (sparse.isEmpty ? ["dense"] : sparse).map { try SparseMethod.parse($0, option: "--sparse") }
    }

    /// The one sparse mode of a command that runs one cache.
    func sparseMethod() throws -> SparseMethod { try Self.single(sparseMethods(), option: "--sparse") }

    /// Every `--kv` method, in the order given (fp32 when there is none), checked against the model's head size.
    func quantMethods(headDim: Int) throws -> [KVQuantMethod] {
        try (kv.isEmpty ? ["fp32"] : kv).map { text in
            let method = try KVQuantMethod.parse(text, option: "--kv")
            do { try method.check(headDim: headDim) } catch { throw CLIError("--kv: \(error)") }
            return method
        }
    }

    /// The one quantization method of a command that runs one cache, checked against the model's head size.
    func quantMethod(headDim: Int) throws -> KVQuantMethod { try Self.single(quantMethods(headDim: headDim), option: "--kv") }

    /// Checks that an option a command takes once was given at most once.
    static func checkSingle<T>(_ values: [T], option: String) throws {
        guard values.count > 1 else { return }
        throw CLIError("\(option) is given \(values.count) times; only eval compares several (it runs every combination)")
    }

    private static func single<T>(_ methods: [T], option: String) throws -> T {
        try checkSingle(methods, option: option)
        return methods[0]
    }

    /// Checks that an eviction method fits the quantization (`think` and the key frames of `--kv`).
    func check(policy: EvictionMethod, quant: KVQuantMethod) throws {
        do { try policy.check(quant: quant) } catch { throw CLIError("--policy: \(error)") }
    }
}

/// The KV methods of one engine, shared by the commands that run one.
struct KVOptions: ParsableArguments {
    @Option(name: .long, help: "KV eviction method, e.g. streaming:sinks=4,window=124; any method takes a budget as ratio=R (share removed), budget=N (entries per KV head) or bytes=B (whole cache), e.g. snapkv:ratio=0.5 (default: full).")
    var policy: [String] = []

    @OptionGroup var modes: CacheModeOptions

    func validate() throws {
        try CacheModeOptions.checkSingle(policy, option: "--policy")
        _ = try evictionMethod()
        try CacheModeOptions.checkSingle(modes.sparse, option: "--sparse")
        try CacheModeOptions.checkSingle(modes.kv, option: "--kv")
    }

    func evictionMethod() throws -> EvictionMethod {
        try EvictionMethod.parse(policy.first ?? "full", option: "--policy")
    }

    /// A cache with these methods (`capacity` entries per head, default the context) and the
    /// options' attention kernel, or `kernel`.
    func makeCache(config: ModelConfig, capacity: Int? = nil, kernel: AttentionKernel? = nil) throws -> PagedKVCache {
        let (eviction, quant) = try checkedMethods(headDim: config.headDim)
        let cache = PagedKVCache(layout: KVLayout(config: config, capacity: capacity), eviction: eviction,
                                 sparse: try modes.sparseMethod(), quant: quant)
        cache.attentionKernel = try kernel ?? modes.attentionKernel(headDim: config.headDim)
        return cache
    }

    /// The eviction method and the KV quantization, checked against the heads and each other.
    private func checkedMethods(headDim: Int) throws -> (EvictionMethod, KVQuantMethod) {
        let eviction = try evictionMethod(), quant = try modes.quantMethod(headDim: headDim)
        try modes.check(policy: eviction, quant: quant)
        return (eviction, quant)
    }
}

/// Sampling settings, shared by the commands that generate text.
struct SamplerOptions: ParsableArguments {
    @Option(name: .long, help: "Sampling temperature, 0 to 1000 (0, or below 1e-6, = greedy).")
    var temperature: Float = 0

    @Option(name: .long, help: "Sample among the k most likely tokens (0 = off).")
    var topK: Int = 0

    @Option(name: .long, help: "Nucleus sampling threshold (1 = off).")
    var topP: Float = 1

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 42

    func validate() throws {
        do { try settings.validate() } catch { throw ValidationError("\(error)") }
    }

    var settings: SamplerSettings { SamplerSettings(temperature: temperature, topK: topK, topP: topP, seed: seed) }
}

/// The prompt of a command that generates text: inline or from a file.
struct PromptOptions: ParsableArguments {
    @Option(name: .long, help: "Prompt text.")
    var prompt: String = ""

    @Option(name: .long, help: "Read the prompt from a file (UTF-8).")
    var promptFile: String?

    @Flag(name: .long, help: "Send the prompt as a user turn in the model's chat template (instruct models).")
    var chat = false

    @Option(name: .long, help: "System message before the user turn (with --chat).")
    var system: String?

    func validate() throws {
        if system != nil, !chat { throw ValidationError("--system needs --chat") }
    }

    /// The prompt text (a file's whole content, or a one-line error naming it); with --chat, the
    /// model's chat template applied to it.
    func text(model: LoadedModel) throws -> String {
        let text = try promptFile.map(readTextFile) ?? prompt
        return chat ? try model.chatPrompt(user: text, system: system) : text
    }
}

extension KVOptions {
    /// The settings of a live run from these options, the model options and the sampler.
    func runSettings(model: LoadedModel, modelOptions: ModelOptions, sampler: SamplerSettings) throws -> RunSettings {
        let (eviction, quant) = try checkedMethods(headDim: model.config.headDim)
        return RunSettings(eviction: eviction, sparse: try modes.sparseMethod(), quant: quant,
                           attention: try modes.attentionKernel(headDim: model.config.headDim),
                           weights: modelOptions.weights, sampler: sampler, threads: modelOptions.threads)
    }
}

extension WeightType: ExpressibleByArgument {}

/// A one-line user-facing error.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The documented range of every numeric option, checked in `validate()` before anything is
/// allocated (the engine's own preconditions are a last resort the CLI never reaches).
enum OptionRange {
    /// Tokens generated (`generate`, `run` -n).
    static let tokens = 0...1_000_000
    /// `bench --tokens` and `--prompt-tokens` (prefill runs at most the model's context).
    static let benchTokens = 1...1_000_000
    /// `bench --runs`.
    static let runs = 1...1000
    /// `bench --batch`: sequences decoded together.
    static let batch = 2...256
    /// `bench --frames`.
    static let frames = 1...1_000_000
    /// `bench --attention-io` prompt lengths: the cache holds them all, and naive attention of one
    /// prefill grows as N².
    static let attentionIO = 1...65_536
    /// `eval --tokens` per chunk (BOS included; the model's context caps it).
    static let evalTokens = 2...1_000_000
    /// `eval --chunks`.
    static let chunks = 1...1_000_000
    /// `eval --prefill`.
    static let prefill = 0...1_000_000
    /// `run --checkpoint-every`.
    static let checkpointEvery = 0...1_000_000
    /// `project --live` (steps past the model's context are not run).
    static let live = 1...1_000_000
    /// `--threads`.
    static let threads = 1...256
    /// `--sram`: one tiled-kernel SRAM, at most 1 GiB (an H100 SM has 228 KiB).
    static let sram = 1...(1 << 30)
    /// `export --pace` and `--caption-hold`, in milliseconds (an hour).
    static let milliseconds = 0.0...3_600_000.0
}

/// Throws a one-line error naming `option` unless `value` is in `range`.
func checkRange<T: Comparable>(_ value: T, _ range: ClosedRange<T>, option: String) throws {
    guard range.contains(value) else {
        throw ValidationError("\(option) must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
    }
}

/// A byte count written as a number of bytes or with a binary suffix (`512`, `64KiB`, `1MiB`,
/// `1GiB`; `B` allowed), or a one-line error naming `option`.
func parseByteSize(_ text: String, option: String) throws -> Int {
    guard let bytes = parseByteSize(text) else {
        throw CLIError("\(option): '\(text)' is not a positive size (bytes, or a number with KiB, MiB or GiB)")
    }
    return bytes
}

/// A whole UTF-8 text file, or a one-line error naming it (a FIFO or device is refused unread).
func readTextFile(_ path: String) throws -> String {
    do { return try InputFile.readText(path) } catch let error as FileError { throw CLIError(error.description) }
}
