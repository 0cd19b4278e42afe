import Foundation
import KVLabEngine
import KVLabFoundation
import KVLabMethods

/// One generated sample, as RULER writes them (`index`, `input`, `outputs`, `length`) with the
/// task, the needle depth and the answer prefix the prompt ends with.
public struct SuiteSample: Codable, Sendable, Equatable {
    public var index: Int
    public var task: String
    /// The length the sample was fitted to: prompt plus tokens to generate, BOS included.
    public var length: Int
    /// The needle's depth in single-needle tasks (nil: RULER's random depths, or no needle).
    public var depth: Double?
    public var input: String
    public var answerPrefix: String
    /// Every string the answer must contain (RULER's `string_match_all`).
    public var outputs: [String]
    public var tokensToGenerate: Int
    /// Tokens of `input + answerPrefix`, BOS included.
    public var promptTokens: Int

    /// What the model is given.
    public var prompt: String { input + answerPrefix }
}

/// Generates a suite's samples for one tokenizer, deterministically: each sample's content comes
/// from its own generator seeded by (suite seed, task, length, sample), and its haystack is the
/// largest that fits the length in this tokenizer's tokens (RULER's fitting, by bisection).
public enum SuiteGenerator {
    /// RULER's noise sentences (the `repeat` haystack and variable tracking's filler).
    static let noise = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

