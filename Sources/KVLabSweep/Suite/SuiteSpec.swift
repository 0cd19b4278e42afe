import Foundation
import KVLabFoundation
import Yams

/// A RULER-style synthetic long-context suite (Hsieh et al., 2024, NVIDIA/RULER `scripts/data/synthetic`):
/// which tasks, at which context lengths and needle depths, how many samples, from which seed.
/// The samples themselves are generated for a tokenizer (`SuiteGenerator`), because RULER fits
/// every sample to a length in tokens.
public struct SuiteSpec: Sendable, Equatable {
    public var name: String
    public var seed: UInt64 = 42
    /// Sample lengths: prompt plus the tokens to generate, BOS included.
    public var lengths: [SuiteLength]
    /// Depths (0 start … 1 end) of the needle in single-needle tasks; samples per length are
    /// `samples × depths.count` in every task, so each task weighs the same.
    public var depths: [Double] = [0, 0.5, 1]
    public var samples = 1
    public var tasks: [SuiteTask]

    public init(name: String, seed: UInt64 = 42, lengths: [SuiteLength], depths: [Double] = [0, 0.5, 1], samples: Int = 1, tasks: [SuiteTask]) {
        self.name = name
        self.seed = seed
        self.lengths = lengths
        self.depths = depths
        self.samples = samples
        self.tasks = tasks
    }
}

/// A length in tokens, or a share of the model's context (`0.5` in a suite file).
public enum SuiteLength: Sendable, Equatable, CustomStringConvertible {
    case tokens(Int)
    case fraction(Double)

    public func tokens(context: Int) -> Int {
        switch self {
        case .tokens(let n): n
        case .fraction(let f): Int((Double(context) * f).rounded(.down))
        }
    }

    public var description: String {
        switch self {
        case .tokens(let n): "\(n)"
        case .fraction(let f): "\(f)×context"
        }
    }
}

/// One task of a suite, named as in RULER's `synthetic.yaml` (`niah_single_1`, `vt`, `cwe`, …).
public struct SuiteTask: Sendable, Equatable {
    public var name: String
    public var kind: Kind

    public enum Kind: Sendable, Equatable {
        case niah(NeedleTask)
        case variableTracking(VariableTrackingTask)
        case commonWords(CommonWordsTask)
    }

    /// Tokens generated for the answer (RULER's `tokens_to_generate`).
    public var tokensToGenerate: Int {
        switch kind {
        case .niah(let t): t.tokens
        case .variableTracking(let t): t.tokens
        case .commonWords(let t): t.tokens
        }
    }
}

/// What a needle's key or value is: RULER's `numbers` (7 digits), `words` (adjective-noun),
/// `uuids`, and kvlab's `names` (first names that tiny story models repeat).
public enum NeedleType: String, Sendable, Equatable, CaseIterable {
    case numbers, words, uuids, names
}

/// What fills the context around the needles: RULER's `repeat` (the noise sentences), `essay`
/// (the evaluated text, by lines, where RULER uses Paul Graham's essays) and `needle` (needles
/// with other keys).
public enum Haystack: String, Sendable, Equatable, CaseIterable {
    case `repeat`, essay, needle
}

/// RULER's needle-in-a-haystack (`niah.py`): `keys` keys with `values` values each hidden in the
/// haystack; `queries` of the keys asked for, every value of each expected.
public struct NeedleTask: Sendable, Equatable {
    public var haystack = Haystack.essay
    public var key = NeedleType.words
    public var value = NeedleType.numbers
    public var keys = 1
    public var values = 1
    public var queries = 1
    public var needle = "One of the special magic {type} for {key} is: {value}."
    public var template = "Some special magic {type} are hidden within the following text. Make sure to memorize it. "
        + "I will quiz you about the {type} afterwards.\n{context}\nWhat are all the special magic {type} for {query} mentioned in the provided text?"
    public var answerPrefix = " The special magic {type} for {query} mentioned in the provided text are"
    public var tokens = 32

    /// Needles in the haystack (RULER raises `keys` to `queries`).
    public var needleCount: Int { max(keys, queries) * values }
}

