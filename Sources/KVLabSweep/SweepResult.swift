import Foundation
import KVLabRun

/// What one cell computed: `kvlab eval`'s numbers for it, what its decode steps moved and took,
/// its projections, and where it was computed. Everything but `measured` and `provenance` is a
/// function of the cell's configuration, so two runs of a cell (local or on Slurm) agree on it.
public struct SweepResult: Codable, Sendable, Equatable {
    public var id: String
    public var cell: SweepCell
    public var quality: CellQuality
    public var projections: [CellProjection]
    public var measured: CellTiming
    public var provenance: Provenance

    /// The part that depends only on the configuration (what a rerun anywhere must reproduce).
    public var deterministic: DeterministicPart { DeterministicPart(id: id, cell: cell, quality: quality, projections: projections) }

    public struct DeterministicPart: Codable, Equatable, Sendable {
        public var id: String
        public var cell: SweepCell
        public var quality: CellQuality
        public var projections: [CellProjection]
    }
}

/// A cell's quality and KV numbers.
public struct CellQuality: Codable, Sendable, Equatable {
    /// `kvlab eval`'s summary: of the perplexity run, or of a probe's whole teacher-forced run.
    public var summary: EvaluationSummary
    /// `kvlab eval --probe`'s result (probe cells).
    public var probe: ProbeResult?
    /// Mean NLL above the full-cache ghost, per predicted token (perplexity) or per answer token (probes).
    public var deltaNLL: Double
    /// Mean KL(ghost ‖ method) per position.
    public var kl: Double
    /// Whether greedy decoding gives the probe's answer (probe cells).
    public var answered: Bool?
    public var meanResidentKVBytes: Double
    public var peakResidentKVBytes: Int
    /// Bytes per decode step of the method's engine, by memory link (`IOLink` key: hbmToSRAM,
    /// sramToHBM, sram, dramToHBM).
    public var trafficPerToken: [String: Double]
    /// Of `hbmToSRAM`: keys, values and their quantization metadata read per decode step.
    public var kvReadPerToken: Double
    public var decodeSteps: Int
    /// The suite's scores (suite cells; `summary` then covers the positions that predict answer tokens).
    public var suite: SuiteScore? = nil
}

/// A cell projected onto a device and a target model shape (`kvlab project` with the cell's
/// methods and its cache's final state applied).
public struct CellProjection: Codable, Sendable, Equatable {
    /// `DEVICE@TARGET` as the grid names it.
    public var pair: String
    public var device: String
    public var target: String
    public var context: Int
    public var decodeMilliseconds: Double
    public var ttftMilliseconds: Double
    public var kvBytesPerSequence: Double
    /// Largest batch at `context` that fits the device's memory.
    public var maxBatch: Int
    /// Largest context at batch 1 (nil: the method bounds the KV, beyond the search limit).
    public var maxContext: Int?
    public var fits: Bool
}

/// Wall time, which depends on the machine and its load.
public struct CellTiming: Codable, Sendable, Equatable {
    /// Mean measured decode step of the method's engine.
    public var stepMilliseconds: Double
    /// The whole cell: loading excluded, evaluation and projection included.
    public var cellSeconds: Double
}

/// Where and with what a result was computed.
public struct Provenance: Codable, Sendable, Equatable {
    public var kvlabVersion: String
    /// The git commit of the checkout kvlab was built in, when it can be told.
    public var commit: String?
    public var modelSHA256: String
    public var textSHA256: String
    /// Host name and CPU.
    public var machine: String
    public var threads: Int
    /// ISO 8601 time the cell finished.
    public var finished: String
    /// The executor that ran it: `local` or `slurm:JOB_TASK`.
    public var executor: String
}
