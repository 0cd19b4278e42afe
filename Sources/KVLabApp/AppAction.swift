import KVLabTUI

/// Everything a key can ask the workbench to do.
public enum AppAction: Hashable, Sendable {
    /// Opens or closes the `?` overlay.
    case toggleHelp
    /// Opens the prompt editor.
    case editPrompt
    /// Opens the method-string editor.
    case editMethod
    /// Pauses or resumes generation.
    case togglePause
    /// Steps through the eviction methods.
    case cycleEviction(forward: Bool)
    /// Halves or doubles the eviction budget.
    case budget(up: Bool)
    /// Steps the KV quantization's bits.
    case cycleBits
    /// Steps through the KV quantization methods.
    case cycleQuant
    /// Steps through the sparse attention modes.
    case cycleSparse(forward: Bool)
    /// Steps through the weight types.
    case cycleWeights
    /// Switches the attention kernel between naive and tiled.
    case toggleAttention
    /// Steps the tiled kernel's SRAM size.
    case sram(up: Bool)
    /// Steps through the projected devices.
    case cycleDevice(forward: Bool)
    /// Steps through the projected target shapes.
    case cycleTarget(forward: Bool)
    /// Steps the projected context: 4K, 32K, 128K, the target's maximum.
    case cycleContext(forward: Bool)
    /// Starts or stops the full-cache ghost.
    case toggleGhost
    /// Starts or stops compare mode (configuration B beside A).
    case toggleCompare
    /// Runs the prompt again from an empty cache.
    case rerun
    /// Starts or stops recording a session.
    case toggleRecording
    /// Steps the generation pace.
    case pace(faster: Bool)
    /// Scrolls the generation stream.
    case scroll(up: Bool)
    /// Switches to the next theme.
    case cycleTheme
    /// Opens the Pareto view of the sweep given with `--sweep`, steps its x axis, closes it.
    case cyclePareto
    /// Leaves the workbench.
    case quit
}

/// What the reducer asks the run loop to do (htop-style: input handlers return effects, the
/// loop acts on them).
public enum AppEffect: Equatable, Sendable {
    /// Send a command to the engine.
    case engine(EngineCommand)
    /// Load and use another theme.
    case theme(String)
    /// Leave the workbench.
    case quit
}

/// The workbench's keys: one table that maps keys to actions and renders the `?` overlay, the
/// README keymap, the hint line and every key label in panels and messages.
public enum Keymap {
    /// The key table.
    public static let table = KeyTable<AppAction>([
        KeyBinding([.character("i")], "type a prompt (Enter runs it, Esc cancels, ↑/↓ history)", group: "Generation", action: .editPrompt),
        KeyBinding([.character(" ")], "pause / resume generation", group: "Generation", action: .togglePause),
        KeyBinding([.character("R")], "run the prompt again from the start with the current settings", group: "Generation", action: .rerun),
        KeyBinding([.character("r")], "record a session on / off (starts from a rerun of the prompt)", group: "Generation", action: .toggleRecording),
        KeyBinding([.character("+"), .character("-")], "generation pace: faster / slower (tokens/s)", group: "Generation", action: .pace(faster: true)),
        KeyBinding([.pageUp, .pageDown], "scroll the generated text", group: "Generation", action: .scroll(up: true)),
        KeyBinding([.character("e"), .character("E")], "eviction method: next / previous", group: "KV cache", action: .cycleEviction(forward: true)),
        KeyBinding([.character("["), .character("]")], "eviction budget: halve / double", group: "KV cache", action: .budget(up: false)),
        KeyBinding([.character("b")], "KV bits: 8 → 4 → 3 → 2 (kivi when the method has no bits)", group: "KV cache", action: .cycleBits),
        KeyBinding([.character("B")], "KV quantization method: next", group: "KV cache", action: .cycleQuant),
        KeyBinding([.character("s"), .character("S")], "sparse attention mode: next / previous", group: "KV cache", action: .cycleSparse(forward: true)),
        KeyBinding([.character(":")], "edit a method string (knob=method:param=value,...)", group: "KV cache", action: .editMethod),
        KeyBinding([.character("w")], "weight type: stored → f32 → f16 → bf16 → q8_0 → q6_K … q2_K", group: "Model", action: .cycleWeights),
        KeyBinding([.character("a")], "attention kernel: naive / tiled", group: "Model", action: .toggleAttention),
        KeyBinding([.character("m"), .character("M")], "tiled kernel SRAM: larger / smaller", group: "Model", action: .sram(up: true)),
        KeyBinding([.character("g")], "full-cache ghost (quality panel): on / off", group: "Model", action: .toggleGhost),
        KeyBinding([.character("c")], "compare mode: B beside A on A's tokens; knob keys change B", group: "Model", action: .toggleCompare),
        KeyBinding([.character("d"), .character("D")], "projected device: next / previous", group: "Projection", action: .cycleDevice(forward: true)),
        KeyBinding([.character("t"), .character("T")], "projected target model: next / previous", group: "Projection", action: .cycleTarget(forward: true)),
        KeyBinding([.character("x"), .character("X")], "projected context: 4K → 32K → 128K → target's max / back", group: "Projection",
                   action: .cycleContext(forward: true)),
        KeyBinding([.character("y")], "colour theme: next", group: "Screen", action: .cycleTheme),
        KeyBinding([.character("p")], "Pareto view of --sweep: vs resident KV → vs latency → off", group: "Screen", action: .cyclePareto),
        KeyBinding([.character("?")], "this help", group: "Screen", action: .toggleHelp),
        KeyBinding([.character("q"), .control("c")], "quit", group: "Screen", action: .quit),
    ])

