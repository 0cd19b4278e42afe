import Foundation
import KVLabFoundation
import KVLabMethods
import KVLabRun
import KVLabSession

/// A backend whose KV methods change for every sequence from the next step on.
public protocol ServeEngine: ServeBackend {
    /// The methods, sampler and kernel in effect.
    var settings: RunSettings { get }
    /// Applies a knob change to every sequence (each evicts or re-stores what it holds).
    func apply(_ change: SettingChange) throws
    /// What the engine counted in the last step; nil before the first.
    var lastTraffic: StepTraffic? { get }
}

/// One serve run: the scheduler over an engine, the projected clock, what was tallied, and the
/// recording when there is one. Knob changes go through here so the clock, the engine and the
/// recording see them at the same step.
public final class ServeSession {
    public let scheduler: Scheduler
    public let engine: any ServeEngine
    public let clock: ProjectedClock
    public private(set) var tally = ServeTally()
    /// The last step's record.
    public private(set) var last: ServeStepRecord?
    /// Running and queued sequences after each step, oldest first (the view's history).
    public private(set) var history: [(running: Int, queue: Int)] = []
    private let recorder: ServeRecorder?

    public init(scheduler: Scheduler, engine: any ServeEngine, clock: ProjectedClock, recorder: ServeRecorder? = nil) {
        self.scheduler = scheduler
        self.engine = engine
        self.clock = clock
        self.recorder = recorder
    }

    /// Runs one step and records it; nil when every request is done.
    @discardableResult
    public func step() throws -> ServeStepRecord? {
        guard let record = try scheduler.step() else { return nil }
        tally.add(record)
        last = record
        history.append((record.running.count, record.queue))
        try recorder?.append(ServeLine(step: record))
        return record
    }

    /// Changes a KV method (or the kernel, weights) for every sequence from the next step on.
    @discardableResult
    public func set(_ change: SettingChange) throws -> ServeKnob {
        try engine.apply(change)
        clock.settings = engine.settings
        let knob = ServeKnob(step: scheduler.steps, knob: change.knob, value: engine.settings.value(of: change.knob))
        try recorder?.append(ServeLine(knob: knob))
        return knob
    }

    /// Ends the recording.
    public func finish() throws { try recorder?.append(ServeLine(end: scheduler.steps)) }

    /// Sequences of the requests' mean life (prompt and output) that fit the pool beside the
    /// shared prefix, under the methods in effect: what a method change moves.
    public var fittingSequences: Int {
        let requests = scheduler.requests
        guard let sample = requests.first else { return 0 }
        let prompt = requests.reduce(0) { $0 + $1.prompt.count } / requests.count
        let output = requests.reduce(0) { $0 + $1.outputTokens } / requests.count
        let head = Array(sample.prompt.prefix(min(sample.sharedPrefix, prompt)))
        let mean = ServeRequest(id: -1, arrival: 0, prompt: head + Array(repeating: sample.prompt[sample.prompt.count - 1], count: prompt - head.count),
                                outputTokens: max(output, 1), sharedPrefix: head.count)
        let bytes = engine.lifeBytes(mean)
        return bytes > 0 ? (engine.poolCapacity - engine.occupancy.shared) / bytes : scheduler.options.maxBatch
    }

    public var summary: ServeSummary { ServeSummary(scheduler: scheduler, tally: tally, last: last, settings: SessionSettings(engine.settings)) }

    /// Re-executes `recording` on this session (built from its header) and checks that every
    /// line comes out byte for byte as recorded; the first difference is an error naming its line.
    public func replay(_ recording: ServeRecording) throws {
        let encoder = JSONDocument.encoder()
        func bytes(_ line: ServeLine) throws -> Data { try encoder.encode(line) + Data([0x0A]) }
        for (number, line, recorded) in recording.lines {
            func differs(_ what: String) -> FileError {
                FileError(path: recording.path, problem: "line \(number): the replay differs: \(what)")
            }
            if let knob = line.knob {
                guard knob.step == scheduler.steps else { throw differs("a knob change at step \(knob.step), the replay is at step \(scheduler.steps)") }
                let change: SettingChange
                do { change = try SettingChange(knob.knob, parsing: knob.value) } catch { throw differs("\(knob.knob.rawValue): \(error)") }
                guard try bytes(ServeLine(knob: try set(change))) == recorded else { throw differs("knob \(knob.knob.rawValue) canonical value") }
            } else if let end = line.end {
                guard end == scheduler.steps else { throw differs("the recording ends after \(end) steps, the replay ran \(scheduler.steps)") }
                try finish()
            } else if let step = line.step {
                guard let record = try self.step() else { throw differs("step \(step.step) was recorded, the replay has finished every request") }
                let computed = try bytes(ServeLine(step: record))
                guard computed == recorded else { throw differs(Self.firstDifference(recorded, computed)) }
            }
        }
    }

    /// Where two lines first differ, with a little of each.
    static func firstDifference(_ a: Data, _ b: Data) -> String {
        let a = [UInt8](a), b = [UInt8](b)
        let index = zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
        func around(_ bytes: [UInt8]) -> String {
            String(decoding: bytes[min(max(0, index - 30), bytes.count)..<min(bytes.count, index + 30)], as: UTF8.self)
                .replacingOccurrences(of: "\n", with: "")
        }
        return "at byte \(index), recorded …\(around(a))… replayed …\(around(b))…"
    }
}
