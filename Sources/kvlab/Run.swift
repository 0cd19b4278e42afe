import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabRun
import KVLabSession

/// `kvlab run`: headless generation with scripted knob changes and captions, printed as text or
/// as session lines, and optionally recorded as a session file.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate headlessly with scripted mid-stream knob changes and captions; record a session.",
        discussion: """
        --at STEP:KNOB=VALUE changes a knob before token STEP (0 is the first generated token): policy, sparse, kv, \
        weights (a type or 'stored'), or ghost=on|off; --at STEP:rerun runs the prompt again from an empty cache with \
        the settings of the moment (step numbers go on). --device NAME and/or --target NAME project every token's decode \
        step onto that device and target shape at --project-context tokens (the live cache state applied: eviction \
        budgets in tokens, quantization, sparse mode, attention kernel) and record the projected latency; \
        --at STEP:device=NAME, STEP:target=NAME and STEP:context=N change the projection mid-session. --caption STEP:TEXT shows TEXT from token STEP on. At one \
        step, --at actions apply first, in the order given, then captions. --record FILE writes the session (*.kvlab.jsonl) as it \
        runs, one flushed line per event; --json prints the same lines to stdout instead of the text. --kept-out FILE writes, at the end, the positions each \
        layer and KV head keeps as JSON ({"positions": [[[p, …] per KV head] per layer]}, BOS = position 0, ascending); \
        with -n 0 the run ends right after the prompt.
        """)

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var promptOptions: PromptOptions

    @Option(name: [.customShort("n"), .long], help: "Tokens to generate (0 to 1000000).")
    var tokens: Int = 256

    @OptionGroup var samplerOptions: SamplerOptions

    @OptionGroup var kvOptions: KVOptions

    @Flag(name: .long, help: "Run the full-cache ghost in lockstep (KL, top-1, ΔNLL, attention mass kept per token).")
    var ghost = false

    @Option(name: .customLong("at"), help: "A knob change STEP:KNOB=VALUE, e.g. 64:policy=h2o:heavy=32,recent=32, or STEP:rerun (repeatable).")
    var changes: [String] = []

    @Option(name: .customLong("caption"), help: "A caption STEP:TEXT (repeatable).")
    var captions: [String] = []

    @Option(name: .long, help: "Project every token onto this device profile (bundled name; default h100-sxm when only --target is given).")
    var device: String?

    @Option(name: .long, help: "Project onto this target shape (bundled name or 'live'; default \(ProjectionSettings.defaultTarget) when only --device is given).")
    var target: String?

    @Option(name: .long, help: "Tokens in the projected cache (with --device or --target).")
    var projectContext = ProjectionSettings.defaultContext

    @Option(name: .long, help: "Record the session to this file (*.kvlab.jsonl).")
    var record: String?

    @Option(name: .long, help: "Tokens between checkpoints (cache and logits digests) in the session, 0 (none) to 1000000.")
    var checkpointEvery: Int = 32

    @Option(name: .long, help: "At the end, write the positions each layer and KV head keeps to this file (JSON).")
    var keptOut: String?

    @Flag(name: .long, help: "fsync the session file after every line (survives a machine crash, not just a killed process).")
    var fsync = false

    @Flag(name: .long, help: "Print the session lines (header, then one JSON event per line) instead of the text.")
    var json = false

    func validate() throws {
        try checkRange(tokens, OptionRange.tokens, option: "-n")
        try checkRange(checkpointEvery, OptionRange.checkpointEvery, option: "--checkpoint-every")
    }

    func run() throws {
        let script = try Script(changes: changes, captions: captions, tokens: tokens)
        let projection = try projectionSettings()
        try script.check(projection: projection)
        // Refused before anything runs: a --kept-out path that cannot be written.
        if let keptOut { try singleLineErrors { _ = try OutputFile.target(keptOut) } }
        let model = try modelOptions.load()
        let text = try promptOptions.text(model: model)
        let live = try LiveRun(model: model, settings: try kvOptions.runSettings(model: model, modelOptions: modelOptions,
                                                                                 sampler: samplerOptions.settings), ghost: ghost)
        try script.check(against: live)
        let projector = try projection.map { try SessionProjector(settings: $0, model: model) }
        let recording = record != nil || json
        let out = FileHandle.standardOutput
        let lines = SessionLineEncoder()
        // The model's SHA-256 is only needed for a header.
        let header = try recording ? SessionHeader(run: live, model: ModelIdentity(model: model, path: modelOptions.model,
                                                                                   tokenizer: modelOptions.tokenizer),
                                                   checkpointEvery: checkpointEvery, projection: projector?.settings) : nil
        let writer = try header.flatMap { header in try record.map { try SessionWriter(path: $0, header: header, synchronizes: fsync) } }
        let json = json
        if json, let header { out.write(try lines.line(header)) }
        let recorder = SessionRecorder(run: live, checkpointEvery: recording ? checkpointEvery : 0, projector: projector) { event in
            try writer?.append(event)
            if json { out.write(try lines.line(event)) } else { Self.show(event) }
        }
        try recorder.submit(prompt: text)
        generation: for step in 0..<tokens {
            for action in script.actions(at: step) {
                switch action {
                case .knob(let change): try recorder.set(change)
                case .ghost(let enabled): try recorder.setGhost(enabled)
                case .projection(let setting, let value): try recorder.setProjection(setting, to: value)
                case .caption(let caption): try recorder.caption(caption)
                case .rerun: try recorder.submit(prompt: text)
                }
            }
            if case .stopped = try recorder.step() { break generation }
        }
        try recorder.finish()
        if let keptOut {
            let document = try JSONDocument.encoder().encode(KeptPositions(cache: live.cache)) + Data("\n".utf8)
            try singleLineErrors { try OutputFile.write(document, to: keptOut) }
        }
        if !json { out.write(Data((live.finishText() + "\n").utf8)) }
    }

    /// The projection of --device, --target and --project-context; nil when neither device nor target is given.
    private func projectionSettings() throws -> ProjectionSettings? {
        guard device != nil || target != nil else { return nil }
        // One setting at a time from valid defaults, so an error names the flag at fault.
        var settings = ProjectionSettings()
        for (flag, setting, value) in [("--device", ProjectionSetting.device, device), ("--target", .target, target),
                                       ("--project-context", .context, String(projectContext))] {
            guard let value else { continue }
            do { try settings.set(setting, to: value) } catch { throw CLIError("\(flag): \(error)") }
        }
        return settings
    }

    /// Text mode: the prompt and tokens on stdout, knob changes, captions and stops on stderr.
    private static func show(_ event: SessionEvent) {
        switch event {
        case .prompt(let prompt):
            // A rerun starts on a new line.
            let separator = prompt.step > 0 && !prompt.continuing ? "\n" : ""
            FileHandle.standardOutput.write(Data((separator + prompt.text).utf8))
        case .token(let token): if !token.metrics.text.isEmpty { FileHandle.standardOutput.write(Data(token.metrics.text.utf8)) }
        case .knob, .ghost, .projection, .caption, .stop:
            if let note = describe(event) { FileHandle.standardError.write(Data("\n[step \(event.step)] \(note)\n".utf8)) }
        case .checkpoint, .end: break
        }
    }
}

