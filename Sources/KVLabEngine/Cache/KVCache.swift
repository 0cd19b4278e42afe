/// The shape of a KV cache: one ordered list of entries per (layer, KV head).
public struct KVLayout: Sendable, Equatable, Codable {
    public var layerCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    /// Query heads served by each KV head.
    public var groupSize: Int
    /// Most tokens any (layer, head) may hold (the model's context length).
    public var capacity: Int
    /// The model's RoPE, for caches that store keys before it and apply it as they read them.
    public var ropeTheta: Double
    public var ropeStyle: RoPEStyle

    public init(layerCount: Int, kvHeadCount: Int, headDim: Int, groupSize: Int, capacity: Int,
                ropeTheta: Double = 10000, ropeStyle: RoPEStyle = .interleaved) {
        self.layerCount = layerCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim
        self.groupSize = groupSize
        self.capacity = capacity
        self.ropeTheta = ropeTheta
        self.ropeStyle = ropeStyle
    }

    public init(config: ModelConfig, capacity: Int? = nil) {
        layerCount = config.layerCount
        kvHeadCount = config.kvHeadCount
        headDim = config.headDim
        groupSize = config.groupSize
        self.capacity = capacity ?? config.contextLength
        ropeTheta = config.ropeTheta
        ropeStyle = config.ropeStyle
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

/// Keys and values of every (layer, KV head), and the attention that reads them: all the forward
/// pass sees of the cache, so it never branches on a method. `PagedKVCache` is the one conformer;
/// methods (eviction, quantization, sparse reads) are its components, switchable between steps.
public protocol KVCache: AnyObject {
    var layout: KVLayout { get }
    /// What the cache occupies now.
    var residency: KVResidency { get }
    /// Entries currently kept by one (layer, KV head).
    func entryCount(layer: Int, head: Int) -> Int
    /// Drops every entry (a new sequence).
    func reset()
    /// Whether `append` takes keys before RoPE: the cache then applies it (at each key's position)
    /// when attention reads them. Decided by the method, so it may change between steps.
    var keysBeforeRoPE: Bool { get }
    /// Appends one token's keys and values (`kvHeadCount × headDim` each, keys after RoPE unless
    /// `keysBeforeRoPE`) to every KV head of `layer`.
    func append(layer: Int, position: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ledger: inout IOLedger)
    /// Whether a prompt may run as one batched prefill; when false the engine feeds it one
    /// decode step at a time, so the method acts after every token as the protocol defines.
    var batchedPrefill: Bool { get }
    /// A batched prefill of the positions before `end` starts (appends, then attends per query).
    func beginPrefill(end: Int)
    /// The batched prefill finished: methods that act once per prompt act now.
    func endPrefill(ledger: inout IOLedger)
    /// Causal attention of `queries` (`headCount × headDim`, RoPE applied, at `position`) over
    /// the kept entries of `layer` at positions ≤ `position`, written to `output` (same shape).
    /// Outside a batched prefill the cache's method then updates its state and evicts.
    func attend(layer: Int, position: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger)
    /// Causal attention of a batched prefill's consecutive `positions` at once (`positions.count`
    /// rows of `headCount × headDim`, their entries already appended): each query sees the kept
    /// entries at positions up to its own.
    func attend(layer: Int, positions: Range<Int>, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger)
    /// The attention kernel (naive or tiled); it may change between steps.
    var attentionKernel: AttentionKernel { get set }
}
