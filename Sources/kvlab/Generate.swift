import ArgumentParser
import Foundation
import KVLabEngine

/// `kvlab generate`: stream text from a prompt.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt, streamed to stdout.")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Prompt text.")
    var prompt: String = ""

    @Option(name: .long, help: "Read the prompt from a file (UTF-8).")
    var promptFile: String?

    @Option(name: [.customShort("n"), .long], help: "Tokens to generate.")
    var tokens: Int = 256

    @Option(name: .long, help: "Sampling temperature (0 = greedy).")
    var temperature: Float = 0

    @Option(name: .long, help: "Sample among the k most likely tokens (0 = off).")
    var topK: Int = 0

    @Option(name: .long, help: "Nucleus sampling threshold (1 = off).")
    var topP: Float = 1

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 42

    @OptionGroup var kvOptions: KVOptions

    @Flag(name: .long, help: "Print prompt/generation statistics to stderr at the end.")
    var stats = false

    func validate() throws {
        guard tokens >= 0 else { throw ValidationError("-n must be ≥ 0, got \(tokens)") }
        do { try samplerSettings.validate() } catch { throw ValidationError("\(error)") }
    }

    var samplerSettings: SamplerSettings {
        SamplerSettings(temperature: temperature, topK: topK, topP: topP, seed: seed)
    }

    func run() throws {
        let model = try modelOptions.load()
        let text = try promptFile.map(readTextFile) ?? prompt
        let cache = try kvOptions.makeCache(config: model.config)
        let engine = InferenceEngine(weights: model.weights, options: modelOptions.engineOptions, cache: cache)
        let generator = Generator(engine: engine, tokenizer: model.tokenizer,
                                  sampler: Sampler(settings: samplerSettings, vocabularySize: model.config.vocabSize))
        let out = FileHandle.standardOutput
        out.write(Data(text.utf8))
        let summary = try generator.run(prompt: text, maxTokens: tokens) { token in
            if !token.text.isEmpty { out.write(Data(token.text.utf8)) }
            return true
        }
        out.write(Data((summary.trailingText + "\n").utf8))
        if stats {
            let prefillMS = Double(summary.prefillNanoseconds) / 1e6
            FileHandle.standardError.write(Data(String(
                format: "prompt %d tokens in %.2f ms, generated %d tokens at %.1f tok/s (%@), KV cache %d entries, %.1f KiB resident\n",
                summary.promptTokens, prefillMS, summary.generatedTokens, summary.decodeTokensPerSecond,
                summary.stopReason.rawValue, engine.cacheEntries, Double(cache.residency.total) / 1024).utf8))
        }
    }
}
