import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabSession
import KVLabSweep

/// `kvlab sweep`: `eval` over a grid of models, methods, budgets, bits, texts and probes.
struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a grid of eval cells (methods × budgets × bits × texts × probes), resumably, locally or on Slurm; export and plot it.",
        subcommands: [SweepRun.self, SweepStatus.self, SweepExportCommand.self, SweepReportCommand.self, SweepWorkerCommand.self])
}

/// The grid's axes as options, or a YAML grid file that options replace axis by axis.
struct GridOptions: ParsableArguments {
    @Option(name: .long, help: "YAML grid file: a mapping of these option names to a value or a list (relative paths from its directory).")
    var grid: String?

    @Option(name: .long, help: "Model file, or 'embedded' (repeat for several; default: the embedded model).")
    var model: [String] = []

    @Option(name: .long, help: "Eviction method (repeat); {budget}, {budget/N}, {budget*N} take each --budget, {ratio} each --ratio, e.g. h2o:heavy={budget/2},recent={budget/2} or snapkv:ratio={ratio}.")
    var policy: [String] = []

    @Option(name: .long, help: "KV quantization (repeat); {bits} takes each --bits, e.g. kivi:bits={bits}.")
    var kv: [String] = []

    @Option(name: .long, help: "Sparse attention mode (repeat), e.g. quest:page=16,budget={budget}.")
    var sparse: [String] = []

    @Option(name: .long, help: "Attention kernel (repeat): naive, tiled or tiled:sram=SIZE.")
    var attention: [String] = []

    @Option(name: .long, help: "Budgets for {budget}: a comma-separated list (repeatable).")
    var budget: [String] = []

    @Option(name: .long, help: "Bit widths for {bits}: a comma-separated list (repeatable).")
    var bits: [String] = []

    @Option(name: .long, help: "Compression ratios for {ratio} (share of the prompt removed): a comma-separated list (repeatable), e.g. 0.25,0.5,0.75.")
    var ratio: [String] = []

    @Option(name: .long, help: "Text file (repeat): evaluated for perplexity, filler for probes.")
    var text: [String] = []

    @Option(name: .long, help: "perplexity, needle[:depth=D,seed=S] or two-question (repeat; default perplexity).")
    var probe: [String] = []

    @Option(name: .long, help: "Tokens per chunk, BOS included: a comma-separated list (default: the model's context).")
    var tokens: [String] = []

    @Option(name: .long, help: "Chunks per perplexity cell: a comma-separated list (default 1).")
    var chunks: [String] = []

    @Option(name: .long, help: "Tokens of each chunk run as one prompt first: a comma-separated list (default 0).")
    var prefill: [String] = []

    @Option(name: .long, help: "Threads for matrix products in each cell (1 to 256; default 1).")
    var threads: Int?

    @Option(name: .long, help: "Store weights as f32, f16, q8_0, q4_0 or q4_1 (default: as in the file).")
    var weights: String?

    @Option(name: .long, help: "Project each cell onto DEVICE@TARGET (repeat), e.g. h100-sxm@llama-3.1-8b (see kvlab project --list).")
    var project: [String] = []

    @Option(name: .long, help: "Context of the projected decode step (default \(ProjectionSettings.defaultContext)).")
    var projectContext: Int?

    /// The grid: the file's, with every axis given as an option replaced.
    func sweepGrid() throws -> SweepGrid {
        var g = try grid.map { path in try singleLineErrors { try SweepGrid(yamlFile: path) } } ?? SweepGrid()
        if !model.isEmpty { g.models = model }
        if !policy.isEmpty { g.policies = policy }
        if !kv.isEmpty { g.kv = kv }
        if !sparse.isEmpty { g.sparse = sparse }
        if !attention.isEmpty { g.attention = attention }
        if !budget.isEmpty { g.budgets = try Self.integers(budget, option: "--budget") }
        if !bits.isEmpty { g.bits = try Self.integers(bits, option: "--bits") }
        if !ratio.isEmpty { g.ratios = try Self.numbers(ratio, option: "--ratio") }
        if !text.isEmpty { g.texts = text }
        if !probe.isEmpty { g.probes = probe }
        if !tokens.isEmpty { g.tokens = try Self.integers(tokens, option: "--tokens") }
        if !chunks.isEmpty { g.chunks = try Self.integers(chunks, option: "--chunks") }
        if !prefill.isEmpty { g.prefill = try Self.integers(prefill, option: "--prefill") }
        if let threads { g.threads = threads }
        if let weights { g.weights = weights }
        if !project.isEmpty { g.projections = project }
        if let projectContext { g.projectContext = projectContext }
        return g
    }

