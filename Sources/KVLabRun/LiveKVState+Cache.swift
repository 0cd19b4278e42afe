import KVLabEngine
import KVLabHardware
import KVLabMethods

extension LiveKVState {
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
                  }, mixedHighShare: high, windows: layout.attentionSpans.map(\.window))
    }
}
