import KVLabEngine
import KVLabMethods

/// A setting of a live run that can change between any two steps, named like the CLI option that
/// sets it.
public enum Knob: String, Sendable, Codable, CaseIterable {
    /// The eviction method (`--policy`).
    case policy
    /// The sparse attention mode (`--sparse`).
    case sparse
    /// The KV quantization (`--kv`).
    case kv
    /// The weight storage type (`--weights`).
    case weights
    /// The attention kernel (`--attention`, `--sram`): `naive` or `tiled:sram=SIZE`.
    case attention
}

/// Everything that decides what a live run computes: KV methods, weights, sampling, threads.
public struct RunSettings: Sendable, Equatable {
    /// The eviction method.
    public var eviction: EvictionMethod
    /// The sparse attention mode.
    public var sparse: SparseMethod
    /// The KV quantization.
    public var quant: KVQuantMethod
    /// The attention kernel, and so the traffic the ledger counts (results agree to rounding).
    public var attention: AttentionKernel
    /// Weight storage type; nil keeps the types the model file has.
    public var weights: WeightType?
    /// How tokens are chosen from the logits.
    public var sampler: SamplerSettings
    /// Threads for matrix products (results do not depend on it).
    public var threads: Int

    /// How knob strings spell "the weights as the model file stores them".
    public static let storedWeights = "stored"

    public init(eviction: EvictionMethod = .full, sparse: SparseMethod = .dense, quant: KVQuantMethod = .fp32,
                attention: AttentionKernel = .naive, weights: WeightType? = nil, sampler: SamplerSettings = SamplerSettings(),
                threads: Int = 1) {
        self.eviction = eviction
        self.sparse = sparse
        self.quant = quant
        self.attention = attention
        self.weights = weights
        self.sampler = sampler
        self.threads = threads
    }

    /// A knob's value in its canonical spelling (methods with every parameter spelled out).
    public func value(of knob: Knob) -> String {
        switch knob {
        case .policy: eviction.description
        case .sparse: sparse.description
        case .kv: quant.description
        case .weights: weights?.rawValue ?? Self.storedWeights
        case .attention: attention.description
        }
    }

    /// Sets a knob from its string; KV quantization is checked against heads of `headDim`.
    public mutating func set(_ knob: Knob, to text: String, headDim: Int) throws(MethodSpecError) {
        try set(SettingChange(knob, parsing: text), headDim: headDim)
    }

    /// Applies a typed change, checking it against the other settings and, when `headDim` is
    /// given, against heads of that size (sessions read without a model check those later).
    public mutating func set(_ change: SettingChange, headDim: Int?) throws(MethodSpecError) {
        switch change {
        case .eviction(let method):
            try method.check(quant: quant)
            eviction = method
        case .sparse(let method): sparse = method
        case .quant(let method):
            if let headDim { try method.check(headDim: headDim) }
            try eviction.check(quant: method)
            quant = method
        case .weights(let type): weights = type
        case .attention(let kernel):
            if let headDim { try kernel.check(headDim: headDim) }
            attention = kernel
        }
    }

    /// A paged cache with these methods, and an engine running `model` on it with these weights,
    /// threads and attention kernel (checked first with `check(headDim:)`).
    func makeEngine(for model: LoadedModel) -> (cache: PagedKVCache, engine: InferenceEngine) {
        let cache = PagedKVCache(layout: KVLayout(config: model.config), eviction: eviction, sparse: sparse, quant: quant)
        let engine = InferenceEngine(weights: model.weights,
                                     options: EngineOptions(threads: threads, weightType: weights, attention: attention), cache: cache)
        engine.promptTexts = model.promptTexts
        return (cache, engine)
    }

