import KVLabMethods


/// The bytes a (layer, KV head) of the target spends on its kept entries under a quantization
/// method, from the cache's own record layouts: the most recent `residual` entries (and those
/// waiting for their record, and protected sinks) stay at full precision, older ones are packed
/// `entries` at a time with their metadata.
struct KVStorageModel {
    /// One tensor's (keys' or values') bytes for n kept entries.
    struct Tensor {
        var payload = 0.0
        var metadata = 0.0
        var fullPrecision = 0.0
        /// Entries held in records.
        var quantizedEntries = 0.0

        var total: Double { payload + metadata + fullPrecision }
    }

    let headDim: Int
    let floatBytes: Int
    let keys: [KVRecordLayout]
    let values: [KVRecordLayout]
    let residual: Int
    let protectedSinks: Int
    /// `mixed`: share of records at the high precision (lane 0).
    let highShare: Double
    /// Whether values are stored beside the keys; MLA's cache is one latent per entry, costed as
    /// the key tensor (so quantizing it uses the key layout), with no value tensor.
    let storesValues: Bool

    init(quant: KVQuantMethod, headDim: Int, float: FloatFormat, mixedHighShare: Double?, storesValues: Bool = true) {
        self.headDim = headDim
        self.storesValues = storesValues
        floatBytes = float.bytes
        (keys, values) = quant.recordLayouts(headDim: headDim)
        residual = quant.residual
        protectedSinks = quant.protectedSinks
        highShare = mixedHighShare ?? 0
    }

    /// Bytes of one full-precision vector.
    var vectorBytes: Double { Double(headDim * floatBytes) }

    func keys(_ n: Double) -> Tensor { tensor(keys, n) }
    func values(_ n: Double) -> Tensor { storesValues ? tensor(values, n) : Tensor() }

    private func tensor(_ lanes: [KVRecordLayout], _ n: Double) -> Tensor {
        guard let first = lanes.first else { return Tensor(fullPrecision: n * vectorBytes) }
        let share = lanes.count > 1 ? highShare : 1
        let low = lanes.count > 1 ? lanes[1] : first
        let eligible = max(0, n - Double(residual) - min(Double(protectedSinks), n))
        let records = (eligible / Double(first.entries)).rounded(.down)
        let quantized = records * Double(first.entries)
        return Tensor(payload: records * (share * Double(first.payloadBytes) + (1 - share) * Double(low.payloadBytes)),
                      metadata: records * (share * Double(first.metadataBytes) + (1 - share) * Double(low.metadataBytes)),
                      fullPrecision: (n - quantized) * vectorBytes, quantizedEntries: quantized)
    }

    /// Bytes per key (value) entry at its code bits alone: the analytic tools' "KV bits".
    var idealKeyBytes: Double { idealBytes(keys) }
    var idealValueBytes: Double { storesValues ? idealBytes(values) : 0 }

    private func idealBytes(_ lanes: [KVRecordLayout]) -> Double {
        guard let first = lanes.first else { return vectorBytes }
        let low = lanes.count > 1 ? lanes[1] : first
        let share = lanes.count > 1 ? highShare : 1
        return Double(headDim) * (share * Double(first.codeBits) + (1 - share) * Double(low.codeBits)) / 8
    }

    /// Bytes a quantized entry takes in its record (payload and metadata), for the entry that
    /// leaves the residual window each step.
    var keyRecordBytesPerEntry: Double? { recordBytes(keys) }
    var valueRecordBytesPerEntry: Double? { storesValues ? recordBytes(values) : nil }

    /// Full-precision vectors a new entry writes: a key and a value, or MLA's one latent.
    var appendVectors: Double { storesValues ? 2 : 1 }

    private func recordBytes(_ lanes: [KVRecordLayout]) -> Double? {
        guard let first = lanes.first else { return nil }
        let low = lanes.count > 1 ? lanes[1] : first
        let share = lanes.count > 1 ? highShare : 1
        return share * first.bytesPerEntry + (1 - share) * low.bytesPerEntry
    }

    /// Calibration bytes (fp8 scales, nuq levels) of the whole cache.
    func calibrationBytes(layers: Int, kvHeads: Int) -> Double {
        (keys + (storesValues ? values : [])).reduce(0) { total, lane in
            switch lane.calibrationScope {
            case .layer: total + Double(lane.calibrationBytes * layers)
            case .head: total + Double(lane.calibrationBytes * layers * kvHeads)
            case nil: total
            }
        }
    }
}
