/// `kvpress:<press>,ratio=R,...`: a press of NVIDIA's kvpress (0.5.5) with kvpress's exact
/// semantics and parameter names, so a result can be quoted next to a kvpress one. Each press
/// acts once, at the end of a prompt (kvpress compresses the prefill only), and keeps exactly
/// kvpress's entries (`scripts/kvpress_check.py` checks it against kvpress itself). Where kvlab's
/// own method of the same paper differs, docs KV-METHODS.md lists how.
///
/// The budget is kvpress's `compression_ratio` (`ratio`, the share of the prompt's entries
/// removed), or an entry count per (layer, KV head) (`budget`), or bytes of fp32 keys and values
/// over the whole cache (`bytes`), which become an entry count per (layer, KV head).
public struct KVPressMethod: Sendable, Hashable {
    public enum Press: String, Sendable, Hashable, CaseIterable {
        case snapkv, pyramidkv, streamingllm, tova, knorm, adakv, keydiff, observedattention, chunkkv, decoding
        // Scorer presses: KVPressMethod+Scorers.swift.
        case expectedattention, lagkv, leveragescore, cur, noncausalattn, compactor, criticalkv, criticaladakv

        // kvpress's wrapper, composition and budget presses (KVPressWrappers.swift).
        case chunk, block, perlayer, keyrerotation, composed, prefilldecoding, compressionratiodecoding, finch, simlayerkv, lukv,
             entropygatedchunkkv, dms
        /// Scores by a second pass that asks the model to repeat the prompt (KVzipPolicy.swift).
        case kvzip

        /// Presses that wrap another's scores (`scorer=`).
        var wraps: Bool {
            [.adakv, .chunkkv, .decoding, .criticalkv, .criticaladakv].contains(self) || wrapperScorers != nil
        }
        /// The presses this one may wrap, the first by default. During decode only those that
        /// score entries by their keys alone: kvpress's window scorers would read the attention of
        /// the step's single query, and its StreamingLLM ranks by cache index, which after a first
        /// compression is top-k order, not position order. ExpectedAttention reads the decode
        /// steps' queries and each entry alone (its sinks are cache rows in kvpress: see README).
        /// CriticalKV (and CriticalAdaKV) adds epsilon to the scores, so it wraps only scorers whose scores are kvpress's
        /// own (kvlab's snapkv, tova and observedattention sum what kvpress averages) and whose
        /// always-kept entries kvpress pads with the layer's maximum + 1, if any.
        var scorers: [Press] {
            if let wrapperScorers { return wrapperScorers }
            let scorers: [Press] = switch self {
            case .decoding: [.knorm, .keydiff, .expectedattention]
            case .criticalkv, .criticaladakv: [.expectedattention, .streamingllm, .knorm, .keydiff, .lagkv, .leveragescore, .cur, .noncausalattn]
            default: [.snapkv, .streamingllm, .tova, .knorm, .keydiff, .observedattention,
                      .expectedattention, .lagkv, .leveragescore, .cur, .noncausalattn, .compactor]
            }
            return scorers
        }
    }

    public let press: Press
    /// The press whose scores `adakv` and `chunkkv` select by; nil for the others.
    public let scorer: Press?
    public let budget: KVBudget
    /// `window_size`: the last prompt queries whose attention scores (snapkv, pyramidkv, adakv).
    public let windowSize: Int
    /// `kernel_size`: the average-pooling kernel over scores (odd; snapkv, pyramidkv, adakv).
    public let kernelSize: Int
    /// `beta`: pyramidkv's ratio of its largest to its smallest layer budget, roughly.
    public let beta: Int
    /// `n_sink`: streamingllm's first positions always kept.
    public let nSink: Int
    /// `alpha_safeguard`: adakv's (and criticaladakv's) share of each head's budget kept by the head's own ranking.
    public let alphaSafeguard: Double
    /// `chunk_length`: chunkkv's chunk of positions kept or dropped together.
    public let chunkLength: Int
    /// DecodingPress's `compression_interval` and `target_size`; nil for the other presses.
    public let decoding: KVPressDecoding?
    /// The scorer presses' parameters (KVPressMethod+Scorers.swift).
    let scorerOptions: KVPressScorerOptions
    /// The wrapper presses' own parameters (KVPressWrappers.swift); nil for the others.
    let wrapper: KVPressWrapper?
    /// The parameters as written back in the canonical method string (press first).
    let canonical: [MethodSpec.Parameter]