    /// Applies `change` to these settings, `cache` and `engine` (weights converted from `model`'s
    /// file) between two steps; unchanged when refused. Returns the change in canonical spelling
    /// with the traffic of applying it (evicting down, storing kept entries anew).
    mutating func apply(_ change: SettingChange, step: Int, model: LoadedModel, cache: PagedKVCache,
                        engine: InferenceEngine) throws(MethodSpecError) -> KnobChange {
        var next = self
        try next.set(change, headDim: model.config.headDim)
        try next.eviction.check(layout: KVLayout(config: model.config))
        var ledger = IOLedger()
        switch change {
        case .eviction:
            do { try engine.setEviction(next.eviction, ledger: &ledger) } catch { throw MethodSpecError(String(describing: error)) }
        case .sparse: cache.setSparse(next.sparse)
        case .quant: cache.setKVQuant(next.quant, ledger: &ledger)
        case .weights: engine.setWeights(model.weights, as: next.weights)
        case .attention: engine.setAttentionKernel(next.attention)
        }
        let knob = change.knob, old = value(of: knob)
        self = next
        return KnobChange(step: step, knob: knob, old: old, new: value(of: knob), ledger: ledger)
    }

    /// Checks what the cache would otherwise trap on: the KV quantization against heads of
    /// `headDim`, and the eviction method against the quantization (`think` with `rotate`).
    public func check(headDim: Int) throws(MethodSpecError) {
        try quant.check(headDim: headDim)
        try eviction.check(quant: quant)
    }
}

/// A knob's new value, typed: what the workbench sends to the engine, and what a knob string
/// parses to at the edges (CLI flags, the `:` editor, session files).
public enum SettingChange: Sendable, Equatable {
    case eviction(EvictionMethod)
    case sparse(SparseMethod)
    case quant(KVQuantMethod)
    /// A weight type; nil keeps the types the model file has.
    case weights(WeightType?)
    case attention(AttentionKernel)

    /// The knob it sets.
    public var knob: Knob {
        switch self {
        case .eviction: .policy
        case .sparse: .sparse
        case .quant: .kv
        case .weights: .weights
        case .attention: .attention
        }
    }

    /// Parses a knob's string; checks against the head size and the other settings are
    /// `RunSettings.set`'s.
    public init(_ knob: Knob, parsing text: String) throws(MethodSpecError) {
        switch knob {
        case .policy: self = .eviction(try EvictionMethod(parsing: text))
        case .sparse: self = .sparse(try SparseMethod(parsing: text))
        case .kv: self = .quant(try KVQuantMethod(parsing: text))
        case .weights:
            let name = Substring(text).trimmingSpaces.lowercased()
            if name == RunSettings.storedWeights {
                self = .weights(nil)
            } else if let type = WeightType.allCases.first(where: { $0.rawValue.lowercased() == name }) {
                self = .weights(type)
            } else {
                let names = WeightType.allCases.map(\.rawValue) + [RunSettings.storedWeights]
                throw MethodSpecError("weights: '\(text)' is not one of \(names.joined(separator: ", "))")
            }
        case .attention: self = .attention(try AttentionKernel(parsing: text))
        }
    }
}

/// Why a run produced no token.
public enum StopReason: String, Sendable, Codable {
    /// The model chose its end-of-sequence token.
    case endOfSequence
    /// The cache has no room for another token: every position of the context is taken by
    /// entries the method keeps (a method that bounds the cache goes on past the context).
    case contextFull
}

/// A prompt as a run processed it.
public struct PromptSubmission: Sendable, Equatable, Codable {
    /// Tokens generated before it.
    public var step: Int
    /// The prompt as given.
    public var text: String
    /// Its tokens as the model received them (BOS first in a new sequence when the tokenizer adds one).
    public var tokens: [Int]
    /// Whether it extended the sequence (false: it started a new one from an empty cache).
    public var continuing: Bool
    /// The prompt's forward pass: one batched prefill, or one step per token for methods that act
    /// after every token.
    public var report: StepReport
}

/// A knob changed between two steps.
public struct KnobChange: Sendable, Equatable, Codable {
    /// Tokens generated before the change: token `step` is the first produced under the new value.
    public var step: Int
    /// The knob that changed.
    public var knob: Knob
    /// The canonical value before the change.
    public var old: String
    /// The canonical value after it.
    public var new: String
    /// Traffic of applying it (evicting down to a new budget, storing kept entries anew).
    public var ledger: IOLedger
}

