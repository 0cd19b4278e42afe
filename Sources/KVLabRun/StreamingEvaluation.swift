import Foundation
import KVLabEngine
import KVLabMethods

/// One token of a streaming evaluation: the method's NLL and how far it is from the ghost.
public struct TokenQuality: Sendable, Equatable {
    public var position: Int
    /// −log p(next token) under the method; nil at the last position (no next token).
    public var nll: Double?
    public var ghostNLL: Double?
    /// KL(ghost ‖ method) of the next-token distributions.
    public var kl: Double?
    public var top1Agrees: Bool?
    /// The method's most likely next token.
    public var top: Int = 0
    public var ghostTop: Int?
    /// Share of the ghost's attention that fell on entries the method attended.
    public var massKept: Double?
    public var residentKVBytes: Int
}

/// Means over an evaluation (NLL over the predicted tokens, t = 0 … N−2).
public struct EvaluationSummary: Sendable, Equatable, Codable {
    public var method: String
    public var tokens: Int
    public var predictions: Int
    public var meanNLL: Double
    public var perplexity: Double { exp(meanNLL) }
    public var ghostMeanNLL: Double?
    public var meanKL: Double?
    public var top1Agreement: Double?
    public var meanMassKept: Double?
    /// First position whose greedy next token differs from the ghost's.
    public var firstDivergence: Int?
    public var meanResidentKVBytes: Double
    public var peakResidentKVBytes: Int
    public var ghostPeakResidentKVBytes: Int?
    /// Per layer, the ghost's mean attention share on the first token (BOS), over decode steps
    /// after the first (where it is trivially 1).
    public var ghostFirstTokenAttention: [Double]?
}

/// The evaluation protocol of docs KV-METHODS.md: teacher-forced decode steps over a token
/// sequence (BOS first) with the method's cache, and optionally the full-cache ghost in lockstep.
public final class StreamingEvaluator {
    public let engine: InferenceEngine
    public let ghost: InferenceEngine?
    let methodCache: PagedKVCache
    let ghostCache: PagedKVCache?
    public let eviction: EvictionMethod
    public let sparse: SparseMethod
    public let quant: KVQuantMethod
    /// The method's cache (its state after the last evaluation).
    public var cache: PagedKVCache { methodCache }
    /// The method engine's decode steps over every evaluation so far.
    public internal(set) var decodeStatistics = DecodeStatistics()
    /// The methods as one label, e.g. `h2o:heavy=64,recent=64 quest:page=16,budget=128 kivi:bits=2,group=32,residual=128`
    /// (the sparse mode and the quantization only when not dense and fp32).
    public var label: String {
        ([eviction.description] + (sparse == .dense ? [] : [sparse.description]) + (quant == .fp32 ? [] : [quant.description]))
            .joined(separator: " ")
    }

    public init(weights: ModelWeights, eviction: EvictionMethod, sparse: SparseMethod = .dense, quant: KVQuantMethod = .fp32,
                withGhost: Bool, options: EngineOptions = EngineOptions(), capacity: Int? = nil) {
        let layout = KVLayout(config: weights.config, capacity: capacity)
        methodCache = PagedKVCache(layout: layout, eviction: eviction, sparse: sparse, quant: quant)
        engine = InferenceEngine(weights: weights, options: options, cache: methodCache)
        self.eviction = eviction
        self.sparse = sparse
        self.quant = quant
        if withGhost {
            let cache = PagedKVCache(layout: layout)
            cache.recordsAttention = true
            methodCache.attentionReference = cache
            ghostCache = cache
            ghost = InferenceEngine(weights: weights, options: EngineOptions(threads: options.threads, attention: options.attention), cache: cache)
        } else {
            ghostCache = nil
            ghost = nil
        }
    }

    /// Evaluates one sequence from a fresh cache. The first `prefill` tokens run as one prompt
    /// (so methods that act at the end of a prompt, like snapkv, act), the rest one step each.
    public func evaluate(_ tokens: [Int], prefill: Int = 0,
                         onToken: (TokenQuality) -> Void = { _ in }) throws(EngineError) -> EvaluationSummary {
        var accumulator = Accumulator(method: label, withGhost: ghost != nil)
        try run(tokens, prefill: prefill, offset: 0, into: &accumulator, onToken: onToken)
        return accumulator.summary()
    }

