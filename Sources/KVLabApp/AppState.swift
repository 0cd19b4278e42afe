import KVLabEngine
import KVLabFoundation
import KVLabHardware
import KVLabMethods
import KVLabRun
import KVLabTUI

/// The last `capacity` values of a series, oldest first (panel histories).
public struct History: Sendable, Equatable {
    /// Most values kept.
    public let capacity: Int
    /// Values oldest first.
    public private(set) var values: [Double] = []

    /// An empty history of at most `capacity` values.
    public init(capacity: Int) {
        self.capacity = capacity
        values.reserveCapacity(capacity)
    }

    /// Appends a value, dropping the oldest when full.
    public mutating func append(_ value: Double) {
        if values.count == capacity { values.removeFirst() }
        values.append(value)
    }

    /// Forgets every value.
    public mutating func removeAll() { values.removeAll(keepingCapacity: true) }

    /// The value at quantile `q` (0…1) of the values kept, or nil when empty.
    public func quantile(_ q: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(Int((Double(sorted.count - 1) * q).rounded()), sorted.count - 1)]
    }
}

/// The choices the cycling keys step through that do not come from the method tables.
public struct Choices: Sendable, Equatable {
    /// Device profiles the projection can use.
    public var devices: [String]
    /// Target shapes the projection can use.
    public var targets: [String]
    /// SRAM sizes of the tiled kernel, smallest first (the SM shared memories of the devices).
    public var sramSizes: [Int]
    /// Theme names.
    public var themes: [String]

    /// Choices given directly.
    public init(devices: [String], targets: [String], sramSizes: [Int], themes: [String]) {
        self.devices = devices
        self.targets = targets
        self.sramSizes = sramSizes
        self.themes = themes
    }

    /// The bundled devices (the probed `this-machine` is left out: measuring takes seconds) and
    /// targets, the SRAM per SM of each device, and the given themes.
    public static func catalog(themes: [String]) -> Choices {
        let devices = HardwareCatalog.deviceNames.filter { $0 != HardwareCatalog.thisMachine }
        let sram = Set(devices.compactMap { try? HardwareCatalog.device($0) }.map { Int($0.sramPerSM) }.filter { $0 > 0 })
        return Choices(devices: devices, targets: HardwareCatalog.targetNames, sramSizes: sram.union([AttentionKernel.defaultSRAMBytes]).sorted(),
                       themes: themes)
    }
}

/// One piece of the generation stream: a prompt, or a generated token at its position.
public struct StreamPiece: Sendable, Equatable {
    /// The text.
    public var text: String
    /// The token's position (nil for prompts, drawn in the prompt style).
    public var position: Int?

    /// A piece of text, at a token position or not.
    public init(text: String, position: Int?) {
        self.text = text
        self.position = position
    }
}

/// A one-line text editor (the prompt and the method string).
public struct LineEditor: Sendable, Equatable {
    /// What the line is for.
    public enum Purpose: Sendable, Equatable {
        /// A prompt to run.
        case prompt
        /// A `knob=method` string.
        case method
    }

    /// What the line is for.
    public var purpose: Purpose
    /// The text, as characters.
    public var text: [Character]
    /// Cursor position in `text`.
    public var cursor: Int

    /// An editor holding `text`, cursor at its end.
    public init(purpose: Purpose, text: String) {
        self.purpose = purpose
        self.text = Array(text)
        self.cursor = self.text.count
    }

    /// The text as a string.
    public var string: String { String(text) }
}

/// Everything the workbench shows, updated by keys (`handle`) and engine snapshots (`absorb`);
/// panels render from it alone.
public struct AppState: Sendable {
    /// Generated pieces kept for the stream's scrollback.
    static let streamCapacity = 4096
    /// Values kept per panel history.
    static let historyCapacity = 512

