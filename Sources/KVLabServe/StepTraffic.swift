import KVLabEngine
import KVLabMethods

/// What the engine counted in one batched step: its ledger (every weight read once for all rows),
/// the rows that went through the weight products and the FLOPs they and attention did. Per-token
/// figures divide by the rows, so the weight bytes per token fall with the batch and the
/// arithmetic intensity rises.
public struct StepTraffic: Sendable, Equatable {
    public var ledger: IOLedger
    /// Decode tokens plus prompt-chunk tokens.
    public var rows: Int
    /// Sequences in the step.
    public var sequences: Int
    public var flops: UInt64

    public init(_ report: BatchReport) {
        ledger = report.ledger
        rows = report.rows
        sequences = report.sequences.count
        flops = report.flops
    }

    /// Weight bytes read per row.
    public var weightBytesPerToken: Double { Double(ledger.bytesRead(.weights)) / Double(max(rows, 1)) }
    /// Key and value bytes read per row.
    public var kvBytesPerToken: Double { Double(ledger.bytesRead(.keys) + ledger.bytesRead(.values)) / Double(max(rows, 1)) }
    /// FLOPs per byte moved between HBM and SRAM, both ways (as the projection's ops count theirs).
    public var intensity: Double {
        let bytes = ledger.totalRead + ledger.totalWritten
        return bytes > 0 ? Double(flops) / Double(bytes) : 0
    }
}