/// RULER's variable tracking (`variable_tracking.py`): `chains` chains of `hops` assignments
/// `VAR B = VAR A` from `VAR A = 12345` in the noise; every variable of the first chain is the answer.
public struct VariableTrackingTask: Sendable, Equatable {
    public var chains = 1
    public var hops = 4
    // RULER's own wording, typo ("assgined") included, so prompts match its.
    public var template = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
        + "Question: Find all variables that are assigned the value {query} in the text above."
    public var answerPrefix = " Answer: According to the chain(s) of variable assignment in the text above, {count} variables are assgined the value {query}, they are: "
    public var tokens = 30
}

/// RULER's common words extraction (`common_words_extraction.py`): a numbered list where `common`
/// words appear `commonFrequency` times and the others `uncommonFrequency` times; the common ones
/// are the answer. Defaults are RULER's for contexts under 4,096 tokens (6 and 1).
public struct CommonWordsTask: Sendable, Equatable {
    public var common = 10
    public var commonFrequency = 6
    public var uncommonFrequency = 1
    public var template = "Below is a numbered list of words. In these words, some appear more often than others. "
        + "Memorize the ones that appear most often.\n{context}\nQuestion: What are the 10 most common words in the above list?"
    public var answerPrefix = " Answer: The top 10 words that appear most often in the list are:"
    public var tokens = 64
}

extension SuiteSpec {
    /// The suites kvlab ships, by name.
    public static let builtIn: [String: String] = [
        "ruler": """
        # RULER's synthetic retrieval, multi-hop tracing and aggregation tasks at half and all of the
        # model's context, plus kvlab's niah_name (see "names").
        name: ruler
        seed: 42
        lengths: [0.5, 1.0]
        depths: [0.0, 0.5, 1.0]
        samples: 1
        tasks:
          - {name: niah_single_1, type: niah, haystack: repeat, key: words, value: numbers, tokens: 24}
          - {name: niah_single_2, type: niah, haystack: essay, key: words, value: numbers, tokens: 24}
          - {name: niah_single_3, type: niah, haystack: essay, key: words, value: uuids, tokens: 48}
          - {name: niah_multikey_1, type: niah, haystack: essay, key: words, value: numbers, keys: 4, tokens: 24}
          - {name: niah_multikey_2, type: niah, haystack: needle, key: words, value: numbers, tokens: 24}
          - {name: niah_multikey_3, type: niah, haystack: needle, key: uuids, value: uuids, tokens: 48}
          - {name: niah_multivalue, type: niah, haystack: essay, key: words, value: numbers, values: 4, tokens: 48}
          - {name: niah_multiquery, type: niah, haystack: essay, key: words, value: numbers, queries: 4, tokens: 48}
          - {name: vt, type: vt, chains: 1, hops: 4, tokens: 30}
          - {name: cwe, type: cwe, common_frequency: 4, tokens: 40}
          - {name: niah_name, type: niah, haystack: repeat, value: names, tokens: 4,
             needle: "Once upon a time, there was a little dog named {value}. {value} liked to play.",
             template: "{context}\\n", answer_prefix: "The little dog's name was"}
        """,
        "names": """
        # kvlab's variant for tiny story models, which follow no instruction and copy no number:
        # a dog's name (one of 24 first names) in the noise, then "The little dog's name was".
        # stories260K answers it at full cache (names are what its induction copies).
        name: names
        seed: 42
        lengths: [64, 128, 256]
        depths: [0.0, 0.25, 0.5, 0.75, 1.0]
        samples: 4
        tasks:
          - {name: niah_name, type: niah, haystack: repeat, value: names, tokens: 4,
             needle: "Once upon a time, there was a little dog named {value}. {value} liked to play.",
             template: "{context}\\n", answer_prefix: "The little dog's name was"}
        """,
        "ruler-tiny": """
        # A quick check: one sample per task at 256 tokens.
        name: ruler-tiny
        seed: 42
        lengths: [256]
        depths: [0.5]
        samples: 1
        tasks:
          - {name: niah_single_1, type: niah, haystack: repeat, key: words, value: numbers, tokens: 12}
          - {name: niah_multikey_2, type: niah, haystack: needle, key: words, value: numbers, tokens: 12}
          - {name: vt, type: vt, hops: 2, tokens: 12}
          - {name: cwe, type: cwe, common: 3, tokens: 12}
          - {name: niah_name, type: niah, haystack: repeat, value: names, tokens: 4,
             needle: "Once upon a time, there was a little dog named {value}. {value} liked to play.",
             template: "{context}\\n", answer_prefix: "The little dog's name was"}
        """,
    ]