    /// The model's name.
    public var modelName: String
    /// Cycling choices.
    public var choices: Choices
    /// Canonical knob values, as the engine last reported them.
    public var settings: [Knob: String] = [:]
    /// The projected device.
    public var device: String
    /// The projected target.
    public var target: String
    /// The theme in use.
    public var theme: String
    /// Whether the ghost runs.
    public var ghost = false
    /// Whether generation is paused.
    public var paused = false
    /// Whether tokens are being generated.
    public var generating = false
    /// Generation pace in tokens per second (nil: unpaced).
    public var pace: Int? = EngineCore.defaultPace
    /// The session file being recorded, if any.
    public var recording: String?
    /// Whether the help overlay is open.
    public var helpVisible = false
    /// The open line editor, if any.
    public var editor: LineEditor?
    /// Prompts entered, oldest first.
    public var promptHistory: [String] = []
    /// The entry of `promptHistory` the editor shows (nil: the line being typed).
    var historyIndex: Int?
    /// The status bar's message and whether it reports an error.
    public var status: (text: String, isError: Bool)?
    /// The generation stream.
    public var stream: [StreamPiece] = []
    /// Lines the stream is scrolled back by.
    public var scrollback = 0
    /// Measured per-token latency (ms).
    public var latency = History(capacity: historyCapacity)
    /// KL(ghost ‖ run) per token.
    public var kl = History(capacity: historyCapacity)
    /// HBM traffic per token (bytes).
    public var traffic = History(capacity: historyCapacity)
    /// Resident KV bytes per token.
    public var kvBytes = History(capacity: historyCapacity)
    /// Time to first token of the sequence: the prompt's forward pass (ms).
    public var ttft: Double?
    /// Tokens compared with the ghost, and those whose top-1 agreed.
    public var ghostTokens = 0
    /// Tokens whose top-1 agreed with the ghost's.
    public var top1Agreements = 0
    /// Sum of ΔNLL over the compared tokens.
    public var deltaNLLSum = 0.0
    /// The first step whose top-1 disagreed with the ghost.
    public var firstDivergence: Int?
    /// The last token's ghost comparison.
    public var lastGhost: GhostComparison?
    /// The last token's metrics.
    public var lastToken: TokenMetrics?
    /// The last snapshot.
    public var snapshot: EngineSnapshot?
    /// Configuration B as the engine last reported it, in compare mode.
    public var compare: CompareSnapshot?
    /// B's last step in compare mode.
    public var lastCompareStep: FollowerStep?
    /// B's measured per-token latency (ms), in compare mode.
    public var compareLatency = History(capacity: historyCapacity)
    /// Tokens B followed, and the sums of its ΔNLL and KL against A over them.
    public var compareTokens = 0
    /// Sum of B's ΔNLL against A (nats).
    public var compareDeltaNLLSum = 0.0
    /// Sum of KL(A ‖ B).
    public var compareKLSum = 0.0
    /// Sum of KL(ghost ‖ B) over the tokens the ghost ran for, and their count.
    public var compareGhostKL = (sum: 0.0, tokens: 0)
    /// Whether the state changed since the last frame.
    public var dirty = true

    /// A state before any snapshot.
    public init(modelName: String, choices: Choices, device: String, target: String, theme: String) {
        self.modelName = modelName
        self.choices = choices
        self.device = device
        self.target = target
        self.theme = theme
    }

    // MARK: - Engine snapshots

    /// Takes in what the engine reported.
    public mutating func absorb(_ snapshot: EngineSnapshot) {
        dirty = true
        settings = snapshot.settings
        ghost = snapshot.ghost
        paused = snapshot.paused
        generating = snapshot.generating
        device = snapshot.device
        target = snapshot.target
        recording = snapshot.recording
        if (compare == nil) != (snapshot.compare == nil) { resetCompare() }
        compare = snapshot.compare
        switch snapshot.event {
        case .prompt(let submission):
            if !submission.continuing {
                resetSequence()
                if !stream.isEmpty { appendPiece(StreamPiece(text: "\n", position: nil)) }
            }
            appendPiece(StreamPiece(text: submission.text, position: nil))
            ttft = Double(submission.report.timings.totalNanoseconds) / 1e6
        case .token(let metrics):
            appendPiece(StreamPiece(text: metrics.text, position: metrics.report.position))
            latency.append(Double(metrics.report.timings.totalNanoseconds) / 1e6)
            let ledger = metrics.report.ledger
            traffic.append(Double(ledger.total(.hbmToSRAM) + ledger.total(.sramToHBM) + ledger.total(.dramToHBM)))
            kvBytes.append(Double(metrics.report.cache.total))
            if let comparison = metrics.ghost {
                kl.append(comparison.kl)
                ghostTokens += 1
                if comparison.top1Agrees { top1Agreements += 1 } else if firstDivergence == nil { firstDivergence = metrics.step }
                deltaNLLSum += comparison.deltaNLL
            }
            lastGhost = metrics.ghost
            lastToken = metrics
            if let step = snapshot.compare?.step {
                compareLatency.append(Double(step.report.timings.totalNanoseconds) / 1e6)
                compareTokens += 1
                compareDeltaNLLSum += step.deltaNLL
                compareKLSum += step.kl
                if let ghostKL = step.ghostKL { compareGhostKL = (compareGhostKL.sum + ghostKL, compareGhostKL.tokens + 1) }
                lastCompareStep = step
            }
        case .knob(let change):
            status = ("\(change.knob.rawValue) \(change.old) → \(change.new) from token \(change.step)", false)
        case .compareKnob(let change):
            status = ("B \(change.knob.rawValue) \(change.old) → \(change.new) from token \(change.step)", false)
        case .stopped(let reason):
            status = (reason == .endOfSequence ? "stopped: end of sequence (R reruns, i a new prompt)" : "stopped: context full (R reruns, i a new prompt)", false)
        case .notice(let text):
            status = (text, false)
        case .failure(let text):
            status = (text, true)
        }
        self.snapshot = snapshot
    }

