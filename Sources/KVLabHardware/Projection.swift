import KVLabMethods


/// The float format of activations, attention scores, unquantized KV entries and residual windows.
public enum FloatFormat: String, Sendable, CaseIterable {
    /// As GPU inference engines (and LLM-Viewer) keep them.
    case f16
    /// As kvlab's CPU engine keeps them.
    case f32

    /// Bytes per element.
    public var bytes: Int { self == .f16 ? 2 : 4 }
}

/// Everything a projection depends on. A value type, so the workbench can project every step.
public struct ProjectionSetup: Sendable, Equatable {
    /// The device projected onto.
    public var device: DeviceProfile
    /// The model shape projected.
    public var target: TargetShape
    /// How the target's weight matrices are stored (embedding and classifier included).
    public var weights: WeightType
    /// Tokens in the cache at the projected decode step (and the prompt length for TTFT).
    public var context: Int
    /// Sequences decoded together (weights are read once per step for all of them).
    public var batch: Int
    /// Devices the model is split over by tensor parallelism (figures are per device).
    public var devices: Int
    /// Which entries each (layer, KV head) keeps.
    public var eviction: EvictionMethod
    /// How kept entries are stored.
    public var quant: KVQuantMethod
    /// Which kept entries a decode step reads.
    public var sparse: SparseMethod
    /// Float format of activations, scores and unquantized KV.
    public var float: FloatFormat
    /// How attention moves its scores (the engine's kernels; a tiled kernel's SRAM sizes its tiles).
    public var kernel: AttentionKernel
    /// The live cache's state, applied to the target instead of the methods' analytic budgets
    /// and read patterns where it says more.
    public var live: LiveKVState?

    /// A setup with LLM-Viewer's defaults where not given: f16, batch 1, full fp16 cache, unfused attention.
    public init(device: DeviceProfile, target: TargetShape, weights: WeightType = .f16, context: Int, batch: Int = 1, devices: Int = 1,
                eviction: EvictionMethod = .full, quant: KVQuantMethod = .fp32, sparse: SparseMethod = .dense,
                float: FloatFormat = .f16, kernel: AttentionKernel = .naive, live: LiveKVState? = nil) {
        self.device = device
        self.target = target
        self.weights = weights
        self.context = context
        self.batch = batch
        self.devices = devices
        self.eviction = eviction
        self.quant = quant
        self.sparse = sparse
        self.float = float
        self.kernel = kernel
        self.live = live
    }
}

/// Which roof limits an op.
public enum RooflineBound: String, Sendable, Encodable {
    case compute
    /// Device memory (HBM) bandwidth.
    case memory
    /// Host-to-device fetches (PCIe, or a copy within unified memory).
    case host
    /// The link between tensor-parallel devices (NVLink, or PCIe).
    case interconnect
}

/// One op of a forward pass, summed over the layers it runs in.
public struct OpCost: Sendable, Equatable, Encodable {
    /// The op, as the table names it (`q_proj`, `qk`, ...).
    public var name: String
    /// Device memory bytes read and written.
    public var bytes: Double
    /// Bytes fetched from host DRAM.
    public var hostBytes: Double
    /// Bytes each device sends over the interconnect (tensor parallelism's all-reduces).
    public var linkBytes: Double = 0
    /// Floating-point operations (dequantization included).
    public var flops: Double
    /// Roofline time: the largest of compute, memory, host-fetch and interconnect time.
    public var seconds: Double
    /// Which roof sets its time.
    public var bound: RooflineBound

    /// FLOPs per device-memory byte.
    public var intensity: Double { bytes > 0 ? flops / bytes : .infinity }
}

/// The ops of one forward pass (a decode step, or a prefill) and their total.
public struct PhaseCost: Sendable, Equatable {
    /// The ops in execution order.
    public var ops: [OpCost]

    /// Roofline time of the whole pass.
    public var seconds: Double { ops.reduce(0) { $0 + $1.seconds } }
    /// Device memory bytes of the whole pass.
    public var bytes: Double { ops.reduce(0) { $0 + $1.bytes } }
    /// Host fetch bytes of the whole pass.
    public var hostBytes: Double { ops.reduce(0) { $0 + $1.hostBytes } }
    /// Interconnect bytes of the whole pass (per device).
    public var linkBytes: Double { ops.reduce(0) { $0 + $1.linkBytes } }
    /// FLOPs of the whole pass.
    public var flops: Double { ops.reduce(0) { $0 + $1.flops } }

    /// The op named `name`, if the phase has one.
    public func op(_ name: String) -> OpCost? { ops.first { $0.name == name } }
}

extension PhaseCost: Encodable {
    private enum CodingKeys: String, CodingKey { case ops, seconds, bytes, hostBytes, flops }

