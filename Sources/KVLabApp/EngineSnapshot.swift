import KVLabEngine
import KVLabHardware
import KVLabMethods
import KVLabRun

/// What one KV-map cell shows: the state of one position in one layer over the layer's KV heads,
/// as the cache reports it (`PagedKVCache.entryStates`) after the last decode step.
public enum KVCellState: UInt8, Sendable, Hashable, CaseIterable {
    /// Not yet seen (past the sequence's end).
    case empty
    /// Kept at full precision, read by the last step.
    case kept
    /// Evicted.
    case evicted
    /// Kept with its key or value stored quantized, read by the last step.
    case quantized
    /// Kept at full precision, skipped by the last step (a sparse mode did not list it).
    case keptSkipped
    /// Kept quantized, skipped by the last step.
    case quantizedSkipped
    /// Fetched from host DRAM by the last step (a block-retrieval miss), and so read.
    case retrieved

    /// The state without the last step's reads and fetches: kept, quantized, evicted or empty
    /// (a fetched entry is held again, counted as kept).
    public var holding: KVCellState {
        switch self {
        case .kept, .keptSkipped, .retrieved: .kept
        case .quantized, .quantizedSkipped: .quantized
        case .evicted, .empty: self
        }
    }

    /// Whether the cache holds the entry.
    public var isHeld: Bool { holding == .kept || holding == .quantized }

    /// A held state with the last step's read (`read` false: skipped).
    static func held(quantized: Bool, read: Bool) -> KVCellState {
        switch (quantized, read) {
        case (false, true): .kept
        case (true, true): .quantized
        case (false, false): .keptSkipped
        case (true, false): .quantizedSkipped
        }
    }
}

/// The KV map: for each layer and position of the sequence, whether the cache still holds the
/// entry, how, and whether the last step read or fetched it (built on the engine thread from the
/// cache, sent to the UI).
public struct KVMapSnapshot: Sendable, Equatable {
    /// Layers (rows).
    public var layers: Int
    /// Positions seen (columns).
    public var positions: Int
    /// States, layer-major.
    public var cells: [KVCellState]
    /// Per layer: the sliding window of a local layer, nil for a global one.
    public var windows: [Int?]

    /// A map of explicit states (tests, an empty sequence); every layer global unless `windows` says.
    public init(layers: Int, positions: Int, cells: [KVCellState], windows: [Int?]? = nil) {
        precondition(cells.count == layers * positions, "one state per (layer, position)")
        precondition(windows == nil || windows!.count == layers, "one window per layer")
        self.layers = layers
        self.positions = positions
        self.cells = cells
        self.windows = windows ?? Array(repeating: nil, count: layers)
    }

    /// A layer's row label: `L3`, or `L3 w24` for a local layer with a window of 24.
    public func label(layer: Int) -> String { "L\(layer)" + (windows[layer].map { " w\($0)" } ?? "") }

    /// The map of a live cache that has seen `positions` tokens, from the states its entries
    /// report. Per layer, over its KV heads:
    /// - evicted unless at least half the heads keep the position (as before reads were shown);
    /// - retrieved when any head fetched it at the last step: a miss is rare and costly, so one
    ///   head's is enough to show;
    /// - quantized when most heads keeping it store it quantized, where an entry with only its
    ///   key or only its value quantized counts as quantized: attention no longer sees its
    ///   full-precision values (keys and values can leave the residual window or their group
    ///   at different times);
    /// - skipped when no head keeping it read it: the layer's output did not use it.
    public init(cache: PagedKVCache, positions: Int) {
        let layout = cache.layout
        self.layers = layout.layerCount
        self.positions = positions
        windows = layout.attentionSpans.map(\.window)
        var cells = [KVCellState](repeating: .evicted, count: layout.layerCount * positions)
        var kept = [Int](repeating: 0, count: positions), quantized = kept, read = kept, fetched = kept
        for layer in 0..<layout.layerCount {
            for index in 0..<positions { kept[index] = 0; quantized[index] = 0; read[index] = 0; fetched[index] = 0 }
            for head in 0..<layout.kvHeadCount {
                for entry in cache.entryStates(layer: layer, head: head) where entry.position < positions {
                    kept[entry.position] += 1
                    if entry.keyQuantized || entry.valueQuantized { quantized[entry.position] += 1 }
                    if entry.read { read[entry.position] += 1 }
                    if entry.fetched { fetched[entry.position] += 1 }
                }
            }
            for position in 0..<positions where kept[position] > 0 && 2 * kept[position] >= layout.kvHeadCount {
                cells[layer * positions + position] = fetched[position] > 0
                    ? .retrieved : .held(quantized: 2 * quantized[position] > kept[position], read: read[position] > 0)
            }
        }
        self.cells = cells
    }

