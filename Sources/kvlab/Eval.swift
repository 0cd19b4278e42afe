import Foundation
import ArgumentParser
import KVLabEngine
import KVLabFoundation
import KVLabMethods
import KVLabRun

/// `kvlab eval`: streaming teacher-forced evaluation of KV methods against the full-cache ghost.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Streaming perplexity of KV methods on a text, against the full-cache ghost run.",
        discussion: """
        Each token is one decode step with the method's cache (docs KV-METHODS.md, evaluation \
        protocol); the ghost is the same model with the full fp32 cache in lockstep. A text longer \
        than --tokens is cut into chunks of --tokens (BOS first); --chunks says how many to run. \
        --policy, --sparse and --kv repeat: every combination is evaluated. --sequence N instead \
        runs one sequence of N tokens past the context, without the ghost: methods that bound the \
        cache go on (their entries renumbered inside the context), the full cache stops at it. \
        --suite runs a RULER-style long-context suite instead (docs: README, long-context suite): \
        each combination answers every sample greedily and is scored by RULER's string match.
        """)

    @OptionGroup var modelOptions: ModelOptions

    @Option(name: .long, help: "Eviction method, e.g. h2o:heavy=64,recent=64; any method takes a budget as ratio=R (share removed), budget=N (entries per KV head) or bytes=B, e.g. snapkv:ratio=0.5 (default: full; repeat to compare several).")
    var policy: [String] = []

    @OptionGroup var modes: CacheModeOptions

    @Option(name: .long, help: "Text file to evaluate (UTF-8).")
    var text: String

    @Option(name: .long, help: "Tokens per chunk, BOS included, 2 to 1000000 (default and most: the model's context length).")
    var tokens: Int?

    @Option(name: .long, help: "Chunks to evaluate: a number (1 to 1000000) or 'all'.")
    var chunks: String = "1"

    @Option(name: .long, help: "Tokens of each chunk run as one prompt first, 0 to 1000000 (methods such as snapkv act at its end).")
    var prefill: Int = 0

    @Option(name: .long, help: "Evaluate one sequence of this many tokens (BOS first, 2 to 1000000), past the context, instead of chunks.")
    var sequence: Int?

    @Option(name: .long, help: "Retrieval probe instead of streaming perplexity: needle or two-question.")
    var probe: Probe?

    @Option(name: .long, help: "needle: where the passkey sits in the filler text, 0 (start) to 1 (end).")
    var depth: Double = 0.5

    @Option(name: .long, help: "needle: seed of the random 5-digit passkey.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "two-question: the question at the end of the prompt (what methods compress for).")
    var questionA: String = ProbeKind.defaultQuestionA

    @Option(name: .long, help: "two-question: the question asked after compression.")
    var questionB: String = ProbeKind.defaultQuestionB

    @Option(name: .long, help: "two-question: the expected answer to question B (default: the first line of the text).")
    var answerB: String?

    @Option(name: .long, help: "Long-context suite instead of perplexity: a built-in (ruler, ruler-tiny) or a suite file (YAML); --text is the essay haystack.")
    var suite: String?

    @Option(name: .long, help: "suite: write the generated samples (JSON lines) to this file and stop.")
    var samplesOut: String?

    @Option(name: .long, help: "suite: draw score against compression ratio per method to this SVG file.")
    var plot: String?

    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func validate() throws {
        if let tokens { try checkRange(tokens, OptionRange.evalTokens, option: "--tokens") }
        try checkRange(prefill, OptionRange.prefill, option: "--prefill")
        guard chunks == "all" || (Int(chunks).map { OptionRange.chunks.contains($0) } ?? false) else {
            throw ValidationError("--chunks must be a number from 1 to \(OptionRange.chunks.upperBound) or 'all', got '\(chunks)'")
        }
        try checkRange(depth, 0...1, option: "--depth")
        try validateSuite()
        if let sequence {
            try checkRange(sequence, OptionRange.evalTokens, option: "--sequence")
            if tokens != nil || chunks != "1" || prefill != 0 || probe != nil {
                throw ValidationError("--sequence runs one sequence from its first token: it does not combine with --tokens, --chunks, --prefill or --probe")
            }
        }
    }

    /// One cell of the grid: an eviction method with a sparse mode and a KV quantization.
    struct Cell {
        var eviction: EvictionMethod
        var sparse: SparseMethod
        var quant: KVQuantMethod
    }

    /// Every combination of `--policy`, `--sparse` and `--kv` in the order given (policies outermost),
    /// each checked: a pair that does not combine is a one-line error naming both.
    func grid(headDim: Int) throws -> [Cell] {
        let policies = try (policy.isEmpty ? ["full"] : policy).map { try EvictionMethod.parse($0, option: "--policy") }
        let sparseMethods = try modes.sparseMethods(), quantMethods = try modes.quantMethods(headDim: headDim)
        var cells: [Cell] = []
        for eviction in policies {
            for sparse in sparseMethods {
                for quant in quantMethods {
                    do { try eviction.check(quant: quant) } catch { throw CLIError("--policy \(eviction) with --kv \(quant): \(error)") }
                    cells.append(Cell(eviction: eviction, sparse: sparse, quant: quant))
                }
            }
        }
        return cells
    }

    func run() throws {
        let model = try modelOptions.load()
        let cells = try grid(headDim: model.config.headDim)
        if let suite {
            try runSuite(suite, cells: cells, model: model)
            return
        }
        // Without a prompt such a method never compresses: its row would read as a free full cache.
        if probe == nil, prefill == 0, let idle = cells.first(where: { $0.eviction.actsOnlyAtPromptEnd }) {
            throw CLIError("--policy \(idle.eviction) compresses at the end of a prompt, which "
                + (sequence == nil ? "this run has none of: give --prefill N (each chunk's first N tokens as its prompt) or --probe"
                                   : "--sequence has none of: evaluate it with --prefill N or --probe"))
        }
        var options = modelOptions.engineOptions
        options.attention = try modes.attentionKernel(headDim: model.config.headDim)
        let content = try readTextFile(text)
        let context = min(tokens ?? model.config.contextLength, model.config.contextLength)
        let evaluationText = EvaluationText(content, tokenizer: model.tokenizer)
        let ids = evaluationText.tokens, bos = evaluationText.bos
        guard ids.count >= 1 else { throw CLIError("\(text): no tokens to evaluate") }
        if let probe {
            try runProbe(probe, cells: cells, model: model, filler: content, context: context, options: options)
            return
        }
        if let sequence {
            try runSequence(sequence, cells: cells, model: model, ids: ids, bos: bos, options: options)
            return
        }
        let chunkLimit = chunks == "all" ? nil : Int(chunks)
        var summaries: [EvaluationSummary] = []
        for cell in cells {
            let evaluator = StreamingEvaluator(weights: model.weights, eviction: cell.eviction, sparse: cell.sparse, quant: cell.quant,
                                               withGhost: true, options: options)
            evaluator.engine.promptTexts = model.promptTexts
            summaries.append(try evaluator.evaluateChunks(ids, bos: bos, context: context, maxChunks: chunkLimit, prefill: prefill))
        }
        if json {
            let report = EvalReport(model: model.config.name, text: text, tokensPerChunk: context, prefill: prefill,
                                    attention: (options.attention ?? .naive).description, results: summaries)
            FileHandle.standardOutput.write(try JSONDocument.prettyLine(report))
        } else {
            print(table(summaries, model: model, context: context, attention: options.attention ?? .naive))
        }
    }

    enum Probe: String, ExpressibleByArgument, CaseIterable {
        case needle
        case twoQuestion = "two-question"
    }

    /// Builds the probe's prompt from the filler text so prompt + answer fit `context` tokens,
    /// then scores every method on it.
    private func runProbe(_ probe: Probe, cells: [Cell], model: LoadedModel, filler: String, context: Int, options: EngineOptions) throws {
        let probeTokens: ProbePrompt
        do {
            probeTokens = try ProbePrompt.build(probeKind(probe), filler: filler, tokenizer: model.tokenizer, context: context)
        } catch let error as ProbeError { throw CLIError(error.description) }
        var results: [ProbeResult] = []
        for cell in cells {
            let evaluator = StreamingEvaluator(weights: model.weights, eviction: cell.eviction, sparse: cell.sparse, quant: cell.quant,
                                               withGhost: true, options: options)
            evaluator.engine.promptTexts = model.promptTexts
            results.append(try evaluator.probe(prompt: probeTokens.prompt, followUp: probeTokens.followUp, answer: probeTokens.answer))
        }
        if json {
            FileHandle.standardOutput.write(try JSONDocument.prettyLine(results))
            return
        }
        let answerText = probeTokens.answerText
        print("\(model.config.name): \(probe.rawValue) probe, prompt \(probeTokens.prompt.count) tokens"
            + (probe == .needle ? " (pass key \(probeTokens.passkey ?? "") at depth \(depth))" : ", follow-up \(probeTokens.followUp.count) tokens")
            + ", answer '\(answerText)' = \(probeTokens.answer.count) tokens")
        let header = ["method", "answer NLL", "ghost NLL", "answered", "ghost answered", "KV peak"]
        let rows = results.map { r in
            [r.method, f(r.answerNLL, 3), r.ghostAnswerNLL.map { f($0, 3) } ?? "-", r.answered ? "yes" : "no",
             r.ghostAnswered.map { $0 ? "yes" : "no" } ?? "-", formatBytes(r.peakResidentKVBytes)]
        }
        print(Self.render([header] + rows))
    }

    /// Streaming perplexity over one sequence of `length` tokens (BOS, then the text's first
    /// `length − 1`): each cell runs until the end or until its cache has no room, with the mean
    /// NLL inside the context and over the stretches after it (ends at 2, 5, 10, 20 … × the context).
    /// The first row is the full cache restarted from BOS at each context, the usual chunked
    /// perplexity, for the same stretches.
    private func runSequence(_ length: Int, cells: [Cell], model: LoadedModel, ids: [Int], bos: Int, options: EngineOptions) throws {
        guard ids.count >= length - 1 else { throw CLIError("\(text): \(ids.count) tokens, fewer than --sequence \(length) − 1") }
        let sequenceTokens = [bos] + ids[..<(length - 1)]
        let context = model.config.contextLength
        var bounds: [Int] = []
        for multiple in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] where multiple * context < length - 1 { bounds.append(multiple * context) }
        bounds.append(length - 1)
        // The reference: the full cache started again at each context (chunked perplexity).
        let reference = StreamingEvaluator(weights: model.weights, eviction: .full, withGhost: false, options: options)
        var results = [try reference.evaluateSequence(sequenceTokens, bounds: bounds, restart: true)]
        for cell in cells {
            let evaluator = StreamingEvaluator(weights: model.weights, eviction: cell.eviction, sparse: cell.sparse, quant: cell.quant,
                                               withGhost: false, options: options)
            evaluator.engine.promptTexts = model.promptTexts
            results.append(try evaluator.evaluateSequence(sequenceTokens, bounds: bounds))
        }
        if json {
            FileHandle.standardOutput.write(try JSONDocument.prettyLine(SequenceReport(model: model.config.name, text: text, tokens: length,
                                                                                       context: context, results: results)))
            return
        }
        print("\(model.config.name): one sequence of \(length) tokens from \(text), context \(context); ppl per stretch of positions"
            + " (first row: the full cache restarted from BOS at each context)")
        let starts = [0] + bounds.dropLast()
        let header = ["method", "tokens run"] + zip(starts, bounds).map { "ppl \($0)–\($1)" }
            + ["ppl all", "KV at context", "KV at end"]
        let rows = results.map { r -> [String] in
            let run = r.stoppedAt == nil ? String(r.tokens) : "\(r.tokens) (stops)"
            let stretches = zip(starts, bounds).map { start, end -> String in
                guard let s = r.segments.first(where: { $0.start == start }) else { return "-" }
                return f(s.perplexity, 2) + (s.end < end ? "*" : "")
            }
            let atContext = r.residentKVBytesAtContext.map { formatBytes($0) } ?? "-"
            return [r.method, run] + stretches + [f(r.perplexity, 2), atContext, formatBytes(r.finalResidentKVBytes)]
        }
        print(Self.render([header] + rows))
        if results.contains(where: { $0.stoppedAt != nil }) {
            print("stops: the cache had no room for the next token (a method that keeps every entry ends at the context); * partial stretch")
        }
    }

    /// The probe as the options describe it.
    func probeKind(_ probe: Probe) -> ProbeKind {
        switch probe {
        case .needle: .needle(depth: depth, seed: seed)
        case .twoQuestion: .twoQuestion(questionA: questionA, questionB: questionB, answerB: answerB)
        }
    }

    /// Left-aligned first column, right-aligned others.
    static func render(_ rows: [[String]]) -> String {
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == 0 ? cell.padding(toLength: widths[0], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[column] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    private func table(_ summaries: [EvaluationSummary], model: LoadedModel, context: Int, attention: AttentionKernel) -> String {
        let first = summaries[0]
        var lines = ["\(model.config.name): \(first.tokens) tokens (\(first.predictions) predicted) from \(text), "
            + "chunks of \(context)" + (prefill > 0 ? ", first \(prefill) as a prompt" : "")
            + (attention == .naive ? "" : ", attention \(attention)")]
        let header = ["method", "NLL", "ppl", "ΔNLL", "KL", "top-1", "mass kept", "diverges at", "KV mean", "KV peak"]
        var rows: [[String]] = []
        if let ghost = first.ghostMeanNLL {
            rows.append(["full cache (ghost)", f(ghost, 4), f(exp(ghost), 3), "0", "0", "100%", "100%", "-", "-",
                         formatBytes(first.ghostPeakResidentKVBytes ?? 0)])
        }
        for s in summaries {
            rows.append([s.method, f(s.meanNLL, 4), f(s.perplexity, 3),
                         s.ghostMeanNLL.map { (s.meanNLL - $0 >= 0 ? "+" : "") + f(s.meanNLL - $0, 4) } ?? "-",
                         s.meanKL.map { f($0, 4) } ?? "-", s.top1Agreement.map { f($0 * 100, 1) + "%" } ?? "-",
                         s.meanMassKept.map { f($0 * 100, 1) + "%" } ?? "-", s.firstDivergence.map(String.init) ?? "never",
                         formatBytes(Int(s.meanResidentKVBytes)), formatBytes(s.peakResidentKVBytes)])
        }
        lines.append(Self.render([header] + rows))
        if let sinks = first.ghostFirstTokenAttention {
            lines.append("attention on the first token (ghost, mean over steps and heads), by layer: "
                + sinks.enumerated().map { "\($0.offset): \(f($0.element * 100, 1))%" }.joined(separator: "  "))
        }
        return lines.joined(separator: "\n")
    }

    private func f(_ value: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", value) }
}

private struct SequenceReport: Encodable {
    var model: String
    var text: String
    var tokens: Int
    var context: Int
    var results: [SequenceEvaluation]
}

private struct EvalReport: Encodable {
    var model: String
    var text: String
    var tokensPerChunk: Int
    var prefill: Int
    /// The attention kernel, e.g. `naive` or `tiled:sram=233472`.
    var attention: String
    var results: [EvaluationSummary]
}
