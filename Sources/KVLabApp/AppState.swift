import KVLabHardware
import KVLabMethods
import KVLabRun
import KVLabSession
import KVLabTUI

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

/// The title bar's account of a replay: what plays, how fast, and whether it is re-executed.
public struct ReplayTitle: Sendable, Equatable {
    /// The speed as the progress line shows it (`2×`, `max`).
    public var speed: String
    /// Whether the replay is paused, and whether every event has played.
    public var paused: Bool
    public var finished: Bool
    /// Whether the model re-executes the session (false: recorded metrics only).
    public var reexecutes: Bool
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
    /// The whole text is selected (a prefilled value): typing replaces it, Backspace or Delete
    /// clears it, a cursor key keeps it for editing.
    public var selected: Bool

    /// An editor holding `text`, cursor at its end, the text `selected` or not.
    public init(purpose: Purpose, text: String, selected: Bool = false) {
        self.purpose = purpose
        self.text = Array(text)
        self.cursor = self.text.count
        self.selected = selected && !text.isEmpty
    }

    /// The text as a string.
    public var string: String { String(text) }
}

/// Everything the workbench shows, updated by keys (`handle`) and engine snapshots (`absorb`):
/// the UI's own state (overlays, editor, theme, scrollback, status), what the engine last
/// reported, and the sequence's `RunTotals`. Panels render from it alone.
public struct AppState: Sendable {
    /// Generated pieces kept for the stream's scrollback.
    static let streamCapacity = 4096

    // MARK: UI state

    /// The model's name.
    public var modelName: String
    /// Cycling choices.
    public var choices: Choices
    /// The theme in use.
    public var theme: String
    /// The terminal's size in cells (the run loop keeps it current; recordings carry it).
    public var screen = (columns: WorkbenchScreen.minimumSize.width, rows: WorkbenchScreen.minimumSize.height)
    /// Generation pace in tokens per second (nil: unpaced).
    public var pace: Int? = EngineCore.defaultPace
    /// Whether the help overlay is open.
    public var helpVisible = false
    /// Rows the help overlay is scrolled by.
    public var helpOffset = 0
    /// Whether the help lists the replay's keys (the replay screen) rather than the workbench's.
    public var replayHelp = false
    /// The open line editor, if any.
    public var editor: LineEditor?
    /// Prompts entered, oldest first.
    public var promptHistory: [String] = []
    /// The entry of `promptHistory` the editor shows (nil: the line being typed).
    var historyIndex: Int?
    /// The status bar's message and whether it reports an error.
    public var status: (text: String, isError: Bool)?
    /// Lines the stream is scrolled back by.
    public var scrollback = 0
    /// Whether the state changed since the last frame.
    public var dirty = true
    /// Whether bars tell their segments apart by pattern as well as colour (mono colours or an
    /// ASCII terminal, where colours alone do not).
    public var patterned = false
    /// The guided tour, while it runs (`kvlab tour`).
    public var tour: Tour?
    /// What a replay shows in the title bar instead of the live run's state (nil: a live run).
    public var replay: ReplayTitle?
    /// The sweep the Pareto view draws (`--sweep`), if any.
    public var pareto: ParetoSweep?
    /// The x axis of `pareto` the view shows; nil while it is closed.
    public var paretoAxis: Int?

    // MARK: What the engine reported

    /// The run's settings, as the engine last reported them (nil before its first snapshot).
    public var settings: RunSettings?
    /// The projected device.
    public var device: String
    /// The projected target.
    public var target: String
    /// Whether the ghost runs.
    public var ghost = false
    /// Whether generation is paused.
    public var paused = false
    /// Whether tokens are being generated.
    public var generating = false
    /// The session file being recorded, if any.
    public var recording: String?
    /// The generation stream.
    public var stream: [StreamPiece] = []
    /// The last snapshot.
    public var snapshot: EngineSnapshot?
    /// Configuration B as the engine last reported it, in compare mode.
    public var compare: CompareSnapshot?

    // MARK: The sequence's totals

