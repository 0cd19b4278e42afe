import Foundation
import KVLabEngine
import KVLabMethods

/// A greedy answer to one prompt, and how much of the prompt's KV the method kept.
public struct GreedyAnswer: Sendable, Equatable {
    /// The generated tokens (a stop token ends the answer and is not included).
    public var tokens: [Int]
    /// Resident KV bytes after the prompt: the method's, and the full-cache ghost's (nil without one).
    public var promptKVBytes: Int
    public var ghostPromptKVBytes: Int?
}

extension StreamingEvaluator {
    /// Answers each prompt greedily with the method's cache: the prompt runs as one prefill (so
    /// methods that act at a prompt's end act), then up to `maxTokens` argmax tokens, ending early
    /// at a token of `stop`. The ghost follows the method's tokens in lockstep, so the summary
    /// (over the positions that predict an answer token) compares the two on the same prefixes.
    public func answer(_ prompts: [(tokens: [Int], maxTokens: Int)], stop: Set<Int>) throws(EngineError) -> (answers: [GreedyAnswer], summary: EvaluationSummary) {
        var accumulator = Accumulator(method: label, withGhost: ghost != nil)
        var answers: [GreedyAnswer] = []
        let vocabulary = engine.config.vocabSize
        var offset = 0
        for (prompt, maxTokens) in prompts {
            engine.reset()
            ghost?.reset()
            try engine.prefill(prompt)
            try ghost?.prefill(prompt)
            var answer = GreedyAnswer(tokens: [], promptKVBytes: methodCache.residency.total, ghostPromptKVBytes: ghostCache?.residency.total)
            var position = prompt.count - 1
            while true {
                let next = LogitStatistics(engine.logits.baseAddress!, count: vocabulary).argmax
                let quality = Self.quality(position: position, next: next, logits: engine.logits.baseAddress!,
                                           ghostLogits: ghost?.logits.baseAddress, vocabulary: vocabulary,
                                           massKept: position >= prompt.count ? methodCache.massKept : nil,
                                           resident: methodCache.residency.total)
                accumulator.add(quality, offset: offset, ghostResident: ghostCache?.residency.total)
                if stop.contains(next) || answer.tokens.count >= maxTokens { break }
                answer.tokens.append(next)
                guard answer.tokens.count < maxTokens, engine.hasRoom() else { break }
                try ghost?.decode(next)
                decodeStatistics.add(try engine.decode(next))
                position += 1
            }
            answers.append(answer)
            offset += prompt.count + answer.tokens.count
        }
        return (answers, accumulator.summary())
    }
}
