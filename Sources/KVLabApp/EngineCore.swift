import Foundation
import KVLabHardware
import KVLabMethods
import KVLabRun
import KVLabSession

/// A request from the UI to the engine; applied between two tokens.
public enum EngineCommand: Sendable, Equatable {
    /// Runs a prompt as a new sequence and starts generating.
    case submit(String)
    /// Changes a knob.
    case set(SettingChange)
    /// Pauses (true) or resumes generation.
    case pause(Bool)
    /// Starts or stops the full-cache ghost.
    case ghost(Bool)
    /// Runs the last prompt again from an empty cache with the current settings.
    case rerun
    /// Projects onto another device profile (a catalog name).
    case device(String)
    /// Projects onto another target shape (a catalog name, or `live`).
    case target(String)
    /// Projects at another context (tokens in the target's cache).
    case context(Int)
    /// Starts recording a session (from a rerun of the prompt, so the file replays from its
    /// start) that remembers the screen it is recorded on and the projection shown.
    case startRecording(ui: UISettings)
    /// Stops recording and closes the file.
    case stopRecording
    /// Sets the generation pace in tokens per second (nil: as fast as the engine goes).
    case pace(Int?)
    /// Starts compare mode (B starts as a copy of A's settings, teacher-forced on A's tokens) or
    /// stops it (B is discarded).
    case compare(Bool)
    /// Changes one of B's knobs (compare mode).
    case setCompare(SettingChange)
}

/// The engine side of the workbench: owns the `LiveRun`, applies commands, generates tokens, and
/// describes the state after each as an `EngineSnapshot`. Not thread-safe: the worker thread
/// (or a test, synchronously) owns it.
public final class EngineCore {
    /// The context the projection assumes for the target at start, as every projection that is
    /// given none (`ProjectionSettings.defaultContext`); the context key steps it.
    public static let projectedContext = ProjectionSettings.defaultContext
    /// Tokens between projections while generating (a projection costs more than a token of the
    /// embedded model; knob, device and target changes project at once).
    static let projectionInterval = 16

    /// The paces `+` and `-` step through, slowest first; nil is as fast as the engine goes. The
    /// embedded model fills its context in seconds unpaced, before anyone can turn a knob.
    public static let paces: [Int?] = [1, 2, 5, 10, 20, 50, 100, 200, nil]
    /// The pace a workbench starts at.
    public static let defaultPace: Int? = 20
    /// Tokens per second the worker generates at (nil: unpaced). Measured latencies are the
    /// engine's own step times, whatever the pace.
    public private(set) var pace: Int? = EngineCore.defaultPace

    /// The run (a recording starts a fresh one, so the session's steps count from 0).
    public private(set) var run: LiveRun
    private var prompt = ""
    private var paused = false
    private var generating = false
    private var device: DeviceProfile?
    private var deviceName: String
    private var target: TargetShape?
    private var targetName: String
    /// Tokens in the projected cache.
    private var context = EngineCore.projectedContext
    /// The projection of the live state onto `device` × `target` (sessions' projector).
    private var projector: SessionProjector? {
        guard let device, let target else { return nil }
        return SessionProjector(settings: ProjectionSettings(device: deviceName, target: targetName, context: context),
                                device: device, target: target)
    }
    private var projection: Projection?
    private var lastLedger: IOLedger?
    private var sinceProjection = 0
    /// Bytes of the weights stored as each type (nil: as the file stores them).
    private let weightBytesByType: [WeightType?: Int]
    private let modelPath: String?
    private let tokenizerPath: String?
    /// Where recordings go.
    private let sessionDirectory: String
    private var recorder: SessionRecorder?
    private var recordingPath: String?
    /// Configuration B of compare mode, teacher-forced on the run's tokens.
    private var follower: TeacherForcedFollower?
    private var lastFollowerStep: FollowerStep?

