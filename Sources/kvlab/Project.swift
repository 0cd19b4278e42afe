import Foundation
import ArgumentParser
import KVLabEngine
import KVLabFoundation
import KVLabHardware
import KVLabMethods
import KVLabSession

/// `kvlab project`: a KV setting's bytes, FLOPs and roofline time per op, TTFT and capacity for a
/// target model shape on a device profile.
struct Project: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Project decode latency, TTFT and capacity of a KV setting onto a device and a target model shape.")

    @Option(name: .long, help: "Device profile name (see --list) or a device FILE.json.")
    var device = ProjectionSettings.defaultDevice

    @Option(name: .long, help: "Target shape name (see --list), 'live' (the loaded model), a shape FILE.json, or any model file kvlab reads (config.json, GGUF, llama2.c); with --fit, 'all' (every bundled target).")
    var target = ProjectionSettings.defaultTarget

    @Option(name: .long, help: "Tokens in the cache at the projected decode step (and the prompt length for TTFT), 1 to 16777216.")
    var context = ProjectionSettings.defaultContext

    @Option(name: .long, help: "Sequences decoded together, 1 to 65536.")
    var batch = 1

    @Option(name: .long, help: "Devices the target is split over by tensor parallelism, 1 to 64 (weights and KV heads sharded, two all-reduces per layer on the profile's interconnect; figures per device).")
    var devices = 1

    @Option(name: .long, help: "Target weight storage (block scales counted).")
    var weights: WeightType = .f16

    @Option(name: .long, help: "Float format of activations, scores and unquantized KV: f16 (GPU engines) or f32 (kvlab's CPU engine).")
    var float: FloatFormat = .f16

    @OptionGroup var kvOptions: KVOptions

    @Option(name: .long, help: "Model for --target live and --live (default: the embedded model).")
    var model: String?

    @Option(name: .long, help: "tokenizer.bin for a llama2.c --model.")
    var tokenizer: String?

    @Option(name: .long, help: "Run the live model N tokens, 1 to 1000000 (greedy from BOS) with the KV methods and apply its cache state (kept entries per head, read shares, host fetches).")
    var live: Int?

    @OptionGroup var fitOptions: FitOptions

    @Flag(name: .long, help: "Print JSON instead of tables.")
    var json = false

    @Flag(name: .long, help: "List the device profiles and target shapes.")
    var list = false

    @Flag(name: .long, help: "Measure this-machine again (bandwidth probe, caches, BLAS peak) and update its cached profile.")
    var measure = false

    func validate() throws {
        guard context >= 1, context <= CapacityReport.contextSearchLimit else { throw CLIError("--context must be between 1 and \(CapacityReport.contextSearchLimit)") }
        guard batch >= 1, batch <= 1 << 16 else { throw CLIError("--batch must be between 1 and 65536") }
        guard devices >= 1, devices <= 64 else { throw CLIError("--devices must be between 1 and 64") }
        try fitOptions.validate()
        if let live { try checkRange(live, OptionRange.live, option: "--live") }
    }

    func run() throws {
        if list { return printList() }
        let probe = MachineProbe.engine
        if measure {
            let profile = try probe.profile(remeasure: true).profile
            print("measured this-machine → \(MachineProbe.cacheFile)")
            print(describe(profile))
            if device != HardwareCatalog.thisMachine { return }
        }
        let deviceProfile = try loadDevice(probe)
        if fitOptions.fit, target == FitOptions.allTargets {
            let setup = { (shape: TargetShape) in
                ProjectionSetup(device: deviceProfile, target: shape, weights: weights, context: context, batch: batch, devices: devices, float: float)
            }
            let shapes = try HardwareCatalog.targetNames.filter { $0 != HardwareCatalog.live }.map { try HardwareCatalog.target($0) }
            let report = try CatalogFitReport(setups: shapes.map(setup), options: fitOptions)
            if json { FileHandle.standardOutput.write(try JSONDocument.prettyLine(report)) } else { print(report.text) }
            return
        }
        var loaded: LoadedModel?
        func liveModel() throws -> LoadedModel {
            if let loaded { return loaded }
            let model = try ModelOptions(model: model, tokenizer: tokenizer).load()
            loaded = model
            return model
        }
        let shape: TargetShape
        do {
            if target == HardwareCatalog.live {
                let model = try liveModel()
                shape = TargetShape(config: model.config, tiedEmbeddings: model.weights.tiedClassifier, id: HardwareCatalog.live,
                                    source: "the loaded model (\(model.path))")
            } else {
                shape = try HardwareCatalog.target(target)
            }
        } catch let error as UnknownProfileError {
            throw CLIError("--target: \(error)")
        }
        let eviction = try kvOptions.evictionMethod()
        // MLA's cache entry is its latent and RoPE key: quantization and tiles are sized on it.
        let quant = try kvOptions.modes.quantMethod(headDim: shape.cacheKeyDim)
        let sparse = try kvOptions.modes.sparseMethod()
        let kernel = try kvOptions.modes.attentionKernel(headDim: shape.cacheKeyDim, defaultSRAM: Int(deviceProfile.sramPerSM))
        var state: LiveKVState?
        if let live {
            let model = try liveModel()
            state = try liveState(model: model, tokens: live, eviction: eviction, sparse: sparse)
        }
        let setup = ProjectionSetup(device: deviceProfile, target: shape, weights: weights, context: context, batch: batch, devices: devices,
                                    eviction: eviction, quant: quant, sparse: sparse, float: float, kernel: kernel, live: state)
        if fitOptions.fit {
            let fit = try FitReport(base: setup, options: fitOptions)
            if json { FileHandle.standardOutput.write(try JSONDocument.prettyLine(fit)) } else { print(fit.text) }
            return
        }
        let projection = Projection(setup)
        if json {
            FileHandle.standardOutput.write(try JSONDocument.prettyLine(ProjectReport(projection)))
        } else {
            print(report(projection))
        }
    }

    private func loadDevice(_ probe: MachineProbe) throws -> DeviceProfile {
        if device == HardwareCatalog.thisMachine {
            let (profile, measuredNow) = try probe.profile(remeasure: false)
            if measuredNow, !json { print("measured this-machine (first use) → \(MachineProbe.cacheFile)") }
            return profile
        }
        do { return try HardwareCatalog.device(device) } catch let error as UnknownProfileError { throw CLIError("--device: \(error)") }
    }

    /// The live model's cache after `tokens` greedy steps from BOS under the selected methods.
    private func liveState(model: LoadedModel, tokens: Int, eviction: EvictionMethod, sparse: SparseMethod) throws -> LiveKVState {
        let config = model.config
        let cache = PagedKVCache(layout: KVLayout(config: config), eviction: eviction, sparse: sparse,
                                 quant: try kvOptions.modes.quantMethod(headDim: config.headDim))
        let engine = InferenceEngine(weights: model.weights, cache: cache)
        engine.promptTexts = model.promptTexts
        var token = model.tokenizer.spec.bosID ?? 0
        var last: IOLedger?
        let steps = min(tokens, config.contextLength)
        for _ in 0..<steps {
            let report = try engine.decode(token)
            token = report.top.id
            last = report.ledger
        }
        return LiveKVState(cache: cache, positions: steps, lastStep: last)
    }

    private func printList() {
        let width = (HardwareCatalog.deviceNames + HardwareCatalog.targetNames).map(\.count).max()! + 1
        print("devices (--device NAME, or a FILE.json):")
        for name in HardwareCatalog.deviceNames {
            if name == HardwareCatalog.thisMachine {
                print("  \(name.padding(toLength: width, withPad: " ", startingAt: 0)) measured on first use, cached in \(MachineProbe.cacheFile)")
            } else if let profile = try? HardwareCatalog.device(name) {
                print("  \(name.padding(toLength: width, withPad: " ", startingAt: 0)) \(describe(profile))")
            }
        }
        print("targets (--target NAME, 'live', a shape FILE.json, or a model file):")
        for name in HardwareCatalog.targetNames {
            if name == HardwareCatalog.live {
                print("  \(name.padding(toLength: width, withPad: " ", startingAt: 0)) the loaded model (--model, default the embedded one)")
            } else if let shape = try? HardwareCatalog.target(name) {
                print("  \(name.padding(toLength: width, withPad: " ", startingAt: 0)) \(describe(shape))")
            }
        }
    }

    private func describe(_ d: DeviceProfile) -> String {
        var text = "\(d.name): HBM \(formatBytes(Int(d.hbm))) at \(rate(d.hbmBandwidth, "B/s")), "
            + "fp16 \(rate(d.peak[.fp16] ?? d.peak[.fp32]!, "FLOP/s")), SRAM \(formatBytes(Int(d.sramPerSM))) × \(d.smCount), L2 \(formatBytes(Int(d.l2)))"
        if d.kind == .cpu { text = "\(d.name): memory \(formatBytes(Int(d.hbm))) at \(rate(d.hbmBandwidth, "B/s")), fp32 \(rate(d.peak[.fp32]!, "FLOP/s")), per-core L2 \(formatBytes(Int(d.sramPerSM))) × \(d.smCount), LLC \(formatBytes(Int(d.l2)))" }
        return text
    }

    private func describe(_ t: TargetShape) -> String {
        let active = t.experts == nil ? "" : String(format: " (%.2fB active)", Double(t.activeParameterCount) / 1e9)
        return "\(t.name): \(t.layers) layers, hidden \(t.hidden), \(t.heads) heads / \(t.kvHeads) KV heads × \(t.headDim), FFN \(t.ffn), "
            + "vocabulary \(t.vocab), context \(t.maxContext), \(String(format: "%.2f", Double(t.parameterCount) / 1e9))B parameters\(active); \(t.family)"
    }

    private func report(_ p: Projection) -> String {
        let s = p.setup
        var lines = p.warnings.map { "warning: \($0)" }
        lines += ["\(s.target.name) on \(s.devices > 1 ? "\(s.devices) × " : "")\(s.device.name): weights \(s.weights.rawValue), context \(s.context), batch \(s.batch), "
            + "float \(s.float.rawValue), kernel \(s.kernel)",
                     "KV methods: --policy \(s.eviction) --kv \(s.quant) --sparse \(s.sparse)", ""]
        lines.append("decode step" + (s.batch > 1 ? " (\(s.batch) sequences)" : "") + (s.devices > 1 ? ", per device" : ""))
        lines.append(table(p.decode))
        lines.append("")
        let kv = p.kv
        lines.append("KV per sequence  \(formatBytes(Int(kv.total))) (quantized payload \(formatBytes(Int(kv.quantizedPayload))), metadata "
            + "\(formatBytes(Int(kv.metadata))), full precision \(formatBytes(Int(kv.fullPrecision))), policy state \(formatBytes(Int(kv.policyState))))"
            + (kv.hostResident > 0 ? ", \(formatBytes(Int(kv.hostResident))) of it in host DRAM" : "")
            + "; ideal (code bits only) \(formatBytes(Int(kv.ideal))); \(String(format: "%.1f", p.meanKept)) entries kept per (layer, KV head)")
        lines.append("decode           \(ms(p.decodeSeconds)) per step, \(String(format: "%.0f", Double(s.batch) / p.decodeSeconds)) tokens/s"
            + "; with ideal KV (no metadata, LLM-Viewer's accounting) \(ms(p.idealDecode.seconds))")
        lines.append("TTFT             \(ms(p.ttft)) (prefill of \(s.context) tokens\(s.batch > 1 ? " × \(s.batch)" : ""): "
            + "\(flops(p.prefill.flops)), \(formatBytes(Int(p.prefill.bytes))) moved)")
        let c = p.capacity
        lines.append("capacity         weights \(formatBytes(Int(c.weights))) + \(s.batch) × (KV \(formatBytes(Int(c.kvPerSequence))) + activations "
            + "\(formatBytes(Int(c.activationsPerSequence)))) = \(formatBytes(Int(c.used))) of \(formatBytes(Int(c.deviceMemory))): \(c.fits ? "fits" : "does NOT fit")")
        lines.append("                 largest batch at this context \(c.maxBatch); largest context at batch 1 "
            + (c.maxContext.map { "\($0)" } ?? "beyond \(CapacityReport.contextSearchLimit) (the method bounds the KV)")
            + "; prefill working set (one layer) \(formatBytes(Int(c.prefillWorkingSet)))")
        lines.append("")
        lines.append("memory hierarchy (B_c = ⌈M/4d⌉ = \(p.tileEntries) entries per tile)")
        for tier in p.hierarchy {
            let items = tier.items.map { "\($0.label) \(formatBytes(Int($0.bytes)))" }.joined(separator: ", ")
            lines.append("  \(tier.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(formatBytes(Int(tier.used))) of "
                + "\(formatBytes(Int(tier.capacity)))\(tier.bandwidth.map { " at \(rate($0, "B/s"))" } ?? ""): \(items)")
        }
        for note in p.notes { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }

    private func table(_ phase: PhaseCost) -> String {
        let header = ["op", "bytes", "FLOPs", "F/B", "time", "bound"]
        var rows = phase.ops.map { op in
            [op.name, formatBytes(Int(op.bytes + op.hostBytes)), flops(op.flops), op.bytes > 0 ? String(format: "%.2f", op.intensity) : "-",
             ms(op.seconds), op.bound.rawValue]
        }
        let total = phase.bytes > 0 ? phase.flops / phase.bytes : 0
        rows.append(["total", formatBytes(Int(phase.bytes + phase.hostBytes)), flops(phase.flops), String(format: "%.2f", total), ms(phase.seconds), ""])
        return Eval.render([header] + rows)
    }

    private func ms(_ seconds: Double) -> String { String(format: seconds < 1e-3 ? "%.4f ms" : "%.2f ms", seconds * 1e3) }

    private func flops(_ value: Double) -> String { rate(value, "FLOP").replacingOccurrences(of: "FLOP", with: "F") }

    /// A rate or count with a decimal prefix (k, M, G, T, P).
    private func rate(_ value: Double, _ unit: String) -> String {
        let prefixes = ["", "k", "M", "G", "T", "P"]
        var v = value, i = 0
        while v >= 1000, i < prefixes.count - 1 { v /= 1000; i += 1 }
        return String(format: v < 10 && i > 0 ? "%.2f %@%@" : "%.1f %@%@", v, prefixes[i], unit)
    }
}