    /// A built-in suite by name, or a suite file (YAML).
    public static func load(_ nameOrPath: String) throws -> SuiteSpec {
        if let text = builtIn[nameOrPath] { return try SuiteSpec(yaml: text, source: "suite \(nameOrPath)") }
        guard nameOrPath.contains("/") || nameOrPath.contains(".") else {
            throw SweepError("--suite: '\(nameOrPath)' is neither a built-in suite (\(builtIn.keys.sorted().joined(separator: ", "))) nor a file")
        }
        return try SuiteSpec(yaml: try InputFile.readText(nameOrPath), source: nameOrPath)
    }

    /// Parses a suite file; every problem is one line starting with `source`.
    public init(yaml text: String, source: String) throws {
        func fail(_ problem: String) -> FileError { FileError(path: source, problem: problem) }
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch {
            throw fail("is not YAML (\(String(describing: error).split(separator: "\n").first ?? ""))")
        }
        guard let map = document as? [String: Any] else { throw fail("is not a YAML mapping (name, seed, lengths, depths, samples, tasks)") }
        let known = ["name", "seed", "lengths", "depths", "samples", "tasks"]
        if let extra = map.keys.sorted().first(where: { !known.contains($0) }) {
            throw fail("unknown key '\(extra)' (expected \(known.joined(separator: ", ")))")
        }
        let fields = Fields(map: map, context: "", fail: fail)
        guard let taskList = map["tasks"] as? [Any], !taskList.isEmpty else { throw fail("'tasks' must be a non-empty list of task mappings") }
        let lengthItems = (map["lengths"] as? [Any]) ?? (map["lengths"].map { [$0] } ?? [])
        guard !lengthItems.isEmpty else { throw fail("'lengths' must list at least one length (tokens, or a share of the context like 0.5)") }
        let lengths = try lengthItems.map { item throws -> SuiteLength in
            if let n = item as? Int {
                guard (16...1_000_000).contains(n) else { throw fail("length \(n) must be from 16 to 1000000 tokens") }
                return .tokens(n)
            }
            if let f = item as? Double {
                guard f > 0, f <= 1 else { throw fail("length \(f) must be a whole number of tokens or a share of the context in (0, 1]") }
                return .fraction(f)
            }
            throw fail("length '\(item)' is not a number")
        }
        let depths = try fields.doubles("depths") ?? [0, 0.5, 1]
        guard !depths.isEmpty, depths.allSatisfy({ (0...1).contains($0) }) else { throw fail("'depths' must list numbers from 0 to 1") }
        let samples = try fields.integer("samples", 1...10_000) ?? 1
        let seed = try fields.integer("seed", 0...Int.max).map(UInt64.init) ?? 42
        var tasks: [SuiteTask] = []
        for (index, item) in taskList.enumerated() {
            guard let task = item as? [String: Any] else { throw fail("tasks[\(index)] is not a mapping") }
            let parsed = try SuiteTask(map: task, index: index, fail: fail)
            if tasks.contains(where: { $0.name == parsed.name }) { throw fail("task '\(parsed.name)' appears twice") }
            tasks.append(parsed)
        }
        self.init(name: try fields.string("name") ?? "suite", seed: seed, lengths: lengths, depths: depths, samples: samples, tasks: tasks)
    }
}