    public static let methodName = "kvpress"
    public static let pressKey = "press"

    private static let schemas: [Press: [ParameterSchema.Entry]] = {
        typealias S = ParameterSchema
        let window = S.int("window_size", 64, 1...1024), kernel = S.int("kernel_size", 5, 1...63)
        return [
            .snapkv: [window, kernel],
            .pyramidkv: [window, kernel, S.int("beta", 20, 1...1_000_000)],
            .streamingllm: [S.int("n_sink", 4, 0...1024)],
            .tova: [],
            .knorm: [],
            .adakv: [S.real("alpha_safeguard", 0.2, 0...1)],
            .keydiff: [],
            .observedattention: [],
            .chunkkv: [S.int("chunk_length", 20, 1...1_048_576)],
            .decoding: [S.int("compression_interval", 512, 1...1_048_576), S.int("target_size", 2048, 1...1_048_576)],
            .kvzip: [S.int("n_sink", 4, 0...1024), S.int("chunk_size", 2048, 1...1_048_576), S.choice("layerwise", "false", ["true", "false"])],
        ].merging(wrapperSchemas) { a, _ in a }
    }()

    init(_ spec: MethodSpec) throws(MethodSpecError) {
        let names = (Press.allCases.map(\.rawValue) + [Self.thinkPress]).joined(separator: ", ")
        guard let name = spec.value(Self.pressKey) else { throw MethodSpecError("kvpress: name a press first, e.g. kvpress:snapkv,ratio=0.5 (\(names))") }
        guard let press = Press(rawValue: name) else { throw MethodSpecError("kvpress: unknown press '\(name)' (\(names))") }
        let given = spec.parameters.filter { $0.key != Self.pressKey }
        // DecodingPress's budget is its target_size.
        var entries = Self.schema(press, given: spec) + (press == .decoding || !press.takesBudget ? [] : KVBudget.entries)
        if press.wraps {
            let inner = press.scorers.map(\.rawValue)
            let scorerName = spec.value("scorer") ?? inner[0]
            guard let scorer = Press(rawValue: scorerName), press.scorers.contains(scorer) else {
                throw MethodSpecError("kvpress:\(name): scorer=\(scorerName) is not one of \(inner.joined(separator: ", "))")
            }
            // A wrapper's own parameter (CriticalKV's epsilon) hides the scorer's of the same name.
            let own = Set(entries.map(\.key))
            entries = [ParameterSchema.choice("scorer", inner[0], inner)] + Self.schema(scorer, given: spec).filter { !own.contains($0.key) } + entries
            self.scorer = scorer
            if let second = press.secondScorerKey {
                let choices = Press.keyScorers.map(\.rawValue)
                entries.append(ParameterSchema.choice(second, choices[0], choices))
            }
        } else {
            scorer = nil
        }
        let p = try ParameterSchema("kvpress:\(name)", entries).resolve(MethodSpec(name: spec.name, parameters: given))
        let has = { (key: String) in p.values[key] != nil }
        // The budget written, else kvpress's default ratio, where the press takes one.
        let written: KVBudget? = has("budget") ? try KVBudget.given(spec, p, method: "kvpress:\(name)") ?? .ratio(p.real("ratio")) : nil
        self.press = press
        if press == .decoding {
            budget = .entries(p.int("target_size"))
            decoding = KVPressDecoding(interval: p.int("compression_interval"), targetSize: p.int("target_size"))
        } else if press.isWrapper {
            (budget, decoding) = Self.wrapperBudget(press, p, given: written)
        } else {
            budget = written!
            decoding = nil
        }
        windowSize = has("window_size") ? p.int("window_size") : 0
        kernelSize = has("kernel_size") ? p.int("kernel_size") : 1
        beta = has("beta") ? p.int("beta") : 1
        nSink = has("n_sink") ? p.int("n_sink") : 0
        alphaSafeguard = has("alpha_safeguard") ? p.real("alpha_safeguard") : 0
        chunkLength = has("chunk_length") ? p.int("chunk_length") : 1
        scorerOptions = KVPressScorerOptions(p, press: press)
        wrapper = try press.isWrapper ? KVPressWrapper(press, p) : nil
        if has("kernel_size"), kernelSize % 2 == 0 {
            throw MethodSpecError("kvpress:\(name): kernel_size must be odd (kvpress pools with same padding)")
        }
        // Only the budget given is spelled out.
        let unused: Set<String> = switch budget {
        case _ where press == .decoding || !press.takesBudget: []
        case .ratio: ["budget", "bytes"]
        case .entries: ["ratio", "bytes"]
        case .bytes: ["ratio", "budget"]
        }
        canonical = [.init(key: Self.pressKey, value: name)] + p.canonical.filter { !unused.contains($0.key) }
    }

