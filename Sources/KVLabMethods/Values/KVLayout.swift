/// The shape of a KV cache: one ordered list of entries per (layer, KV head).
public struct KVLayout: Sendable, Equatable, Codable {
    /// Token slots per page of the paged cache (one SIMD16 lane per slot): the unit pages are
    /// allocated, freed and summarized in.
    public static let pageSize = 16
    public var layerCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    /// Query heads served by each KV head.
    public var groupSize: Int
    /// Most tokens any (layer, head) may hold (the model's context length).
    public var capacity: Int
    /// The model's RoPE, one per layer, for caches that store keys before it and apply it as they
    /// read them.
    public var ropes: [RoPE]
    public var ropeStyle: RoPEStyle
    /// One per layer: a local layer needs to keep only its window.
    public var attentionSpans: [AttentionSpan]
    /// Attention logits become cap·tanh(logit/cap) before the softmax (Gemma 2); nil: none.
    public var attentionSoftcap: Float?
    /// Per layer: what the queries the cache sees were multiplied by (`ModelConfig.queryScale`), so
    /// that a method reading queries (kvpress's ExpectedAttention) gets the model's own back.
    public var queryScales: [Float]

    public init(layerCount: Int, kvHeadCount: Int, headDim: Int, groupSize: Int, capacity: Int,
                ropeTheta: Double = 10000, ropeStyle: RoPEStyle = .interleaved, attentionSpans: [AttentionSpan]? = nil) {
        self.layerCount = layerCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.groupSize = groupSize
        self.capacity = capacity
        ropes = Array(repeating: RoPE(theta: ropeTheta), count: layerCount)
        self.ropeStyle = ropeStyle
        self.attentionSpans = attentionSpans ?? Array(repeating: .global, count: layerCount)
        queryScales = Array(repeating: 1, count: layerCount)
    }

    public init(config: ModelConfig, capacity: Int? = nil) {
        layerCount = config.layerCount
        kvHeadCount = config.kvHeadCount
        headDim = config.headDim
        groupSize = config.groupSize
        self.capacity = capacity ?? config.contextLength
        ropes = (0..<config.layerCount).map(config.rope(layer:))
        ropeStyle = config.ropeStyle
        attentionSpans = config.attentionSpans
        attentionSoftcap = config.attentionSoftcap.map(Float.init)
        queryScales = (0..<config.layerCount).map(config.queryScale(layer:))
    }
}

/// Resident bytes of a KV cache by what they hold: physical bytes, never logically masked ones.
public struct KVResidency: Sendable, Equatable, Codable {
    /// Keys and values kept at full precision (fp32) because their tensor is not quantized.
    public var fullPrecisionPayload = 0
    /// Packed codes of quantized keys and values.
    public var quantizedPayload = 0
    /// Scales, zeros, block scales, fp8 scales and outlier indices of quantized entries.
    public var quantMetadata = 0
    /// Full-precision keys and values of a quantized tensor: its residual window and the entries
    /// waiting for their group.
    public var residualWindow = 0
    /// Per-entry bookkeeping of the cache and its method: positions, scores, counters.
    public var policyState = 0
    /// Allocated but unused: free slots of partly filled pages, and storage of evicted or
    /// already-quantized data that shares a page slot or a record with live data.
    public var pageSlack = 0

    public init() {}

    public var total: Int {
        fullPrecisionPayload + quantizedPayload + quantMetadata + residualWindow + policyState + pageSlack
    }
}
