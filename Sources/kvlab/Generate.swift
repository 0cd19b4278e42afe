import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabRun

/// `kvlab generate`: stream text from a prompt.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Generate text from a prompt, streamed to stdout.")

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var promptOptions: PromptOptions

    @Option(name: [.customShort("n"), .long], help: "Tokens to generate (0 to 1000000).")
    var tokens: Int = 256

    @OptionGroup var samplerOptions: SamplerOptions

    @OptionGroup var kvOptions: KVOptions

    @Flag(name: .long, help: "Print prompt/generation statistics to stderr at the end.")
    var stats = false

    func validate() throws {
        try checkRange(tokens, OptionRange.tokens, option: "-n")
    }

    func run() throws {
        let model = try modelOptions.load()
        let text = try promptOptions.text(model: model)
        let live = try LiveRun(model: model, settings: try kvOptions.runSettings(model: model, modelOptions: modelOptions,
                                                                                 sampler: samplerOptions.settings))
        let out = FileHandle.standardOutput
        out.write(Data(text.utf8))
        let prompt = try live.submit(prompt: text)
        let start = DispatchTime.now().uptimeNanoseconds
        var generated = 0
        var stop = "token limit"
        generation: while generated < tokens {
            switch try live.step() {
            case .token(let token):
                if !token.text.isEmpty { out.write(Data(token.text.utf8)) }
                generated += 1
            case .stopped(let reason):
                stop = reason == .endOfSequence ? "end of sequence" : "context full"
                break generation
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        out.write(Data((live.finishText() + "\n").utf8))
        if stats {
            let prefillMS = Double(prompt.report.timings.totalNanoseconds) / 1e6
            FileHandle.standardError.write(Data(String(
                format: "prompt %d tokens in %.2f ms, generated %d tokens at %.1f tok/s (%@), KV cache %d entries, %@ resident\n",
                prompt.tokens.count, prefillMS, generated, elapsed > 0 ? Double(generated) / elapsed : 0, stop,
                live.engine.cacheEntries, formatBytes(live.cache.residency.total)).utf8))
        }
    }
}