    /// Cuts `tokens` (no BOS) into consecutive chunks of `context − 1`, each evaluated after a
    /// BOS from a fresh cache (the first `prefill` of each as a prompt), and returns the summary
    /// over all of them.
    public func evaluateChunks(_ tokens: [Int], bos: Int, context: Int, maxChunks: Int? = nil,
                               prefill: Int = 0) throws(EngineError) -> EvaluationSummary {
        var accumulator = Accumulator(method: label, withGhost: ghost != nil)
        var start = 0, chunk = 0
        while start < tokens.count, maxChunks.map({ chunk < $0 }) ?? true {
            let piece = [bos] + tokens[start..<min(tokens.count, start + context - 1)]
            try run(piece, prefill: prefill, offset: accumulator.tokens, into: &accumulator, onToken: { _ in })
            start += context - 1
            chunk += 1
        }
        guard accumulator.tokens > 0 else { throw .emptyInput }
        return accumulator.summary()
    }

    private func run(_ tokens: [Int], prefill: Int, offset: Int, into accumulator: inout Accumulator,
                     onToken: (TokenQuality) -> Void) throws(EngineError) {
        engine.reset()
        ghost?.reset()
        let vocabulary = engine.config.vocabSize
        let prompt = min(max(prefill, 0), tokens.count)
        if prompt > 0 {
            let logits = try engine.prefill(Array(tokens[..<prompt]), allLogits: true).logits
            let ghostLogits = try ghost?.prefill(Array(tokens[..<prompt]), allLogits: true).logits ?? []
            logits.withUnsafeBufferPointer { m in
                ghostLogits.withUnsafeBufferPointer { g in
                    for t in 0..<prompt {
                        let quality = Self.quality(position: t, next: t + 1 < tokens.count ? tokens[t + 1] : nil,
                                                   logits: m.baseAddress! + t * vocabulary,
                                                   ghostLogits: g.isEmpty ? nil : g.baseAddress! + t * vocabulary,
                                                   vocabulary: vocabulary, massKept: nil, resident: methodCache.residency.total)
                        accumulator.add(quality, offset: offset, ghostResident: ghostCache?.residency.total)
                        onToken(quality)
                    }
                }
            }
        }
        for t in prompt..<tokens.count {
            try ghost?.decode(tokens[t])
            if let ghostCache, t > 0 {
                accumulator.addSinkAttention((0..<ghostCache.layout.layerCount).map { ghostCache.attentionOnFirstToken(layer: $0) })
            }
            decodeStatistics.add(try engine.decode(tokens[t]))
            let quality = Self.quality(position: t, next: t + 1 < tokens.count ? tokens[t + 1] : nil,
                                       logits: engine.logits.baseAddress!, ghostLogits: ghost?.logits.baseAddress,
                                       vocabulary: vocabulary, massKept: methodCache.massKept,
                                       resident: methodCache.residency.total)
            accumulator.add(quality, offset: offset, ghostResident: ghostCache?.residency.total)
            onToken(quality)
        }
    }

    /// Teacher-forces one sequence (BOS first) that may run far past the context, one decode
    /// step per token, without the ghost (a full cache ends at the context). A method that bounds
    /// its cache renumbers its entries' rotary positions and goes on (`PagedKVCache.makeRoom`);
    /// the run stops early where the cache has no room for the next token, or with `restart`
    /// starts again from an empty cache with BOS (`tokens[0]`) before it: chunked perplexity, the
    /// reference a bounded cache is read against. `bounds` cuts the predicted positions into
    /// segments (ascending ends) whose mean NLL is reported apart, so quality far past the context
    /// can be read against quality inside it.
    public func evaluateSequence(_ tokens: [Int], bounds: [Int], restart: Bool = false) throws(EngineError) -> SequenceEvaluation {
        engine.reset()
        var result = SequenceEvaluation(method: label + (restart ? " (restarted)" : ""), tokens: 0)
        var sums = [Double](repeating: 0, count: bounds.count), counts = [Int](repeating: 0, count: bounds.count)
        var segment = 0, total = 0.0
        for t in tokens.indices {
            if !engine.hasRoom() {
                guard restart, t > 0 else {
                    result.stoppedAt = t
                    break
                }
                engine.reset()
                try engine.decode(tokens[0])
            }
            decodeStatistics.add(try engine.decode(tokens[t]))
            result.tokens += 1
            let resident = methodCache.residency.total
            result.peakResidentKVBytes = max(result.peakResidentKVBytes, resident)
            if t == engine.cache.layout.capacity - 1 { result.residentKVBytesAtContext = resident }
            result.finalResidentKVBytes = resident
            guard t + 1 < tokens.count else { continue }
            let nll = Double(LogitStatistics(engine.logits.baseAddress!, count: engine.config.vocabSize).logSumExp - engine.logits[tokens[t + 1]])
            while segment < bounds.count - 1, t >= bounds[segment] { segment += 1 }
            sums[segment] += nll
            counts[segment] += 1
            total += nll
            result.predictions += 1
        }
        var start = 0
        for (i, end) in bounds.enumerated() {
            if counts[i] > 0 { result.segments.append(.init(start: start, end: start + counts[i], meanNLL: sums[i] / Double(counts[i]))) }
            start = end
        }
        result.meanNLL = total / Double(max(result.predictions, 1))
        return result
    }

