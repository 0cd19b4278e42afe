import Foundation
import KVLabFoundation

/// One figure of a profile file as written: its value (nil where the device lacks the feature)
/// and where it comes from.
public struct Figure: Sendable, Equatable {
    /// The figure in base units (bytes, bytes/s, FLOP/s); nil where the device lacks the feature.
    public var value: Double?
    /// The datasheet (name or URL) or measurement the value comes from.
    public var source: String
}

/// A device's memory tiers and compute peaks, read from a data file (`Resources/devices/*.json`,
/// any file passed as `--device FILE.json`, or the measured `this-machine` profile).
///
/// Tiers, from fastest: SRAM (shared memory per SM; on a CPU, each core's private L2), L2 (on a
/// CPU the shared last-level cache), HBM (device memory; unified memory on Apple chips and main
/// memory on a CPU), host DRAM (behind PCIe on a discrete GPU; the same memory otherwise), NVMe.
public struct DeviceProfile: Sendable, Equatable {
    /// How the device's memory is organized.
    public enum Kind: String, Sendable, CaseIterable {
        /// A discrete accelerator with its own memory behind PCIe.
        case gpu
        /// One memory shared by CPU and GPU (Apple M-series): the HBM and host DRAM tiers are one.
        case unified
        /// A CPU running the engine itself: main memory is the HBM tier.
        case cpu
    }

    /// Arithmetic precisions with a peak rate.
    public enum Precision: String, Sendable, CaseIterable {
        case fp32
        /// fp16 and bf16 (the same tensor-core rate on every device listed).
        case fp16
        case fp8
        case int8
    }

    /// The file's name without `.json` (`h100-sxm`), or `this-machine`.
    public var id: String
    /// The device as its maker names it.
    public var name: String
    /// How its memory is organized.
    public var kind: Kind
    /// How the tiers map onto this device, in words.
    public var tiers: String
    /// Bytes of shared memory per SM (the tile FlashAttention keeps on chip).
    public var sramPerSM: Double
    /// Streaming multiprocessors (GPU cores on Apple chips, CPU cores on a CPU).
    public var smCount: Int
    /// Bytes of L2 (the last-level cache on a CPU).
    public var l2: Double
    /// Bytes of device memory.
    public var hbm: Double
    /// Bytes per second.
    public var hbmBandwidth: Double
    /// Bytes of host memory the device can fetch from.
    public var hostDRAM: Double
    /// Host memory's bytes per second.
    public var hostDRAMBandwidth: Double
    /// Host-to-device bandwidth (one direction); nil where there is no bus (unified memory, CPU).
    public var pcieBandwidth: Double?
    /// Device-to-device bandwidth per direction for tensor parallelism (NVLink); nil where the
    /// devices talk over PCIe only.
    public var interconnectBandwidth: Double?
    /// Sequential read bytes per second of local NVMe storage, where known.
    public var nvmeBandwidth: Double?
    /// Dense peak FLOP/s (OP/s for int8) per precision; absent where the device has no such unit.
    public var peak: [Precision: Double]
    /// Share of the peaks reached in practice (1 = the roofline itself).
    public var computeEfficiency: Double
    /// Share of the bandwidths reached in practice (1 = the roofline itself).
    public var memoryEfficiency: Double
    /// The source of every figure, by file key.
    public var sources: [String: String]

    /// File keys of the figures, in file order.
    static let figureKeys = ["sram_per_sm", "sm_count", "l2", "hbm", "hbm_bandwidth", "host_dram", "host_dram_bandwidth",
                             "pcie_bandwidth", "interconnect_bandwidth", "nvme_bandwidth", "peak_fp32", "peak_fp16", "peak_fp8", "peak_int8"]
    static let keys = ["name", "kind", "tiers"] + figureKeys + ["compute_efficiency", "memory_efficiency"]

    /// SRAM of the whole device (per SM × SMs).
    public var sramTotal: Double { sramPerSM * Double(smCount) }

    /// Effective bandwidth of the HBM tier (efficiency applied).
    public var effectiveHBMBandwidth: Double { hbmBandwidth * memoryEfficiency }

    /// Bandwidth of a host-to-device fetch: PCIe, or a copy within the one memory where there is no
    /// bus (read and write at the memory's bandwidth).
    public var effectiveFetchBandwidth: Double {
        (pcieBandwidth ?? hbmBandwidth / 2) * memoryEfficiency
    }

    /// Bandwidth of a tensor-parallel all-reduce: NVLink where the profile has it, else PCIe
    /// (else the memory itself, for a device without either).
    public var effectiveInterconnectBandwidth: Double {
        (interconnectBandwidth ?? pcieBandwidth ?? hbmBandwidth / 2) * memoryEfficiency
    }

