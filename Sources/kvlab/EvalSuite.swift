import Foundation
import ArgumentParser
import KVLabEngine
import KVLabFoundation
import KVLabRun
import KVLabSweep

/// `kvlab eval --suite`: every combination of methods as a sweep cell on a long-context suite.
extension Eval {
    func validateSuite() throws {
        guard suite != nil else {
            if samplesOut != nil || plot != nil { throw CLIError("--samples-out and --plot go with --suite") }
            return
        }
        if probe != nil || sequence != nil || prefill != 0 || chunks != "1" {
            throw CLIError("--suite runs its own prompts: it does not combine with --probe, --sequence, --prefill or --chunks")
        }
        if modelOptions.tokenizer != nil {
            throw CLIError("--suite runs each combination as a sweep cell, which reads the tokenizer beside the model: drop --tokenizer")
        }
        for path in [samplesOut, plot].compactMap({ $0 }) { try singleLineErrors { _ = try OutputFile.target(path) } }
    }

    /// Generates the suite for the model (or writes its samples with `--samples-out`), then runs
    /// each combination as `kvlab sweep` runs a cell and prints RULER's scores.
    func runSuite(_ name: String, cells: [Cell], model: LoadedModel) throws {
        let spec = try singleLineErrors { try SuiteSpec.load(name) }
        let content = try readTextFile(text)
        if let samplesOut {
            let context = min(tokens ?? model.config.contextLength, model.config.contextLength)
            let samples = try SuiteGenerator.samples(spec, tokenizer: model.tokenizer, context: context, essay: content)
            try singleLineErrors { try OutputFile.write(SuiteGenerator.jsonLines(samples), to: samplesOut) }
            print("\(samplesOut): \(samples.count) samples of suite \(spec.name) for \(model.config.name) (seed \(spec.seed))")
            return
        }
        let attention = try modes.attentionKernel(headDim: model.config.headDim).description
        let probe = SweepProbe.suitePrefix + (SuiteSpec.builtIn[name] == nil ? URL(fileURLWithPath: name).standardizedFileURL.path : name)
        let runner = CellRunner(executor: "local")
        var results: [SweepResult] = []
        for cell in cells {
            let sweepCell = SweepCell(model: modelOptions.model.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? SweepCell.embeddedModel,
                                      weights: modelOptions.weights?.rawValue, threads: modelOptions.threads,
                                      text: URL(fileURLWithPath: text).standardizedFileURL.path, probe: probe, tokens: tokens, chunks: 1,
                                      prefill: 0, policy: cell.eviction.description, sparse: cell.sparse.description, kv: cell.quant.description,
                                      attention: attention, projections: [], projectContext: 4096)
            results.append(try runner.run(sweepCell))
        }
        let points = SweepReport.points(results)
        if let plot {
            let title = "\(spec.name) score vs compression ratio — \(SweepReport.modelName(results[0].cell.model)), \(points.count) configurations"
            let svg = SVGPlot.scatter(points, x: .compressionRatio, y: .suiteScore, title: title, lines: true)
            try singleLineErrors { try OutputFile.write(Data(svg.utf8), to: plot) }
        }
        if json {
            FileHandle.standardOutput.write(try JSONDocument.prettyLine(SuiteReport(model: model.config.name, suite: spec.name, text: text,
                                                                                    results: results.map { SuiteReport.Row(method: $0.cell.label, score: $0.quality.suite!) })))
            return
        }
        let first = results[0].quality.suite!
        print("\(model.config.name): suite \(spec.name), \(first.outcomes.count) samples, lengths "
            + first.lengths.map(\.name).joined(separator: ", ") + " tokens; score = RULER string match (0–100), mean over tasks")
        let rows = SweepReport.suiteRows(points).map { row in row.map { $0.replacingOccurrences(of: "`", with: "") } }
        print(Self.render(rows.map { Array($0.dropFirst()) }))
    }
}

private struct SuiteReport: Encodable {
    struct Row: Encodable {
        var method: String
        var score: SuiteScore
    }

    var model: String
    var suite: String
    var text: String
    var results: [Row]
}