    /// One position's quality from the method's logits `m` and, with a ghost, its logits `g`
    /// (also what `LiveRun` reports for each generated token).
    static func quality(position: Int, next: Int?, logits m: UnsafePointer<Float>, ghostLogits g: UnsafePointer<Float>?,
                                vocabulary: Int, massKept: Double?, resident: Int) -> TokenQuality {
        var q = TokenQuality(position: position, massKept: massKept, residentKVBytes: resident)
        let mStats = LogitStatistics(m, count: vocabulary)
        q.top = mStats.argmax
        if let next { q.nll = Double(mStats.logSumExp - m[next]) }
        guard let g else { return q }
        let gStats = LogitStatistics(g, count: vocabulary)
        if let next { q.ghostNLL = Double(gStats.logSumExp - g[next]) }
        var kl = 0.0
        for i in 0..<vocabulary {
            let logP = Double(g[i] - gStats.logSumExp)
            kl += exp(logP) * (logP - Double(m[i] - mStats.logSumExp))
        }
        q.kl = max(0, kl)
        q.top1Agrees = gStats.argmax == mStats.argmax
        q.ghostTop = gStats.argmax
        return q
    }

    struct Accumulator {
        var method: String
        var withGhost: Bool
        var tokens = 0
        var predictions = 0
        var nll = 0.0, ghostNLL = 0.0, kl = 0.0
        var agreements = 0, compared = 0
        var mass = 0.0, massSteps = 0
        var firstDivergence: Int?
        var residentSum = 0.0
        var peak = 0, ghostPeak = 0
        var sinkAttention: [Double] = []
        var sinkSteps = 0

        init(method: String, withGhost: Bool) {
            self.method = method
            self.withGhost = withGhost
        }

        mutating func add(_ q: TokenQuality, offset: Int, ghostResident: Int?) {
            tokens += 1
            residentSum += Double(q.residentKVBytes)
            peak = max(peak, q.residentKVBytes)
            ghostPeak = max(ghostPeak, ghostResident ?? 0)
            if let value = q.nll {
                nll += value
                predictions += 1
            }
            if let value = q.ghostNLL { ghostNLL += value }
            if let value = q.kl { kl += value }
            if let agrees = q.top1Agrees {
                compared += 1
                if agrees { agreements += 1 } else if firstDivergence == nil { firstDivergence = offset + q.position }
            }
            if let value = q.massKept {
                mass += value
                massSteps += 1
            }
        }

        mutating func addSinkAttention(_ perLayer: [Double]) {
            if sinkAttention.isEmpty { sinkAttention = perLayer.map { _ in 0 } }
            for l in perLayer.indices { sinkAttention[l] += perLayer[l] }
            sinkSteps += 1
        }

        func summary() -> EvaluationSummary {
            let n = Double(max(predictions, 1))
            return EvaluationSummary(
                method: method, tokens: tokens, predictions: predictions, meanNLL: nll / n,
                ghostMeanNLL: withGhost ? ghostNLL / n : nil, meanKL: withGhost ? kl / n : nil,
                top1Agreement: withGhost ? Double(agreements) / Double(max(compared, 1)) : nil,
                meanMassKept: massSteps > 0 ? mass / Double(massSteps) : nil, firstDivergence: firstDivergence,
                meanResidentKVBytes: residentSum / Double(max(tokens, 1)), peakResidentKVBytes: peak,
                ghostPeakResidentKVBytes: withGhost ? ghostPeak : nil,
                ghostFirstTokenAttention: sinkSteps > 0 ? sinkAttention.map { $0 / Double(sinkSteps) } : nil)
        }
    }
}