    /// The peak used for arithmetic in `precision`: fp16 work falls back to fp32 units on devices
    /// without fp16 ones (a CPU running kvlab's fp32 kernels).
    public func effectivePeak(_ precision: Precision) -> Double {
        let rate = peak[precision] ?? peak[.fp16] ?? peak[.fp32]!
        return rate * computeEfficiency
    }

}

// MARK: - Reading and writing

extension DeviceProfile: ProfileFile {
    init(document d: ProfileDocument) throws {
        try d.checkKeys(Self.keys)
        id = URL(fileURLWithPath: d.path).deletingPathExtension().lastPathComponent
        name = try d.string("name")
        let kindText = try d.string("kind")
        guard let kind = Kind(rawValue: kindText) else {
            throw d.error("kind", "\"\(kindText)\" is not one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        self.kind = kind
        tiers = try d.string("tiers")
        var sources: [String: String] = [:]
        func required(_ key: String, _ quantity: QuantityKind) throws -> Double {
            let figure = try d.figure(key, quantity, required: true)!
            sources[key] = figure.source
            return figure.value!
        }
        func optional(_ key: String, _ quantity: QuantityKind) throws -> Double? {
            guard let figure = try d.figure(key, quantity, required: false) else { return nil }
            sources[key] = figure.source
            return figure.value
        }
        sramPerSM = try required("sram_per_sm", .bytes)
        smCount = Int(try required("sm_count", .count))
        l2 = try required("l2", .bytes)
        hbm = try required("hbm", .bytes)
        hbmBandwidth = try required("hbm_bandwidth", .bandwidth)
        hostDRAM = try required("host_dram", .bytes)
        hostDRAMBandwidth = try required("host_dram_bandwidth", .bandwidth)
        pcieBandwidth = try optional("pcie_bandwidth", .bandwidth)
        if kind == .gpu, pcieBandwidth == nil { throw d.error("pcie_bandwidth", "a discrete GPU needs its host link's bandwidth") }
        interconnectBandwidth = try optional("interconnect_bandwidth", .bandwidth)
        nvmeBandwidth = try optional("nvme_bandwidth", .bandwidth)
        var peak: [Precision: Double] = [:]
        peak[.fp32] = try required("peak_fp32", .flops)
        for precision in [Precision.fp16, .fp8, .int8] { peak[precision] = try optional("peak_\(precision.rawValue)", .flops) }
        self.peak = peak
        computeEfficiency = try d.number("compute_efficiency", .ratio, default: 1)
        memoryEfficiency = try d.number("memory_efficiency", .ratio, default: 1)
        self.sources = sources
    }

    /// The profile as a device file (figures with units, each with its source).
    public func json() -> JSONValue {
        func figure(_ key: String, _ value: Double?, _ text: (Double) -> String) -> (String, JSONValue)? {
            guard let source = sources[key] else { return nil }
            return (key, .object([("value", value.map { .string(text($0)) } ?? .null), ("source", .string(source))]))
        }
        var members: [(key: String, value: JSONValue)] = [("name", .string(name)), ("kind", .string(kind.rawValue)), ("tiers", .string(tiers))]
        let figures: [(String, JSONValue)?] = [
            figure("sram_per_sm", sramPerSM, { formatBytes($0, .profile) }), ("sm_count", .object([("value", .integer(smCount)), ("source", .string(sources["sm_count"] ?? ""))])),
            figure("l2", l2, { formatBytes($0, .profile) }), figure("hbm", hbm, { formatBytes($0, .profile) }),
            figure("hbm_bandwidth", hbmBandwidth, Self.formatBandwidth), figure("host_dram", hostDRAM, { formatBytes($0, .profile) }),
            figure("host_dram_bandwidth", hostDRAMBandwidth, Self.formatBandwidth),
            figure("pcie_bandwidth", pcieBandwidth, Self.formatBandwidth),
            figure("interconnect_bandwidth", interconnectBandwidth, Self.formatBandwidth), figure("nvme_bandwidth", nvmeBandwidth, Self.formatBandwidth),
        ] + Precision.allCases.map { figure("peak_\($0.rawValue)", peak[$0], Self.formatFLOPS) }
        members += figures.compactMap { $0.map { (key: $0.0, value: $0.1) } }
        members.append(("compute_efficiency", .number(computeEfficiency)))
        members.append(("memory_efficiency", .number(memoryEfficiency)))
        return .object(members)
    }

    static func formatBandwidth(_ rate: Double) -> String { String(format: "%.4g GB/s", rate / 1e9) }

    static func formatFLOPS(_ rate: Double) -> String {
        rate >= 1e12 ? String(format: "%.4g TFLOP/s", rate / 1e12) : String(format: "%.4g GFLOP/s", rate / 1e9)
    }
}
