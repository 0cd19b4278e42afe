import KVLabFoundation

/// Which pairs of a head's channels RoPE rotates together.
public enum RoPEStyle: String, Sendable, Codable {
    /// Channels (2i, 2i+1): llama2.c, GGUF, Meta's original checkpoints.
    case interleaved
    /// Channels (i, i + d/2): Hugging Face checkpoints, whose q/k rows are permuted accordingly.
    case halfRotation
}

/// Which positions one layer attends to.
public enum AttentionSpan: Sendable, Equatable, Hashable, Codable {
    /// Every earlier position (full attention).
    case global
    /// The last `window` positions, the current one included (Mistral's and Gemma's local layers:
    /// position i sees j when i - window < j <= i). Entries older than that are never read again.
    case local(window: Int)

    public var window: Int? {
        if case .local(let w) = self { return w }
        return nil
    }
}

/// The decoder families kvlab runs. They share the llama block (RMSNorm, RoPE, GQA attention,
/// gated feed-forward); what differs is carried by the weights (Qwen2's q/k/v biases, Qwen3's and
/// Gemma 3's per-head q/k norms, Gemma's post-norms; Phi-3's fused projections are split on
/// loading) and the config (sliding windows, head sizes, RoPE scaling, Gemma's scales and caps).
public enum ModelFamily: String, Sendable, Equatable, Codable, CaseIterable {
    case llama
    case mistral
    case qwen2
    case qwen3
    case phi3
    case gemma2
    case gemma3
}

/// The gate's activation in the gated feed-forward down(act(gate(x)) · up(x)).
public enum FeedForwardActivation: String, Sendable, Equatable, Codable {
    /// SwiGLU (llama, Qwen, Mistral, Phi-3).
    case silu
    /// GELU with the tanh approximation (Gemma's GeGLU: `gelu_pytorch_tanh`).
    case geluTanh
}

/// The shape and constants of a llama-family decoder.
public struct ModelConfig: Sendable, Equatable, Codable {
    public var name: String
    public var dim: Int
    public var hiddenDim: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var vocabSize: Int
    public var contextLength: Int
    public var ropeTheta: Double
    public var rmsEps: Float
    public var ropeStyle: RoPEStyle
    /// Channels per attention head; dim / headCount unless the model says otherwise (Qwen3, Gemma).
    public var headDim: Int
    /// One per layer: global, or local with its sliding window.
    public var attentionSpans: [AttentionSpan]
    public var ropeScaling: RoPEScaling
    public var family: ModelFamily
    /// RoPE of the local (sliding-window) layers where it differs from the global one (Gemma 3:
    /// base 10,000 and no scaling); nil: every layer uses `rope`.
    public var localRoPE: RoPE?
    /// What q·k is multiplied by before the softmax; nil: 1/√headDim (Gemma: query_pre_attn_scalar^-½).
    public var attentionScale: Double?
    /// Attention logits become cap·tanh(logit/cap) (Gemma 2); nil: none.
    public var attentionSoftcap: Double?
    /// Output logits become cap·tanh(logit/cap) (Gemma 2); nil: none.
    public var finalSoftcap: Double?
    /// Token embeddings are multiplied by it (Gemma: √dim); 1 otherwise.
    public var embeddingScale: Float = 1
    public var activation: FeedForwardActivation = .silu

    public init(name: String, dim: Int, hiddenDim: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
                vocabSize: Int, contextLength: Int, ropeTheta: Double = 10000, rmsEps: Float = 1e-5,
                ropeStyle: RoPEStyle = .interleaved, headDim: Int? = nil, attentionSpans: [AttentionSpan]? = nil,
                ropeScaling: RoPEScaling = .none, family: ModelFamily = .llama) {
        self.name = name
        self.dim = dim
        self.hiddenDim = hiddenDim
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.vocabSize = vocabSize
        self.contextLength = contextLength
        self.ropeTheta = ropeTheta
        self.rmsEps = rmsEps
        self.ropeStyle = ropeStyle
        self.headDim = headDim ?? (headCount > 0 ? dim / headCount : 0)
        // A hostile header may claim billions of layers; validate() refuses it before any use, so the
        // default is only built for counts that could pass.
        let defaultCount = (1...Self.maxLayers).contains(layerCount) ? layerCount : 0
        self.attentionSpans = attentionSpans ?? Array(repeating: .global, count: defaultCount)
        self.ropeScaling = ropeScaling
        self.family = family
    }

    /// The RoPE of global layers.
    public var rope: RoPE { RoPE(theta: ropeTheta, scaling: ropeScaling) }

