import Foundation
import ArgumentParser
import KVLabEngine
import KVLabFoundation
import KVLabMethods
import KVLabSweep

/// `kvlab heads --out FILE`: the loaded model's retrieval-head scores in HeadKV's file format,
/// from a synthetic needle suite generated without downloads, for `--policy headkv:scores=FILE`.
struct Heads: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score each query head's retrieval on needle prompts and write HeadKV's scores file (for headkv:scores=FILE).")

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Scores file to write (JSON: \"layer-head\": [score per sample]).")
    var out: String

    @Option(name: .long, help: "Needle suite: a built-in name or a suite file; its single-value needle samples are the probes (default: names).")
    var suite = "names"

    @Option(name: .long, help: "Text the suite's essay haystacks are cut from (not needed for the built-in names suite).")
    var text: String?

    func run() throws {
        try singleLineErrors { _ = try OutputFile.target(out) }
        let model = try modelOptions.load()
        let spec = try singleLineErrors { try SuiteSpec.load(suite) }
        let essay = try text.map(readTextFile) ?? ""
        let samples = try singleLineErrors { try SuiteGenerator.samples(spec, tokenizer: model.tokenizer, context: model.config.contextLength, essay: essay) }
        let probes = RetrievalHeads.probes(samples, tokenizer: model.tokenizer)
        guard !probes.isEmpty else { throw CLIError("--suite \(suite): no sample has a single value its prompt holds as the same tokens") }
        let scores = try RetrievalHeads.scores(model: model, probes: probes, options: modelOptions.engineOptions)
        let c = model.config
        guard scores.contains(where: { $0.contains { $0 > 0 } }) else {
            throw CLIError("\(c.name): no head attended the needle while copying it in \(probes.count) samples; the scores would give HeadKV nothing to share")
        }
        let file = HeadKVScores.render(layers: c.layerCount, heads: c.headCount, samples: scores)
        try singleLineErrors { try OutputFile.write(Data(file.utf8), to: out) }
        let means = scores.map { $0.reduce(0, +) / Double($0.count) }
        let best = means.indices.max { means[$0] < means[$1] }!
        print("\(out): \(c.layerCount) layers × \(c.headCount) query heads of \(c.name), \(probes.count) samples of suite \(spec.name); "
              + "top head \(best / c.headCount)-\(best % c.headCount) scores \(String(format: "%.3f", means[best]))")
    }
}