    /// The action of a key: the table's, with the second key of a pair meaning the other
    /// direction (`E` is eviction backwards, `]` budget up).
    public static func action(for key: Key) -> AppAction? {
        guard let binding = table.bindings.first(where: { $0.keys.contains(key) }) else { return nil }
        let second = binding.keys.count == 2 && binding.keys[1] == key
        guard second else { return binding.action }
        switch binding.action {
        case .cycleEviction: return .cycleEviction(forward: false)
        case .budget: return .budget(up: true)
        case .cycleSparse: return .cycleSparse(forward: false)
        case .sram: return .sram(up: false)
        case .cycleDevice: return .cycleDevice(forward: false)
        case .cycleTarget: return .cycleTarget(forward: false)
        case .cycleContext: return .cycleContext(forward: false)
        case .scroll: return .scroll(up: false)
        case .pace: return .pace(faster: false)
        default: return binding.action
        }
    }

    /// The label of the first key that does `action` (`E` for eviction backwards), for messages
    /// and panels.
    public static func key(for action: AppAction) -> String {
        table.bindings.lazy.flatMap(\.keys).first { Self.action(for: $0) == action }?.label() ?? ""
    }

    /// The labels of every key of the binding that does `action`, joined by `separator`
    /// (`e/E`, `[ ]`).
    public static func keys(of action: AppAction, separator: String) -> String {
        guard let binding = table.bindings.first(where: { $0.keys.contains { Self.action(for: $0) == action } }) else { return "" }
        return binding.keys.map { $0.label() }.joined(separator: separator)
    }

    /// The hint line's actions and words, in its order; `separator` shows every key of the
    /// binding (`[ ]`), else the first.
    private static let hintActions: [(action: AppAction, label: String, separator: String?)] = [
        (.toggleHelp, "help", nil), (.editPrompt, "prompt", nil), (.togglePause, "pause", nil), (.cycleEviction(forward: true), "evict", nil),
        (.budget(up: false), "budget", " "), (.cycleBits, "bits", nil), (.cycleSparse(forward: true), "sparse", nil),
        (.cycleWeights, "weights", nil), (.toggleAttention, "kernel", nil), (.cycleDevice(forward: true), "device", nil),
        (.cycleTarget(forward: true), "target", nil), (.toggleGhost, "ghost", nil), (.rerun, "rerun", nil), (.toggleRecording, "rec", nil),
        (.quit, "quit", nil),
    ]

    /// The hint line at the bottom of the screen, its keys from the table (named keys in lower
    /// case: `space`).
    public static let hints: [(key: String, label: String)] = hintActions.map { hint in
        let shown = hint.separator.map { keys(of: hint.action, separator: $0) } ?? key(for: hint.action)
        return (shown.count > 1 && hint.separator == nil ? shown.lowercased() : shown, hint.label)
    }

    /// The hint line of a workbench with a sweep loaded (`--sweep`): its Pareto key before quit.
    public static let paretoHints: [(key: String, label: String)] = hints.dropLast() + [(key(for: .cyclePareto), "pareto")] + hints.suffix(1)
}