    /// The samples of `spec` for a model with `context` tokens; `essay` is the text the `essay`
    /// haystack is cut from (by lines).
    public static func samples(_ spec: SuiteSpec, tokenizer: any Tokenizer, context: Int, essay: String) throws -> [SuiteSample] {
        let essayLines = essay.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var result: [SuiteSample] = []
        for task in spec.tasks {
            if case .niah(let t) = task.kind, t.haystack == .essay, essay.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw SweepError("suite \(spec.name): task '\(task.name)' fills its context from the text, which is empty")
            }
            for length in spec.lengths {
                let tokens = length.tokens(context: context)
                guard tokens <= context else {
                    throw SweepError("suite \(spec.name): length \(length) is \(tokens) tokens, more than the model's context of \(context)")
                }
                for (d, depth) in spec.depths.enumerated() {
                    for s in 0..<spec.samples {
                        let seed = sampleSeed(spec.seed, task.name, tokens, d * spec.samples + s)
                        result.append(try sample(task, length: tokens, depth: depth, seed: seed, index: result.count,
                                                 tokenizer: tokenizer, essay: essayLines))
                    }
                }
            }
        }
        return result
    }

    /// The samples as JSON lines (keys sorted): the same suite, seed and tokenizer give the same bytes.
    public static func jsonLines(_ samples: [SuiteSample]) throws -> Data {
        let encoder = JSONDocument.encoder()
        var data = Data()
        for sample in samples {
            data.append(try encoder.encode(sample))
            data.append(0x0A)
        }
        return data
    }

    /// The prompt's tokens, BOS first.
    public static func promptTokens(_ text: String, tokenizer: any Tokenizer) -> [Int] {
        var tokens = tokenizer.encode(text)
        if let bos = tokenizer.spec.bosID, tokens.first != bos { tokens.insert(bos, at: 0) }
        return tokens
    }

    /// FNV-1a of the sample's coordinates: adding a task or a length leaves the other samples as they were.
    static func sampleSeed(_ seed: UInt64, _ task: String, _ length: Int, _ ordinal: Int) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in "\(seed)|\(task)|\(length)|\(ordinal)".utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    /// A sample's text for a haystack of `n` units, the answers, and how many units can go in.
    private struct Builder {
        var build: (Int) -> (input: String, answerPrefix: String, outputs: [String])
        var units: ClosedRange<Int>
        var depth: Double?
    }

    private static func sample(_ task: SuiteTask, length: Int, depth: Double, seed: UInt64, index: Int,
                               tokenizer: any Tokenizer, essay: [String]) throws -> SuiteSample {
        var rng = Xoshiro256(seed: seed)
        let builder: Builder
        switch task.kind {
        case .niah(let t): builder = needleBuilder(t, depth: depth, length: length, rng: &rng, essay: essay)
        case .variableTracking(let t): builder = variableTrackingBuilder(t, length: length, rng: &rng)
        case .commonWords(let t): builder = commonWordsBuilder(t, rng: &rng)
        }
        let budget = length - task.tokensToGenerate
        func promptLength(_ n: Int) -> Int {
            let parts = builder.build(n)
            return promptTokens(parts.input + parts.answerPrefix, tokenizer: tokenizer).count
        }
        // The largest haystack that fits (RULER grows it until the prompt is too long).
        var low = builder.units.lowerBound, high = builder.units.upperBound
        guard promptLength(low) <= budget else {
            throw SweepError("suite: task '\(task.name)' does not fit in \(length) tokens with \(task.tokensToGenerate) to generate "
                             + "(its smallest prompt is \(promptLength(low)) tokens)")
        }
        while low < high {
            let mid = (low + high + 1) / 2
            if promptLength(mid) <= budget { low = mid } else { high = mid - 1 }
        }
        let parts = builder.build(low)
        return SuiteSample(index: index, task: task.name, length: length, depth: builder.depth, input: parts.input,
                           answerPrefix: parts.answerPrefix, outputs: parts.outputs, tokensToGenerate: task.tokensToGenerate,
                           promptTokens: promptLength(low))
    }

    // MARK: - Needle in a haystack

    /// RULER's 40 needle depths (0 to 100% in 39 steps, rounded to whole percents).
    static let rulerDepths = (0..<40).map { (Double($0) * 100 / 39).rounded() / 100 }

    private static func needleBuilder(_ t: NeedleTask, depth: Double, length: Int, rng: inout Xoshiro256, essay: [String]) -> Builder {
        let keyCount = max(t.keys, t.queries)
        var keys: [String] = []
        while keys.count < keyCount {
            let key = random(t.key, &rng)
            if !keys.contains(key) { keys.append(key) }
        }
        let values = keys.map { _ in (0..<t.values).map { _ in random(t.value, &rng) } }
        let typeName = t.value.rawValue
        var needles = zip(keys, values).flatMap { key, list in list.map { fill(t.needle, ["type": typeName, "key": key, "value": $0]) } }
        shuffle(&needles, &rng)
        // One needle sits at the suite's depth; several at RULER's random depths.
        let single = needles.count == 1
        let depths = single ? [depth] : sample(rulerDepths, count: needles.count, &rng).sorted()
        let asked = sample(Array(0..<keyCount), count: t.queries, &rng)
        let answers = asked.flatMap { values[$0] }
        let queried = asked.map { keys[$0] }
        let query = queried.count > 1 ? queried.dropLast().joined(separator: ", ") + ", and " + queried.last! : queried[0]
        var template = t.template, prefix = t.answerPrefix, type = typeName
        if t.queries * t.values == 1 {
            // RULER's singular wording for one expected value.
            for (from, to) in [("Some", "A"), ("are all", "is"), ("are", "is"), ("answers", "answer")] {
                template = template.replacingOccurrences(of: from, with: to)
                prefix = prefix.replacingOccurrences(of: from, with: to)
            }
            type.removeLast()
        }
        let units: [String]
        switch t.haystack {
        case .repeat: units = Array(repeating: noise, count: length)
        case .essay: units = essay
        case .needle:
            var distractors = Xoshiro256(seed: rng.next())
            units = (0..<length).map { _ in
                fill(t.needle, ["type": typeName, "key": random(t.key, &distractors), "value": random(t.value, &distractors)])
            }
        }
        let questionTemplate = fill(template, ["type": type, "query": query])
        let answerPrefix = fill(prefix, ["type": type, "query": query])
        return Builder(build: { n in
            var lines: [String] = []
            var next = 0
            for i in 0...n {
                while next < needles.count, Int(depths[next] * Double(n)) == i {
                    lines.append(needles[next])
                    next += 1
                }
                if i < n { lines.append(units[i]) }
            }
            return (fill(questionTemplate, ["context": lines.joined(separator: "\n")]), answerPrefix, answers)
        }, units: 0...units.count, depth: single ? depth : nil)
    }

    // MARK: - Variable tracking

    private static func variableTrackingBuilder(_ t: VariableTrackingTask, length: Int, rng: inout Xoshiro256) -> Builder {
        let letters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        var names: [String] = []
        while names.count < t.chains * (t.hops + 1) {
            let name = String((0..<5).map { _ in letters[uniform(letters.count, &rng)] })
            if !names.contains(name) { names.append(name) }
        }
        var chains: [[String]] = [], firstValue = ""
        for c in 0..<t.chains {
            let chain = Array(names[(c * (t.hops + 1))..<((c + 1) * (t.hops + 1))])
            let value = String(10_000 + uniform(90_000, &rng))
            if c == 0 { firstValue = value }
            // RULER's statements, trailing space included.
            chains.append(["VAR \(chain[0]) = \(value)"] + (0..<t.hops).map { "VAR \(chain[$0 + 1]) = VAR \(chain[$0]) " })
        }
        let places = chains.map { chain in chain.map { _ in Double(rng.next() >> 11) / Double(1 << 53) }.sorted() }
        let question = fill(t.template, ["query": firstValue, "count": "\(t.hops + 1)"])
        let answerPrefix = fill(t.answerPrefix, ["query": firstValue, "count": "\(t.hops + 1)"])
        let answers = Array(names[0...t.hops])
        return Builder(build: { n in
            var sentences = Array(repeating: noise + "\n", count: n)
            for (chain, fractions) in zip(chains, places) {
                let count = sentences.count
                for (j, statement) in chain.enumerated() { sentences.insert(statement, at: Int(fractions[j] * Double(count)) + j) }
            }
            let context = sentences.joined(separator: " ").replacingOccurrences(of: ". \n", with: ".\n")
            return (fill(question, ["context": context]), answerPrefix, answers)
        }, units: 0...length, depth: nil)
    }

    // MARK: - Common words extraction

    private static func commonWordsBuilder(_ t: CommonWordsTask, rng: inout Xoshiro256) -> Builder {
        var vocabulary = SuiteVocabulary.words
        shuffle(&vocabulary, &rng)
        let order = rng.next()
        let question = fill(t.template, ["query": ""])
        return Builder(build: { n in
            let chosen = Array(vocabulary.prefix(n))
            let common = Array(chosen.prefix(t.common))
            var list = Array(repeating: common, count: t.commonFrequency).flatMap { $0 }
                + Array(repeating: Array(chosen.dropFirst(t.common)), count: t.uncommonFrequency).flatMap { $0 }
            var shuffler = Xoshiro256(seed: order)
            shuffle(&list, &shuffler)
            let context = list.enumerated().map { "\($0.offset + 1). \($0.element)" }.joined(separator: " ")
            return (fill(question, ["context": context]), t.answerPrefix, common)
        }, units: (t.common + 1)...vocabulary.count, depth: nil)
    }

    // MARK: - Randomness (own arithmetic, so files do not depend on the standard library's algorithms)

    static func uniform(_ n: Int, _ rng: inout Xoshiro256) -> Int { Int(rng.next() % UInt64(n)) }

    static func shuffle<T>(_ items: inout [T], _ rng: inout Xoshiro256) {
        guard items.count > 1 else { return }
        for i in stride(from: items.count - 1, to: 0, by: -1) { items.swapAt(i, uniform(i + 1, &rng)) }
    }

    /// `count` distinct items in random order.
    static func sample<T>(_ items: [T], count: Int, _ rng: inout Xoshiro256) -> [T] {
        var copy = items
        shuffle(&copy, &rng)
        return Array(copy.prefix(count))
    }

    static func random(_ type: NeedleType, _ rng: inout Xoshiro256) -> String {
        switch type {
        case .numbers: return String(1_000_000 + uniform(9_000_000, &rng))
        case .words:
            return SuiteVocabulary.adjectives[uniform(SuiteVocabulary.adjectives.count, &rng)] + "-"
                + SuiteVocabulary.nouns[uniform(SuiteVocabulary.nouns.count, &rng)]
        case .names: return SuiteVocabulary.names[uniform(SuiteVocabulary.names.count, &rng)]
        case .uuids:
            // Version 4, variant 1, as Python's uuid.UUID(int=…, version=4).
            let hex = String(format: "%016llx%016llx", rng.next() & 0xFFFF_FFFF_FFFF_0FFF | 0x4000, rng.next() & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000)
            let c = Array(hex)
            return [c[0..<8], c[8..<12], c[12..<16], c[16..<20], c[20..<32]].map { String($0) }.joined(separator: "-")
        }
    }

    /// `text` with each `{name}` replaced.
    static func fill(_ text: String, _ values: [String: String]) -> String {
        values.keys.sorted().reduce(text) { $0.replacingOccurrences(of: "{\($1)}", with: values[$1]!) }
    }
}
