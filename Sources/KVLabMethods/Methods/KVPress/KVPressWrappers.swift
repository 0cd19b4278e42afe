import Foundation

/// kvpress's wrapper, composition and budget presses: each wraps a scorer press (`scorer=`) or
/// reads attention itself, with kvpress 0.5.5's semantics (docs in README "kvpress presses").
extension KVPressMethod.Press {
    /// Scorers whose scores of any subset of a head's entries come from those entries' keys
    /// alone (`KVPressKeyScorer`): what ChunkPress, BlockPress, ComposedPress's later press and
    /// the decode-time presses rescore. kvpress's attention scorers recompute attention from the
    /// chunk's hidden states with the whole prompt's RoPE, which kvlab's prefill never sees.
    static let keyScorers: [Self] = [.knorm, .keydiff]
    /// Scorers of a whole prompt (kvpress's ScorerPresses kvlab has).
    static let prefillScorers: [Self] = [.snapkv, .streamingllm, .tova, .knorm, .keydiff, .observedattention]

    var isWrapper: Bool { wrapperScorers != nil || self == .finch || self == .simlayerkv }

    /// The scorers a wrapper press accepts (the first by default); nil for the other presses.
    var wrapperScorers: [Self]? {
        switch self {
        case .chunk, .block, .compressionratiodecoding, .dms, .entropygatedchunkkv: Self.keyScorers
        case .perlayer, .keyrerotation, .composed, .prefilldecoding, .lukv: Self.prefillScorers
        default: nil
        }
    }

    /// A second key scorer's parameter: ComposedPress's later press, PrefillDecodingPress's decoding scorer.
    var secondScorerKey: String? {
        switch self {
        case .composed: "then"
        case .prefilldecoding: "decoding_scorer"
        default: nil
        }
    }

    /// Whether `ratio`, `budget` and `bytes` apply (the others' budgets are their own parameters).
    var takesBudget: Bool { ![.decoding, .perlayer, .compressionratiodecoding, .simlayerkv, .lukv, .dms].contains(self) }
}

extension KVPressMethod {
    static let wrapperSchemas: [Press: [ParameterSchema.Entry]] = {
        typealias S = ParameterSchema
        let interval = S.int("compression_interval", 512, 1...1_048_576), flag = ["true", "false"]
        return [
            .chunk: [S.int("chunk_length", 1024, 1...1_048_576)],
            .block: [S.int("block_size", 128, 1...1_048_576)],
            .perlayer: [S.text("compression_ratios")],
            .keyrerotation: [],
            .composed: [S.share("then_ratio", 0.5)],
            .prefilldecoding: [interval, S.int("target_size", 2048, 1...1_048_576)],
            .compressionratiodecoding: [S.share("target_compression_ratio", 0.5), interval],
            .finch: [S.int("window_size", 64, 1...1_048_576), S.int("chunk_length", 0, 0...1_048_576), S.choice("normalize_scores", "true", flag),
                     S.choice("rerotate_keys", "true", flag)],
            .simlayerkv: [S.real("lazy_threshold", 1, 0...1), S.int("n_last", 1, 1...1024), S.int("n_recent", 1024, 1...1_048_576),
                          S.int("n_initial", 4, 0...1_048_576)],
            .lukv: [S.text("curve"), S.share("ratio", 0.5), S.int("sink", 4, 0...1_048_576), S.int("window", 1, 0...1_048_576)],
            .entropygatedchunkkv: [S.int("chunk_length", 10, 2...1_048_576), S.int("low_entropy_chunk_length", 4, 1...1_048_576)],
            .dms: [S.real("threshold", 0, -1e30...1e30), S.int("sliding_window_size", 128, 0...1_048_576), S.choice("decoding", "false", flag)],
        ]
    }()

