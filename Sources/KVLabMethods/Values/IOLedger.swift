/// The kinds of buffer whose traffic kernels count.
public enum IOBuffer: Int, Sendable, CaseIterable, Codable {
    case weights
    case keys
    case values
    /// Attention scores and probabilities (materialized by naive attention; tiles on chip for tiled).
    case scores
    /// Online softmax's running row maximum and sum (tiled attention), 8 bytes per query row.
    case softmaxStatistics
    /// Hidden states, norms' inputs and outputs, attention queries and outputs, logits.
    case activations
    /// Scales, zeros and outlier indices of quantized KV entries.
    case quantMetadata
    /// Per-entry state of eviction and sparse methods (scores, counters).
    case policyState

    /// A short name for tables.
    public var label: String {
        switch self {
        case .weights: "weights"
        case .keys: "K"
        case .values: "V"
        case .scores: "scores"
        case .softmaxStatistics: "softmax stats"
        case .activations: "activations"
        case .quantMetadata: "KV metadata"
        case .policyState: "policy state"
        }
    }

    /// The name used in JSON.
    public var key: String { "\(self)" }
}

/// Where bytes move in the GPU memory hierarchy the engine models. On the CPU that runs it, main
/// memory plays HBM and the core's caches play SRAM; the counts are those of the GPU kernel the
/// engine's kernel corresponds to (a naive kernel writes its scores to HBM, a tiled one keeps
/// them on chip).
public enum IOLink: Int, Sendable, CaseIterable, Codable {
    /// Loads from device memory into on-chip SRAM (registers, shared memory).
    case hbmToSRAM
    /// Stores from on-chip SRAM back to device memory.
    case sramToHBM
    /// Intermediates written and read back without leaving SRAM (tiled attention's score tiles).
    case sram
    /// Transfers from host DRAM into device memory (block-retrieval's misses).
    case dramToHBM

    /// A short name for tables.
    public var label: String {
        switch self {
        case .hbmToSRAM: "HBM→SRAM"
        case .sramToHBM: "SRAM→HBM"
        case .sram: "SRAM"
        case .dramToHBM: "DRAM→HBM"
        }
    }

    /// The name used in JSON.
    public var key: String { "\(self)" }
}

/// Bytes moved per link of the memory hierarchy and per buffer kind, counted by the kernels that
/// moved them. A fixed-size value type (32 counters), so counting never allocates in the decode
/// loop.
///
/// JSON: one object per link with traffic, each mapping buffer names to bytes; counters at zero
/// are left out (`{"hbmToSRAM": {"weights": 1024, "keys": 256}, "sramToHBM": {"activations": 64}}`).
public struct IOLedger: Sendable, Equatable, Codable, CustomStringConvertible {
    @usableFromInline typealias Row = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    /// One row of buffer counters per link, in `IOLink` order. Inlinable, with the counting methods
    /// below: the engine's kernels count in their inner loops, from another module.
    @usableFromInline var counts: (Row, Row, Row, Row) = ((0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0),
                                                          (0, 0, 0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 0, 0, 0))
    @usableFromInline static let bufferCount = 8

    public init() {}

    /// Counts `bytes` of `buffer` moved over `link`.
    @inlinable @inline(__always)
    public mutating func add(_ link: IOLink, _ buffer: IOBuffer, _ bytes: Int) { add(link, buffer, UInt64(bytes)) }

    @inlinable @inline(__always)
    mutating func add(_ link: IOLink, _ buffer: IOBuffer, _ bytes: UInt64) {
        let offset = (link.rawValue * Self.bufferCount + buffer.rawValue) * 8
        withUnsafeMutableBytes(of: &counts) {
            $0.storeBytes(of: $0.load(fromByteOffset: offset, as: UInt64.self) &+ bytes, toByteOffset: offset, as: UInt64.self)
        }
    }

    /// Counts a load from HBM into SRAM.
    @inlinable @inline(__always)
    public mutating func read(_ buffer: IOBuffer, _ bytes: Int) { add(.hbmToSRAM, buffer, bytes) }

    /// Counts a store from SRAM to HBM.
    @inlinable @inline(__always)
    public mutating func write(_ buffer: IOBuffer, _ bytes: Int) { add(.sramToHBM, buffer, bytes) }

    /// Counts bytes written and read back within SRAM.
    @inlinable @inline(__always)
    public mutating func onChip(_ buffer: IOBuffer, _ bytes: Int) { add(.sram, buffer, bytes) }

