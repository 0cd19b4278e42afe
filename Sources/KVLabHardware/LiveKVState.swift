import KVLabMethods


/// What the live engine's cache holds and read at its last step, to be applied to a target shape:
/// kept entries per (layer, KV head), residency by category, and the share of the kept entries the
/// last step's sparse attention actually read (from its IO ledger).
public struct LiveKVState: Sendable, Equatable {
    /// Layers of the live model.
    public var layerCount: Int
    /// KV heads per layer of the live model.
    public var kvHeadCount: Int
    /// Tokens the live cache has seen (the position of the next token).
    public var positions: Int
    /// Entries kept per (layer, KV head), layer-major.
    public var kept: [Int]
    /// The live cache's resident bytes by category.
    public var residency: KVResidency
    /// Share of the kept keys (values) the last decode step read; nil without a ledger. Applied to
    /// the target for modes whose reads depend on the data (`threshold`); budgeted modes (topk,
    /// quest, block-retrieval) are costed from their parameters at the target's context.
    public var keyReadFraction: Double?
    /// Share of the kept values the last decode step read; nil without a ledger.
    public var valueReadFraction: Double?
    /// Entries fetched from host DRAM at the last step per (layer, KV head) (block-retrieval misses).
    public var hostFetchEntriesPerHead: Double?
    /// `mixed`: the share of quantized entries stored at the high precision; nil for other methods.
    public var mixedHighShare: Double?
    /// Per live layer: the sliding window of a local layer (which keeps window − 1 entries between
    /// steps whatever the method), nil for a global one.
    public var windows: [Int?]

    /// A state given figure by figure (one kept count per (layer, KV head)).
    public init(layerCount: Int, kvHeadCount: Int, positions: Int, kept: [Int], residency: KVResidency = KVResidency(),
                keyReadFraction: Double? = nil, valueReadFraction: Double? = nil, hostFetchEntriesPerHead: Double? = nil,
                mixedHighShare: Double? = nil, windows: [Int?]? = nil) {
        precondition(kept.count == layerCount * kvHeadCount, "one count per (layer, KV head)")
        precondition(windows == nil || windows!.count == layerCount, "one window per layer")
        self.windows = windows ?? Array(repeating: nil, count: layerCount)
        self.layerCount = layerCount
        self.kvHeadCount = kvHeadCount
        self.positions = positions
        self.kept = kept
        self.residency = residency
        self.keyReadFraction = keyReadFraction
        self.valueReadFraction = valueReadFraction
        self.hostFetchEntriesPerHead = hostFetchEntriesPerHead
        self.mixedHighShare = mixedHighShare
    }

    /// Entries a head of a target with `layers × kvHeads` heads keeps at `context` tokens: the live
    /// head at the same relative depth and index; a head that has evicted keeps its token count
    /// (budgets are in tokens), one that has kept everything keeps the whole target context. A
    /// live local layer has kept everything when it holds all its window keeps: the window is
    /// the live model's, not the method's (the target's own windows apply to the target).
    func kept(layer: Int, head: Int, layers: Int, kvHeads: Int, context: Int) -> Double {
        let l = layer * layerCount / layers, h = head * kvHeadCount / kvHeads
        let live = kept[l * kvHeadCount + h]
        let whole = windows[l].map { min(positions, $0 - 1) } ?? positions
        return Double(live < whole ? min(context, live) : context)
    }
}
