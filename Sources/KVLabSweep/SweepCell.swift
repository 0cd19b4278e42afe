import Foundation
import Crypto
import KVLabFoundation
import KVLabMethods
import KVLabRun

/// One configuration of a sweep: everything `kvlab eval` needs to compute it, spelled
/// canonically (method strings with every parameter), so equal configurations hash equally.
public struct SweepCell: Codable, Hashable, Sendable {
    /// A model file, or `embedded` for kvlab's embedded model.
    public var model: String
    /// Weight storage (`f32`, `f16`, `q8_0`, …), nil as in the file.
    public var weights: String?
    public var threads: Int
    /// The text file evaluated (perplexity) or used as filler (probes).
    public var text: String
    /// `perplexity`, `needle:depth=D,seed=S`, `two-question` or `suite:NAME` (a built-in suite or a suite file's absolute path).
    public var probe: String
    /// Tokens per chunk, BOS included (nil: the model's context).
    public var tokens: Int?
    /// Chunks of a perplexity cell.
    public var chunks: Int
    /// Tokens of each chunk run as one prompt first (perplexity cells).
    public var prefill: Int
    public var policy: String
    public var sparse: String
    public var kv: String
    public var attention: String
    /// Projections as `DEVICE@TARGET`.
    public var projections: [String]
    /// The context of the projected decode step.
    public var projectContext: Int

    public static let embeddedModel = "embedded"

    public init(model: String, weights: String?, threads: Int, text: String, probe: String, tokens: Int?, chunks: Int, prefill: Int,
                policy: String, sparse: String, kv: String, attention: String, projections: [String], projectContext: Int) {
        self.model = model
        self.weights = weights
        self.threads = threads
        self.text = text
        self.probe = probe
        self.tokens = tokens
        self.chunks = chunks
        self.prefill = prefill
        self.policy = policy
        self.sparse = sparse
        self.kv = kv
        self.attention = attention
        self.projections = projections
        self.projectContext = projectContext
    }

    /// The first 16 hex digits of the SHA-256 of the cell's JSON (keys sorted): its name in the store.
    public var id: String {
        let data = (try? JSONDocument.encoder().encode(self)) ?? Data()
        var hash = SHA256()
        hash.update(data: data)
        return String(hash.finalizeHex().prefix(16))
    }

    /// The methods as `eval` labels them (`StreamingEvaluator.label`), with the attention kernel when not naive.
    public var label: String { Self.label(policy: policy, sparse: sparse, kv: kv, attention: attention) }

    /// The label of a configuration given by its canonical method strings (the workbench finds
    /// its live settings in a store by it).
    public static func label(policy: String, sparse: String, kv: String, attention: String) -> String {
        ([policy] + (sparse == "dense" ? [] : [sparse]) + (kv == "fp32" ? [] : [kv]) + (attention == "naive" ? [] : [attention]))
            .joined(separator: " ")
    }

    /// The method family a plot draws as one series: the names of the methods in use and of the
    /// eviction method's modifiers, e.g. `h2o`, `kivi`, `snapkv+quest`, `think` (`full+think`),
    /// `snapkv+think` (`full` for the full fp32 cache).
    public var family: String {
        func name(_ text: String) -> String { String(text.prefix { $0 != ":" && $0 != "+" }) }
        // Modifiers follow the method as `+name:…` (canonical strings spell every parameter).
        let modifiers = policy.split(separator: "+").dropFirst().map { name(String($0)) }
        let base = name(policy)
        let parts = [base == "full" ? nil : base] + modifiers + [sparse == "dense" ? nil : name(sparse), kv == "fp32" ? nil : name(kv)]
        let names = parts.compactMap { $0 }
        return names.isEmpty ? "full" : names.joined(separator: "+")
    }

    /// The probe's kind: `perplexity`, `needle`, `two-question`, or the whole `suite:NAME` (different suites are not averaged together).
    public var probeKind: String { probe.hasPrefix(SweepProbe.suitePrefix) ? probe : String(probe.prefix { $0 != ":" }) }
}

/// A probe as a grid names it.
public enum SweepProbe: Sendable, Equatable {
    case perplexity
    case probe(ProbeKind)
    /// A long-context suite (`SuiteSpec.load`): a built-in name or a suite file.
    case suite(String)

    public static let suitePrefix = "suite:"

    /// Parses `perplexity`, `needle[:depth=D][,seed=S]`, `two-question` or `suite:NAME|FILE`.
    public init(parsing text: String) throws(MethodSpecError) {
        if text.hasPrefix(Self.suitePrefix) {
            let name = String(text.dropFirst(Self.suitePrefix.count))
            guard !name.isEmpty else { throw MethodSpecError("probe suite: give a suite, e.g. suite:ruler or suite:FILE.yaml") }
            self = .suite(name)
            return
        }
        let spec = try MethodSpec(parsing: text)
        guard spec.modifiers.isEmpty else { throw MethodSpecError("probe: '\(text)' has a '+'") }
        func only(_ keys: [String]) throws(MethodSpecError) {
            if let extra = spec.parameters.first(where: { !keys.contains($0.key) }) {
                throw MethodSpecError("probe \(spec.name): unknown parameter \(extra.key)")
            }
        }
        switch spec.name {
        case "perplexity", "ppl":
            try only([])
            self = .perplexity
        case "needle":
            try only(["depth", "seed"])
            let depth = spec.value("depth").map { Double($0) } ?? 0.5
            let seed = spec.value("seed").map { UInt64($0) } ?? 1
            guard let depth, (0...1).contains(depth) else { throw MethodSpecError("probe needle: depth must be a number from 0 to 1") }
            guard let seed else { throw MethodSpecError("probe needle: seed must be a whole number") }
            self = .probe(.needle(depth: depth, seed: seed))
        case "two-question":
            try only([])
            self = .probe(.twoQuestion(questionA: ProbeKind.defaultQuestionA, questionB: ProbeKind.defaultQuestionB, answerB: nil))
        default:
            throw MethodSpecError("probe: '\(spec.name)' is not perplexity, needle, two-question or suite:NAME")
        }
    }

    /// The canonical spelling (every parameter of a needle written).
    public var description: String {
        switch self {
        case .perplexity: "perplexity"
        case .probe(.needle(let depth, let seed)): "needle:depth=\(depth),seed=\(seed)"
        case .probe(.twoQuestion): "two-question"
        case .suite(let name): Self.suitePrefix + name
        }
    }
}
