import ArgumentParser
import Foundation
import KVLabEngine

/// `kvlab bench`: engine speed, measured (median of several runs).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure decode and prefill speed (tokens/s, median of several runs).")

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var kvOptions: KVOptions

    @Option(name: .long, help: "Tokens decoded per run.")
    var tokens: Int = 256

    @Option(name: .long, help: "Prompt tokens per prefill run.")
    var promptTokens: Int = 128

    @Option(name: .long, help: "Runs per measurement (the median is reported).")
    var runs: Int = 7

    @Flag(name: .long, help: "Measure the screen renderer instead of the engine: full frames of every widget, no model.")
    var render = false

    @Option(name: .long, help: "Frame size for --render, COLUMNSxROWS.")
    var size: String = "200x60"

    @Option(name: .long, help: "Frames timed for --render.")
    var frames: Int = 1000

    func validate() throws {
        guard runs >= 1 else { throw ValidationError("--runs must be ≥ 1") }
        guard tokens >= 1, promptTokens >= 1 else { throw ValidationError("--tokens and --prompt-tokens must be ≥ 1") }
        guard frames >= 1 else { throw ValidationError("--frames must be ≥ 1") }
        _ = try frameSize()
    }

    /// `--size` as columns and rows.
    private func frameSize() throws -> (columns: Int, rows: Int) {
        let parts = size.split(separator: "x").map { Int($0) }
        guard parts.count == 2, let columns = parts[0], let rows = parts[1], (20...1000).contains(columns), (10...1000).contains(rows) else {
            throw CLIError("--size: expected COLUMNSxROWS between 20x10 and 1000x1000, got '\(size)'")
        }
        return (columns, rows)
    }

    func run() throws {
        if render {
            let (columns, rows) = try frameSize()
            RenderBench(width: columns, height: rows, frames: frames).run()
            return
        }
        let model = try modelOptions.load()
        let engine = InferenceEngine(weights: model.weights, options: modelOptions.engineOptions,
                                     cache: try kvOptions.makeCache(config: model.config))
        let c = engine.config
        let decodeCount = min(tokens, c.contextLength - 1)
        let prefillCount = min(promptTokens, c.contextLength)
        let bos = model.tokenizer.spec.bosID ?? 0

        // Decode: greedy from BOS, one token at a time, as llama2.c's run.c measures it.
        var decodeRates: [Double] = []
        var phase = StepTimings()
        for run in 0...runs {
            engine.reset()
            var token = bos
            var timings = StepTimings()
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<decodeCount {
                let report = try engine.decode(token)
                token = report.top.id
                timings.add(report.timings)
            }
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            if run > 0 {  // run 0 warms caches and page pools
                decodeRates.append(Double(decodeCount) / (Double(elapsed) / 1e9))
                phase.add(timings)
            }
        }

        // Prefill: a fixed pseudo-random prompt in one batched pass.
        let prompt = (0..<prefillCount).map { ($0 * 7919 + 17) % c.vocabSize }
        var prefillRates: [Double] = []
        for run in 0...runs {
            engine.reset()
            let start = DispatchTime.now().uptimeNanoseconds
            try engine.prefill(prompt)
            let elapsed = DispatchTime.now().uptimeNanoseconds - start
            if run > 0 { prefillRates.append(Double(prefillCount) / (Double(elapsed) / 1e9)) }
        }

        let weightTypes = Set(engine.weights.namedMatrices.map(\.1.type.rawValue)).sorted().joined(separator: "+")
        print("model      \(c.name) (\(model.format.rawValue), \(c.parameterCount(tiedClassifier: engine.weights.tiedClassifier)) parameters, weights \(weightTypes))")
        print("threads    \(modelOptions.threads) (OpenBLAS \(BLAS.threadCount))")
        print("openblas   \(BLAS.configuration)")
        print(String(format: "decode     %.0f tok/s  (median of %d runs of %d tokens; min %.0f, max %.0f)",
                     median(decodeRates), runs, decodeCount, decodeRates.min()!, decodeRates.max()!))
        print(String(format: "prefill    %.0f tok/s  (median of %d runs of %d tokens; min %.0f, max %.0f)",
                     median(prefillRates), runs, prefillCount, prefillRates.min()!, prefillRates.max()!))
        let total = Double(max(phase.totalNanoseconds, 1))
        func share(_ ns: UInt64) -> String { String(format: "%4.1f%%", Double(ns) / total * 100) }
        print("decode time: projections \(share(phase.projectionNanoseconds))  attention \(share(phase.attentionNanoseconds))  "
              + "feed-forward \(share(phase.feedForwardNanoseconds))  classifier \(share(phase.classifierNanoseconds))  "
              + "other \(share(phase.totalNanoseconds - phase.projectionNanoseconds - phase.attentionNanoseconds - phase.feedForwardNanoseconds - phase.classifierNanoseconds))")
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

extension StepTimings {
    mutating func add(_ other: StepTimings) {
        totalNanoseconds += other.totalNanoseconds
        projectionNanoseconds += other.projectionNanoseconds
        attentionNanoseconds += other.attentionNanoseconds
        feedForwardNanoseconds += other.feedForwardNanoseconds
        classifierNanoseconds += other.classifierNanoseconds
    }
}
