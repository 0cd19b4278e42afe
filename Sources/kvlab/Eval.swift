import ArgumentParser
import Foundation
import KVLabEngine

/// `kvlab eval`: streaming teacher-forced evaluation of KV methods against the full-cache ghost.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Streaming perplexity of KV methods on a text, against the full-cache ghost run.",
        discussion: """
        Each token is one decode step with the method's cache (docs KV-METHODS.md, evaluation \
        protocol); the ghost is the same model with the full fp32 cache in lockstep. A text longer \
        than --tokens is cut into chunks of --tokens (BOS first); --chunks says how many to run.
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Eviction method, e.g. h2o:heavy=64,recent=64 (repeat to compare several).")
    var policy: [String] = ["full"]

    @Option(name: .long, help: "Sparse attention mode for every policy, e.g. quest:page=16,budget=128 (default: dense).")
    var sparse: String = "dense"

    @Option(name: .long, help: "KV quantization for every policy, e.g. kivi:bits=2 or q4_0 (default: fp32).")
    var kv: String = "fp32"

    @Option(name: .long, help: "Text file to evaluate (UTF-8).")
    var text: String

    @Option(name: .long, help: "Tokens per chunk, BOS included (default: the model's context length).")
    var tokens: Int?

    @Option(name: .long, help: "Chunks to evaluate: a number or 'all'.")
    var chunks: String = "1"

    @Option(name: .long, help: "Tokens of each chunk run as one prompt first (methods such as snapkv act at its end).")
    var prefill: Int = 0

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if let tokens, tokens < 2 { throw ValidationError("--tokens must be at least 2, got \(tokens)") }
        guard prefill >= 0 else { throw ValidationError("--prefill must be ≥ 0, got \(prefill)") }
        guard chunks == "all" || (Int(chunks).map { $0 >= 1 } ?? false) else {
            throw ValidationError("--chunks must be a positive number or 'all', got '\(chunks)'")
        }
    }

    func run() throws {
        let methods = try policy.map { text in
            do { return try EvictionMethod(parsing: text) } catch { throw CLIError("--policy: \(error)") }
        }
        let sparseMethod: SparseMethod
        do { sparseMethod = try SparseMethod(parsing: sparse) } catch { throw CLIError("--sparse: \(error)") }
        let quantMethod: KVQuantMethod
        do { quantMethod = try KVQuantMethod(parsing: kv) } catch { throw CLIError("--kv: \(error)") }
        let model = try modelOptions.load()
        let content = try readTextFile(text)
        let context = min(tokens ?? model.config.contextLength, model.config.contextLength)
        var ids = model.tokenizer.encode(content)
        let bos = model.tokenizer.spec.bosID ?? 1
        if ids.first == bos { ids.removeFirst() }
        guard ids.count >= 1 else { throw CLIError("\(text): no tokens to evaluate") }
        let chunkLimit = chunks == "all" ? nil : Int(chunks)
        var summaries: [EvaluationSummary] = []
        for method in methods {
            let evaluator = StreamingEvaluator(weights: model.weights, eviction: method, sparse: sparseMethod, quant: quantMethod,
                                               withGhost: true, options: modelOptions.engineOptions)
            summaries.append(try evaluator.evaluateChunks(ids, bos: bos, context: context, maxChunks: chunkLimit, prefill: prefill))
        }
        if json {
            let report = EvalReport(model: model.config.name, text: text, tokensPerChunk: context, prefill: prefill, results: summaries)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            FileHandle.standardOutput.write(try encoder.encode(report) + Data("\n".utf8))
        } else {
            print(table(summaries, model: model, context: context))
        }
    }

    private func table(_ summaries: [EvaluationSummary], model: LoadedModel, context: Int) -> String {
        let first = summaries[0]
        var lines = ["\(model.config.name): \(first.tokens) tokens (\(first.predictions) predicted) from \(text), "
            + "chunks of \(context)" + (prefill > 0 ? ", first \(prefill) as a prompt" : "")]
        let header = ["method", "NLL", "ppl", "ΔNLL", "KL", "top-1", "mass kept", "diverges at", "KV mean", "KV peak"]
        var rows: [[String]] = []
        if let ghost = first.ghostMeanNLL {
            rows.append(["full cache (ghost)", f(ghost, 4), f(exp(ghost), 3), "0", "0", "100%", "100%", "-", "-",
                         bytes(Double(first.ghostPeakResidentKVBytes ?? 0))])
        }
        for s in summaries {
            rows.append([s.method, f(s.meanNLL, 4), f(s.perplexity, 3),
                         s.ghostMeanNLL.map { (s.meanNLL - $0 >= 0 ? "+" : "") + f(s.meanNLL - $0, 4) } ?? "-",
                         s.meanKL.map { f($0, 4) } ?? "-", s.top1Agreement.map { f($0 * 100, 1) + "%" } ?? "-",
                         s.meanMassKept.map { f($0 * 100, 1) + "%" } ?? "-", s.firstDivergence.map(String.init) ?? "never",
                         bytes(s.meanResidentKVBytes), bytes(Double(s.peakResidentKVBytes))])
        }
        let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max()! }
        for row in [header] + rows {
            lines.append(row.enumerated().map { column, cell in
                column == 0 ? cell.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - cell.count) + cell
            }.joined(separator: "  "))
        }
        if let sinks = first.ghostFirstTokenAttention {
            lines.append("attention on the first token (ghost, mean over steps and heads), by layer: "
                + sinks.enumerated().map { "\($0.offset): \(f($0.element * 100, 1))%" }.joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }

    private func f(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }

    private func bytes(_ value: Double) -> String {
        value >= 1_048_576 ? String(format: "%.2f MiB", value / 1_048_576) : String(format: "%.1f KiB", value / 1024)
    }
}

private struct EvalReport: Encodable {
    var model: String
    var text: String
    var tokensPerChunk: Int
    var prefill: Int
    var results: [EvaluationSummary]
}