    private static func schema(_ press: Press, given spec: MethodSpec) -> [ParameterSchema.Entry] {
        schemas[press] ?? scorerSchema(press, given: spec)!
    }

    func makePolicy(layout: KVLayout) -> any EvictionPolicy {
        if let wrapper { return wrapper.makePolicy(self, layout: layout) }
        if press == .kvzip {
            return KVzipPolicy(budget: budget, nSink: nSink, chunkSize: scorerOptions.chunkSize, layerwise: scorerOptions.layerwise, layout: layout)
        }
        let selection: KVPressPolicy.Selection = switch press {
        case .adakv: .acrossHeads(alphaSafeguard: alphaSafeguard)
        case .chunkkv: .chunks(length: chunkLength)
        case .criticaladakv:
            .wrapper(CriticalAdaKVSelection(alphaSafeguard: alphaSafeguard, epsilon: scorerOptions.criticalEpsilon,
                                            firstStageRatio: scorerOptions.firstStageRatio))
        default: .perHead
        }
        var scored = makeScorer(scorer ?? press)
        if press == .criticalkv {
            scored = CriticalKVScorer(base: scored, epsilon: scorerOptions.criticalEpsilon, firstStageRatio: scorerOptions.firstStageRatio)
        }
        return KVPressPolicy(scorer: scored, budget: budget, selection: selection, layout: layout, decoding: decoding)
    }

    func makeScorer(_ press: Press) -> any KVPressScorer {
        switch press {
        case .snapkv, .adakv, .chunkkv, .decoding, .criticalkv, .criticaladakv: SnapKVScorer(windowSize: windowSize, kernelSize: kernelSize)
        case .pyramidkv: PyramidKVScorer(snap: SnapKVScorer(windowSize: windowSize, kernelSize: kernelSize), beta: beta)
        case .streamingllm: StreamingLLMScorer(nSink: nSink)
        case .tova: TOVAScorer()
        case .knorm: KnormScorer()
        case .keydiff: KeyDiffScorer()
        case .observedattention: ObservedAttentionScorer()
        case .expectedattention, .lagkv, .leveragescore, .cur, .noncausalattn, .compactor: scorerOptions.makeScorer(press, nSink: nSink)!
        case .chunk, .block, .perlayer, .keyrerotation, .composed, .prefilldecoding, .compressionratiodecoding, .finch, .simlayerkv, .lukv,
             .entropygatedchunkkv, .dms, .kvzip:
            preconditionFailure("kvpress:\(press.rawValue) wraps a scorer and is none")
        }
    }
}

/// kvpress's `DecodingPress`: every `compression_interval` decode steps of a layer, its whole cache
/// is compressed to `target_size` entries per head by the wrapped press (the compression ratio
/// that keeps exactly `target_size`, found by kvpress's bisection); the prompt is not compressed.
public struct KVPressDecoding: Sendable, Hashable {
    public let interval: Int
    public let targetSize: Int
    /// CompressionRatioDecodingPress's `target_compression_ratio`: the target is that share of
    /// the tokens seen so far removed, instead of `targetSize`.
    public var targetRatio: Double? = nil

    /// Entries to keep per head once `seen` tokens went through the model.
    func target(seen: Int) -> Int {
        guard let targetRatio else { return targetSize }
        return max(1, Int(Double(seen) * (1 - targetRatio)))
    }

    /// kvpress's `_find_target_compression_ratio`: a ratio keeping `target` of `count`, bisected
    /// as kvpress does (20 rounds at most), so a ratio it misses is missed alike.
    static func ratio(keeping target: Int, of count: Int) -> Double {
        guard count > target else { return 0 }
        var ratio = 1.0 - Double(target) / Double(count), low = 0.0, high = 1.0
        for _ in 0..<20 {
            let kept = Int(Double(count) * (1 - ratio))
            if kept == target { break }
            if kept > target {
                low = ratio
                ratio = (ratio + high) / 2
            } else {
                high = ratio
                ratio = (low + ratio) / 2
            }
        }
        return ratio
    }
}