    private mutating func resetSequence() {
        latency.removeAll()
        kl.removeAll()
        traffic.removeAll()
        kvBytes.removeAll()
        ghostTokens = 0
        top1Agreements = 0
        deltaNLLSum = 0
        firstDivergence = nil
        lastGhost = nil
        lastToken = nil
        scrollback = 0
        resetCompare()
    }

    private mutating func resetCompare() {
        lastCompareStep = nil
        compareLatency.removeAll()
        compareTokens = 0
        compareDeltaNLLSum = 0
        compareKLSum = 0
        compareGhostKL = (0, 0)
    }

    private mutating func appendPiece(_ piece: StreamPiece) {
        guard !piece.text.isEmpty else { return }
        if stream.count == Self.streamCapacity { stream.removeFirst(Self.streamCapacity / 4) }
        stream.append(piece)
    }

    // MARK: - Keys

    /// Handles a key: the editor or help overlay when open, else the key table's action.
    public mutating func handle(_ key: Key) -> [AppEffect] {
        if key == .resize { dirty = true; return [] }
        if editor != nil { return edit(key) }
        if helpVisible {
            if key == .escape || key == .character("?") || key == .character("q") { helpVisible = false; dirty = true }
            return []
        }
        guard let action = Keymap.action(for: key) else { return [] }
        return apply(action)
    }

    /// Applies an action and returns what the run loop must do.
    public mutating func apply(_ action: AppAction) -> [AppEffect] {
        dirty = true
        switch action {
        case .toggleHelp:
            helpVisible.toggle()
            return []
        case .editPrompt:
            editor = LineEditor(purpose: .prompt, text: "")
            historyIndex = nil
            return []
        case .editMethod:
            editor = LineEditor(purpose: .method, text: "\(Knob.policy.rawValue)=\(value(.policy))")
            return []
        case .togglePause:
            return [.engine(.pause(!paused))]
        case .cycleEviction(let forward):
            return set(.policy, Self.cycle(EvictionMethod.names, after: methodName(.policy), forward: forward))
        case .budget(let up):
            guard let next = Self.scaleBudget(value(.policy), up: up) else {
                return report("\(methodName(.policy)) has no budget: press e for an eviction method")
            }
            return set(.policy, next)
        case .cycleBits:
            return set(.kv, Self.nextBits(value(.kv)))
        case .cycleQuant:
            return set(.kv, Self.cycle(KVQuantMethod.names, after: methodName(.kv), forward: true))
        case .cycleSparse(let forward):
            return set(.sparse, Self.cycle(SparseMethod.names, after: methodName(.sparse), forward: forward))
        case .cycleWeights:
            let types = [RunSettings.storedWeights] + WeightType.allCases.map(\.rawValue)
            return set(.weights, Self.cycle(types, after: value(.weights), forward: true))
        case .toggleAttention:
            return set(.attention, methodName(.attention) == "naive" ? "tiled:sram=\(formatBytes(currentSRAM, .exact))" : "naive")
        case .sram(let up):
            let sizes = choices.sramSizes
            guard !sizes.isEmpty else { return [] }
            let next = up ? sizes.first { $0 > currentSRAM } ?? sizes[0] : sizes.last { $0 < currentSRAM } ?? sizes[sizes.count - 1]
            return set(.attention, "tiled:sram=\(formatBytes(next, .exact))")
        case .cycleDevice(let forward):
            return [.engine(.device(Self.cycle(choices.devices, after: device, forward: forward)))]
        case .cycleTarget(let forward):
            return [.engine(.target(Self.cycle(choices.targets, after: target, forward: forward)))]
        case .toggleGhost:
            return [.engine(.ghost(!ghost))]
        case .toggleCompare:
            return [.engine(.compare(compare == nil))]
        case .rerun:
            return [.engine(.rerun)]
        case .toggleRecording:
            return [.engine(.record(recording == nil))]
        case .pace(let faster):
            let paces = EngineCore.paces
            let index = paces.firstIndex(of: pace) ?? 0
            pace = paces[min(max(index + (faster ? 1 : -1), 0), paces.count - 1)]
            return [.engine(.pace(pace))]
        case .scroll(let up):
            scrollback = max(scrollback + (up ? 5 : -5), 0)
            return []
        case .cycleTheme:
            guard !choices.themes.isEmpty else { return [] }
            theme = Self.cycle(choices.themes, after: theme, forward: true)
            return [.theme(theme)]
        case .quit:
            return [.quit]
        }
    }

