import KVLabMethods

/// Which kind of forward pass a report describes.
public enum Phase: String, Sendable, Codable {
    /// Many prompt tokens at once, as batched matrix products.
    case prefill
    /// One token, as matrix-vector products.
    case decode
}

/// Wall time of one forward pass, split by the part of the model that spent it.
public struct StepTimings: Sendable, Equatable, Codable {
    /// Everything, embedding to logits.
    public var totalNanoseconds: UInt64 = 0
    /// Q/K/V and output projections, RoPE and norms.
    public var projectionNanoseconds: UInt64 = 0
    /// Cache appends and attention.
    public var attentionNanoseconds: UInt64 = 0
    /// SwiGLU feed-forward.
    public var feedForwardNanoseconds: UInt64 = 0
    /// Final norm and classifier.
    public var classifierNanoseconds: UInt64 = 0

    public init() {}

    /// Adds another step's parts (the total is set by whoever measured the whole).
    mutating func add(_ other: StepTimings) {
        projectionNanoseconds += other.projectionNanoseconds
        attentionNanoseconds += other.attentionNanoseconds
        feedForwardNanoseconds += other.feedForwardNanoseconds
        classifierNanoseconds += other.classifierNanoseconds
    }
}

/// The most likely next tokens after a step.
public struct TopToken: Sendable, Equatable, Codable {
    public var id: Int
    public var logProbability: Float
}

/// What one forward pass did: the engine's single source of truth for every panel. Fixed-size
/// (no arrays) so producing one never allocates; per-head cache detail is read from the cache.
public struct StepReport: Sendable, Equatable, Codable {
    public var phase: Phase
    /// Position of the first token processed.
    public var position: Int
    /// Tokens processed (1 for decode).
    public var tokenCount: Int
    /// The last input token.
    public var token: Int
    /// Argmax of the logits and its log-probability.
    public var top: TopToken
    /// Entropy of the next-token distribution, in nats.
    public var entropy: Float
    public var timings: StepTimings
    /// Bytes moved by the kernels that ran, per memory link and buffer (per layer:
    /// `InferenceEngine.layerLedger(_:)`).
    public var ledger: IOLedger
    /// KV cache occupancy after the step.
    public var cache: KVResidency
    /// Entries kept, summed over every (layer, KV head).
    public var cacheEntries: Int
}