/// How the run's next-token distribution compared with the full-cache ghost's when a token was chosen.
public struct GhostComparison: Sendable, Equatable, Codable {
    /// KL(ghost ‖ run) in nats.
    public var kl: Double
    /// Whether both distributions had the same most likely token.
    public var top1Agrees: Bool
    /// The ghost's most likely token.
    public var ghostTop: Int
    /// −log p_ghost(token).
    public var ghostNLL: Double
    /// −log p_run(token) − (−log p_ghost(token)).
    public var deltaNLL: Double
    /// Share of the ghost's attention, at the step that processed the token, on entries the run
    /// read: every kept entry under dense attention, the listed ones under a sparse mode (mean
    /// over layers and query heads).
    public var massKept: Double?
}

/// One generated token and what producing it cost and changed.
public struct TokenMetrics: Sendable, Equatable, Codable {
    /// Tokens generated before this one in the run.
    public var step: Int
    /// The token id.
    public var token: Int
    /// Text completed by this token (empty while a UTF-8 character is split across tokens).
    public var text: String
    /// The decode step that processed the token: its position, measured timings
    /// (`timings.totalNanoseconds` is the latency), traffic, resident KV bytes by category,
    /// entries kept, and the argmax and entropy of the next distribution.
    public var report: StepReport
    /// −log p(token) under the distribution it was chosen from.
    public var nll: Double
    /// The comparison with the ghost, while it runs.
    public var ghost: GhostComparison?
}

/// What one step did.
public enum StepOutcome: Sendable, Equatable {
    case token(TokenMetrics)
    case stopped(StopReason)
}

/// The one engine loop behind `kvlab generate`, `kvlab run`, replays and the workbench: a model, a
/// paged cache whose methods change between steps, a seeded sampler, and optionally the
/// full-cache fp32 ghost in lockstep, teacher-forced on the same tokens (the quality math is
/// `StreamingEvaluator`'s). Every action returns a `Sendable` value, so a run can live on a
/// worker thread that posts them to a UI. Not thread-safe: create and use it on one thread.
public final class LiveRun {
    /// The model, with its file's weights (the ghost's, and the source of weight conversions).
    public let model: LoadedModel
    /// The settings now (knob changes update them).
    public private(set) var settings: RunSettings
    /// The engine that runs the model on `cache`.
    public let engine: InferenceEngine
    /// The cache whose methods the knobs set.
    public let cache: PagedKVCache
    /// Every token of the sequence: prompts and generated tokens.
    public private(set) var tokens: [Int] = []
    /// The step of the next token: tokens generated so far, over every prompt.
    public private(set) var currentStep = 0
    private var ghost: (engine: InferenceEngine, cache: PagedKVCache)?
    private let sampler: Sampler
    private var text = TextStream()

    /// A run of `model` under `settings` (sampler settings and the KV quantization are checked
    /// first), with the ghost when `ghost` is true.
    public init(model: LoadedModel, settings: RunSettings, ghost: Bool = false) throws {
        try settings.sampler.validate()
        try settings.check(headDim: model.config.headDim)
        try settings.eviction.check(layout: KVLayout(config: model.config))
        self.model = model
        self.settings = settings
        (cache, engine) = settings.makeEngine(for: model)
        sampler = Sampler(settings: settings.sampler, vocabularySize: model.config.vocabSize)
        if ghost { try setGhost(true) }
    }

    /// Position of the next token.
    public var position: Int { engine.position }

    /// Whether the ghost runs.
    public var ghostEnabled: Bool { ghost != nil }

    /// Starts or stops the ghost. Started mid-sequence, it first runs the tokens so far as one
    /// prompt; it keeps the weights as the file stores them.
    public func setGhost(_ enabled: Bool) throws(EngineError) {
        guard enabled != ghostEnabled else { return }
        guard enabled else {
            ghost = nil
            cache.attentionReference = nil
            return
        }
        let ghostCache = PagedKVCache(layout: cache.layout)
        ghostCache.recordsAttention = true
        let ghostEngine = InferenceEngine(weights: model.weights, options: EngineOptions(threads: settings.threads), cache: ghostCache)
        if !tokens.isEmpty { try ghostEngine.prefill(tokens) }
        ghost = (ghostEngine, ghostCache)
        cache.attentionReference = ghostCache
    }

