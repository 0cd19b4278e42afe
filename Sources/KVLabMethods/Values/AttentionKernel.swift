import Foundation
import KVLabFoundation

/// Which attention kernel the cache runs, and so which traffic the ledger counts. Switchable
/// between any two steps.
public enum AttentionKernel: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Unfused attention: the scores are written to HBM, read back by softmax, which writes the
    /// probabilities, read back again by the value weighting.
    case naive
    /// FlashAttention (Dao et al. 2022, Algorithm 1) for an SRAM of `sramBytes`: online softmax
    /// over key/value tiles, scores kept on chip, nothing N×N written to HBM.
    case tiled(sramBytes: Int)

    /// SRAM a tiled kernel gets when none is named: an H100 (or H200) SM's shared memory.
    public static let defaultSRAMBytes = 228 * 1024

    /// `naive` or `tiled:sram=SIZE`, the spelling `init(parsing:)` reads.
    public var description: String {
        switch self {
        case .naive: "naive"
        case .tiled(let bytes): "tiled:sram=\(formatBytes(bytes, .exact))"
        }
    }

    /// Parses `naive`, `tiled` (with `defaultSRAMBytes`) or `tiled:sram=SIZE` (bytes, or a number
    /// with KiB, MiB or GiB); the SRAM must hold one tile row of heads of `headDim` when given.
    public init(parsing text: String, headDim: Int? = nil) throws(MethodSpecError) {
        let trimmed = Substring(text).trimmingSpaces
        if trimmed == "naive" { self = .naive; return }
        let size: Substring
        if trimmed == "tiled" {
            size = "\(Self.defaultSRAMBytes)"
        } else if trimmed.hasPrefix("tiled:sram=") {
            size = trimmed.dropFirst("tiled:sram=".count)
        } else {
            throw MethodSpecError("attention: '\(text)' is not naive, tiled or tiled:sram=SIZE")
        }
        guard let bytes = parseByteSize(String(size)) else {
            throw MethodSpecError("attention: '\(size)' is not a positive size (bytes, or a number with KiB, MiB or GiB)")
        }
        self = .tiled(sramBytes: bytes)
        if let headDim { try check(headDim: headDim) }
    }

    /// Checks that a tiled kernel's SRAM holds one tile row of heads of `headDim`.
    public func check(headDim: Int) throws(MethodSpecError) {
        guard case .tiled(let bytes) = self, bytes < AttentionTileShape.minimumSRAMBytes(headDim: headDim) else { return }
        throw MethodSpecError("attention: \(formatBytes(bytes, .exact)) of SRAM cannot hold one tile row of 4 × \(headDim) fp32 "
                              + "(at least \(AttentionTileShape.minimumSRAMBytes(headDim: headDim)) B)")
    }
}

/// FlashAttention's block sizes for an SRAM of M elements and heads of d: key/value tiles of
/// B_c = ⌈M / 4d⌉ entries and query blocks of B_r = min(⌈M / 4d⌉, d) rows, so that a query block,
/// a key tile, a value tile and an output block (4·B·d elements) fit in M.
public struct AttentionTileShape: Sendable, Equatable {
    /// B_c: key/value entries per tile.
    public var entries: Int
    /// B_r: query rows per block.
    public var rows: Int

    /// The shape for `sramBytes` of SRAM holding elements of `elementBytes` (fp32 in this engine;
    /// a projection for fp16 kernels passes 2).
    public init(sramBytes: Int, headDim: Int, elementBytes: Int = 4) {
        let elements = sramBytes / elementBytes
        entries = max(1, (elements + 4 * headDim - 1) / (4 * headDim))
        rows = min(entries, headDim)
    }

    /// The least SRAM that holds one entry of each of the four blocks.
    public static func minimumSRAMBytes(headDim: Int, elementBytes: Int = 4) -> Int { 4 * headDim * elementBytes }
}

