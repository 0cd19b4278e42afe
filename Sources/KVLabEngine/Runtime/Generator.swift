import Dispatch

/// One generated token as the stream sees it.
public struct GeneratedToken: Sendable {
    public var id: Int
    /// Text completed by this token (may be empty while a UTF-8 character is split).
    public var text: String
    public var report: StepReport
}

/// Totals of one generation.
public struct GenerationSummary: Sendable {
    public var promptTokens: Int
    public var generatedTokens: Int
    public var prefillNanoseconds: UInt64
    public var decodeNanoseconds: UInt64
    /// Why generation stopped.
    public var stopReason: StopReason
    /// Bytes of a character the last token left incomplete (as U+FFFD), or "".
    public var trailingText = ""

    public enum StopReason: String, Sendable { case tokenLimit, endOfSequence, contextFull, cancelled }

    public var decodeTokensPerSecond: Double {
        decodeNanoseconds == 0 ? 0 : Double(generatedTokens) / (Double(decodeNanoseconds) / 1e9)
    }
}

/// Prompt → streamed tokens: prefill the prompt, then sample and decode one token at a time.
public final class Generator {
    public let engine: InferenceEngine
    public let tokenizer: any Tokenizer
    public let sampler: Sampler

    public init(engine: InferenceEngine, tokenizer: any Tokenizer, sampler: Sampler) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.sampler = sampler
    }

    /// Generates up to `maxTokens` after `prompt` from a fresh sequence, calling `onToken` for
    /// each (return false to stop). Stops early at EOS or when the context is full.
    @discardableResult
    public func run(prompt: String, maxTokens: Int, onToken: (GeneratedToken) -> Bool) throws -> GenerationSummary {
        var promptTokens = tokenizer.encode(prompt)
        if promptTokens.isEmpty, let bos = tokenizer.spec.bosID { promptTokens = [bos] }
        guard !promptTokens.isEmpty else { throw EngineError.emptyInput }
        engine.reset()
        let prefillStart = DispatchTime.now().uptimeNanoseconds
        try engine.prefill(promptTokens)
        let decodeStart = DispatchTime.now().uptimeNanoseconds
        var summary = GenerationSummary(promptTokens: promptTokens.count, generatedTokens: 0,
                                        prefillNanoseconds: decodeStart - prefillStart, decodeNanoseconds: 0,
                                        stopReason: .tokenLimit)
        var stream = TextStream()
        var previous = promptTokens.last
        while summary.generatedTokens < maxTokens {
            let token = sampler.sample(engine.logits)
            if token == tokenizer.spec.eosID {
                summary.stopReason = .endOfSequence
                break
            }
            if engine.position >= engine.cache.layout.capacity {
                summary.stopReason = .contextFull
                break
            }
            let report = try engine.decode(token)
            summary.generatedTokens += 1
            let text = stream.push(tokenizer.decode(token, after: previous))
            previous = token
            if !onToken(GeneratedToken(id: token, text: text, report: report)) {
                summary.stopReason = .cancelled
                break
            }
        }
        summary.decodeNanoseconds = DispatchTime.now().uptimeNanoseconds - decodeStart
        summary.trailingText = stream.flush()
        return summary
    }
}
