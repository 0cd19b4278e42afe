extension EvictionMethod {
    /// Each (layer, KV head)'s token budget, layer-major, as the method's policy sets it before
    /// seeing any data (a `ratio=` budget of the whole context): nil where unbounded (`full`; `duo`, whose retrieval heads are chosen on
    /// the prompt, until then).
    public func budgets(layout: KVLayout) -> [Int?] {
        let policy = makePolicy(layout: layout)
        return (0..<layout.layerCount).flatMap { layer in
            (0..<layout.kvHeadCount).map { policy.budget(layer: layer, head: $0) }
        }
    }

    /// Bytes of state the cache keeps per entry for this method beside the entry's 4-byte
    /// position: the policy's scores or counters, and the merge count of `merge`.
    public var stateBytesPerEntry: Int {
        makePolicy(layout: Self.probeLayout).stateBytesPerEntry + (merge ? 4 : 0)
    }

    /// Whether the policy reads each decode step's attention probabilities (`s_t`), which a
    /// fused attention kernel must then emit.
    public var needsAttentionScores: Bool { makePolicy(layout: Self.probeLayout).needsScores }

    /// A one-head layout for asking a policy what does not depend on the layout.
    private static let probeLayout = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 2, groupSize: 1, capacity: 1)
}

/// Budgets written as a ratio, an entry count or bytes (KVBudget) for kvlab's own methods: each
/// becomes the method's token parameters, at parse time for a count, when the policy is made for
/// a ratio (of the prompt's tokens) or bytes (of the cache's layout).
extension EvictionMethod {
    /// The token parameters a written budget replaces, per method.
    static let sizedKeys: [String: [String]] = [
        "window": ["window"], "streaming": ["window"], "h2o": ["heavy", "recent"], "a2sf": ["heavy", "recent"],
        "tova": ["budget"], "scissorhands": ["budget"], "snapkv": ["budget"], "pyramidkv": ["budget", "min"],
        "adakv": ["budget"], "cam": ["budget"], "headkv": ["budget"], "knorm": ["budget"], "random": ["budget"], "duo": ["window"],
    ]

    /// The budget keys `method` adds to its own parameters.
    private static func addedKeys(_ method: String) -> [String] {
        let sized = sizedKeys[method] ?? []
        return KVBudget.keys.filter { !(sized.contains($0) || (method == "duo" && $0 == "ratio")) }
    }

    /// The budget `spec` writes with an added key, or its own `budget`; an error when it also
    /// writes a parameter that budget sizes.
    static func writtenBudget(_ spec: MethodSpec, _ p: ResolvedParameters) throws(MethodSpecError) -> KVBudget? {
        guard let sized = sizedKeys[spec.name] else { return nil }
        let added = addedKeys(spec.name)
        let keys = added + (sized.contains("budget") ? ["budget"] : [])
        let budgetSpec = MethodSpec(name: spec.name, parameters: spec.parameters.filter { keys.contains($0.key) })
        guard let budget = try KVBudget.given(budgetSpec, p, method: spec.name) else { return nil }
        let key = KVBudget.keys.first { budgetSpec.value($0) != nil }!
        // The method's own `budget` is one of its token parameters.
        if key == "budget", sized.contains("budget") { return budget }
        let clash = sized.filter { $0 != key && spec.value($0) != nil }
        guard clash.isEmpty else {
            throw MethodSpecError("\(spec.name): give \(key)= or \(clash.joined(separator: "/"))=, not both (\(key) sizes \(sized.joined(separator: "/")))")
        }
        return budget
    }

    /// `spec` with an entry count `n` written as the method's own token parameters.
    static func sized(_ spec: MethodSpec, _ p: ResolvedParameters, entries n: Int) throws(MethodSpecError) -> MethodSpec {
        var out = spec
        out.parameters.removeAll { $0.key == "budget" }
        let sinks = p.values["sinks"].flatMap { Int($0) } ?? 0
        if spec.name == "streaming" || spec.name == "duo" {
            guard n > sinks else { throw MethodSpecError("\(spec.name): budget=\(n) must exceed sinks=\(sinks)") }
        }
        let values: [(String, Int)] = switch spec.name {
        case "window": [("window", n)]
        case "streaming", "duo": [("window", n - sinks)]
        default: [("heavy", n / 2), ("recent", n - n / 2)]
        }
        for (key, value) in values { out.parameters.append(.init(key: key, value: String(value))) }
        return out
    }

    /// The canonical parameters without the budget keys not written, and without the token
    /// parameters a written ratio or bytes sizes.
    static func canonicalBudget(_ canonical: [MethodSpec.Parameter], method: String, written spec: MethodSpec) -> [MethodSpec.Parameter] {
        guard sizedKeys[method] != nil else { return canonical }
        let added = addedKeys(method)
        let sizing = added.contains { $0 != "budget" && spec.value($0) != nil }
        let sized = sizing ? sizedKeys[method] ?? [] : []
        return canonical.filter { !sized.contains($0.key) && (!added.contains($0.key) || spec.value($0.key) != nil) }
    }
}

extension EvictionMethod.Kind {
    /// The method with `t` entries per (layer, KV head): the window (streaming's and duo's after
    /// their sinks), H2O's heavy and recent halves (recent the larger), or the budget, never below
    /// what the method's other parameters need (SnapKV's observation + 1, Scissorhands' recent +
    /// drop + 1, a sink-based window of 1).
    func sized(_ t: Int) -> Self {
        switch self {
        case .full, .kvpress: self
        case .window: .window(window: t)
        case .streaming(let s, _): .streaming(sinks: s, window: max(1, t - s))
        case .h2o: .h2o(heavy: t / 2, recent: t - t / 2)
        case .a2sf(_, _, let alpha): .a2sf(heavy: t / 2, recent: t - t / 2, alpha: alpha)
        case .tova: .tova(budget: t)
        case .scissorhands(_, let m, let r, let k): .scissorhands(budget: max(t, r + k + 1), history: m, recent: r, drop: k)
        case .snapkv(_, let o, let p): .snapkv(budget: max(t, o + 1), observation: o, pool: p)
        case .pyramidkv(_, let o, let p, _):
            .pyramidkv(budget: max(t, o + 1), observation: o, pool: p, minimum: max(1, max(t, o + 1) / 4))
        case .adakv(_, let o, let p): .adakv(budget: max(t, o + 1), observation: o, pool: p)
        case .cam(_, let o, let start, let seed): .cam(budget: max(t, o + 1), observation: o, start: start, seed: seed)
        case .headkv(let s, _, let o, let p, let beta): .headkv(scores: s, budget: max(t, o + 1), observation: o, pool: p, beta: beta)
        case .knorm: .knorm(budget: t)
        case .random(_, let seed): .random(budget: t, seed: seed)
        case .duo(let s, _, let ratio): .duo(sinks: s, window: max(1, t - s), ratio: ratio)
        }
    }
}