    /// Counts a transfer from host DRAM into HBM.
    @inlinable @inline(__always)
    public mutating func fetch(_ buffer: IOBuffer, _ bytes: Int) { add(.dramToHBM, buffer, bytes) }

    /// Bytes of `buffer` moved over `link`.
    public func bytes(_ buffer: IOBuffer, _ link: IOLink) -> UInt64 {
        withUnsafeBytes(of: counts) { $0.load(fromByteOffset: (link.rawValue * Self.bufferCount + buffer.rawValue) * 8, as: UInt64.self) }
    }

    /// Bytes of `buffer` loaded from HBM into SRAM.
    public func bytesRead(_ buffer: IOBuffer) -> UInt64 { bytes(buffer, .hbmToSRAM) }

    /// Bytes of `buffer` stored from SRAM to HBM.
    public func bytesWritten(_ buffer: IOBuffer) -> UInt64 { bytes(buffer, .sramToHBM) }

    /// Bytes of every buffer moved over `link`.
    public func total(_ link: IOLink) -> UInt64 { IOBuffer.allCases.reduce(0) { $0 + bytes($1, link) } }

    /// Bytes of `buffer` moved between HBM and SRAM, both ways.
    public func hbmTraffic(_ buffer: IOBuffer) -> UInt64 { bytesRead(buffer) + bytesWritten(buffer) }

    /// Bytes loaded from HBM.
    public var totalRead: UInt64 { total(.hbmToSRAM) }
    /// Bytes stored to HBM.
    public var totalWritten: UInt64 { total(.sramToHBM) }

    /// Adds another ledger's counts (a phase summed from its steps, a step from its layers).
    public mutating func add(_ other: IOLedger) {
        withUnsafeMutableBytes(of: &counts) { mine in
            withUnsafeBytes(of: other.counts) { theirs in
                for i in 0..<(IOLink.allCases.count * Self.bufferCount) {
                    let offset = i * 8
                    mine.storeBytes(of: mine.load(fromByteOffset: offset, as: UInt64.self) &+ theirs.load(fromByteOffset: offset, as: UInt64.self),
                                    toByteOffset: offset, as: UInt64.self)
                }
            }
        }
    }

    /// The non-zero counters, link by link: `HBM→SRAM weights 1024 B, K 256 B; SRAM→HBM …`.
    public var description: String {
        let links = IOLink.allCases.filter { total($0) > 0 }.map { link in
            link.label + " " + IOBuffer.allCases.filter { bytes($0, link) > 0 }.map { "\($0.label) \(bytes($0, link)) B" }.joined(separator: ", ")
        }
        return links.isEmpty ? "no traffic" : links.joined(separator: "; ")
    }

    public static func == (a: IOLedger, b: IOLedger) -> Bool {
        IOLink.allCases.allSatisfy { link in IOBuffer.allCases.allSatisfy { a.bytes($0, link) == b.bytes($0, link) } }
    }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let links = try decoder.container(keyedBy: Key.self)
        for linkKey in links.allKeys {
            guard let link = IOLink.allCases.first(where: { $0.key == linkKey.stringValue }) else {
                throw DecodingError.dataCorruptedError(forKey: linkKey, in: links, debugDescription:
                    "unknown link '\(linkKey.stringValue)' (\(IOLink.allCases.map(\.key).joined(separator: ", ")))")
            }
            let buffers = try links.nestedContainer(keyedBy: Key.self, forKey: linkKey)
            for bufferKey in buffers.allKeys {
                guard let buffer = IOBuffer.allCases.first(where: { $0.key == bufferKey.stringValue }) else {
                    throw DecodingError.dataCorruptedError(forKey: bufferKey, in: buffers, debugDescription:
                        "unknown buffer '\(bufferKey.stringValue)' (\(IOBuffer.allCases.map(\.key).joined(separator: ", ")))")
                }
                add(link, buffer, try buffers.decode(UInt64.self, forKey: bufferKey))
            }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var links = encoder.container(keyedBy: Key.self)
        for link in IOLink.allCases where total(link) > 0 {
            var buffers = links.nestedContainer(keyedBy: Key.self, forKey: Key(link.key))
            for buffer in IOBuffer.allCases where bytes(buffer, link) > 0 {
                try buffers.encode(bytes(buffer, link), forKey: Key(buffer.key))
            }
        }
    }
}