extension SuiteTask {
    init(map: [String: Any], index: Int, fail: @escaping (String) -> FileError) throws {
        guard let name = map["name"] as? String, !name.isEmpty else { throw fail("tasks[\(index)] has no 'name'") }
        let f = Fields(map: map, context: "task '\(name)': ", fail: fail)
        let common = ["name", "type", "tokens", "template", "answer_prefix"]
        func only(_ keys: [String]) throws {
            if let extra = map.keys.sorted().first(where: { !(common + keys).contains($0) }) {
                throw fail("task '\(name)': unknown parameter '\(extra)' (known: \((common + keys).joined(separator: ", ")))")
            }
        }
        let tokens = try f.integer("tokens", 1...4096)
        let template = try f.string("template"), answerPrefix = try f.string("answer_prefix")
        switch try f.string("type") {
        case "niah":
            try only(["haystack", "key", "value", "keys", "values", "queries", "needle"])
            var t = NeedleTask()
            if let text = try f.string("haystack") {
                guard let value = Haystack(rawValue: text) else { throw fail("task '\(name)': haystack must be repeat, essay or needle") }
                t.haystack = value
            }
            for (field, path) in [("key", \NeedleTask.key), ("value", \NeedleTask.value)] {
                if let text = try f.string(field) {
                    guard let value = NeedleType(rawValue: text) else {
                        throw fail("task '\(name)': \(field) must be \(NeedleType.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    t[keyPath: path] = value
                }
            }
            t.keys = try f.integer("keys", 1...64) ?? 1
            t.values = try f.integer("values", 1...64) ?? 1
            t.queries = try f.integer("queries", 1...64) ?? 1
            if let needle = try f.string("needle") {
                guard needle.contains("{value}") else { throw fail("task '\(name)': the needle must contain {value}") }
                t.needle = needle
            }
            t.tokens = tokens ?? t.tokens
            t.template = template ?? t.template
            t.answerPrefix = answerPrefix ?? t.answerPrefix
            guard t.template.contains("{context}") else { throw fail("task '\(name)': the template must contain {context}") }
            self.init(name: name, kind: .niah(t))
        case "vt":
            try only(["chains", "hops"])
            var t = VariableTrackingTask()
            t.chains = try f.integer("chains", 1...16) ?? 1
            t.hops = try f.integer("hops", 1...32) ?? 4
            t.tokens = tokens ?? t.tokens
            t.template = template ?? t.template
            t.answerPrefix = answerPrefix ?? t.answerPrefix
            guard t.template.contains("{context}") else { throw fail("task '\(name)': the template must contain {context}") }
            self.init(name: name, kind: .variableTracking(t))
        case "cwe":
            try only(["common", "common_frequency", "uncommon_frequency"])
            var t = CommonWordsTask()
            t.common = try f.integer("common", 1...64) ?? 10
            t.commonFrequency = try f.integer("common_frequency", 2...100) ?? 6
            t.uncommonFrequency = try f.integer("uncommon_frequency", 1...100) ?? 1
            guard t.uncommonFrequency < t.commonFrequency else { throw fail("task '\(name)': uncommon_frequency must be below common_frequency") }
            t.tokens = tokens ?? t.tokens
            t.template = template ?? t.template
            t.answerPrefix = answerPrefix ?? t.answerPrefix
            guard t.template.contains("{context}") else { throw fail("task '\(name)': the template must contain {context}") }
            self.init(name: name, kind: .commonWords(t))
        case let other:
            throw fail("task '\(name)': type must be niah, vt or cwe" + (other.map { ", got '\($0)'" } ?? ""))
        }
    }
}

/// Typed reads from a YAML mapping, each failure one line naming the field.
private struct Fields {
    var map: [String: Any]
    var context: String
    var fail: (String) -> FileError

    func string(_ key: String) throws -> String? {
        guard let value = map[key] else { return nil }
        guard let text = value as? String else { throw fail("\(context)'\(key)' must be text") }
        return text
    }

    func integer(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let value = map[key] else { return nil }
        guard let n = value as? Int, range.contains(n) else {
            throw fail("\(context)'\(key)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return n
    }

    func doubles(_ key: String) throws -> [Double]? {
        guard let value = map[key] else { return nil }
        return try ((value as? [Any]) ?? [value]).map { item in
            if let n = item as? Int { return Double(n) }
            guard let d = item as? Double else { throw fail("\(context)'\(key)' must list numbers") }
            return d
        }
    }
}