    /// Tokenizes and runs a prompt: a new sequence from an empty cache, or with `continuing` the
    /// continuation of the current one (without a second BOS).
    @discardableResult
    public func submit(prompt: String, continuing: Bool = false) throws(EngineError) -> PromptSubmission {
        let extending = continuing && !tokens.isEmpty
        var ids = model.tokenizer.encode(prompt)
        let bos = model.tokenizer.spec.bosID
        if extending, let bos, ids.first == bos { ids.removeFirst() }
        // A chat template that writes BOS itself meets the tokenizer's own: keep one.
        if !extending, let bos, ids.count >= 2, ids[0] == bos, ids[1] == bos { ids.removeFirst() }
        if !extending, ids.isEmpty, let bos { ids = [bos] }
        guard !ids.isEmpty else { throw .emptyInput }
        if !extending {
            guard ids.count <= cache.layout.capacity else { throw .contextFull(limit: cache.layout.capacity) }
            engine.reset()
            ghost?.engine.reset()
            tokens = []
            text = TextStream()
        }
        // The ghost goes first in every step, so the run's attention mass is measured against
        // the ghost's attention of the same position. It ends where its context does.
        if let ghost, !ghost.engine.hasRoom(for: ids.count), engine.hasRoom(for: ids.count) { try setGhost(false) }
        try ghost?.engine.prefill(ids)
        let report = try engine.prefill(ids).report
        tokens += ids
        return PromptSubmission(step: currentStep, text: prompt, tokens: ids, continuing: extending, report: report)
    }

    /// Chooses the next token from the run's logits and processes it (the ghost first, on the
    /// same token). Stops without a token at the end-of-sequence token or a full context.
    public func step() throws(EngineError) -> StepOutcome {
        guard let previous = tokens.last else { throw .emptyInput }
        let token = sampler.sample(engine.logits)
        if token == model.tokenizer.spec.eosID { return .stopped(.endOfSequence) }
        if !engine.hasRoom() { return .stopped(.contextFull) }
        // The ghost keeps every entry, so it ends at the context while a bounded cache goes on.
        if let ghost, !ghost.engine.hasRoom() { try setGhost(false) }
        let quality = StreamingEvaluator.quality(position: engine.position - 1, next: token, logits: engine.logits.baseAddress!,
                                                 ghostLogits: ghost?.engine.logits.baseAddress, vocabulary: model.config.vocabSize,
                                                 massKept: nil, resident: 0)
        try ghost?.engine.decode(token)
        let report = try engine.decode(token)
        var comparison: GhostComparison?
        if let kl = quality.kl, let agrees = quality.top1Agrees, let ghostTop = quality.ghostTop, let ghostNLL = quality.ghostNLL,
           let nll = quality.nll {
            comparison = GhostComparison(kl: kl, top1Agrees: agrees, ghostTop: ghostTop, ghostNLL: ghostNLL, deltaNLL: nll - ghostNLL,
                                         massKept: cache.massKept)
        }
        let metrics = TokenMetrics(step: currentStep, token: token, text: text.push(model.tokenizer.decode(token, after: previous)),
                                   report: report, nll: quality.nll ?? 0, ghost: comparison)
        tokens.append(token)
        currentStep += 1
        return .token(metrics)
    }

    /// Changes a knob from the next step on and returns the change in canonical spelling. The
    /// cache applies eviction and quantization to what it keeps at once (`PagedKVCache`);
    /// weights are converted from the file's, so a finer type restores its precision.
    @discardableResult
    public func set(_ knob: Knob, to value: String) throws(MethodSpecError) -> KnobChange {
        try set(SettingChange(knob, parsing: value))
    }

    /// Applies a typed change from the next step on (as `set(_:to:)`, without parsing).
    @discardableResult
    public func set(_ change: SettingChange) throws(MethodSpecError) -> KnobChange {
        try settings.apply(change, step: currentStep, model: model, cache: cache, engine: engine)
    }

    /// The ghost's next-token logits, while it runs.
    public var ghostLogits: UnsafeBufferPointer<Float>? { ghost?.engine.logits }

    /// The state's fingerprint now: cache contents and next-token logits.
    public func checkpoint() -> Checkpoint {
        Checkpoint(step: currentStep, position: engine.position, cache: cache, logits: engine.logits)
    }

    /// Text held back because the last token ended inside a UTF-8 character (as U+FFFD), or "".
    public func finishText() -> String { text.flush() }
}
