import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabHardware
import KVLabMethods

/// `kvlab project --fit`: what fits a device (or G of them) for a target.
struct FitOptions: ParsableArguments {
    @Flag(name: .long, help: "What fits: the largest context at --batch, the largest batch at --context, and a table of KV settings against --memory and --latency.")
    var fit = false

    @Option(name: .long, help: "--fit: memory budget per device with its unit (B, KiB, MiB or GiB), e.g. 60GiB (default: the device's memory).")
    var memory: String?

    @Option(name: .long, help: "--fit: latency target per decode step in milliseconds (default: none).")
    var latency: Double?

    @Option(name: .long, help: "--fit: a kvlab eval --json file, a sweep result file, or a sweep directory: ΔNLL beside each setting it measured.")
    var results: String?

    @Option(name: .long, help: "--fit: a KV setting, e.g. \"policy=h2o:heavy=64,recent=64 kv=q4_0\" (repeat; default: the main methods).")
    var setting: [String] = []

    /// `--fit --target all`: one row per bundled target.
    static let allTargets = "all"

    /// The settings `--fit` checks when none is given: the full cache, the quantizations and the
    /// evictions people deploy, and one of each together.
    static let defaultSettings = [
        "", "kv=q8_0", "kv=q4_0", "kv=kivi:bits=4", "kv=kivi:bits=2", "policy=streaming:sinks=4,window=4092",
        "policy=h2o:heavy=2048,recent=2048", "policy=snapkv:budget=4096", "policy=snapkv:budget=4096 kv=kivi:bits=2",
    ]

    func validate() throws {
        guard fit || (memory == nil && latency == nil && results == nil && setting.isEmpty) else {
            throw CLIError("--memory, --latency, --results and --setting need --fit")
        }
        // A bare number is refused rather than read as bytes: '--memory 12' means 12 GiB to a reader, 12 B to parseByteSize.
        if let memory, parseByteSize(memory) == nil || Int(Substring(memory).trimmingSpaces) != nil {
            throw CLIError("--memory: '\(memory.prefix(40))' is not a size with a unit (B, KiB, MiB or GiB, e.g. 60GiB)")
        }
        if let latency, !(latency > 0 && latency.isFinite) { throw CLIError("--latency must be a positive number of milliseconds") }
    }

    /// One `--setting`: `policy=`, `kv=` and `sparse=` specs separated by spaces (each at most once).
    static func parse(_ text: String, keyDim: Int) throws -> (EvictionMethod, KVQuantMethod, SparseMethod) {
        var eviction = EvictionMethod.full, quant = KVQuantMethod.fp32, sparse = SparseMethod.dense
        var seen: Set<String> = []
        for part in text.split(separator: " ") {
            guard let equals = part.firstIndex(of: "=") else { throw CLIError("--setting '\(text)': '\(part)' is not knob=method (policy, kv, sparse)") }
            let knob = String(part[..<equals]), spec = String(part[part.index(after: equals)...])
            guard seen.insert(knob).inserted else { throw CLIError("--setting '\(text)': \(knob) given twice") }
            do {
                switch knob {
                case "policy": eviction = try EvictionMethod(parsing: spec)
                case "kv": quant = try KVQuantMethod(parsing: spec); try quant.check(headDim: keyDim)
                case "sparse": sparse = try SparseMethod(parsing: spec)
                default: throw CLIError("--setting '\(text)': unknown knob '\(knob)' (policy, kv, sparse)")
                }
                try eviction.check(quant: quant)
            } catch let error as CLIError {
                throw error
            } catch {
                throw CLIError("--setting '\(text)': \(error)")
            }
        }
        return (eviction, quant, sparse)
    }
}

/// The `--fit` answer: headline limits, then one row per KV setting.
struct FitReport: Encodable {
    struct Row: Encodable {
        var setting: String
        var kvPerSequence: Double
        var decodeSeconds: Double
        var largestContext: Int?
        var largestBatch: Int
        var fitsMemory: Bool
        var meetsLatency: Bool?
        var deltaNLL: Double?
    }

    var device: String
    var devices: Int
    var target: String
    var memoryBudget: Double
    var context: Int
    var batch: Int
    var largestContext: Int?
    var largestBatch: Int
    var latencyTarget: Double?
    var rows: [Row]
    var warnings: [String]
    /// The methods of the headline figures (--policy, --kv, --sparse).
    var methods: String

