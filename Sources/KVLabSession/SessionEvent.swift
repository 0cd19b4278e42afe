import Foundation
import KVLabFoundation
import KVLabRun

/// One line after the header of a session file. Each is a JSON object whose `event` member names
/// its kind, beside the members of its payload.
public enum SessionEvent: Sendable, Equatable {
    /// A prompt was submitted (text and the token ids the model received).
    case prompt(PromptSubmission)
    /// A knob changed between two steps.
    case knob(KnobChange)
    /// The ghost started or stopped.
    case ghost(GhostChange)
    /// A projection setting (device, target, context) changed.
    case projection(ProjectionChange)
    /// A token was generated, with its per-token metrics.
    case token(TokenEvent)
    /// A caption to show from this step on (demos).
    case caption(Caption)
    /// A fingerprint of the cache and the logits.
    case checkpoint(Checkpoint)
    /// The run produced no token.
    case stop(StopEvent)
    /// The recording closed normally: always the last line of a whole file (format 3 on).
    case end(RecordingEnd)

    /// Tokens generated before the event.
    public var step: Int {
        switch self {
        case .prompt(let e): e.step
        case .knob(let e): e.step
        case .ghost(let e): e.step
        case .projection(let e): e.step
        case .token(let e): e.metrics.step
        case .caption(let e): e.step
        case .checkpoint(let e): e.step
        case .stop(let e): e.step
        case .end(let e): e.step
        }
    }

    /// The `event` member's value.
    public var name: String {
        switch self {
        case .prompt: "prompt"
        case .knob: "knob"
        case .ghost: "ghost"
        case .projection: "projection"
        case .token: "token"
        case .caption: "caption"
        case .checkpoint: "checkpoint"
        case .stop: "stop"
        case .end: "end"
        }
    }
}

/// A generated token: the run's metrics, its decode step projected onto the session's device and
/// target (when the session projects), and traffic per memory tier (reserved).
public struct TokenEvent: Sendable, Equatable {
    /// The run's per-token metrics.
    public var metrics: TokenMetrics
    /// Decode latency projected onto the session's device and target (`SessionProjector`), in seconds.
    public var projectedLatencySeconds: Double?
    /// Bytes moved per memory tier (SRAM, L2, HBM, host DRAM, ...).
    public var tierTraffic: [TierTraffic]?

    public init(metrics: TokenMetrics, projectedLatencySeconds: Double? = nil, tierTraffic: [TierTraffic]? = nil) {
        self.metrics = metrics
        self.projectedLatencySeconds = projectedLatencySeconds
        self.tierTraffic = tierTraffic
    }
}

/// Bytes read and written at one memory tier during one token.
public struct TierTraffic: Sendable, Equatable, Codable {
    /// The tier's name, as the device profile names it.
    public var tier: String
    /// Bytes read from the tier.
    public var read: UInt64
    /// Bytes written to the tier.
    public var written: UInt64

    public init(tier: String, read: UInt64, written: UInt64) {
        self.tier = tier
        self.read = read
        self.written = written
    }
}

/// The ghost started or stopped before token `step`.
public struct GhostChange: Sendable, Equatable, Codable {
    /// Tokens generated before it.
    public var step: Int
    /// Whether the ghost runs from now on.
    public var enabled: Bool

    public init(step: Int, enabled: Bool) {
        self.step = step
        self.enabled = enabled
    }
}

/// A caption shown from token `step` on.
public struct Caption: Sendable, Equatable, Codable {
    /// Tokens generated before it.
    public var step: Int
    /// The caption.
    public var text: String

    public init(step: Int, text: String) {
        self.step = step
        self.text = text
    }
}

/// The last line of a recording that closed normally (the run finished; in the workbench `q`, `r`
/// toggled off or a stop signal handled): without it, a reader knows the writer was cut off.
public struct RecordingEnd: Sendable, Equatable, Codable {
    /// Tokens generated before it: the recording's last step.
    public var step: Int
    /// Events written before it (the lines between the header and this one), so a file that lost
    /// lines in the middle is not taken for whole either.
    public var events: Int

    public init(step: Int, events: Int) {
        self.step = step
        self.events = events
    }
}

