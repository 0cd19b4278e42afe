/// Which entries each (layer, KV head) keeps: the eviction methods of docs KV-METHODS.md with
/// their parameters, parsed from the compact method syntax (`h2o:heavy=64,recent=64`).
public struct EvictionMethod: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case full
        case window(window: Int)
        case streaming(sinks: Int, window: Int)
        case h2o(heavy: Int, recent: Int)
        case a2sf(heavy: Int, recent: Int, alpha: Double)
        case tova(budget: Int)
        case scissorhands(budget: Int, history: Int, recent: Int, drop: Int)
        case snapkv(budget: Int, observation: Int, pool: Int)
        case pyramidkv(budget: Int, observation: Int, pool: Int, minimum: Int)
        case adakv(budget: Int, observation: Int, pool: Int)
        /// CaM as KVCache-Factory applies it (CAMPolicy): `start` is its `start_budget_ratio`.
        case cam(budget: Int, observation: Int, start: Double, seed: Int)
        /// HeadKV as KVCache-Factory runs it: SnapKV's selection with a budget per KV head from
        /// per-query-head scores (HeadKVScores); `budget` is the mean over heads, window included.
        case headkv(scores: HeadKVScores, budget: Int, observation: Int, pool: Int, beta: Double)
        case knorm(budget: Int)
        case random(budget: Int, seed: Int)
        case duo(sinks: Int, window: Int, ratio: Double)
        /// A press of NVIDIA's kvpress with its exact semantics (`kvpress:snapkv,ratio=0.5`).
        case kvpress(KVPressMethod)
    }

    public let kind: Kind
    /// Evicted entries are merged into their most similar kept entry (CaM/D2O style).
    public let merge: Bool
    /// `think`: key channels pruned by query-weighted magnitude (ThinK); nil without.
    public let think: ThinK?
    /// `rebase`: the kept entries take contiguous RoPE positions at every step, the query the
    /// next one (StreamingLLM's positions inside the cache), instead of their token positions
    /// until the context is full.
    public let rebase: Bool
    /// `every:steps=N`: a method that acts at a prompt's end acts again every N decode steps, on
    /// the sequence so far (as when chosen between steps); nil: once.
    public let every: Int?
    /// A budget written as `ratio=` or `bytes=`: it sizes the method's token parameters when the
    /// policy is made (EvictionMethod+Budgets.swift); nil: they are as written.
    public let sizing: KVBudget?
    /// The canonical method string, every parameter spelled out.
    public let spec: MethodSpec

    public static let full = try! EvictionMethod(parsing: "full")

    /// Method names in the order the UI cycles through them.
    public static let names = schemas.names.filter { !allModifierNames.contains($0) }
    /// The methods a key cycles through: those that run without a file (not headkv's scores).
    public static let cycleNames = names.filter { $0 != "headkv" }
    /// Modifier names in canonical order: what is kept and how it is stored.
    public static let modifierNames = ["merge", "think"]
    /// Modifiers of how kept entries are numbered for RoPE, written after the others.
    public static let positionModifierNames = ["rebase"]
    /// Modifiers of when a method acts, written last.
    public static let timingModifierNames = ["every"]
    private static let allModifierNames = modifierNames + positionModifierNames + timingModifierNames

    private static let context = 1...1_048_576
    private static let schemas: SchemaTable = {
        typealias S = ParameterSchema
        let budget = S.int("budget", 128, context)
        // The budget keys a method adds to its own (KVBudget): `ratio` and `bytes`, and `budget`
        // where the method has none of its own.
        let ratio = KVBudget.entries[0], count = KVBudget.entries[1], bytes = KVBudget.entries[2]
        let list = [
            S("full", []),
            S("window", [S.int("window", 128, context), ratio, count, bytes]),
            S("streaming", [S.int("sinks", 4, 0...1024), S.int("window", 124, context), ratio, count, bytes]),
            S("h2o", [S.int("heavy", 64, 0...1_048_576), S.int("recent", 64, context), ratio, count, bytes]),
            S("a2sf", [S.int("heavy", 64, 0...1_048_576), S.int("recent", 64, context), S.real("alpha", 0.9, 0...1), ratio, count, bytes]),
            S("tova", [budget, ratio, bytes]),
            S("scissorhands", [budget, S.int("history", 32, 1...64), S.int("recent", 16, 0...1_048_576), S.int("drop", 32, 1...1_048_576), ratio, bytes]),
            S("snapkv", [budget, S.int("observation", 16, 1...1024), S.int("pool", 7, 1...63), ratio, bytes]),
            S("pyramidkv", [budget, S.int("observation", 16, 1...1024), S.int("pool", 7, 1...63), S.int("min", 0, 0...1_048_576), ratio, bytes]),
            S("adakv", [budget, S.int("observation", 16, 1...1024), S.int("pool", 7, 1...63), ratio, bytes]),
            // KVCache-Factory's CAM defaults: window_size 32, start_budget_ratio 0.1.
            S("cam", [budget, S.int("observation", 32, 1...1024), S.real("start", 0.1, 0...1), S.int("seed", 0, 0...Int(Int32.max)), ratio, bytes]),
            // KVCache-Factory's run_longbench.py: window 8, max-pooling kernel 7, head_beta 1.01.
            S("headkv", [S.text("scores"), budget, S.int("observation", 8, 1...1024), S.int("pool", 7, 1...63),
                         S.real("beta", 1.01, 1...1000), ratio, bytes]),
            S("knorm", [budget, ratio, bytes]),
            S("random", [budget, S.int("seed", 0, 0...Int(Int32.max)), ratio, bytes]),
            // duo's own `ratio` is its share of retrieval heads.
            S("duo", [S.int("sinks", 4, 0...1024), S.int("window", 124, context), S.real("ratio", 0.25, 0...1), count, bytes]),
            S("merge", []),
            S("think", [S.real("lambda", 0.5, 0...1), S.int("observation", 16, 1...ThinK.maxObservation)]),
            S("rebase", []),
            S("every", [S.int("steps", 64, 1...1_048_576)]),
        ]
        return SchemaTable(list)
    }()

    public init(parsing text: String) throws(MethodSpecError) {
        try self.init(MethodSpec(parsing: text))
    }

    public init(_ spec: MethodSpec) throws(MethodSpecError) {
        if let thinK = try KVPressMethod.thinKMethod(spec) {
            self = try EvictionMethod(thinK)
            return
        }
        let press = spec.name == KVPressMethod.methodName ? try KVPressMethod(spec) : nil
        guard !Self.allModifierNames.contains(spec.name), let schema = press != nil ? ParameterSchema(spec.name, []) : Self.schemas[spec.name] else {
            throw MethodSpecError("unknown eviction method '\(spec.name)' (\(Self.names.joined(separator: ", ")))")
        }
        let p = try schema.resolve(press != nil ? MethodSpec(name: spec.name) : spec)
        let written = try Self.writtenBudget(spec, p)
        if case .entries(let n)? = written, !(Self.sizedKeys[spec.name] ?? []).contains("budget") {
            self = try EvictionMethod(Self.sized(spec, p, entries: n))
            return
        }
        if case .entries? = written { sizing = nil } else { sizing = written }
        var canonical = press?.canonical ?? p.canonical
        switch spec.name {
        case KVPressMethod.methodName: kind = .kvpress(press!)
        case "window": kind = .window(window: p.int("window"))
        case "streaming": kind = .streaming(sinks: p.int("sinks"), window: p.int("window"))
        case "h2o": kind = .h2o(heavy: p.int("heavy"), recent: p.int("recent"))
        case "a2sf": kind = .a2sf(heavy: p.int("heavy"), recent: p.int("recent"), alpha: p.real("alpha"))
        case "tova": kind = .tova(budget: p.int("budget"))
        case "scissorhands":
            kind = .scissorhands(budget: p.int("budget"), history: p.int("history"), recent: p.int("recent"), drop: p.int("drop"))
            guard sizing != nil || p.int("drop") + p.int("recent") < p.int("budget") else {
                throw MethodSpecError("scissorhands: drop + recent must be below budget")
            }
        case "cam":
            guard sizing != nil || p.int("observation") < p.int("budget") else { throw MethodSpecError("cam: observation must be below budget") }
            kind = .cam(budget: p.int("budget"), observation: p.int("observation"), start: p.real("start"), seed: p.int("seed"))
        case "headkv":
            guard sizing != nil || p.int("observation") < p.int("budget") else { throw MethodSpecError("headkv: observation must be below budget") }
            guard p.int("pool") % 2 == 1 else { throw MethodSpecError("headkv: pool must be odd (same padding)") }
            kind = .headkv(scores: try HeadKVScores(path: p.string("scores")), budget: p.int("budget"), observation: p.int("observation"),
                           pool: p.int("pool"), beta: p.real("beta"))
        case "snapkv", "pyramidkv", "adakv":
            let budget = p.int("budget"), observation = p.int("observation")
            guard sizing != nil || observation < budget else { throw MethodSpecError("\(spec.name): observation must be below budget") }
            guard p.int("pool") % 2 == 1 else { throw MethodSpecError("\(spec.name): pool must be odd (same padding)") }
            if spec.name == "snapkv" {
                kind = .snapkv(budget: budget, observation: observation, pool: p.int("pool"))
            } else if spec.name == "adakv" {
                kind = .adakv(budget: budget, observation: observation, pool: p.int("pool"))
            } else {
                // m = b/4 by default; budgets run from 2b − m down to m, so m ≤ b.
                let minimum = p.int("min") == 0 ? max(1, budget / 4) : p.int("min")
                guard sizing != nil || minimum <= budget else { throw MethodSpecError("pyramidkv: min must not exceed budget") }
                canonical[canonical.firstIndex { $0.key == "min" }!].value = String(minimum)
                kind = .pyramidkv(budget: budget, observation: observation, pool: p.int("pool"), minimum: minimum)
            }
        case "knorm": kind = .knorm(budget: p.int("budget"))
        case "random": kind = .random(budget: p.int("budget"), seed: p.int("seed"))
        case "duo": kind = .duo(sinks: p.int("sinks"), window: p.int("window"), ratio: p.real("ratio"))
        default: kind = .full
        }
        canonical = Self.canonicalBudget(canonical, method: spec.name, written: spec)
        // The modifiers, each at most once, in canonical order.
        var options: [String: ResolvedParameters] = [:]
        for modifier in spec.modifiers {
            guard Self.allModifierNames.contains(modifier.name) else {
                throw MethodSpecError("unknown modifier '\(modifier.name)' for \(spec.name) (\(Self.allModifierNames.joined(separator: ", ")))")
            }
            guard options[modifier.name] == nil else { throw MethodSpecError("\(modifier.name) is given twice") }
            options[modifier.name] = try Self.schemas[modifier.name]!.resolve(modifier)
        }
        merge = options["merge"] != nil
        if merge, kind == .full { throw MethodSpecError("merge needs an eviction method (full evicts nothing)") }
        if let p = options["think"] {
            guard p.real("lambda") > 0, p.real("lambda") < 1 else {
                throw MethodSpecError("think: lambda=\(p.string("lambda")) must be above 0 and below 1")
            }
            think = ThinK(lambda: p.real("lambda"), observation: p.int("observation"))
        } else {
            think = nil
        }
        rebase = options["rebase"] != nil
        every = options["every"].map { $0.int("steps") }
        if rebase, think != nil { throw MethodSpecError("rebase re-rotates keys, which think's pruned channels cannot be; use one of them") }
        if think != nil, case .kvpress(let press) = kind, press.rerotatesKeys {
            throw MethodSpecError("kvpress:\(press.press.rawValue) re-rotates keys, which think's pruned channels cannot be; use one of them")
        }
        let modifiers = Self.allModifierNames.compactMap { name in options[name].map { MethodSpec(name: name, parameters: $0.canonical) } }
        self.spec = MethodSpec(name: spec.name, parameters: canonical, modifiers: modifiers)
        if every != nil, !kindActsAtPromptEnd {
            throw MethodSpecError("every re-runs a method that acts at a prompt's end; \(spec.name) already acts during decode")
        }
    }

    /// Checks that the method fits a KV quantization: `think` prunes channels of keys as attention
    /// scores them, which `prerope` (keys stored before RoPE mixes their channel pairs) and
    /// `rotate` (keys stored Hadamard-transformed) do not store.
    /// `rebase` with keys stored after RoPE re-rotates them at every step, which would re-quantize
    /// quantized keys each time: those need `prerope`.
    public func check(quant: KVQuantMethod) throws(MethodSpecError) {
        if rebase, !quant.preRoPE, quant.key != .fp32 {
            throw MethodSpecError("rebase re-rotates keys stored after RoPE at every step; quantized keys need \(quant.spec.name)+prerope")
        }
        guard think != nil, quant.preRoPE || quant.rotate else { return }
        throw MethodSpecError("think prunes key channels as attention scores them; it does not combine with \(quant.preRoPE ? "prerope" : "rotate")")
    }

    public var description: String { spec.description }

    /// Whether the method compresses only at the end of a prompt (or once, when chosen between
    /// decode steps): a sequence run without a prompt keeps every entry under it.
    public var actsOnlyAtPromptEnd: Bool { every == nil && kindActsAtPromptEnd }
    /// Whether the method scores a prompt by running more tokens after it (kvpress's KVzip), which
    /// only a single-sequence engine with the model's tokenizer does.
    public var scoresWithForks: Bool {
        if case .kvpress(let press) = kind { return press.press == .kvzip }
        return false
    }

    private var kindActsAtPromptEnd: Bool {
        switch kind {
        case .snapkv, .pyramidkv, .adakv, .cam, .headkv, .duo: true
        case .kvpress(let press): press.actsOnlyAtPromptEnd
        default: false
        }
    }

    /// HeadKV's policy: SnapKV's selection with a budget per KV head (HeadKVScores.capacities of
    /// B = budget − observation, plus the window), nothing evicted from a prompt below B entries.
    /// A layout the file does not fit (`check(layout:)` refuses it for a run; a probe of the
    /// policy's kind may ask) gets the mean budget everywhere.
    private static func headKVPolicy(_ scores: HeadKVScores, budget b: Int, observation o: Int, pool: Int, beta: Double, layout: KVLayout) -> SnapKVPolicy {
        let fits = scores.layers == layout.layerCount && scores.heads == layout.kvHeadCount * layout.groupSize
        let past = fits ? scores.capacities(capacity: b - o, beta: beta, groupSize: layout.groupSize)
            : Array(repeating: b - o, count: layout.layerCount * layout.kvHeadCount)
        return SnapKVPolicy(budgets: Array(repeating: b, count: layout.layerCount), observation: o, pool: pool, pooledAcrossHeads: false,
                            headBudgets: past.map { $0 + o }, minimumPrompt: b - o)
    }

    /// Builds the method's own stateful policy for a cache of `layout` (`makePolicy` adds local
    /// layers' windows), its token parameters sized by `sizing` for a prompt of `promptLength`.
    func makeMethodPolicy(layout: KVLayout, promptLength: Int?) -> any EvictionPolicy {
        let kind = sizing.map { self.kind.sized($0.tokens(length: promptLength ?? layout.capacity, layout: layout)) } ?? self.kind
        return switch kind {
        case .full: FullPolicy()
        case .window(let w): StreamingPolicy(sinks: 0, window: w)
        case .streaming(let s, let w): StreamingPolicy(sinks: s, window: w)
        case .h2o(let h, let r): HeavyHitterPolicy(heavy: h, recent: r, alpha: 1)
        case .a2sf(let h, let r, let alpha): HeavyHitterPolicy(heavy: h, recent: r, alpha: Float(alpha))
        case .tova(let b): TOVAPolicy(budget: b)
        case .scissorhands(let b, let m, let r, let k): ScissorhandsPolicy(budget: b, history: m, recent: r, drop: k)
        case .snapkv(let b, let o, let p): SnapKVPolicy(budgets: Array(repeating: b, count: layout.layerCount), observation: o, pool: p, pooledAcrossHeads: false)
        case .pyramidkv(let b, let o, let p, let m):
            SnapKVPolicy(budgets: SnapKVPolicy.pyramid(mean: b, minimum: m, layers: layout.layerCount), observation: o, pool: p, pooledAcrossHeads: false)
        case .adakv(let b, let o, let p): SnapKVPolicy(budgets: Array(repeating: b, count: layout.layerCount), observation: o, pool: p, pooledAcrossHeads: true)
        case .cam(let b, let o, let start, let seed): CAMPolicy(budget: b, observation: o, start: start, seed: UInt64(seed), layout: layout)
        case .headkv(let scores, let b, let o, let p, let beta): Self.headKVPolicy(scores, budget: b, observation: o, pool: p, beta: beta, layout: layout)
        case .knorm(let b): KeyNormPolicy(budget: b)
        case .random(let b, let seed): RandomPolicy(budget: b, seed: UInt64(seed))
        case .duo(let s, let w, let ratio): DuoPolicy(sinks: s, window: w, ratio: ratio, layout: layout)
        case .kvpress(let press): press.makePolicy(layout: layout)
        }
    }
}