    init(base: ProjectionSetup, options: FitOptions) throws {
        var setup = base
        if let memory = options.memory.flatMap(parseByteSize) { setup.device.hbm = Double(memory) }
        let deltas = try options.results.map(DeltaNLLTable.init(path:))
        let head = Projection(setup)
        device = setup.device.id
        devices = setup.devices
        target = setup.target.id
        memoryBudget = setup.device.hbm
        context = setup.context
        batch = setup.batch
        largestContext = Projection.largestContext(setup)
        largestBatch = head.capacity.maxBatch
        latencyTarget = options.latency.map { $0 / 1e3 }
        methods = "--policy \(setup.eviction) --kv \(setup.quant) --sparse \(setup.sparse)"
        warnings = setup.context > setup.target.maxContext ? head.warnings.filter { $0.hasPrefix("beyond") } : []
        rows = try (options.setting.isEmpty ? FitOptions.defaultSettings : options.setting).map { text in
            var row = setup
            (row.eviction, row.quant, row.sparse) = try FitOptions.parse(text, keyDim: setup.target.cacheKeyDim)
            let p = Projection(row)
            // kvlab eval's label for the same methods, so results files match it.
            let label = ([row.eviction.description] + (row.sparse == .dense ? [] : [row.sparse.description])
                         + (row.quant == .fp32 ? [] : [row.quant.description])).joined(separator: " ")
            return Row(setting: label, kvPerSequence: p.kv.total, decodeSeconds: p.decodeSeconds, largestContext: Projection.largestContext(row),
                       largestBatch: p.capacity.maxBatch, fitsMemory: p.capacity.fits,
                       meetsLatency: options.latency.map { p.decodeSeconds * 1e3 <= $0 }, deltaNLL: deltas?.delta(label))
        }
    }

    var text: String {
        let t = devices > 1 ? "\(devices) × \(device) (tensor parallel, per device)" : device
        var lines = warnings.map { "warning: \($0)" }
        lines.append("\(target) on \(t): \(formatBytes(memoryBudget)) per device"
            + (latencyTarget.map { String(format: ", latency target %.2f ms per decode step", $0 * 1e3) } ?? ""))
        lines.append("largest context at batch \(batch): " + Self.context(largestContext) + " (\(methods))")
        lines.append("largest batch at context \(context): \(largestBatch) (\(methods))")
        lines.append("")
        let header = ["setting", "KV/sequence", "decode", "tokens/s", "max context @B", "max batch @N", "fits", "ΔNLL"]
        let body = rows.map { r -> [String] in
            let verdict = !r.fitsMemory ? "no: memory" : r.meetsLatency == false ? "no: latency" : "yes"
            return [r.setting, formatBytes(r.kvPerSequence), String(format: "%.2f ms", r.decodeSeconds * 1e3),
                    String(format: "%.0f", Double(batch) / r.decodeSeconds),
                    Self.context(r.largestContext), "\(r.largestBatch)", verdict, r.deltaNLL.map { String(format: "%+.4f", $0) } ?? "-"]
        }
        lines.append(Eval.render([header] + body))
        lines.append("KV/sequence: one sequence at context \(context), all devices together; @B: at batch \(batch); @N: at context \(context); fits: batch \(batch) at context \(context) in memory"
                     + (latencyTarget == nil ? "" : " within the latency target") + "; ΔNLL from --results where it measured the setting")
        return lines.joined(separator: "\n")
    }

    static func context(_ value: Int?) -> String {
        value.map { $0 == 0 ? "0 (weights do not fit)" : "\($0)" } ?? "unbounded (> \(CapacityReport.contextSearchLimit))"
    }
}

/// ΔNLL per method label from `kvlab eval --json` (mean NLL above the ghost) or sweep results
/// (each cell's ΔNLL; cells of one setting averaged).
struct DeltaNLLTable {
    private var sums: [String: (total: Double, count: Int)] = [:]

