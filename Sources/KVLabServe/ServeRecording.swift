import Foundation
import KVLabFoundation
import KVLabRun
import KVLabSession

/// Line 1 of a serve recording (`*.kvlab-serve.jsonl`): everything that decides the run, so a
/// replay re-executes it anywhere: the model, the KV methods and sampler, the pool, the
/// scheduler's knobs, the clock's device and target, and every request (a trace's or a seeded
/// stream's, spelled out).
public struct ServeHeader: Sendable, Equatable, Codable {
    /// Always `ServeHeader.formatName`.
    public var format: String
    public var version: Int
    /// The kvlab version that wrote it.
    public var kvlab: String
    public var model: ModelIdentity
    /// The KV methods and sampler at the start (knob lines change them).
    public var settings: SessionSettings
    /// The pool's budget, bytes.
    public var pool: Int
    public var scheduler: SchedulerOptions
    /// The clock's device and target (its context is the live one).
    public var clock: ProjectionSettings
    /// The seeded stream the requests came from, when they did not come from a trace.
    public var arrivals: SyntheticArrivals?
    public var requests: [ServeRequest]

    public static let formatName = "kvlab-serve"
    /// (2: the model's `context`.)
    public static let currentVersion = 2

    public init(model: ModelIdentity, settings: SessionSettings, pool: Int, scheduler: SchedulerOptions, clock: ProjectionSettings,
                arrivals: SyntheticArrivals?, requests: [ServeRequest]) {
        format = Self.formatName
        version = Self.currentVersion
        kvlab = kvlabVersion
        self.model = model
        self.settings = settings
        self.pool = pool
        self.scheduler = scheduler
        self.clock = clock
        self.arrivals = arrivals
        self.requests = requests
    }
}

/// A knob changed for every sequence before step `step`.
public struct ServeKnob: Sendable, Equatable, Codable {
    public var step: Int
    public var knob: Knob
    /// The canonical value from then on.
    public var value: String
}

/// One line after the header: a step, a knob change, or the end of the run.
public struct ServeLine: Sendable, Equatable, Codable {
    public var step: ServeStepRecord?
    public var knob: ServeKnob?
    /// Steps run in all; the last line of a whole recording.
    public var end: Int?

    public init(step: ServeStepRecord) { self.step = step }
    public init(knob: ServeKnob) { self.knob = knob }
    public init(end: Int) { self.end = end }
}

/// Writes a serve recording as it runs, a line per step, knob change and the end.
public final class ServeRecorder {
    public let path: String
    private let handle: FileHandle
    private let encoder = SessionLineEncoder()

    public init(path: String, header: ServeHeader) throws {
        self.path = path
        handle = try OutputFile.openForAppending(path)
        try write(header)
    }

    deinit { try? handle.close() }

    public func append(_ line: ServeLine) throws { try write(line) }

    private func write(_ value: some Encodable) throws {
        do { try handle.write(contentsOf: try encoder.line(value)) } catch {
            throw FileError(path: path, problem: "cannot be written (\(error))")
        }
    }
}

/// A serve recording read back: its header and its lines, each kept as the bytes it was written
/// as, so a replay can compare what it computes byte for byte.
public struct ServeRecording: Sendable {
    public var path: String
    public var header: ServeHeader
    /// Every line after the header, with its 1-based line number and bytes (newline included).
    public var lines: [(number: Int, line: ServeLine, bytes: Data)]

    public init(path: String) throws {
        self.path = path
        let data = try InputFile.read(path)
        let decoder = JSONDocument.decoder()
        var rows = data.split(separator: 0x0A, omittingEmptySubsequences: false)
        if rows.last?.isEmpty == true { rows.removeLast() }
        guard let first = rows.first else { throw FileError(path: path, problem: "empty file, expected a kvlab-serve header on line 1") }
        do { header = try decoder.decode(ServeHeader.self, from: first) } catch {
            throw FileError(path: path, problem: "line 1: not a kvlab-serve header (\(Self.reason(error)))")
        }
        guard header.format == ServeHeader.formatName else {
            throw FileError(path: path, problem: "line 1: not a kvlab-serve recording (format is '\(header.format.prefix(40))')")
        }
        guard header.version <= ServeHeader.currentVersion else {
            throw FileError(path: path, problem: "line 1: format version \(header.version) is newer than this kvlab reads (\(ServeHeader.currentVersion))")
        }
        lines = []
        for (index, row) in rows.enumerated().dropFirst() {
            do { lines.append((index + 1, try decoder.decode(ServeLine.self, from: row), Data(row) + Data([0x0A]))) } catch {
                throw FileError(path: path, problem: "line \(index + 1): not a serve line (\(Self.reason(error)))")
            }
        }
        guard lines.last?.line.end != nil else {
            throw FileError(path: path, problem: "the recording was cut: its last line is not the end line")
        }
    }

    private static func reason(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "no '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.dataCorrupted(let context):
            context.codingPath.map(\.stringValue).joined(separator: ".") + ": " + context.debugDescription
        default: "\(error)"
        }
    }
}
