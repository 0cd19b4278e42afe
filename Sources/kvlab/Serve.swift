import Foundation
import ArgumentParser
import KVLabApp
import KVLabCurses
import KVLabEngine
import KVLabFoundation
import KVLabHardware
import KVLabRun
import KVLabServe
import KVLabSession

/// `kvlab serve`: many sequences on one page pool, live: arrivals, continuous batching, shared
/// prefixes, admission and preemption, with the KV methods switchable.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a stream of requests on one KV page pool: continuous batching, admission, preemption, live KV methods.",
        discussion: """
        Requests come from a seeded Poisson stream (--rate, --requests, --prompt-len, --output-len, --system-prompt; prompts \
        cut from --text, default the Romeo and Juliet prologue) or a --trace file (JSONL: {"arrival": SECONDS, "prompt": \
        [IDS] or "text": "...", "output": TOKENS}). Each step decodes every running sequence and spends the rest of \
        --token-budget on prompt chunks. When the pool (--pool) is full, --preempt wait admits only what fits for its whole \
        life, swap moves the newest sequence's pages to host DRAM, recompute drops them to recompute later. The run's \
        clock advances by the roofline time of each step on --device × --target at the live batch (so runs record and \
        replay identically); wall time measured here is reported beside it. Without --headless the serve view opens; \
        its method keys (e/E, [ ], b, B, s/S) change the KV method of every sequence from the next step. --record FILE \
        writes the run; --replay FILE re-executes a recording and checks every line byte for byte.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var kvOptions: KVOptions
    @OptionGroup var samplerOptions: SamplerOptions

    @Option(name: .long, help: "The pool's budget for KV pages: bytes, or with KiB, MiB, GiB.")
    var pool = "4MiB"

    @Option(name: .long, help: "Mean arrivals per second of the run's clock (Poisson).")
    var rate = 20.0

    @Option(name: .long, help: "Requests in the synthetic stream (1 to 100000).")
    var requests = 64

    @Option(name: .long, help: "Prompt length in tokens, N or A..B (uniform), after the system prompt.")
    var promptLen = "16..96"

    @Option(name: .long, help: "Output length in tokens, N or A..B (uniform).")
    var outputLen = "16..64"

    @Option(name: .long, help: "Tokens of shared system prompt (BOS included) ahead of every prompt, cut from --text; its pages are shared copy-on-write. 0 for none.")
    var systemPrompt = 0

    @Option(name: .long, help: "Text the synthetic prompts and the system prompt are cut from (default: the Romeo and Juliet prologue).")
    var text: String?

    @Option(name: .long, help: "Requests from a JSONL trace file instead of the synthetic stream.")
    var trace: String?

    @Option(name: .long, help: "When the pool is full: wait, swap or recompute.")
    var preempt: String = PreemptionPolicy.swap.rawValue

    @Option(name: .long, help: "Tokens one step processes at most (decodes first, then prompt chunks), 1 to 65536.")
    var tokenBudget = SchedulerOptions.defaultTokenBudget

    @Option(name: .long, help: "Sequences running at once at most, 1 to 4096.")
    var maxBatch = SchedulerOptions.defaultMaxBatch

    @Option(name: .long, help: "Device profile of the run's clock (a bundled name).")
    var device = ProjectionSettings.defaultDevice

    @Option(name: .long, help: "Target shape of the run's clock (a bundled name, or 'live').")
    var target = ProjectionSettings.defaultTarget

    @Option(name: .long, help: "Stop after this many steps (default: when every request is done).")
    var steps: Int?

    @Option(name: .long, help: "Stop once the run's clock passes this many seconds.")
    var duration: Double?

    @Flag(name: .long, help: "Run without the serve view and print the summary.")
    var headless = false

    @Option(name: .long, help: "Write the summary as JSON to this file ('-': standard output).")
    var json: String?

    @Option(name: .long, help: "Record the run to this file (*.kvlab-serve.jsonl).")
    var record: String?

    @Option(name: .long, help: "Re-execute a serve recording and check it line by line (takes no other run options).")
    var replay: String?

    @OptionGroup var screenOptions: ScreenOptions

    func validate() throws {
        try checkRange(requests, 1...100_000, option: "--requests")
        try checkRange(tokenBudget, 1...65_536, option: "--token-budget")
        try checkRange(maxBatch, 1...4096, option: "--max-batch")
        try checkRange(systemPrompt, 0...65_536, option: "--system-prompt")
        if let steps { try checkRange(steps, 1...10_000_000, option: "--steps") }
        guard rate.isFinite, rate > 0, rate <= 1e9 else { throw ValidationError("--rate must be a positive number of requests per second, got \(rate)") }
        if let duration, !(duration.isFinite && duration > 0) { throw ValidationError("--duration must be a positive number of seconds") }
        _ = try preemption()
        _ = try poolBytes()
        _ = try lengths()
    }

    func preemption() throws -> PreemptionPolicy {
        guard let policy = PreemptionPolicy(rawValue: preempt) else { throw CLIError("--preempt: '\(preempt)' is not wait, swap or recompute") }
        return policy
    }

    func poolBytes() throws -> Int { try parseByteSize(pool, option: "--pool") }

    func lengths() throws -> (prompt: LengthRange, output: LengthRange) {
        guard let prompt = LengthRange(parsing: promptLen, limit: 65_536) else { throw CLIError("--prompt-len: '\(promptLen)' is not N or A..B with 1 ≤ A ≤ B ≤ 65536") }
        guard let output = LengthRange(parsing: outputLen, limit: 65_536) else { throw CLIError("--output-len: '\(outputLen)' is not N or A..B with 1 ≤ A ≤ B ≤ 65536") }
        return (prompt, output)
    }

    func run() throws {
        if let replay { return try check(replay) }
        if !headless { do { try CursesTerminal.requireTerminal() } catch { throw CLIError("\(error)") } }
        let clockSettings = try clockProjection()
        let model = try modelOptions.load()
        let settings = try kvOptions.runSettings(model: model, modelOptions: modelOptions, sampler: samplerOptions.settings)
        let (requests, arrivals) = try makeRequests(model: model)
        let options = SchedulerOptions(preemption: try preemption(), tokenBudget: tokenBudget, maxBatch: maxBatch)
        let pool = try poolBytes()
        let recorder = try record.map { path in
            try ServeRecorder(path: path, header: ServeHeader(model: try ModelIdentity(model: model, path: modelOptions.model, tokenizer: modelOptions.tokenizer),
                                                              settings: SessionSettings(settings), pool: pool, scheduler: options,
                                                              clock: clockSettings, arrivals: arrivals, requests: requests))
        }
        let session = try ServeSession(model: model, settings: settings, pool: pool, requests: requests, options: options,
                                       clock: clockSettings, recorder: recorder)
        if headless {
            while !stopped(session), try session.step() != nil {}
            try session.finish()
            try report(session)
            return
        }
        try view(session, model: model, clock: clockSettings)
        try report(session)
    }

    /// Whether --steps or --duration ends the run here.
    private func stopped(_ session: ServeSession) -> Bool {
        steps.map { session.scheduler.steps >= $0 } ?? false || duration.map { session.scheduler.time >= $0 } ?? false
    }

    private func clockProjection() throws -> ProjectionSettings {
        var settings = ProjectionSettings()
        do { try settings.set(.device, to: device) } catch { throw CLIError("--device: \(error)") }
        do { try settings.set(.target, to: target) } catch { throw CLIError("--target: \(error)") }
        return settings
    }

    private func makeRequests(model: LoadedModel) throws -> ([ServeRequest], SyntheticArrivals?) {
        let tokenizer = model.tokenizer
        let source = try text.map(readTextFile) ?? SyntheticArrivals.defaultText
        var tokens = tokenizer.encode(source)
        let bos = tokenizer.spec.bosID
        if let bos, tokens.first == bos { tokens.removeFirst() }
        guard !tokens.isEmpty else { throw CLIError("--text: \(text ?? "the default text") encodes to no tokens") }
        if let trace {
            var requests: [ServeRequest]
            do { requests = try TraceFile.read(trace, vocabularySize: model.config.vocabSize) { tokenizer.encode($0) } } catch let error as FileError {
                throw CLIError(error.description)
            }
            // The system prompt goes ahead of each trace prompt, in place of its BOS.
            let head = SyntheticArrivals.systemPrompt(systemPrompt, source: tokens, first: bos)
            if !head.isEmpty {
                for index in requests.indices {
                    let prompt = requests[index].prompt
                    requests[index].prompt = head + (bos != nil && prompt.first == bos ? Array(prompt.dropFirst()) : prompt)
                    requests[index].sharedPrefix = head.count
                }
            }
            return (requests, nil)
        }
        let (prompt, output) = try lengths()
        let stream = SyntheticArrivals(rate: rate, count: requests, promptLength: prompt, outputLength: output, systemPrompt: systemPrompt,
                                       seed: samplerOptions.seed)
        return (stream.requests(source: tokens, first: bos), stream)
    }

    private func view(_ session: ServeSession, model: LoadedModel, clock: ProjectionSettings) throws {
        let theme = try screenOptions.startingTheme().theme
        let terminal: CursesTerminal
        do { terminal = try CursesTerminal.openInteractive() } catch { throw CLIError("\(error)") }
        let depth = screenOptions.color.depth(environment: ProcessInfo.processInfo.environment, terminal: terminal.colorSupport)
        let ending: Workbench.Ending
        do {
            ending = try ServeLoop.run(terminal: terminal, session: session, modelName: model.config.name,
                                       clock: "clock: \(clock.device) × \(clock.target)", palette: theme.palette(depth: depth),
                                       glyphs: terminal.glyphs, patterned: depth == .mono || !terminal.glyphs.isUnicode, stop: stopped,
                                       sramSizes: Choices.catalog(themes: []).sramSizes)
        } catch {
            terminal.stop()
            throw error
        }
        terminal.stop()
        if case .signal(let signal) = ending { throw ExitCode(128 + signal) }
    }

    private func report(_ session: ServeSession) throws {
        let summary = session.summary
        if let json {
            let data = try JSONDocument.prettyLine(summary)
            if json == "-" { FileHandle.standardOutput.write(data) } else { try singleLineErrors { try OutputFile.write(data, to: json) } }
            if json == "-" { return }
        }
        print(Self.describe(summary))
    }

    /// The summary in a few lines of text.
    static func describe(_ s: ServeSummary) -> String {
        func ms(_ p: Percentiles?) -> String { p.map { String(format: "p50 %.2f ms, p99 %.2f ms", $0.p50 * 1e3, $0.p99 * 1e3) } ?? "–" }
        let c = s.counters
        return """
            policy \(s.settings.policy), kv \(s.settings.kv), sparse \(s.settings.sparse); preempt \(s.preemption.rawValue)
            steps \(s.steps), \(s.finished)/\(s.requests) requests finished, \(s.rejected) rejected, \(s.generatedTokens) tokens generated
            sequences: peak \(c.peakRunning) running, mean \(String(format: "%.2f", s.meanRunning)); peak queue \(s.peakQueue); pool peak \(formatBytes(s.peakPoolUsed)) of \(formatBytes(s.poolCapacity)), at the end \(s.poolUsed) B (shared prefix \(s.sharedBytes) B)
            preemptions \(c.preemptions) (swap out \(c.swapOuts), in \(c.swapIns), \(formatBytes(c.swappedBytes)) moved; \(c.recomputedTokens) tokens recomputed); copy-on-write copies \(c.copies)
            projected: \(String(format: "%.1f", s.tokensPerSecond)) tokens/s over \(String(format: "%.3f", s.seconds)) s; TTFT \(ms(s.ttft)); TPOT \(ms(s.tpot))
            measured here: \(String(format: "%.1f", s.measuredTokensPerSecond)) tokens/s over \(String(format: "%.3f", s.measuredSeconds)) s; TTFT \(ms(s.measuredTTFT)); TPOT \(ms(s.measuredTPOT))
            """
    }

    /// `--replay FILE`: re-executes the recording and checks each line.
    private func check(_ path: String) throws {
        let recording: ServeRecording
        do { recording = try ServeRecording(path: path) } catch let error as FileError { throw CLIError(error.description) }
        let header = recording.header
        let model = try SessionModel.load(model: header.model, sessionPath: path, override: modelOptions.model, tokenizer: modelOptions.tokenizer)
        let settings: RunSettings
        do { settings = try header.settings.runSettings(headDim: model.config.headDim) } catch { throw CLIError("\(path): line 1: \(error)") }
        let session = try ServeSession(model: model, settings: settings, pool: header.pool, requests: header.requests,
                                       options: header.scheduler, clock: header.clock, recorder: nil)
        do { try session.replay(recording) } catch let error as FileError { throw CLIError(error.description) }
        try report(session)
        FileHandle.standardError.write(Data("replay: \(recording.lines.count) lines identical\n".utf8))
    }
}