/// The run stopped before token `step`.
public struct StopEvent: Sendable, Equatable, Codable {
    /// Tokens generated before it.
    public var step: Int
    /// Why no token came.
    public var reason: StopReason

    public init(step: Int, reason: StopReason) {
        self.step = step
        self.reason = reason
    }
}

extension TokenEvent: Codable {
    private enum Key: String, CodingKey { case projectedLatencySeconds, tierTraffic }

    // The metrics' members sit beside the additions in one object.
    public init(from decoder: any Decoder) throws {
        metrics = try TokenMetrics(from: decoder)
        let container = try decoder.container(keyedBy: Key.self)
        projectedLatencySeconds = try container.decodeIfPresent(Double.self, forKey: .projectedLatencySeconds)
        tierTraffic = try container.decodeIfPresent([TierTraffic].self, forKey: .tierTraffic)
    }

    public func encode(to encoder: any Encoder) throws {
        try metrics.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(projectedLatencySeconds, forKey: .projectedLatencySeconds)
        try container.encodeIfPresent(tierTraffic, forKey: .tierTraffic)
    }
}

extension SessionEvent: Codable {
    private enum Key: String, CodingKey { case event }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Key.self)
        let name = try container.decode(String.self, forKey: .event)
        switch name {
        case "prompt": self = .prompt(try PromptSubmission(from: decoder))
        case "knob": self = .knob(try KnobChange(from: decoder))
        case "ghost": self = .ghost(try GhostChange(from: decoder))
        case "projection": self = .projection(try ProjectionChange(from: decoder))
        case "token": self = .token(try TokenEvent(from: decoder))
        case "caption": self = .caption(try Caption(from: decoder))
        case "checkpoint": self = .checkpoint(try Checkpoint(from: decoder))
        case "stop": self = .stop(try StopEvent(from: decoder))
        case "end": self = .end(try RecordingEnd(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(forKey: .event, in: container, debugDescription: "unknown event '\(name.prefix(40))'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(name, forKey: .event)
        switch self {
        case .prompt(let e): try e.encode(to: encoder)
        case .knob(let e): try e.encode(to: encoder)
        case .ghost(let e): try e.encode(to: encoder)
        case .projection(let e): try e.encode(to: encoder)
        case .token(let e): try e.encode(to: encoder)
        case .caption(let e): try e.encode(to: encoder)
        case .checkpoint(let e): try e.encode(to: encoder)
        case .stop(let e): try e.encode(to: encoder)
        case .end(let e): try e.encode(to: encoder)
        }
    }

    /// Checks what decoding cannot: non-negative steps and ids, parseable method strings.
    func validate() throws(SessionProblem) {
        guard step >= 0 else { throw SessionProblem("step must be ≥ 0, got \(step)") }
        switch self {
        case .prompt(let e):
            guard !e.tokens.isEmpty, e.tokens.allSatisfy({ $0 >= 0 }) else { throw SessionProblem("prompt tokens must be non-negative ids") }
        case .knob(let e):
            for value in [e.old, e.new] {
                do { _ = try SettingChange(e.knob, parsing: value) } catch { throw SessionProblem("\(e.knob.rawValue): \(error)") }
            }
        case .projection(let e):
            var settings = ProjectionSettings()
            for value in [e.old, e.new] { try settings.set(e.setting, to: value) }
        case .token(let e):
            guard e.metrics.token >= 0 else { throw SessionProblem("token id must be ≥ 0, got \(e.metrics.token)") }
            if let seconds = e.projectedLatencySeconds, !(seconds.isFinite && seconds >= 0) {
                throw SessionProblem("projectedLatencySeconds must be a finite number ≥ 0, got \(seconds)")
            }
        case .end(let e):
            guard e.events >= 0 else { throw SessionProblem("events must be ≥ 0, got \(e.events)") }
        case .ghost, .caption, .checkpoint, .stop:
            break
        }
    }
}

/// Encodes headers and events as session lines (JSON and a newline), as the writer stores them
/// and `kvlab run --json` prints them.
public struct SessionLineEncoder {
    private let encoder = JSONDocument.encoder()

    public init() {}

    /// One line, newline included.
    public func line(_ value: some Encodable) throws -> Data {
        var data = try encoder.encode(value)
        data.append(0x0A)
        return data
    }
}
