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
    /// The model's RoPE, for caches that store keys before it and apply it as they read them, or
    /// re-rotate kept keys past the context: the same frequencies the queries get.
    public var ropeTheta: Double
    public var ropeStyle: RoPEStyle
    public var ropeScaling: RoPEScaling
    /// One per layer: a local layer needs to keep only its window.
    public var attentionSpans: [AttentionSpan]

    public init(layerCount: Int, kvHeadCount: Int, headDim: Int, groupSize: Int, capacity: Int,
                ropeTheta: Double = 10000, ropeStyle: RoPEStyle = .interleaved, ropeScaling: RoPEScaling = .none,
                attentionSpans: [AttentionSpan]? = nil) {
        self.layerCount = layerCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.groupSize = groupSize
        self.capacity = capacity
        self.ropeTheta = ropeTheta
        self.ropeStyle = ropeStyle
        self.ropeScaling = ropeScaling
        self.attentionSpans = attentionSpans ?? Array(repeating: .global, count: layerCount)
    }

    public init(config: ModelConfig, capacity: Int? = nil) {
        layerCount = config.layerCount
        kvHeadCount = config.kvHeadCount
        headDim = config.headDim
        groupSize = config.groupSize
        self.capacity = capacity ?? config.contextLength
        ropeTheta = config.ropeTheta
        ropeStyle = config.ropeStyle
        ropeScaling = config.ropeScaling
        attentionSpans = config.attentionSpans
    }

    /// RoPE's inverse frequencies, scaling applied (`RoPEScaling.inverseFrequencies`).
    public var ropeInverseFrequencies: [Double] { ropeScaling.inverseFrequencies(headDim: headDim, theta: ropeTheta) }
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