extension FloatFormat: ExpressibleByArgument {}

/// `kvlab project --json`: the projection with its setup spelled out.
private struct ProjectReport: Encodable {
    var device: String
    var target: String
    var weights: String
    var context: Int
    var batch: Int
    var policy: String
    var kv: String
    var sparse: String
    var float: String
    var kernel: String
    var live: Bool
    var decode: PhaseCost
    var idealDecode: PhaseCost
    var prefill: PhaseCost
    var ttft: Double
    var decodeSeconds: Double
    var kvFootprint: KVFootprint
    var capacity: CapacityReport
    var fits: Bool
    var hierarchy: [TierUsage]
    var tileEntries: Int
    var meanKept: Double
    var notes: [String]
    var devices: Int
    var warnings: [String]

    init(_ p: Projection) {
        let s = p.setup
        device = s.device.id
        target = s.target.id
        weights = s.weights.rawValue
        context = s.context
        batch = s.batch
        policy = s.eviction.description
        kv = s.quant.description
        sparse = s.sparse.description
        float = s.float.rawValue
        kernel = s.kernel.description
        live = s.live != nil
        decode = p.decode
        idealDecode = p.idealDecode
        prefill = p.prefill
        ttft = p.ttft
        decodeSeconds = p.decodeSeconds
        kvFootprint = p.kv
        capacity = p.capacity
        fits = p.capacity.fits
        hierarchy = p.hierarchy
        tileEntries = p.tileEntries
        meanKept = p.meanKept
        notes = p.notes
        devices = s.devices
        warnings = p.warnings
    }
}
