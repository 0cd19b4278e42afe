import KVLabEngine
import KVLabHardware
import KVLabMethods
import KVLabRun

/// What one KV-map cell shows: the state of one position in one layer, by majority over the
/// layer's KV heads.
public enum KVCellState: UInt8, Sendable, Hashable {
    /// Not yet seen (past the sequence's end).
    case empty
    /// Kept at full precision.
    case kept
    /// Evicted.
    case evicted
    /// Kept, stored quantized.
    case quantized
}

/// The KV map: for each layer and position of the sequence, whether the cache still holds the
/// entry and how (built on the engine thread from the cache, sent to the UI).
public struct KVMapSnapshot: Sendable, Equatable {
    /// Layers (rows).
    public var layers: Int
    /// Positions seen (columns).
    public var positions: Int
    /// States, layer-major.
    public var cells: [KVCellState]

    /// A map of explicit states (tests, an empty sequence).
    public init(layers: Int, positions: Int, cells: [KVCellState]) {
        precondition(cells.count == layers * positions, "one state per (layer, position)")
        self.layers = layers
        self.positions = positions
        self.cells = cells
    }

    /// The map of a live cache that has seen `positions` tokens. Kept entries count as quantized
    /// when the KV quantization stores codes, except the newest `residual` of each head, which
    /// quantizers keep at full precision (KIVI's residual window).
    public init(cache: PagedKVCache, positions: Int, quantizes: Bool, residual: Int) {
        let layout = cache.layout
        self.layers = layout.layerCount
        self.positions = positions
        var cells = [KVCellState](repeating: .evicted, count: layout.layerCount * positions)
        var kept = [Int](repeating: 0, count: positions), quantized = [Int](repeating: 0, count: positions)
        for layer in 0..<layout.layerCount {
            for index in kept.indices { kept[index] = 0; quantized[index] = 0 }
            for head in 0..<layout.kvHeadCount {
                let held = cache.keptPositions(layer: layer, head: head)  // oldest first
                let fullPrecisionFrom = quantizes ? max(held.count - residual, 0) : 0
                for (rank, position) in held.enumerated() where position < positions {
                    kept[position] += 1
                    if rank < fullPrecisionFrom { quantized[position] += 1 }
                }
            }
            for position in 0..<positions where kept[position] > 0 && 2 * kept[position] >= layout.kvHeadCount {
                cells[layer * positions + position] = 2 * quantized[position] > kept[position] ? .quantized : .kept
            }
        }
        self.cells = cells
    }

    /// The state of one cell.
    public func state(layer: Int, position: Int) -> KVCellState {
        guard layer < layers, position < positions else { return .empty }
        return cells[layer * positions + position]
    }

    /// The state most layers give a position (ties: kept before quantized before evicted), which
    /// tints the position's token in the generation stream.
    public func tokenState(position: Int) -> KVCellState {
        guard position < positions, layers > 0 else { return .empty }
        var counts = [0, 0, 0, 0]
        for layer in 0..<layers { counts[Int(cells[layer * positions + position].rawValue)] += 1 }
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