/// A one-line description of a knob change, ghost switch, caption or stop (nil for other events).
func describe(_ event: SessionEvent) -> String? {
    switch event {
    case .knob(let change): "\(change.knob.rawValue): \(change.old) → \(change.new)"
    case .ghost(let change): "ghost \(change.enabled ? "on" : "off")"
    case .projection(let change): "projection \(change.setting.rawValue): \(change.old) → \(change.new)"
    case .caption(let caption): caption.text
    case .stop(let stop): "stopped: \(stop.reason == .endOfSequence ? "end of sequence" : "context full")"
    case .prompt, .token, .checkpoint, .end: nil
    }
}

/// The scripted actions of `kvlab run`, by step.
struct Script {
    enum Action {
        case knob(SettingChange)
        case ghost(Bool)
        /// A projection setting (a view of the run, not an engine knob).
        case projection(ProjectionSetting, String)
        case caption(String)
        /// The prompt again, from an empty cache.
        case rerun
    }

    private var actions: [Int: [Action]] = [:]
    /// The option text of each knob change, to name it in errors.
    private var knobOptions: [(option: String, change: SettingChange)] = []
    /// The option text of each projection change, to name it in errors.
    private var projectionOptions: [(step: Int, option: String, setting: ProjectionSetting, value: String)] = []

    init(changes: [String], captions: [String], tokens: Int) throws {
        func split(_ text: String, option: String, expected: String) throws -> (step: Int, rest: String) {
            guard let colon = text.firstIndex(of: ":"), let step = Int(text[..<colon]), step >= 0 else {
                throw CLIError("\(option) \(text): expected \(expected)")
            }
            guard step < tokens else { throw CLIError("\(option) \(text): step \(step) is not before -n \(tokens)") }
            return (step, String(text[text.index(after: colon)...]))
        }
        for change in changes {
            let (step, rest) = try split(change, option: "--at", expected: "STEP:KNOB=VALUE")
            if rest == "rerun" {
                actions[step, default: []].append(.rerun)
                continue
            }
            guard let equals = rest.firstIndex(of: "=") else { throw CLIError("--at \(change): expected STEP:KNOB=VALUE") }
            let name = String(rest[..<equals]), value = String(rest[rest.index(after: equals)...])
            if name == "ghost" {
                guard value == "on" || value == "off" else { throw CLIError("--at \(change): ghost is on or off") }
                actions[step, default: []].append(.ghost(value == "on"))
            } else if let knob = Knob(rawValue: name) {
                // Parsed here, once; the run applies the typed change.
                let setting: SettingChange
                do { setting = try SettingChange(knob, parsing: value) } catch { throw CLIError("--at \(change): \(error)") }
                actions[step, default: []].append(.knob(setting))
                knobOptions.append(("--at \(change)", setting))
            } else if let setting = ProjectionSetting(rawValue: name) {
                actions[step, default: []].append(.projection(setting, value))
                projectionOptions.append((step, "--at \(change)", setting, value))
            } else {
                let names = Knob.allCases.map(\.rawValue) + ["ghost"] + ProjectionSetting.allCases.map(\.rawValue)
                throw CLIError("--at \(change): unknown knob '\(name)' (\(names.joined(separator: ", ")))")
            }
        }
        for caption in captions {
            let (step, text) = try split(caption, option: "--caption", expected: "STEP:TEXT")
            actions[step, default: []].append(.caption(text))
        }
    }

    /// Checks every knob value against the run's model before anything runs.
    func check(against run: LiveRun) throws {
        for (option, change) in knobOptions {
            var settings = run.settings
            do { try settings.set(change, headDim: run.model.config.headDim) } catch { throw CLIError("\(option): \(error)") }
        }
    }

    /// Checks every projection change, in order, against the projection the run starts with.
    func check(projection: ProjectionSettings?) throws {
        guard var settings = projection else {
            if let first = projectionOptions.first { throw CLIError("\(first.option): needs --device or --target (the run projects nothing)") }
            return
        }
        // In step order, as the run applies them.
        for (_, option, setting, value) in projectionOptions.sorted(by: { $0.step < $1.step }) {
            do { try settings.set(setting, to: value) } catch { throw CLIError("\(option): \(error)") }
        }
    }

    func actions(at step: Int) -> [Action] { actions[step] ?? [] }
}
