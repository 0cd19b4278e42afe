import KVLabEngine

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

    /// A state given figure by figure (one kept count per (layer, KV head)).
    public init(layerCount: Int, kvHeadCount: Int, positions: Int, kept: [Int], residency: KVResidency = KVResidency(),
                keyReadFraction: Double? = nil, valueReadFraction: Double? = nil, hostFetchEntriesPerHead: Double? = nil,
                mixedHighShare: Double? = nil) {
        precondition(kept.count == layerCount * kvHeadCount, "one count per (layer, KV head)")
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

    /// The state of a live cache that has seen `positions` tokens; `lastStep` is the ledger of its
    /// last decode step (keys and values read by attention, host fetches).
    public init(cache: PagedKVCache, positions: Int, lastStep: IOLedger?) {
        let layout = cache.layout
        let kept = (0..<layout.layerCount).flatMap { l in (0..<layout.kvHeadCount).map { cache.entryCount(layer: l, head: $0) } }
        let residency = cache.residency
        // K and V payload as stored (each half of it for a dense read of one tensor).
        let payload = Double(residency.fullPrecisionPayload + residency.quantizedPayload + residency.residualWindow)
        func share(_ bytes: UInt64?, of whole: Double) -> Double? {
            guard let bytes, whole > 0 else { return nil }
            return min(1, Double(bytes) / whole)
        }
        var high: Double?
        if cache.quant.mixed != nil {
            let lanes = cache.quant.recordLayouts(headDim: layout.headDim)
            let entryFloats = Double(layout.headDim * 4)
            let quantizedHalves = Double(2 * kept.reduce(0, +)) - Double(residency.fullPrecisionPayload + residency.residualWindow) / entryFloats
            if quantizedHalves > 0, lanes.keys.count == 2, lanes.values.count == 2 {
                let perEntry = Double(residency.quantizedPayload) / quantizedHalves
                func payload(_ lane: Int) -> Double {
                    (Double(lanes.keys[lane].payloadBytes) / Double(lanes.keys[lane].entries)
                        + Double(lanes.values[lane].payloadBytes) / Double(lanes.values[lane].entries)) / 2
                }
                high = min(1, max(0, (perEntry - payload(1)) / (payload(0) - payload(1))))
            }
        }
        self.init(layerCount: layout.layerCount, kvHeadCount: layout.kvHeadCount, positions: positions, kept: kept,
                  residency: residency, keyReadFraction: share(lastStep?.bytesRead(.keys), of: payload / 2),
                  valueReadFraction: share(lastStep?.bytesRead(.values), of: payload / 2),
                  hostFetchEntriesPerHead: lastStep.flatMap { ledger in
                      let entries = Double(kept.reduce(0, +))
                      guard entries > 0, payload > 0 else { return nil }
                      return Double(ledger.bytes(.keys, .dramToHBM) + ledger.bytes(.values, .dramToHBM)) / (payload / entries) / Double(kept.count)
                  }, mixedHighShare: high)
    }

    /// Entries a head of a target with `layers × kvHeads` heads keeps at `context` tokens: the live
    /// head at the same relative depth and index; a head that has evicted keeps its token count
    /// (budgets are in tokens), one that has kept everything keeps the whole target context.
    func kept(layer: Int, head: Int, layers: Int, kvHeads: Int, context: Int) -> Double {
        let l = layer * layerCount / layers, h = head * kvHeadCount / kvHeads
        let live = kept[l * kvHeadCount + h]
        return Double(live < positions ? min(context, live) : context)
    }
}