    /// The state of one cell.
    public func state(layer: Int, position: Int) -> KVCellState {
        guard layer < layers, position < positions else { return .empty }
        return cells[layer * positions + position]
    }

    /// The holding state most layers give a position (ties: kept before quantized before
    /// evicted), which tints the position's token in the generation stream.
    public func tokenState(position: Int) -> KVCellState {
        guard position < positions, layers > 0 else { return .empty }
        var counts = [Int](repeating: 0, count: KVCellState.allCases.count)
        for layer in 0..<layers { counts[Int(cells[layer * positions + position].holding.rawValue)] += 1 }
        let order: [KVCellState] = [.kept, .quantized, .evicted]
        return order.max { counts[Int($0.rawValue)] < counts[Int($1.rawValue)] } ?? .empty
    }
}

/// One thing the engine did, reported with the state after it.
public enum EngineEvent: Sendable, Equatable {
    /// A prompt ran: a new sequence (`continuing` false) or a continuation.
    case prompt(PromptSubmission)
    /// A token was generated.
    case token(TokenMetrics)
    /// A knob changed (from the next token on).
    case knob(KnobChange)
    /// One of B's knobs changed (compare mode).
    case compareKnob(KnobChange)
    /// Generation stopped.
    case stopped(StopReason)
    /// The state changed without a token (pause, ghost, device or target); a message for the
    /// status bar.
    case notice(String)
    /// A command was refused; the one-line reason.
    case failure(String)
}

/// What the engine thread posts to the UI after every command and token: the event and a
/// self-contained, `Sendable` copy of everything the panels show.
public struct EngineSnapshot: Sendable {
    /// What happened.
    public var event: EngineEvent
    /// The run's settings now.
    public var settings: RunSettings
    /// Whether the full-cache ghost runs.
    public var ghost: Bool
    /// Whether generation is paused.
    public var paused: Bool
    /// Whether tokens are being generated (a prompt ran and no stop came since).
    public var generating: Bool
    /// Position of the next token.
    public var position: Int
    /// The model's context length.
    public var contextLength: Int
    /// Resident KV bytes by category.
    public var residency: KVResidency
    /// Bytes of the weights as the run stores them.
    public var weightBytes: Int
    /// Bytes of one step's activations (hidden state, FFN, logits; fp32).
    public var activationBytes: Int
    /// The KV map.
    public var map: KVMapSnapshot
    /// The device profile's id.
    public var device: String
    /// The target shape's id.
    public var target: String
    /// The projection of the current settings onto device × target, when both loaded.
    public var projection: Projection?
    /// The tokens processed since the sequence started (prompt and generated), for a rerun.
    public var sequenceTokens: Int
    /// The session file being recorded, if any.
    public var recording: String?
    /// Configuration B, in compare mode.
    public var compare: CompareSnapshot? = nil
}

/// Configuration B of compare mode, beside the run (A) in a snapshot.
public struct CompareSnapshot: Sendable, Equatable {
    /// B's settings.
    public var settings: RunSettings
    /// B's resident KV bytes by category.
    public var residency: KVResidency
    /// Bytes of B's weights as it stores them.
    public var weightBytes: Int
    /// B's step on the snapshot's token (token events only).
    public var step: FollowerStep?
}