    init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CLIError("--results: \(path): no such file or directory")
        }
        if isDirectory.boolValue {
            let folder = (path as NSString).appendingPathComponent("results")
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder))?.filter { $0.hasSuffix(".json") }.sorted() ?? []
            guard !files.isEmpty else { throw CLIError("--results: \(path): no sweep results (results/*.json)") }
            for file in files { try add((folder as NSString).appendingPathComponent(file)) }
        } else {
            try add(path)
        }
    }

    private mutating func add(_ path: String) throws {
        let root: JSONValue
        do { root = try JSONValue.parse(try InputFile.read(path)) } catch { throw CLIError("--results: \(path): \(error)") }
        if let results = root["results"]?.array {
            for summary in results {
                guard let method = summary["method"]?.string, let nll = summary["meanNLL"]?.double,
                      let ghost = summary["ghostMeanNLL"]?.double else { continue }
                record(method, nll - ghost)
            }
        } else if let cell = root["cell"], let delta = root["quality"]?["deltaNLL"]?.double {
            guard let policy = cell["policy"]?.string, let kv = cell["kv"]?.string, let sparse = cell["sparse"]?.string,
                  let eviction = try? EvictionMethod(parsing: policy), let quant = try? KVQuantMethod(parsing: kv),
                  let mode = try? SparseMethod(parsing: sparse) else {
                throw CLIError("--results: \(path): a sweep result whose cell has no readable policy, kv and sparse")
            }
            record(([eviction.description] + (mode == .dense ? [] : [mode.description]) + (quant == .fp32 ? [] : [quant.description]))
                .joined(separator: " "), delta)
        } else {
            throw CLIError("--results: \(path): neither kvlab eval --json output nor a sweep result")
        }
    }

    private mutating func record(_ label: String, _ delta: Double) {
        let old = sums[label] ?? (0, 0)
        sums[label] = (old.total + delta, old.count + 1)
    }

    func delta(_ label: String) -> Double? { sums[label].map { $0.total / Double($0.count) } }
}

/// `--fit --target all`: every bundled target's KV growth per token and its largest context on
/// the device (at `--batch`), with the full cache and each `--setting` (default: q8_0 and kivi
/// 2-bit KV, and snapkv with a 4,096-token budget, whose KV is shown at the target's maximum).
struct CatalogFitReport: Encodable {
    struct Row: Encodable {
        var target: String
        var family: String
        var parameters: Int
        var activeParameters: Int
        var kvBytesPerToken: Int
        var maxContext: Int
        var weightsFit: Bool
        /// Per setting (the first is the full cache): the largest context, nil when unbounded.
        var largestContext: [Int?]
        /// Per setting: KV of one sequence at the target's maximum context.
        var kvAtMaxContext: [Double]
    }

    static let defaultSettings = ["", "kv=q8_0", "kv=kivi:bits=2", "policy=snapkv:budget=4096"]

    var device: String
    var devices: Int
    var weights: String
    var batch: Int
    var settings: [String]
    var rows: [Row]

    init(setups: [ProjectionSetup], options: FitOptions) throws {
        let first = setups[0]
        device = first.device.id
        devices = first.devices
        weights = first.weights.rawValue
        batch = first.batch
        let texts = options.setting.isEmpty ? Self.defaultSettings : [""] + options.setting
        settings = texts.map { $0.isEmpty ? "full" : $0 }
        rows = try setups.map { base in
            let t = base.target
            var largest: [Int?] = [], atMax: [Double] = []
            for text in texts {
                var setup = base
                (setup.eviction, setup.quant, setup.sparse) = try FitOptions.parse(text, keyDim: t.cacheKeyDim)
                largest.append(Projection.largestContext(setup))
                setup.context = t.maxContext
                atMax.append(Projection(setup).kv.total)
            }
            return Row(target: t.id, family: t.family, parameters: t.parameterCount, activeParameters: t.activeParameterCount,
                       kvBytesPerToken: t.kvBytesPerToken(elementBytes: base.float.bytes), maxContext: t.maxContext,
                       weightsFit: largest[0] != 0, largestContext: largest, kvAtMaxContext: atMax)
        }
    }

    var text: String {
        let on = devices > 1 ? "\(devices) × \(device) (tensor parallel)" : device
        var lines = ["every bundled target on \(on), weights \(weights), batch \(batch): KV growth per token (all attention layers, "
                     + "before windows and methods), KV of one sequence at the target's maximum context, and the largest context that fits"]
        var header = ["target", "params (active)", "KV/token", "max context"]
        header += settings.map { "KV @max, \($0)" } + settings.map { "largest, \($0)" }
        let body = rows.map { r -> [String] in
            let params = String(format: "%.1fB", Double(r.parameters) / 1e9)
                + (r.activeParameters == r.parameters ? "" : String(format: " (%.1fB)", Double(r.activeParameters) / 1e9))
            let largest = r.largestContext.map { value -> String in
                guard let value else { return "unbounded" }
                return value == 0 ? "weights do not fit" : value > r.maxContext ? "\(value) (> max)" : "\(value)"
            }
            return [r.target, params, formatBytes(r.kvBytesPerToken), "\(r.maxContext)"] + r.kvAtMaxContext.map { formatBytes($0) } + largest
        }
        lines.append(Eval.render([header] + body))
        lines += rows.map { "  \($0.target): \($0.family)" }
        return lines.joined(separator: "\n")
    }
}