    private mutating func edit(_ key: Key) -> [AppEffect] {
        guard var line = editor else { return [] }
        dirty = true
        switch key {
        case .escape:
            editor = nil
            return []
        case .enter:
            editor = nil
            return submit(line)
        case .character(let character):
            line.text.insert(character, at: line.cursor)
            line.cursor += 1
        case .backspace:
            if line.cursor > 0 { line.text.remove(at: line.cursor - 1); line.cursor -= 1 }
        case .delete:
            if line.cursor < line.text.count { line.text.remove(at: line.cursor) }
        case .left: line.cursor = max(line.cursor - 1, 0)
        case .right: line.cursor = min(line.cursor + 1, line.text.count)
        case .home, .control("a"): line.cursor = 0
        case .end, .control("e"): line.cursor = line.text.count
        case .control("u"):
            line.text.removeSubrange(0..<line.cursor)
            line.cursor = 0
        case .up, .down:
            guard line.purpose == .prompt, !promptHistory.isEmpty else { break }
            let index: Int? = if key == .up { max((historyIndex ?? promptHistory.count) - 1, 0) } else {
                historyIndex.flatMap { $0 + 1 < promptHistory.count ? $0 + 1 : nil }
            }
            historyIndex = index
            line = LineEditor(purpose: .prompt, text: index.map { promptHistory[$0] } ?? "")
        case .control("c"):
            editor = nil
            return [.quit]
        default: break
        }
        editor = line
        return []
    }

    private mutating func submit(_ line: LineEditor) -> [AppEffect] {
        let text = line.string
        switch line.purpose {
        case .prompt:
            guard !text.isEmpty else { return report("empty prompt: nothing to run") }
            if promptHistory.last != text { promptHistory.append(text) }
            return [.engine(.submit(text))]
        case .method:
            guard let equals = text.firstIndex(of: "="), let knob = Knob(rawValue: String(text[..<equals])) else {
                return report("expected KNOB=METHOD with KNOB one of \(Knob.allCases.map(\.rawValue).joined(separator: ", ")): '\(text)'", error: true)
            }
            return set(knob, String(text[text.index(after: equals)...]))
        }
    }

    private mutating func report(_ text: String, error: Bool = false) -> [AppEffect] {
        status = (text, error)
        return []
    }

    /// Sets a knob of the configuration the knob keys change: B in compare mode, else A.
    private func set(_ knob: Knob, _ value: String) -> [AppEffect] {
        [.engine(compare == nil ? .set(knob, value) : .setCompare(knob, value))]
    }

    /// A knob's canonical value now, in the configuration the knob keys change (B in compare mode).
    public func value(_ knob: Knob) -> String { (compare?.settings ?? settings)[knob] ?? "" }

    /// The method name of a knob's value (`h2o` of `h2o:heavy=64,recent=64`).
    func methodName(_ knob: Knob) -> String { (try? MethodSpec(parsing: value(knob)))?.name ?? value(knob) }

    private var currentSRAM: Int {
        if case .tiled(let bytes)? = try? AttentionKernel(parsing: value(.attention)) { return bytes }
        return AttentionKernel.defaultSRAMBytes
    }

    // MARK: - Cycling rules, from the method tables

    /// The entry after (or before) `current` in `list`, wrapping; the first when `current` is not in it.
    static func cycle(_ list: [String], after current: String, forward: Bool) -> String {
        guard let index = list.firstIndex(of: current) else { return list.first ?? current }
        return list[(index + (forward ? 1 : list.count - 1)) % list.count]
    }

    /// Parameters that size an eviction method's budget.
    static let budgetParameters: Set<String> = ["budget", "window", "heavy", "recent"]
    /// Parameters that give a quantization's bits.
    static let bitParameters: Set<String> = ["bits", "kbits", "vbits", "low"]

    /// The method string with its budget parameters halved or doubled, or nil when it has none.
    static func scaleBudget(_ method: String, up: Bool) -> String? {
        guard var spec = try? MethodSpec(parsing: method) else { return nil }
        var changed = false
        for index in spec.parameters.indices where budgetParameters.contains(spec.parameters[index].key) {
            guard let value = Int(spec.parameters[index].value) else { continue }
            spec.parameters[index].value = String(up ? min(value * 2, 1 << 20) : max(value / 2, value == 0 ? 0 : 1))
            changed = true
        }
        return changed ? spec.description : nil
    }

    /// The method with its bits at the next supported count (8 → 4 → 3 → 2 → 8), or KIVI when
    /// the method has no bits parameter.
    static func nextBits(_ method: String) -> String {
        guard var spec = try? MethodSpec(parsing: method),
              spec.parameters.contains(where: { bitParameters.contains($0.key) }) else { return "kivi" }
        let bits = UniformQuantizer.supportedBits
        for index in spec.parameters.indices where bitParameters.contains(spec.parameters[index].key) {
            spec.parameters[index].value = cycle(bits.map(String.init), after: spec.parameters[index].value, forward: true)
        }
        return spec.description
    }
}