    /// A core for `run`, projecting onto the named device and target (unknown names leave the
    /// projection out and say why in the first snapshot's notice).
    /// `modelPath` and `tokenizerPath` are what a recorded session names (nil: the embedded
    /// model); recordings are written to `sessionDirectory`.
    public init(run: LiveRun, device: String, target: String, modelPath: String? = nil, tokenizerPath: String? = nil,
                sessionDirectory: String = ".") {
        self.run = run
        self.modelPath = modelPath
        self.tokenizerPath = tokenizerPath
        self.sessionDirectory = sessionDirectory
        self.deviceName = device
        self.targetName = target
        var sizes: [WeightType?: Int] = [:]
        let matrices = run.model.weights.namedMatrices.map(\.1)
        for type in WeightType.allCases {
            sizes[type] = matrices.reduce(0) { $0 + type.storing(rowLength: $1.cols).byteCount(elements: $1.elementCount) }
        }
        sizes[WeightType?.none] = matrices.reduce(0) { $0 + $1.byteCount }
        weightBytesByType = sizes
        self.device = try? HardwareCatalog.device(device)
        self.target = try? loadTarget(target)
        project()
    }

    /// Whether a call to `advance` would generate a token.
    public var wantsToStep: Bool { generating && !paused }

    /// Applies a command and describes the state after it.
    public func handle(_ command: EngineCommand) -> EngineSnapshot {
        let event: EngineEvent
        do {
            switch command {
            case .submit(let text):
                prompt = text
                event = try start()
            case .rerun:
                event = try start()
            case .set(let change):
                let change = try recorder?.set(change) ?? run.set(change)
                project()
                event = .knob(change)
            case .pause(let on):
                let was = paused
                paused = on
                event = .notice(on ? "paused" : was ? "resumed" : generating ? "generating"
                    : "ready: \(Keymap.key(for: .editPrompt)) types a prompt, \(Keymap.key(for: .toggleHelp)) lists the keys")
            case .ghost(let on):
                if let recorder { try recorder.setGhost(on) } else { try run.setGhost(on) }
                event = .notice("ghost \(on ? "on" : "off")")
            case .device(let name):
                let profile = try HardwareCatalog.device(name)
                try recordProjection(.device, name)
                device = profile
                deviceName = name
                project()
                event = .notice("device \(name)")
            case .target(let name):
                let shape = try loadTarget(name)
                try recordProjection(.target, name)
                target = shape
                targetName = name
                project()
                event = .notice("target \(name)")
            case .context(let tokens):
                try recordProjection(.context, String(tokens))
                context = tokens
                project()
                event = .notice("projected context \(tokens) tokens")
            case .startRecording(let ui):
                event = try startRecording(ui: ui)
            case .stopRecording:
                event = .notice(try stopRecording())
            case .compare(let on):
                event = .notice(try setCompare(on))
            case .setCompare(let change):
                guard let follower else { throw EngineCoreError.compareOff }
                event = .compareKnob(try follower.set(change, step: run.currentStep))
            case .pace(let tokensPerSecond):
                pace = tokensPerSecond
                event = .notice(tokensPerSecond.map { "pace \($0) tokens/s" } ?? "pace: as fast as the engine goes")
            }
        } catch {
            event = .failure(Self.oneLine(error))
        }
        return snapshot(event)
    }

    /// Generates one token (when generating and not paused) and describes the state after it.
    public func advance() -> EngineSnapshot? {
        guard wantsToStep else { return nil }
        do {
            follower?.capture(leader: run.engine.logits, ghost: run.ghostLogits)
            switch try recorder?.step() ?? run.step() {
            case .token(let metrics):
                if let follower { lastFollowerStep = try follower.follow(metrics.token) }
                lastLedger = metrics.report.ledger
                sinceProjection += 1
                if sinceProjection >= Self.projectionInterval { project() }
                return snapshot(.token(metrics))
            case .stopped(let reason):
                generating = false
                project()
                return snapshot(.stopped(reason))
            }
        } catch {
            generating = false
            return snapshot(.failure(Self.oneLine(error)))
        }
    }

    /// The state now, after `event`.
    public func snapshot(_ event: EngineEvent) -> EngineSnapshot {
        let settings = run.settings
        let config = run.model.config
        let activations = (2 * config.dim + 2 * config.hiddenDim + config.vocabSize) * MemoryLayout<Float>.size
        return EngineSnapshot(
            event: event, settings: settings, ghost: run.ghostEnabled, paused: paused, generating: generating,
            position: run.position, contextLength: config.contextLength, residency: run.cache.residency,
            weightBytes: weightBytesByType[settings.weights] ?? 0, activationBytes: activations,
            map: KVMapSnapshot(cache: run.cache, positions: run.position),
            device: deviceName, target: targetName, projection: projection, sequenceTokens: run.tokens.count,
            recording: recordingPath, compare: compareSnapshot(event))
    }

