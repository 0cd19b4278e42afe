/// Where a KV tensor's calibration (fp8 scale, nuq levels) applies.
public enum KVCalibrationScope: String, Sendable, Hashable {
    /// One set per layer.
    case layer
    /// One set per (layer, KV head).
    case head
}

/// How one tensor (keys or values) of a quantized cache occupies memory: the cache's own record
/// layout (`KVRecordCodec`), so a projection costs the bytes the cache really stores.
public struct KVRecordLayout: Sendable, Hashable {
    /// Entries quantized together into one record (they wait at full precision until all arrive).
    public var entries: Int
    /// Packed codes of one record.
    public var payloadBytes: Int
    /// Scales, zeros, block scales and outliers of one record.
    public var metadataBytes: Int
    /// Calibration bytes per scope (fp8's scale, nuq's levels); 0 without.
    public var calibrationBytes: Int
    /// The calibration's scope; nil without calibration.
    public var calibrationScope: KVCalibrationScope?
    /// Bits per element of the codes alone, without metadata (the "KV bits" of analytic tools).
    public var codeBits: Int

    /// Bytes per entry, metadata included.
    public var bytesPerEntry: Double { Double(payloadBytes + metadataBytes) / Double(entries) }
}

extension KVQuantMethod {
    /// The record layouts of the keys and of the values for heads of `headDim` channels: empty
    /// for a tensor kept at fp32; `mixed` has two lanes, the high precision first.
    public func recordLayouts(headDim: Int) -> (keys: [KVRecordLayout], values: [KVRecordLayout]) {
        let outliers = OutlierSplit.outlierCount(elements: headDim, percent: outlierPercent)
        func lanes(_ format: KVTensorFormat) -> [KVRecordLayout] {
            var formats = [format]
            if let mixed, case .uniform(_, let axis, let group) = format {
                formats.append(.uniform(bits: mixed.lowBits, axis: axis, group: group))
            }
            return formats.compactMap { format in
                guard let codec = KVRecordCodec(format: format, headDim: headDim, outliers: outliers, nuq: nuq) else { return nil }
                let scope: KVCalibrationScope?
                if codec.calibrationCount == 0 {
                    scope = nil
                } else if case .fp8(_, .head) = format {
                    scope = .head
                } else {
                    scope = .layer
                }
                return KVRecordLayout(entries: codec.tokens, payloadBytes: codec.payloadBytes, metadataBytes: codec.metadataBytes,
                                      calibrationBytes: scope == nil ? 0 : codec.calibrationBytes, calibrationScope: scope,
                                      codeBits: format.codeBits)
            }
        }
        return (lanes(key), lanes(value))
    }
}

extension KVTensorFormat {
    /// Bits per element of the codes alone (32 for fp32).
    public var codeBits: Int {
        switch self {
        case .fp32: 32
        case .uniform(let bits, _, _): bits
        case .block(.q8_0): 8
        case .block(.q4_0), .block(.q4_1): 4
        case .block(.q5_0), .block(.q5_1): 5
        case .fp8: 8
        }
    }
}