    /// A wrapper's budget (`given`: the budget written or the default ratio, where the press takes
    /// one) and its decode-time compression.
    static func wrapperBudget(_ press: Press, _ p: ResolvedParameters, given: KVBudget?) -> (KVBudget, KVPressDecoding?) {
        switch press {
        case .prefilldecoding:
            (given!, KVPressDecoding(interval: p.int("compression_interval"), targetSize: p.int("target_size")))
        case .compressionratiodecoding:
            (.ratio(p.real("target_compression_ratio")),
             KVPressDecoding(interval: p.int("compression_interval"), targetSize: 1, targetRatio: p.real("target_compression_ratio")))
        case .lukv: (.ratio(p.real("ratio")), nil)
        case _ where press.takesBudget: (given!, nil)
        default: (.ratio(0), nil)
        }
    }

    /// Whether the press keeps compressing during decode (so a run without a prompt is not a full cache).
    public var actsOnlyAtPromptEnd: Bool { decoding == nil && wrapper?.dmsDecoding != true }

    /// KeyRerotationPress, and Finch with `rerotate_keys=true`: the kept keys are re-rotated to the
    /// contiguous positions 0…n−1 at the prompt's end (PagedKVCache.endPrefill).
    public var rerotatesKeys: Bool { wrapper?.rerotates == true }
}

/// A wrapper press's own parameters, checked when the method is parsed.
struct KVPressWrapper: Sendable, Hashable {
    let press: KVPressMethod.Press
    let ratios: [Double]
    let thenRatio: Double
    let secondScorer: KVPressMethod.Press?
    let length: Int
    let lowLength: Int
    let normalize: Bool
    let rerotates: Bool
    let threshold: Double
    let nLast: Int, nRecent: Int, nInitial: Int
    let curve: LUKVCurve?
    let sink: Int, window: Int
    let dmsDecoding: Bool

    init(_ press: KVPressMethod.Press, _ p: ResolvedParameters) throws(MethodSpecError) {
        let name = "kvpress:\(press.rawValue)"
        let has = { (key: String) in p.values[key] != nil }
        self.press = press
        var ratios: [Double] = []
        if press == .perlayer {
            for item in p.string("compression_ratios").split(separator: "/", omittingEmptySubsequences: false) {
                guard let r = Double(item), r >= 0, r < 1 else {
                    throw MethodSpecError("\(name): compression_ratios=\(p.string("compression_ratios")) is not ratios (each at least 0 and below 1) separated by '/'")
                }
                ratios.append(r)
            }
        }
        self.ratios = ratios
        thenRatio = has("then_ratio") ? p.real("then_ratio") : 0
        secondScorer = press.secondScorerKey.flatMap { p.values[$0] }.flatMap(KVPressMethod.Press.init(rawValue:))
        length = has("chunk_length") ? p.int("chunk_length") : has("block_size") ? p.int("block_size") : 0
        lowLength = has("low_entropy_chunk_length") ? p.int("low_entropy_chunk_length") : 0
        if press == .entropygatedchunkkv, lowLength >= length {
            throw MethodSpecError("\(name): low_entropy_chunk_length must be below chunk_length")
        }
        normalize = p.values["normalize_scores"] == "true"
        rerotates = press == .keyrerotation || p.values["rerotate_keys"] == "true"
        threshold = has("lazy_threshold") ? p.real("lazy_threshold") : has("threshold") ? p.real("threshold") : 0
        nLast = has("n_last") ? p.int("n_last") : 0
        nRecent = has("n_recent") ? p.int("n_recent") : 0
        nInitial = has("n_initial") ? p.int("n_initial") : 0
        if press == .simlayerkv, nRecent <= nLast {
            throw MethodSpecError("\(name): n_recent must be above n_last (kvpress keeps the last n_recent − n_last entries)")
        }
        if press == .finch, length > 0, p.real("ratio") < 1, Double(length) <= Double(p.int("window_size")) / (1 - p.real("ratio")) {
            throw MethodSpecError("\(name): chunk_length must exceed window_size / (1 − ratio) (kvpress asserts it)")
        }
        curve = press == .lukv ? try LUKVCurve(path: p.string("curve")) : nil
        sink = has("sink") ? p.int("sink") : 0
        window = press == .dms ? p.int("sliding_window_size") : has("window") ? p.int("window") : 0
        dmsDecoding = p.values["decoding"] == "true"
    }