    /// B's side of the snapshot, in compare mode; its step only with a token event.
    private func compareSnapshot(_ event: EngineEvent) -> CompareSnapshot? {
        guard let follower else { return nil }
        var step: FollowerStep?
        if case .token = event { step = lastFollowerStep }
        return CompareSnapshot(settings: follower.settings, residency: follower.cache.residency,
                               weightBytes: weightBytesByType[follower.settings.weights] ?? 0, step: step)
    }

    private func setCompare(_ on: Bool) throws -> String {
        guard on != (follower != nil) else { return on ? "compare already on" : "compare already off" }
        lastFollowerStep = nil
        guard on else { follower = nil; return "compare off: B discarded, knob keys change A" }
        follower = try TeacherForcedFollower(model: run.model, settings: run.settings, tokens: run.tokens)
        return "compare on: B starts as A, knob keys now change B (\(Keymap.key(for: .toggleCompare)) turns it off)"
    }

    private func start() throws -> EngineEvent {
        // An instruct model gets the prompt as a user turn in its own chat template.
        let text = run.model.chatTemplate == nil ? prompt : try run.model.chatPrompt(user: prompt)
        let submission = try recorder?.submit(prompt: text) ?? run.submit(prompt: text)
        try follower?.restart(tokens: run.tokens)
        lastFollowerStep = nil
        generating = true
        lastLedger = nil
        project()
        return .prompt(submission)
    }

    /// Checkpoints every this many tokens in recordings (as `kvlab run`'s default).
    static let checkpointEvery = 32

    private func startRecording(ui: UISettings) throws -> EngineEvent {
        guard recorder == nil else { return .notice("already recording to \(recordingPath ?? "")") }
        guard !prompt.isEmpty else { return .failure("nothing to record yet: \(Keymap.key(for: .editPrompt)) types a prompt first") }
        run = try LiveRun(model: run.model, settings: run.settings, ghost: run.ghostEnabled)
        let stamp = Int(Date().timeIntervalSince1970)
        let path = (sessionDirectory as NSString).appendingPathComponent("kvlab-\(stamp).kvlab.jsonl")
        // The replay shows the device and target on screen now; a device sessions cannot name
        // (the probed this-machine) leaves the projection out, as a run without --device does.
        let projector = try? SessionProjector(settings: ProjectionSettings(device: deviceName, target: targetName, context: context),
                                              model: run.model)
        let header = try SessionHeader(run: run, model: ModelIdentity(model: run.model, path: modelPath, tokenizer: tokenizerPath),
                                       checkpointEvery: Self.checkpointEvery, ui: ui, projection: projector?.settings)
        let writer = try SessionWriter(path: path, header: header)
        recorder = SessionRecorder(run: run, checkpointEvery: Self.checkpointEvery, projector: projector) { try writer.append($0) }
        recordingPath = path
        return try start()
    }

    /// Records a device, target or context change in the session being recorded, when it projects.
    private func recordProjection(_ setting: ProjectionSetting, _ value: String) throws {
        guard let recorder, recorder.projector != nil else { return }
        try recorder.setProjection(setting, to: value)
    }

    /// Finishes and closes the recording, if one runs; returns what happened (for the status bar).
    @discardableResult
    public func stopRecording() throws -> String {
        guard let recorder, let path = recordingPath else { return "not recording" }
        self.recorder = nil
        recordingPath = nil
        try recorder.finish()
        return "recorded \(path)"
    }

    private func loadTarget(_ name: String) throws -> TargetShape {
        if name == HardwareCatalog.live {
            return TargetShape(config: run.model.config, tiedEmbeddings: run.model.weights.tiedClassifier, id: HardwareCatalog.live,
                               source: "the loaded model (\(run.model.path))")
        }
        return try HardwareCatalog.target(name)
    }

    /// The current settings on device × target, with the live cache's state applied.
    private func project() {
        sinceProjection = 0
        projection = projector?.project(cache: run.cache, positions: run.position, lastStep: lastLedger, settings: run.settings) ?? nil
    }

    /// A command refused by the core itself; the description is the status line.
    enum EngineCoreError: Error, CustomStringConvertible {
        case compareOff

        var description: String {
            switch self {
            case .compareOff: "compare is off: \(Keymap.key(for: .toggleCompare)) starts it"
            }
        }
    }

    /// An error as one line for the status bar.
    static func oneLine(_ error: any Error) -> String {
        String(describing: error).split(separator: "\n").first.map(String.init) ?? "error"
    }
}