    /// Whether no axis is given (as `--retry` requires: it takes its cells from the store).
    var isEmpty: Bool {
        grid == nil && [model, policy, kv, sparse, attention, budget, bits, ratio, text, probe, tokens, chunks, prefill, project].allSatisfy(\.isEmpty)
            && threads == nil && weights == nil && projectContext == nil
    }

    /// The cells of the grid, or a one-line error.
    func cells() throws -> [SweepCell] {
        do { return try sweepGrid().cells() } catch let error as SweepError { throw CLIError(error.description) }
    }

    static func numbers(_ lists: [String], option: String) throws -> [Double] {
        try lists.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map {
            guard let value = Double($0.trimmingCharacters(in: .whitespaces)), value.isFinite else { throw CLIError("\(option): '\($0)' is not a number") }
            return value
        }
    }

    static func integers(_ lists: [String], option: String) throws -> [Int] {
        try lists.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map {
            guard let value = Int($0.trimmingCharacters(in: .whitespaces)) else { throw CLIError("\(option): '\($0)' is not a whole number") }
            return value
        }
    }
}

/// The results directory option of every sweep command.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Results directory (one JSON file per finished cell).")
    var store: String

    func open(creating: Bool = false) throws -> ResultStore {
        let store = ResultStore(directory: self.store)
        if creating { try singleLineErrors { try store.create() } } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: self.store + "/results", isDirectory: &isDirectory), isDirectory.boolValue else {
                throw CLIError("\(self.store): not a sweep results directory (no results/ in it)")
            }
        }
        return store
    }
}

/// `kvlab sweep export --csv`.
struct SweepExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "export", abstract: "Write the finished cells as CSV.")

    @OptionGroup var storeOptions: StoreOptions

    @Flag(name: .long, help: "CSV, one row per finished cell (the only format).")
    var csv = false

    @Option(name: .shortAndLong, help: "Write to FILE instead of standard output.")
    var output: String?

    func run() throws {
        guard csv else { throw ValidationError("say --csv (the export format)") }
        let results = try singleLineErrors { try storeOptions.open().results() }
        let text = SweepExport.csv(results)
        if let output { try singleLineErrors { try OutputFile.write(Data(text.utf8), to: output) } } else { print(text, terminator: "") }
    }
}

/// `kvlab sweep worker`: runs cells of a plan (started by `sweep run` and by Slurm array tasks).
struct SweepWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker", abstract: "Run cells of a sweep plan (started by 'sweep run'; not for direct use).", shouldDisplay: false)

    @OptionGroup var storeOptions: StoreOptions

    @Option(name: .long, help: "The plan (plans/ID.json in the store).")
    var plan: String

    @Option(name: .long, help: "A JSON list of cell indices; with --slices, run slice --slice of it (default $SLURM_ARRAY_TASK_ID).")
    var todo: String?

    @Option(name: .long) var slice: Int?
    @Option(name: .long) var slices: Int?

    func run() throws {
        // An interrupt ends a worker mid-cell: its cell has no file and is run again next time.
        signal(SIGINT, SIG_DFL)
        let environment = ProcessInfo.processInfo.environment
        let executor = environment["SLURM_ARRAY_JOB_ID"].map { "slurm:\($0)_\(environment["SLURM_ARRAY_TASK_ID"] ?? "?")" } ?? "local"
        try singleLineErrors {
            let worker = try SweepWorker(store: try storeOptions.open(), plan: plan, executor: executor)
            guard let todo else { return try worker.serve() }
            let indices = try JSONDocument.decoder().decode([Int].self, from: try InputFile.read(todo))
            guard let slices, slices >= 1 else { throw CLIError("--todo needs --slices (1 or more)") }
            guard let slice = slice ?? environment["SLURM_ARRAY_TASK_ID"].flatMap({ Int($0) }), (0..<slices).contains(slice) else {
                throw CLIError("--todo needs --slice from 0 to \(slices - 1) (or $SLURM_ARRAY_TASK_ID)")
            }
            for index in SweepWorker.slice(indices, slice, of: slices) { try worker.run(index) }
        }
    }
}

/// The kvlab executable running now (what workers and batch scripts start).
func currentExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
}