    /// Refuses a per-layer list or budget curve that does not fit the model.
    func check(layout: KVLayout) throws(MethodSpecError) {
        let name = "kvpress:\(press.rawValue)"
        if press == .perlayer, ratios.count != layout.layerCount {
            throw MethodSpecError("\(name): compression_ratios has \(ratios.count) values, the model has \(layout.layerCount) layers")
        }
        if let curve, curve.layers != layout.layerCount || curve.heads != layout.kvHeadCount {
            throw MethodSpecError("\(name): curve \(curve.path) is for \(curve.layers) layers × \(curve.heads) KV heads, the model has "
                                  + "\(layout.layerCount) × \(layout.kvHeadCount)")
        }
    }

    func makePolicy(_ method: KVPressMethod, layout: KVLayout) -> any EvictionPolicy {
        let scorer = method.scorer.map { method.makeScorer($0) }
        let keyScorer = scorer as? any KVPressKeyScorer
        func policy(_ scorer: any KVPressScorer, _ selection: KVPressPolicy.Selection) -> KVPressPolicy {
            KVPressPolicy(scorer: scorer, budget: method.budget, selection: selection, layout: layout, decoding: method.decoding)
        }
        switch press {
        case .chunk: return policy(scorer!, .wrapper(ChunkSelection(scorer: keyScorer!, length: length)))
        case .block: return policy(scorer!, .wrapper(BlockSelection(scorer: keyScorer!, size: length)))
        case .perlayer: return policy(PerLayerScorer(inner: scorer!, ratios: ratios), .perHead)
        case .keyrerotation, .compressionratiodecoding: return policy(scorer!, .perHead)
        case .composed:
            return policy(scorer!, .wrapper(ComposedSelection(then: method.makeScorer(secondScorer!) as! any KVPressKeyScorer, ratio: thenRatio)))
        case .prefilldecoding:
            return KVPressPolicy(scorer: scorer!, budget: method.budget, selection: .perHead, layout: layout, decoding: method.decoding,
                                 decodingScorer: method.makeScorer(secondScorer!))
        case .finch:
            let finch = FinchScorer(windowSize: method.windowSize, normalize: normalize)
            return policy(finch, length > 0 ? .wrapper(FinchChunkSelection(length: length)) : .perHead)
        case .simlayerkv:
            return policy(RunningScoreScorer(observation: nLast),
                          .wrapper(SimLayerSelection(threshold: threshold, nLast: nLast, nRecent: nRecent, nInitial: nInitial)))
        case .lukv: return policy(scorer!, .wrapper(LUKVSelection(curve: curve!, sink: sink, window: window)))
        case .entropygatedchunkkv: return policy(scorer!, .wrapper(EntropyGatedSelection(length: length, lowLength: lowLength)))
        case .dms:
            return KVPressDMSPolicy(scorer: keyScorer!, threshold: Float(threshold), window: window, decoding: dmsDecoding, layout: layout)
        default: preconditionFailure("kvpress:\(press.rawValue) is not a wrapper press")
        }
    }
}

extension EvictionMethod {
    /// Refuses a kvpress press whose per-layer parameters do not fit the model, a `bytes=` budget
    /// below one entry per (layer, KV head) of it, and HeadKV scores of another shape (`--policy` errors).
    public func check(layout: KVLayout) throws(MethodSpecError) {
        var budget = sizing, name = spec.name
        if case .kvpress(let press) = kind {
            try press.wrapper?.check(layout: layout)
            budget = press.budget
            name = "kvpress:\(press.press.rawValue)"
        }
        if case .bytes(let b)? = budget { try KVBudget.checkBytes(b, layout: layout, method: name) }
        if case .headkv(let scores, _, _, _, _) = kind, scores.layers != layout.layerCount || scores.heads != layout.kvHeadCount * layout.groupSize {
            throw MethodSpecError("headkv: scores \(scores.path) is for \(scores.layers) layers × \(scores.heads) query heads, the model has "
                                  + "\(layout.layerCount) × \(layout.kvHeadCount * layout.groupSize)")
        }
    }

