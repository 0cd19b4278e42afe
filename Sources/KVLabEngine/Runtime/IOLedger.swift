/// The kinds of buffer whose traffic kernels count.
public enum IOBuffer: Int, Sendable, CaseIterable, Codable {
    case weights
    case keys
    case values
    /// Attention scores/probabilities when a kernel materializes them.
    case scores
    /// Hidden states, norms' inputs and outputs, logits.
    case activations
    /// Scales, zeros and outlier indices of quantized KV entries.
    case quantMetadata
    /// Per-entry state of eviction and sparse methods (scores, counters).
    case policyState
    /// KV blocks brought from host DRAM on retrieval misses (block-retrieval).
    case hostFetch

    public var label: String {
        switch self {
        case .weights: "weights"
        case .keys: "K"
        case .values: "V"
        case .scores: "scores"
        case .activations: "activations"
        case .quantMetadata: "KV metadata"
        case .policyState: "policy state"
        case .hostFetch: "host fetch"
        }
    }
}

/// Bytes read and written, per buffer kind, counted by the kernels that moved them. A fixed-size
/// value type so that counting never allocates in the decode loop.
public struct IOLedger: Sendable, Equatable, Codable {
    private var readBytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    private var writtenBytes: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    public init() {}

    @inline(__always)
    public mutating func read(_ buffer: IOBuffer, _ bytes: Int) {
        withUnsafeMutableBytes(of: &readBytes) { $0.storeBytes(of: $0.load(fromByteOffset: buffer.rawValue * 8, as: UInt64.self) &+ UInt64(bytes), toByteOffset: buffer.rawValue * 8, as: UInt64.self) }
    }

    @inline(__always)
    public mutating func write(_ buffer: IOBuffer, _ bytes: Int) {
        withUnsafeMutableBytes(of: &writtenBytes) { $0.storeBytes(of: $0.load(fromByteOffset: buffer.rawValue * 8, as: UInt64.self) &+ UInt64(bytes), toByteOffset: buffer.rawValue * 8, as: UInt64.self) }
    }

    /// Bytes read from `buffer`.
    public func bytesRead(_ buffer: IOBuffer) -> UInt64 {
        withUnsafeBytes(of: readBytes) { $0.load(fromByteOffset: buffer.rawValue * 8, as: UInt64.self) }
    }

    /// Bytes written to `buffer`.
    public func bytesWritten(_ buffer: IOBuffer) -> UInt64 {
        withUnsafeBytes(of: writtenBytes) { $0.load(fromByteOffset: buffer.rawValue * 8, as: UInt64.self) }
    }

    /// Adds another ledger's counts (a multi-step phase summed from its steps).
    public mutating func add(_ other: IOLedger) {
        for buffer in IOBuffer.allCases {
            read(buffer, Int(other.bytesRead(buffer)))
            write(buffer, Int(other.bytesWritten(buffer)))
        }
    }

    public var totalRead: UInt64 { IOBuffer.allCases.reduce(0) { $0 + bytesRead($1) } }
    public var totalWritten: UInt64 { IOBuffer.allCases.reduce(0) { $0 + bytesWritten($1) } }

    public static func == (a: IOLedger, b: IOLedger) -> Bool {
        IOBuffer.allCases.allSatisfy { a.bytesRead($0) == b.bytesRead($0) && a.bytesWritten($0) == b.bytesWritten($0) }
    }

    private enum CodingKeys: String, CodingKey { case read, written }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let read = try container.decode([String: UInt64].self, forKey: .read)
        let written = try container.decode([String: UInt64].self, forKey: .written)
        for buffer in IOBuffer.allCases {
            self.read(buffer, Int(read["\(buffer)"] ?? 0))
            self.write(buffer, Int(written["\(buffer)"] ?? 0))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(Dictionary(uniqueKeysWithValues: IOBuffer.allCases.map { ("\($0)", bytesRead($0)) }), forKey: .read)
        try container.encode(Dictionary(uniqueKeysWithValues: IOBuffer.allCases.map { ("\($0)", bytesWritten($0)) }), forKey: .written)
    }
}