    /// Histories and the ghost's and B's totals since the sequence started.
    public var totals = RunTotals()

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
        if (compare == nil) != (snapshot.compare == nil) { totals.compare = RunTotals.Compare() }
        compare = snapshot.compare
        switch snapshot.event {
        case .prompt(let submission):
            if !submission.continuing {
                totals = RunTotals()
                scrollback = 0
                if !stream.isEmpty { appendPiece(StreamPiece(text: "\n", position: nil)) }
            }
            appendPiece(StreamPiece(text: submission.text, position: nil))
            totals.ttft = Double(submission.report.timings.totalNanoseconds) / 1e6
        case .token(let metrics):
            appendPiece(StreamPiece(text: metrics.text, position: metrics.report.position))
            totals.add(metrics, compareStep: snapshot.compare?.step)
        case .knob(let change):
            status = ("\(change.knob.rawValue) \(change.old) → \(change.new) from token \(change.step)", false)
        case .compareKnob(let change):
            status = ("B \(change.knob.rawValue) \(change.old) → \(change.new) from token \(change.step)", false)
        case .stopped(let reason):
            let next = "\(Keymap.key(for: .rerun)) reruns, \(Keymap.key(for: .editPrompt)) a new prompt"
            status = (reason == .endOfSequence ? "stopped: end of sequence (\(next))" : "stopped: context full (\(next))", false)
        case .notice(let text):
            status = (text, false)
        case .failure(let text):
            status = (text, true)
        }
        self.snapshot = snapshot
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
            scrollHelp(key)
            return []
        }
        if key == .escape, tour != nil {
            tour = nil
            dirty = true
            return report("tour ended: every key is still there (\(Keymap.key(for: .toggleHelp)) lists them)")
        }
        guard let action = Keymap.action(for: key) else { return [] }
        let effects = apply(action)
        if var running = tour { tour = running.advance(after: action) ? running : nil }
        return effects
    }

    /// Applies an action and returns what the run loop must do.
    public mutating func apply(_ action: AppAction) -> [AppEffect] {
        dirty = true
        switch action {
        case .toggleHelp:
            helpVisible.toggle()
            helpOffset = 0
            return []
        case .editPrompt:
            editor = LineEditor(purpose: .prompt, text: "")
            historyIndex = nil
            return []
        case .editMethod:
            editor = LineEditor(purpose: .method, text: "\(Knob.policy.rawValue)=\(value(.policy))", selected: true)
            return []
        case .togglePause:
            return [.engine(.pause(!paused))]
        case .cycleEviction, .budget, .cycleBits, .cycleQuant, .cycleSparse, .cycleWeights, .toggleAttention, .sram:
            guard let knobs = knobSettings else { return [] }
            if case .budget = action, Self.scaleBudget(knobs.eviction.spec, up: true) == nil {
                return report("\(knobs.eviction.spec.name) has no budget: press \(Keymap.key(for: .cycleEviction(forward: true))) for an eviction method")
            }
            do { return try Self.change(for: action, from: knobs, sramSizes: choices.sramSizes).map(set) ?? [] } catch {
                return report(error.description, error: true)
            }
        case .cycleDevice(let forward):
            return [.engine(.device(Self.cycle(choices.devices, after: device, forward: forward)))]
        case .cycleTarget(let forward):
            return [.engine(.target(Self.cycle(choices.targets, after: target, forward: forward)))]
        case .cycleContext(let forward):
            guard let setup = snapshot?.projection?.setup else {
                let keys = Keymap.key(for: .cycleDevice(forward: true)) + "/" + Keymap.key(for: .cycleTarget(forward: true))
                return report("no projection to set a context for (\(keys): device, target)", error: true)
            }
            return [.engine(.context(Self.nextContext(after: setup.context, targetMaximum: setup.target.maxContext, forward: forward)))]
        case .toggleGhost:
            return [.engine(.ghost(!ghost))]
        case .toggleCompare:
            // Starting B teacher-forces it over every token so far, seconds on a long sequence,
            // during which the engine generates nothing: say so until its notice replaces this.
            if compare == nil, let tokens = snapshot?.sequenceTokens, tokens > 0 {
                status = ("compare: building B from A's \(tokens) tokens (teacher-forced; generation waits)…", false)
            }
            return [.engine(.compare(compare == nil))]
        case .rerun:
            return [.engine(.rerun)]
        case .toggleRecording:
            return [.engine(recording == nil ? .startRecording(ui: UISettings(columns: screen.columns, rows: screen.rows, theme: theme))
                                             : .stopRecording)]
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
        case .cyclePareto:
            guard let sweep = pareto else {
                return report("no sweep to draw: start the workbench with --sweep DIR (a kvlab sweep run --store directory)")
            }
            let next = (paretoAxis ?? -1) + 1
            paretoAxis = next < sweep.axes.count ? next : nil
            return []
        case .quit:
            return [.quit]
        }
    }

    /// Keys while the help overlay is open: ↑ ↓ PgUp PgDn Home End scroll it, `?` Esc `q` close it.
    private mutating func scrollHelp(_ key: Key) {
        let page = max(screen.rows - 6, 1)
        let last = WorkbenchScreen.help(glyphs: .unicode, replay: replayHelp).maxOffset(area: WorkbenchScreen.helpArea(columns: screen.columns, rows: screen.rows))
        switch key {
        case .escape, .character("?"), .character("q"): helpVisible = false
        case .up, .character("k"): helpOffset -= 1
        case .down, .character("j"): helpOffset += 1
        case .pageUp: helpOffset -= page
        case .pageDown, .character(" "): helpOffset += page
        case .home: helpOffset = 0
        case .end: helpOffset = last
        default: return
        }
        helpOffset = min(max(helpOffset, 0), last)
        dirty = true
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
        case .character(let character) where line.selected:
            line = LineEditor(purpose: line.purpose, text: String(character))
        case .backspace where line.selected, .delete where line.selected:
            line = LineEditor(purpose: line.purpose, text: "")
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
        // Any other key keeps the prefilled text for editing.
        line.selected = false
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
            // The `:` editor is one of the edges where a knob string is parsed.
            guard let equals = text.firstIndex(of: "="), let knob = Knob(rawValue: String(text[..<equals])) else {
                return report("expected KNOB=METHOD with KNOB one of \(Knob.allCases.map(\.rawValue).joined(separator: ", ")): '\(text)'", error: true)
            }
            do { return set(try SettingChange(knob, parsing: String(text[text.index(after: equals)...]))) } catch {
                return report(error.description, error: true)
            }
        }
    }

    private mutating func report(_ text: String, error: Bool = false) -> [AppEffect] {
        status = (text, error)
        return []
    }

    /// Sends a change to the configuration the knob keys change: B in compare mode, else A.
    private func set(_ change: SettingChange) -> [AppEffect] {
        [.engine(compare == nil ? .set(change) : .setCompare(change))]
    }

    /// The settings the knob keys change: B's in compare mode, else A's (nil before a snapshot).
    var knobSettings: RunSettings? { compare?.settings ?? settings }

    /// A knob's canonical value now, in the configuration the knob keys change (B in compare mode).
    public func value(_ knob: Knob) -> String { knobSettings?.value(of: knob) ?? "" }
}
