/// The panels of the workbench screen, as the tour names them.
public enum WorkbenchPanel: String, Sendable, CaseIterable {
    case generation, knobs, kvMap, quality, memory, traffic, latency
}

/// `kvlab tour`: a guided walk through the workbench on the live model. Each stop highlights one
/// panel, says in two or three lines what it shows, and waits for the key that moves it; that
/// key does what it always does, and the tour goes on.
public struct Tour: Sendable, Equatable {
    /// One stop: the panel, what to say, and the action whose key the tour waits for.
    public struct Stop: Sendable, Equatable {
        public var panel: WorkbenchPanel
        public var title: String
        public var lines: [String]
        public var action: AppAction
    }

    /// The stops, in order (the keys are the key table's, so they cannot drift from it).
    public static let stops: [Stop] = [
        Stop(panel: .generation, title: "Generation",
             lines: ["The embedded model writes here, live, a token at a time.",
                     "Each token is tinted by its KV entries: kept, quantized or evicted."],
             action: .pace(faster: true)),
        Stop(panel: .knobs, title: "Knobs",
             lines: ["The KV methods in effect, with the key that changes each.",
                     "Every change applies between two tokens. Try the next eviction method."],
             action: .cycleEviction(forward: true)),
        Stop(panel: .kvMap, title: "KV map",
             lines: ["Rows are layers, columns positions: █ kept, ▓ quantized, ░ evicted.",
                     "Halve the eviction budget and watch entries go."],
             action: .budget(up: false)),
        Stop(panel: .quality, title: "Quality vs full cache",
             lines: ["A ghost runs the full cache on the same tokens; KL and top-1 say",
                     "what the method costs. Start the ghost."],
             action: .toggleGhost),
        Stop(panel: .memory, title: "Memory hierarchy",
             lines: ["What this run holds (weights, KV), and the same cache state projected",
                     "onto a real device and model. Pick another device."],
             action: .cycleDevice(forward: true)),
        Stop(panel: .traffic, title: "Traffic per token",
             lines: ["Bytes each step moves, per link, counted in the kernels.",
                     "Sparse attention reads fewer keys and values: switch it on."],
             action: .cycleSparse(forward: true)),
        Stop(panel: .latency, title: "Latency",
             lines: ["Measured step times here, projected ms/token on the device × target.",
                     "Pick another target model."],
             action: .cycleTarget(forward: true)),
        Stop(panel: .quality, title: "That is the tour",
             lines: ["Every key, and a one-line definition of each number, are in the help.",
                     "Open it (↑↓ scroll it); q quits kvlab."],
             action: .toggleHelp),
    ]

    /// The stop shown (an index of `stops`).
    public private(set) var index = 0

    public init() {}

    /// The stop shown.
    public var stop: Stop { Self.stops[index] }

    /// The key the stop waits for, as the key table labels it.
    public var key: String { Keymap.key(for: stop.action) }

    /// Goes on after `action`; returns false when the tour is over.
    public mutating func advance(after action: AppAction) -> Bool {
        guard action == stop.action else { return true }
        index += 1
        return index < Self.stops.count
    }
}
