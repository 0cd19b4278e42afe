import Foundation
import KVLabFoundation
import KVLabHardware
import KVLabMethods
import Yams

/// The axes of a sweep. Every list is an axis; the cells are their product, with `{budget}`
/// (or `{budget/N}`, `{budget*N}`) in a method string taking each of `budgets`, `{bits}` each of
/// `bits` and `{ratio}` each of `ratios` (`snapkv:ratio={ratio}`). A product that yields the same configuration twice keeps one cell.
public struct SweepGrid: Sendable, Equatable {
    public var models: [String] = [SweepCell.embeddedModel]
    public var policies: [String] = ["full"]
    public var kv: [String] = ["fp32"]
    public var sparse: [String] = ["dense"]
    public var attention: [String] = ["naive"]
    public var budgets: [Int] = []
    public var bits: [Int] = []
    /// Compression ratios for `{ratio}` (the share of a prompt's entries removed).
    public var ratios: [Double] = []
    public var texts: [String] = []
    public var probes: [String] = ["perplexity"]
    /// Tokens per chunk (nil: the model's context).
    public var tokens: [Int?] = [nil]
    public var chunks: [Int] = [1]
    public var prefill: [Int] = [0]
    public var threads = 1
    public var weights: String?
    /// `DEVICE@TARGET` pairs each cell is projected onto.
    public var projections: [String] = []
    public var projectContext = HardwareCatalog.defaultContext

    public init() {}