    /// Whether the kept keys take the rotary positions 0…n−1 at the prompt's end (KeyRerotationPress).
    public var rerotatesAtPromptEnd: Bool {
        if case .kvpress(let press) = kind { return press.rerotatesKeys }
        return false
    }
}

/// A scorer whose scores of a subset of a head's entries depend on those entries' keys alone, so
/// that a wrapper can score chunks, blocks or what another press kept as kvpress does.
package protocol KVPressKeyScorer: KVPressScorer {
    /// Scores of the entries `subset` (indices into `entries`) of head `head`, as kvpress's press
    /// scores those keys alone; higher stays.
    func scores(head: Int, entries: HeadEntries, subset: [Int], vectors: (any EntryVectors)?) -> [Float]
}

extension KnormScorer: KVPressKeyScorer {
    func scores(head: Int, entries: HeadEntries, subset: [Int], vectors: (any EntryVectors)?) -> [Float] {
        subset.map { -entries.keyNorms[$0] }
    }
}

extension KeyDiffScorer: KVPressKeyScorer {
    func scores(head: Int, entries: HeadEntries, subset: [Int], vectors: (any EntryVectors)?) -> [Float] {
        guard let vectors else { return Array(repeating: .infinity, count: subset.count) }
        let d = vectors.headDim
        var keys = [Float](repeating: 0, count: subset.count * d)
        keys.withUnsafeMutableBufferPointer { out in
            for (n, i) in subset.enumerated() { vectors.key(head: head, slot: entries.slots[i], into: out.baseAddress! + n * d) }
        }
        return Self.scores(keys: keys, count: subset.count, headDim: d)
    }
}

/// The entries of `subset` best first by `scores` (aligned with `subset`): higher, then the newer.
func rankedSubset(_ subset: [Int], _ scores: [Float], positions: UnsafeMutablePointer<Int32>) -> [Int] {
    subset.indices.sorted { a, b in scores[a] != scores[b] ? scores[a] > scores[b] : positions[subset[a]] > positions[subset[b]] }.map { subset[$0] }
}

/// PerLayerCompressionPress: the scorer's per-head selection with `compression_ratios[layer]`.
struct PerLayerScorer: KVPressScorer {
    let inner: any KVPressScorer
    let ratios: [Double]

    var observation: Int { inner.observation }
    func queryWeight(position: Int) -> Float { inner.queryWeight(position: position) }
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        inner.scores(heads: heads, promptEnd: promptEnd, vectors: vectors)
    }
    func keptCount(layer: Int, of count: Int, budget: KVBudget, layout: KVLayout) -> Int {
        inner.keptCount(layer: layer, of: count, budget: .ratio(ratios[min(layer, ratios.count - 1)]), layout: layout)
    }
}

/// The running score as it is: the attention the last `observation` prompt queries gave each entry
/// (summed over the query group), for presses that read it whole (SimLayerKV).
struct RunningScoreScorer: KVPressScorer {
    let observation: Int
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        heads.map { e in (0..<e.count).map { e.scores[$0] } }
    }
}

/// FinchPress's score: SnapKV's window attention without pooling, each window query's attention
/// weighted by its position (`normalize_scores`: the number of keys it sees, minus one); the
/// window is the question, the prompt's last `window_size` tokens.
struct FinchScorer: KVPressScorer {
    let windowSize: Int
    let normalize: Bool

    var observation: Int { windowSize }
    func queryWeight(position: Int) -> Float { normalize ? Float(position) : 1 }
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        SnapKVScorer(windowSize: windowSize, kernelSize: 1).scores(heads: heads, promptEnd: promptEnd, vectors: vectors)
    }
}
