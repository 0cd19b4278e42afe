import KVLabEngine
import KVLabFoundation
import KVLabMethods

/// Retrieval-head detection on the loaded model, the scores HeadKV's budgets start from (Wu et
/// al.'s retrieval score, which HeadKV's retrieval-reasoning score extends): the model reads a
/// needle prompt with the full cache and is teacher-forced through the needle's value; at each
/// step that copies a value token, a query head hits when the position it attends most holds
/// that token inside a copy of the value in the prompt. A head's score on a sample is its hits
/// over the value's tokens; `kvlab heads` writes them in HeadKV's file format (HeadKVScores).
public enum RetrievalHeads {
    /// One sample's copy steps.
    public struct Probe: Sendable, Equatable {
        /// The prompt's tokens, BOS first.
        public var prompt: [Int]
        /// The value's tokens as they follow the prompt.
        public var answer: [Int]
        /// Prompt positions inside a copy of `answer` (the needle's value).
        public var needle: Set<Int>
    }

    /// The probes of `samples` whose answer is one value found in its prompt as the same tokens
    /// (others, e.g. multi-value tasks, are skipped).
    public static func probes(_ samples: [SuiteSample], tokenizer: any Tokenizer) -> [Probe] {
        samples.compactMap { sample in
            guard sample.outputs.count == 1 else { return nil }
            let prompt = SuiteGenerator.promptTokens(sample.prompt, tokenizer: tokenizer)
            let whole = SuiteGenerator.promptTokens(sample.prompt + " " + sample.outputs[0], tokenizer: tokenizer)
            guard whole.count > prompt.count, Array(whole.prefix(prompt.count)) == prompt else { return nil }
            let answer = Array(whole.dropFirst(prompt.count))
            var needle = Set<Int>()
            for start in 0...max(0, prompt.count - answer.count) where Array(prompt[start..<min(prompt.count, start + answer.count)]) == answer {
                needle.formUnion(start..<(start + answer.count))
            }
            return needle.isEmpty ? nil : Probe(prompt: prompt, answer: answer, needle: needle)
        }
    }

    /// Which query heads hit at one copy step: `top` holds each head's most-attended position.
    static func hits(top: [Int32], probe: Probe, copied: Int) -> [Bool] {
        top.map { p in p >= 0 && probe.needle.contains(Int(p)) && probe.prompt[Int(p)] == copied }
    }

    /// Each query head's score on each probe (layer-major heads, probes in order).
    public static func scores(model: LoadedModel, probes: [Probe], options: EngineOptions) throws -> [[Double]] {
        let layout = KVLayout(config: model.config)
        let cache = PagedKVCache(layout: layout)
        cache.recordsTopAttention = true
        let engine = InferenceEngine(weights: model.weights, options: options, cache: cache)
        var scores = [[Double]](repeating: [], count: layout.layerCount * layout.kvHeadCount * layout.groupSize)
        for probe in probes {
            engine.reset()
            // The prompt but its last token at once, then one step per token read: each step's
            // query predicts the next value token.
            try engine.prefill(Array(probe.prompt.dropLast()))
            var counts = [Int](repeating: 0, count: scores.count)
            for (n, input) in ([probe.prompt.last!] + probe.answer.dropLast()).enumerated() {
                try engine.decode(input)
                for (head, hit) in hits(top: cache.topAttention, probe: probe, copied: probe.answer[n]).enumerated() where hit { counts[head] += 1 }
            }
            for head in scores.indices { scores[head].append(Double(counts[head]) / Double(probe.answer.count)) }
        }
        return scores
    }
}