    /// The config of a run with a `context`-token context, 1 up to the model's own (llama.cpp's
    /// `n_ctx`): the cache holds that many tokens, a run goes past it as past the model's context
    /// (stops, or shifts), and LongRoPE takes its short factors when it is at most the original context.
    public func withContext(_ context: Int) throws -> ModelConfig {
        guard context >= 1, context <= contextLength else {
            throw FormatError("\(context) is not between 1 and the model's \(contextLength)-token context")
        }
        var c = self
        c.contextLength = context
        if case .longrope(let short, let long, let original, _, let attention) = ropeScaling {
            c.ropeScaling = .longrope(shortFactors: short, longFactors: long, originalContext: original, context: context,
                                      attentionFactor: attention)
        }
        return c
    }

    /// The RoPE layer `layer` rotates with.
    public func rope(layer: Int) -> RoPE {
        attentionSpans[layer].window != nil ? localRoPE ?? rope : rope
    }

    /// q·k's multiplier before the softmax, RoPE's logit scale (YaRN) included.
    public func logitScale(layer: Int) -> Double {
        (attentionScale ?? 1 / Double(headDim).squareRoot()) * rope(layer: layer).logitScale
    }

    /// What queries are multiplied by before the cache sees them: the logit scale times √headDim,
    /// since the cache scores with 1/√headDim and keys stay as RoPE left them.
    public func queryScale(layer: Int) -> Float { Float(logitScale(layer: layer) * Double(headDim).squareRoot()) }

    /// Rows of the query projection (and columns of the attention output projection).
    public var queryDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }
    /// Query heads served by one KV head (GQA group size).
    public var groupSize: Int { headCount / kvHeadCount }

    /// Limits that keep a hostile header from asking for absurd allocations.
    package static let maxDimension = 1 << 17
    package static let maxVocabulary = 1 << 22
    package static let maxLayers = 1024
    package static let maxContext = 1 << 22

    /// Checks that the numbers describe a model this engine can run.
    public func validate() throws {
        func check(_ ok: Bool, _ problem: @autoclosure () -> String) throws {
            if !ok { throw FormatError(problem()) }
        }
        try check(dim > 0 && dim <= Self.maxDimension, "embedding length \(dim) is out of range (1...\(Self.maxDimension))")
        try check(hiddenDim > 0 && hiddenDim <= Self.maxDimension * 4, "feed-forward length \(hiddenDim) is out of range")
        try check(layerCount > 0 && layerCount <= Self.maxLayers, "block count \(layerCount) is out of range (1...\(Self.maxLayers))")
        try check(headCount > 0 && headCount <= dim, "head count \(headCount) is out of range for embedding length \(dim)")
        try check(dim % headCount == 0 || headDim != dim / headCount,
                  "embedding length \(dim) is not a multiple of the head count \(headCount)")
        try check(headDim > 0 && headDim <= Self.maxDimension, "head size \(headDim) is out of range")
        try check(headDim % 2 == 0, "head size \(headDim) is odd; RoPE needs pairs of channels")
        try check(kvHeadCount > 0 && kvHeadCount <= headCount && headCount % kvHeadCount == 0,
                  "KV head count \(kvHeadCount) does not divide the head count \(headCount)")
        try check(vocabSize > 0 && vocabSize <= Self.maxVocabulary, "vocabulary size \(vocabSize) is out of range (1...\(Self.maxVocabulary))")
        try check(contextLength > 0 && contextLength <= Self.maxContext, "context length \(contextLength) is out of range (1...\(Self.maxContext))")
        try check(ropeTheta.isFinite && ropeTheta > 1, "rope frequency base \(ropeTheta) is not usable")
        try check(rmsEps.isFinite && rmsEps > 0 && rmsEps < 1, "RMSNorm epsilon \(rmsEps) is not usable")
        try check(attentionSpans.count == layerCount, "\(attentionSpans.count) attention spans for \(layerCount) layers")
        if let problem = ropeScaling.problem(headDim: headDim) { throw FormatError(problem) }
        if let local = localRoPE {
            try check(local.theta.isFinite && local.theta > 1, "local rope frequency base \(local.theta) is not usable")
            if let problem = local.scaling.problem(headDim: headDim) { throw FormatError("local layers: " + problem) }
        }
        for (name, value) in [("attention scale", attentionScale), ("attention softcap", attentionSoftcap),
                              ("final logit softcap", finalSoftcap)] {
            if let value { try check(value.isFinite && value > 0, "\(name) \(value) is not usable") }
        }
        try check(embeddingScale.isFinite && embeddingScale > 0, "embedding scale \(embeddingScale) is not usable")
        for span in attentionSpans {
            if let window = span.window { try check(window > 0, "sliding window \(window) is not positive") }
        }
    }

    /// Parameter count of the weights (classifier counted once when tied).
    public func parameterCount(tiedClassifier: Bool) -> Int {
        let perLayer = 2 * dim + dim * queryDim * 2 + dim * kvDim * 2 + 3 * dim * hiddenDim
        return vocabSize * dim * (tiedClassifier ? 1 : 2) + layerCount * perLayer + dim
    }
}