    /// The ops and their totals.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(ops, forKey: .ops)
        try container.encode(seconds, forKey: .seconds)
        try container.encode(bytes, forKey: .bytes)
        try container.encode(hostBytes, forKey: .hostBytes)
        try container.encode(flops, forKey: .flops)
    }
}

/// Resident KV bytes of one sequence, by what they hold.
public struct KVFootprint: Sendable, Equatable, Encodable {
    /// Entries kept, summed over every (layer, KV head).
    public var entries: Double
    /// Packed codes of quantized entries.
    public var quantizedPayload: Double
    /// Scales, zeros, block scales, outliers and calibration.
    public var metadata: Double
    /// Entries at full precision (`float`): unquantized tensors, residual windows, entries waiting
    /// for their group, protected sinks.
    public var fullPrecision: Double
    /// Positions, policy scores and counters, Quest's page bounds.
    public var policyState: Double
    /// Linear-attention and state-space layers' fixed state (not KV: no KV method applies).
    public var recurrentState: Double = 0
    /// Of the above, what lives in host DRAM (block-retrieval's past blocks).
    public var hostResident: Double
    /// The same entries at their code bits alone, no metadata and no residual window (how analytic
    /// tools such as LLM-Viewer count KV).
    public var ideal: Double

    /// Everything the cache holds for one sequence.
    public var total: Double { quantizedPayload + metadata + fullPrecision + policyState + recurrentState }
    /// What device memory holds.
    public var deviceResident: Double { total - hostResident }
}

/// Whether the projected setup fits device memory, and how far it stretches.
public struct CapacityReport: Sendable, Equatable, Encodable {
    /// The device's memory in bytes.
    public var deviceMemory: Double
    /// Bytes of every weight the device holds (embedding, layers, norms, classifier when untied;
    /// its shard under tensor parallelism).
    public var weights: Double
    /// KV per sequence in device memory.
    public var kvPerSequence: Double
    /// Decode activations per sequence (step buffers, and one layer's scores when materialized).
    public var activationsPerSequence: Double
    /// Weights + batch × (KV + activations).
    public var used: Double
    /// Whether the batch fits device memory.
    public var fits: Bool { used <= deviceMemory }
    /// The most sequences of this context that fit (0 when the weights alone do not).
    public var maxBatch: Int
    /// The longest context one sequence can reach; nil when it exceeds `contextSearchLimit`
    /// (the method bounds the KV).
    public var maxContext: Int?
    /// Prefill's largest working set for one layer at this context (activations, and the score
    /// matrix of the naive kernel), which a real server bounds by chunking the prompt.
    public var prefillWorkingSet: Double

    /// The longest context the capacity search tries.
    public static let contextSearchLimit = 1 << 24
}

/// One memory tier: what it holds for this projection.
public struct TierUsage: Sendable, Equatable, Encodable {
    /// The tier (SRAM, L2, HBM, host DRAM).
    public var name: String
    /// Bytes the tier holds (per SM for SRAM).
    public var capacity: Double
    /// Bytes per second, where the profile gives one.
    public var bandwidth: Double?
    /// What the projection puts there.
    public var items: [Item]

    /// A labelled share of a tier.
    public struct Item: Sendable, Equatable, Encodable {
        /// What the bytes are.
        public var label: String
        /// How many bytes.
        public var bytes: Double
    }

    /// Bytes used, all items together.
    public var used: Double { items.reduce(0) { $0 + $1.bytes } }
}

/// A projection of one setup: per-op decode and prefill costs on the roofline, KV footprint,
/// capacity, and the memory hierarchy view. `Projection(setup)` is a pure function of the setup.
public struct Projection: Sendable, Equatable {
    /// What was projected.
    public var setup: ProjectionSetup
    /// One decode step (all sequences of the batch).
    public var decode: PhaseCost
    /// The decode step with KV at its code bits alone (no metadata, no residual window, no policy
    /// state): LLM-Viewer's accounting of quantized KV, beside the real one.
    public var idealDecode: PhaseCost
    /// A prefill of `context` prompt tokens per sequence: time to first token.
    public var prefill: PhaseCost
    /// Resident KV of one sequence.
    public var kv: KVFootprint
    /// Device memory use and limits.
    public var capacity: CapacityReport
    /// SRAM, L2, HBM and host DRAM, fastest first.
    public var hierarchy: [TierUsage]
    /// FlashAttention's key/value tile (B_c entries) for this device and head size.
    public var tileEntries: Int
    /// Mean entries kept per (layer, KV head).
    public var meanKept: Double
    /// Assumptions the figures rest on, in words (shown under the table).
    public var notes: [String]
    /// What the setup runs into: "does not fit" and "beyond the target's context" (shown above
    /// the figures, in `kvlab project` and the workbench).
    public var warnings: [String] = []

    /// Seconds per decode step.
    public var decodeSeconds: Double { decode.seconds }
    /// Seconds to the first token.
    public var ttft: Double { prefill.seconds }
}