    /// The cells, in axis order (models outermost, methods innermost), without repeats.
    public func cells() throws(SweepError) -> [SweepCell] {
        guard !texts.isEmpty else { throw SweepError("the grid names no text (--text or 'text:' in the grid file)") }
        for (name, list) in [("model", models), ("policy", policies), ("kv", kv), ("sparse", sparse), ("attention", attention),
                             ("probe", probes)] where list.isEmpty {
            throw SweepError("the grid's \(name) list is empty")
        }
        for pair in projections where !pair.contains("@") {
            throw SweepError("projection '\(pair)' is not DEVICE@TARGET (e.g. h100-sxm@llama-3-8b)")
        }
        guard (1...16_777_216).contains(projectContext) else { throw SweepError("project-context must be between 1 and 16777216") }
        guard (1...256).contains(threads) else { throw SweepError("threads must be between 1 and 256") }
        for value in chunks where !(1...1_000_000).contains(value) { throw SweepError("chunks must be between 1 and 1000000, got \(value)") }
        for value in prefill where !(0...1_000_000).contains(value) { throw SweepError("prefill must be between 0 and 1000000, got \(value)") }
        for case let value? in tokens where !(2...1_000_000).contains(value) {
            throw SweepError("tokens must be between 2 and 1000000, got \(value)")
        }
        // Absolute paths: the same files are the same cells from any directory, and Slurm tasks find them.
        func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
        let probeNames = try probes.map { text throws(SweepError) in
            let probe: SweepProbe
            do { probe = try SweepProbe(parsing: text) } catch { throw SweepError("\(error)") }
            if case .suite(let name) = probe, SuiteSpec.builtIn[name] == nil { return SweepProbe.suite(absolute(name)).description }
            return probe.description
        }
        let kernels = try attention.map { text throws(SweepError) in
            do { return try AttentionKernel(parsing: text).description } catch { throw SweepError("\(error)") }
        }
        var methods: [(policy: String, sparse: String, kv: String)] = []
        for policy in policies {
            for sparseText in sparse {
                for kvText in kv {
                    let templates = [policy, sparseText, kvText]
                    let budgetValues: [Int?] = templates.contains { $0.contains("{budget") } ? budgets.map { $0 } : [nil]
                    let bitValues: [Int?] = templates.contains { $0.contains("{bits") } ? bits.map { $0 } : [nil]
                    let ratioValues: [Double?] = templates.contains { $0.contains("{ratio") } ? ratios.map { $0 } : [nil]
                    if budgetValues.isEmpty { throw SweepError("'\(templates.first { $0.contains("{budget") }!)' uses {budget}: give --budget") }
                    if bitValues.isEmpty { throw SweepError("'\(templates.first { $0.contains("{bits") }!)' uses {bits}: give --bits") }
                    if ratioValues.isEmpty { throw SweepError("'\(templates.first { $0.contains("{ratio") }!)' uses {ratio}: give --ratio") }
                    for budget in budgetValues {
                        for bit in bitValues {
                            for ratio in ratioValues {
                                let values: [String: Double?] = ["budget": budget.map(Double.init), "bits": bit.map(Double.init), "ratio": ratio]
                                methods.append(try Self.canonical(policy: Self.substitute(policy, values),
                                                                  sparse: Self.substitute(sparseText, values),
                                                                  kv: Self.substitute(kvText, values)))
                            }
                        }
                    }
                }
            }
        }
        var seen = Set<SweepCell>(), result: [SweepCell] = []
        for model in models.map({ $0 == SweepCell.embeddedModel ? $0 : absolute($0) }) {
            for text in texts.map(absolute) {
                for probe in probeNames {
                    for tokenCount in tokens {
                        for chunkCount in chunks {
                            for prefillCount in prefill {
                                for kernel in kernels {
                                    for method in methods {
                                        let perplexity = probe == "perplexity"
                                        // Chunks and prefill only shape perplexity cells: a probe is one prompt.
                                        let cell = SweepCell(model: model, weights: weights, threads: threads, text: text, probe: probe,
                                                             tokens: tokenCount, chunks: perplexity ? chunkCount : 1,
                                                             prefill: perplexity ? prefillCount : 0, policy: method.policy,
                                                             sparse: method.sparse, kv: method.kv, attention: kernel,
                                                             projections: projections, projectContext: projectContext)
                                        if seen.insert(cell).inserted { result.append(cell) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return result
    }

    /// The method strings parsed, checked against each other, and written canonically.
    static func canonical(policy: String, sparse: String, kv: String) throws(SweepError) -> (policy: String, sparse: String, kv: String) {
        do {
            let eviction = try EvictionMethod(parsing: policy)
            let sparseMethod = try SparseMethod(parsing: sparse)
            let quant = try KVQuantMethod(parsing: kv)
            try eviction.check(quant: quant)
            return (eviction.description, sparseMethod.description, quant.description)
        } catch {
            throw SweepError("'\(policy)' / '\(sparse)' / '\(kv)': \(error)")
        }
    }

    /// `text` with each `{name}`, `{name/N}` or `{name*N}` replaced from `values` (a nil value
    /// leaves the text as it is: that axis is not swept for it). Whole-number axes divide as whole
    /// numbers (`{budget/3}` of 100 is 33); `ratio` divides exactly.
    static func substitute(_ text: String, _ values: [String: Double?]) throws(SweepError) -> String {
        var result = "", rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else { throw SweepError("'\(text)': '{' without '}'") }
            let expression = rest[rest.index(after: open)..<close]
            let operatorIndex = expression.firstIndex { $0 == "/" || $0 == "*" }
            let name = String(expression[..<(operatorIndex ?? expression.endIndex)])
            guard let entry = values[name] else { throw SweepError("'\(text)': {\(expression)} names no axis (budget, bits or ratio)") }
            guard var value = entry else { throw SweepError("'\(text)': no value for {\(name)}") }
            if let operatorIndex {
                guard let operand = Int(expression[expression.index(after: operatorIndex)...]), operand > 0 else {
                    throw SweepError("'\(text)': {\(expression)} needs a positive whole number after '\(expression[operatorIndex])'")
                }
                let quotient = value / Double(operand)
                value = expression[operatorIndex] == "*" ? value * Double(operand) : name == "ratio" ? quotient : quotient.rounded(.towardZero)
            }
            result += ParameterSchema.format(value)
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }
}

/// A one-line error of a sweep: a grid that cannot be expanded, a store that cannot be read.
public struct SweepError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension SweepGrid {
    /// The grid of a YAML file: a mapping of the `kvlab sweep run` option names to a value or a
    /// list (`model`, `policy`, `kv`, `sparse`, `attention`, `budget`, `bits`, `text`, `probe`,
    /// `tokens`, `chunks`, `prefill`, `threads`, `weights`, `project`, `project-context`).
    /// Relative paths of models and texts are taken from the file's directory.
    public init(yamlFile path: String) throws {
        let content = try InputFile.readText(path)
        let document: Any?
        do { document = try Yams.load(yaml: content) } catch {
            throw FileError(path: path, problem: "is not YAML (\(String(describing: error).split(separator: "\n").first ?? ""))")
        }
        guard let mapping = document as? [String: Any] else { throw FileError(path: path, problem: "is not a YAML mapping of option names") }
        self.init()
        let base = (path as NSString).deletingLastPathComponent
        func resolve(_ file: String) -> String {
            file == SweepCell.embeddedModel || file.hasPrefix("/") || base.isEmpty ? file : base + "/" + file
        }
        func strings(_ key: String) throws -> [String] {
            let value = mapping[key]!
            let items = (value as? [Any]) ?? [value]
            return try items.map { item in
                if let text = item as? String { return text }
                if item is Int || item is Double || item is Bool { return "\(item)" }
                throw FileError(path: path, problem: "'\(key)' holds something that is not a value or a list of values")
            }
        }
        func integers(_ key: String) throws -> [Int] {
            try strings(key).map { text in
                guard let value = Int(text) else { throw FileError(path: path, problem: "'\(key)': '\(text)' is not a whole number") }
                return value
            }
        }
        func integer(_ key: String) throws -> Int {
            let values = try integers(key)
            guard values.count == 1 else { throw FileError(path: path, problem: "'\(key)' takes one number") }
            return values[0]
        }
        for key in mapping.keys.sorted() {
            switch key {
            case "model": models = try strings(key).map(resolve)
            case "policy": policies = try strings(key)
            case "kv": kv = try strings(key)
            case "sparse": sparse = try strings(key)
            case "attention": attention = try strings(key)
            case "budget": budgets = try integers(key)
            case "bits": bits = try integers(key)
            case "ratio":
                ratios = try strings(key).map { text in
                    guard let value = Double(text), value.isFinite else { throw FileError(path: path, problem: "'ratio': '\(text)' is not a number") }
                    return value
                }
            case "text": texts = try strings(key).map(resolve)
            case "probe":
                probes = try strings(key).map { probe in
                    let prefix = SweepProbe.suitePrefix, name = String(probe.dropFirst(prefix.count))
                    return probe.hasPrefix(prefix) && SuiteSpec.builtIn[name] == nil ? prefix + resolve(name) : probe
                }
            case "tokens": tokens = try integers(key)
            case "chunks": chunks = try integers(key)
            case "prefill": prefill = try integers(key)
            case "threads": threads = try integer(key)
            case "weights":
                let values = try strings(key)
                guard values.count == 1 else { throw FileError(path: path, problem: "'weights' takes one value") }
                weights = values[0]
            case "project": projections = try strings(key)
            case "project-context": projectContext = try integer(key)
            default:
                throw FileError(path: path, problem: "unknown key '\(key)' (expected \(Self.fileKeys.joined(separator: ", ")))")
            }
        }
    }

    static let fileKeys = ["model", "policy", "kv", "sparse", "attention", "budget", "bits", "ratio", "text", "probe", "tokens", "chunks",
                           "prefill", "threads", "weights", "project", "project-context"]
}
