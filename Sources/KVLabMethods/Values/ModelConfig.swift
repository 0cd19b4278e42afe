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
/// SwiGLU); what differs is carried by the weights (Qwen2's q/k/v biases, Qwen3's per-head q/k
/// norms) and the config (Mistral's sliding window, head sizes, RoPE scaling).
public enum ModelFamily: String, Sendable, Equatable, Codable, CaseIterable {
    case llama
    case mistral
    case qwen2
    case qwen3
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

    /// Inverse RoPE frequencies of one head, scaling applied.
    public var ropeInverseFrequencies: [Double] { ropeScaling.inverseFrequencies(headDim: headDim, theta: ropeTheta) }

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
