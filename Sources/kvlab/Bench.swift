import Foundation
import ArgumentParser
import KVLabEngine
import KVLabFoundation
import KVLabMethods

/// `kvlab bench`: engine speed, measured (median of several runs).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Measure decode and prefill speed (tokens/s, median of several runs).")

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var kvOptions: KVOptions

    @Option(name: .long, help: "Tokens decoded per run (1 to 1000000; at most the model's context).")
    var tokens: Int = 256

    @Option(name: .long, help: "Prompt tokens per prefill run (1 to 1000000; at most the model's context).")
    var promptTokens: Int = 128

    @Option(name: .long, help: "Runs per measurement, 1 to 1000 (the median is reported).")
    var runs: Int = 7

    @Option(name: .customLong("attention-io"),
            help: "Instead of speed: the KV cache and attention traffic of one prefill at these prompt lengths (1 to 65536, e.g. 512,1024,2048,4096) with the naive kernel and the tiled one for each --sram size.")
    var attentionIO: String?

    @Option(name: .long, help: "Instead of speed: one decode step of this many sequences together (each weight read once) against as many single-sequence steps (2 to 256; --tokens steps, --prompt-tokens each).")
    var batch: Int?

    @Flag(name: .long, help: "Measure the screen renderer instead of the engine: full frames of every widget, no model.")
    var render = false

    @Flag(name: .long, help: "With --render: the real workbench screen on the embedded model, and the delay from a knob key to its frame.")
    var workbench = false

    @Option(name: .long, help: "Frame size for --render, COLUMNSxROWS.")
    var size: String = "200x60"

    @Option(name: .long, help: "Frames timed for --render (1 to 1000000).")
    var frames: Int = 1000

    func validate() throws {
        try checkRange(runs, OptionRange.runs, option: "--runs")
        try checkRange(tokens, OptionRange.benchTokens, option: "--tokens")
        try checkRange(promptTokens, OptionRange.benchTokens, option: "--prompt-tokens")
        _ = try promptLengths()
        try checkRange(frames, OptionRange.frames, option: "--frames")
        if let batch { try checkRange(batch, OptionRange.batch, option: "--batch") }
        _ = try frameSize()
    }

    /// The `--attention-io` prompt lengths.
    private func promptLengths() throws -> [Int]? {
        guard let attentionIO else { return nil }
        return try attentionIO.split(separator: ",", omittingEmptySubsequences: false).map {
            guard let n = Int($0), n >= 1 else { throw CLIError("--attention-io: '\($0)' is not a prompt length (a positive number)") }
            guard n <= OptionRange.attentionIO.upperBound else {
                throw CLIError("--attention-io: \(n) is longer than \(OptionRange.attentionIO.upperBound) tokens, the longest prompt measured")
            }
            return n
        }
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
            if workbench { try WorkbenchBench(width: columns, height: rows, frames: frames).run() } else {
                RenderBench(width: columns, height: rows, frames: frames).run()
            }
            return
        }
        let model = try modelOptions.load()
        if let lengths = try promptLengths() { return try measureAttentionTraffic(model: model, lengths: lengths) }
        if let batch {
            // The methods as the options give them, read back from a cache made with them.
            let cache = try kvOptions.makeCache(config: model.config)
            var options = modelOptions.engineOptions
            options.attention = cache.attentionKernel
            let methods = CacheMethods(eviction: cache.eviction, sparse: cache.sparse, quant: cache.quant)
            return try BatchBench(model: model, options: options, methods: methods, batch: batch, steps: tokens,
                                  promptTokens: min(promptTokens, model.config.contextLength - 1), runs: runs).run()
        }
        let engine = InferenceEngine(weights: model.weights, options: modelOptions.engineOptions,
                                     cache: try kvOptions.makeCache(config: model.config))
        engine.promptTexts = model.promptTexts
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
        print("kernels    \(DecodeKernels.vectorPath) (integer dot products against the input quantized to 8 bits)")
        print("attention  \(Self.describe(engine.attentionKernel, headDim: c.headDim))")
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

    /// A kernel with its tile shape.
    static func describe(_ kernel: AttentionKernel, headDim: Int) -> String {
        guard case .tiled(let bytes) = kernel else { return "naive (scores materialized)" }
        let shape = AttentionTileShape(sramBytes: bytes, headDim: headDim)
        return "tiled, SRAM \(formatBytes(bytes)): key/value tiles of \(shape.entries) entries, query blocks of \(shape.rows) rows"
    }

    /// Prefill traffic of the cache and attention (HBM bytes both ways, every layer) at each prompt
    /// length: naive, and tiled for each SRAM size, each beside its growth law (naive / N²;
    /// tiled / (N²d²/M), M the SRAM in fp32 elements), which stay flat when the law holds.
    private func measureAttentionTraffic(model: LoadedModel, lengths: [Int]) throws {
        let c = model.config
        let sizes = try kvOptions.modes.sramSizes()
        for size in sizes { try CacheModeOptions.checkSRAM(size, headDim: c.headDim) }
        let capacity = max(c.contextLength, lengths.max()!)
        func traffic(_ kernel: AttentionKernel, tokens n: Int) throws -> Double {
            let cache = try kvOptions.makeCache(config: c, capacity: capacity, kernel: kernel)
            let engine = InferenceEngine(weights: model.weights, options: modelOptions.engineOptions, cache: cache)
            engine.promptTexts = model.promptTexts
            try engine.prefill((0..<n).map { ($0 * 7919 + 17) % c.vocabSize })
            return Double(engine.attentionLedger.totalRead + engine.attentionLedger.totalWritten)
        }
        print("model      \(c.name): head size d = \(c.headDim), \(c.layerCount) layers, \(c.kvHeadCount) KV heads, \(c.headCount) query heads")
        if capacity > c.contextLength {
            print("           prompts past its \(c.contextLength)-token context run with RoPE extrapolated (traffic does not depend on values)")
        }
        for size in sizes { print("tiled      \(Self.describe(.tiled(sramBytes: size), headDim: c.headDim))") }
        print("KV cache and attention HBM traffic of one prefill (read + written, all layers):")
        var rows = [["N", "naive", "÷ N²"] + sizes.flatMap { ["tiled \(formatBytes($0))", "÷ N²d²/M"] }]
        for n in lengths {
            let nn = Double(n) * Double(n)
            let naive = try traffic(.naive, tokens: n)
            var row = [String(n), formatBytes(Int(naive)), String(format: "%.0f B", naive / nn)]
            for size in sizes {
                let tiled = try traffic(.tiled(sramBytes: size), tokens: n)
                let law = nn * Double(c.headDim * c.headDim) / Double(size / 4)
                row += [formatBytes(Int(tiled)), String(format: "%.0f B", tiled / law)]
            }
            rows.append(row)
        }
        print(Eval.render(rows))
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