/// A method's streaming perplexity over one long sequence (`StreamingEvaluator.evaluateSequence`).
public struct SequenceEvaluation: Sendable, Equatable, Codable {
    /// Mean NLL of the predictions at positions `start..<end`.
    public struct Segment: Sendable, Equatable, Codable {
        public var start: Int
        public var end: Int
        public var meanNLL: Double
        public var perplexity: Double { exp(meanNLL) }
    }

    public var method: String
    /// Tokens run (BOS included).
    public var tokens: Int
    public var predictions = 0
    /// The position the cache had no room for (a full cache at its context); nil when the run reached the end.
    public var stoppedAt: Int?
    public var meanNLL = 0.0
    public var perplexity: Double { exp(meanNLL) }
    public var segments: [Segment] = []
    public var peakResidentKVBytes = 0
    /// Resident KV bytes after the token at the last position of the context, and after the last token.
    public var residentKVBytesAtContext: Int?
    public var finalResidentKVBytes = 0
}

/// Time and traffic of an engine's decode steps, summed.
public struct DecodeStatistics: Sendable, Equatable {
    public var steps = 0
    public var nanoseconds: UInt64 = 0
    /// Bytes moved per link and buffer over all steps.
    public var ledger = IOLedger()
    /// The last step's ledger (what a projection's live state reads).
    public var lastLedger: IOLedger?

    mutating func add(_ report: StepReport) {
        steps += 1
        nanoseconds += report.timings.totalNanoseconds
        ledger.add(report.ledger)
        lastLedger = report.ledger
    }
}

/// A text as the evaluator reads it: its tokens without a leading BOS, and the BOS to put before each chunk.
public struct EvaluationText: Sendable {
    public var tokens: [Int]
    public var bos: Int

    public init(_ content: String, tokenizer: any Tokenizer) {
        bos = tokenizer.spec.bosID ?? 1
        tokens = tokenizer.encode(content)
        if tokens.first == bos { tokens.removeFirst() }
    }
}

/// Retrieval probes: a prompt whose end asks for something placed earlier, scored by the NLL of
/// the expected answer under teacher forcing and by whether greedy decoding would produce it
/// (every answer token is the argmax given the ones before).
public struct ProbeResult: Sendable, Equatable, Codable {
    public var method: String
    public var promptTokens: Int
    public var answerTokens: Int
    public var answerNLL: Double
    public var ghostAnswerNLL: Double?
    public var answered: Bool
    public var ghostAnswered: Bool?
    public var peakResidentKVBytes: Int
}

extension StreamingEvaluator {
    /// Runs `prompt` as one prefill (methods that act at a prompt's end act, e.g. compressing
    /// for a question at its end), then teacher-forces `followUp` (a second question) and
    /// `answer` one step at a time; only the answer is scored.
    public func probe(prompt: [Int], followUp: [Int] = [], answer: [Int]) throws(EngineError) -> ProbeResult {
        try probeWithSummary(prompt: prompt, followUp: followUp, answer: answer).result
    }

    /// `probe`, with the summary of the whole teacher-forced run (prompt, follow-up and answer).
    public func probeWithSummary(prompt: [Int], followUp: [Int] = [],
                                 answer: [Int]) throws(EngineError) -> (result: ProbeResult, summary: EvaluationSummary) {
        var nll = 0.0, ghostNLL = 0.0
        var answered = true, ghostAnswered = true
        var peak = 0
        let tokens = prompt + followUp + answer
        let firstAnswer = prompt.count + followUp.count
        let summary = try evaluate(tokens, prefill: prompt.count) { q in
            peak = max(peak, q.residentKVBytes)
            // Position firstAnswer − 1 predicts the first answer token.
            let k = q.position - (firstAnswer - 1)
            guard k >= 0, k < answer.count else { return }
            nll += q.nll ?? 0
            ghostNLL += q.ghostNLL ?? 0
            if q.top != answer[k] { answered = false }
            if q.ghostTop != answer[k] { ghostAnswered = false }
        }
        let result = ProbeResult(method: label, promptTokens: prompt.count, answerTokens: answer.count, answerNLL: nll,
                                 ghostAnswerNLL: ghost == nil ? nil : ghostNLL, answered: answered,
                                 ghostAnswered: ghost == nil ? nil : ghostAnswered, peakResidentKVBytes: peak)
        return (result, summary)
    }
}
