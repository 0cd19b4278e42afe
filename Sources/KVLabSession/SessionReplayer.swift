import Foundation
import KVLabEngine
import KVLabRun

/// A recorded event that the re-executed run did not reproduce.
public struct ReplayMismatch: Error, CustomStringConvertible, Equatable {
    /// The session file.
    public var path: String
    /// The line of the recorded event.
    public var line: Int
    /// The recorded event's step.
    public var step: Int
    /// What differs: "token", "kept positions", a recorded metric's JSON path ("ghost.kl"), ...
    public var field: String
    /// The recorded value.
    public var expected: String
    /// The value the run produced now.
    public var observed: String

    public var description: String {
        "\(path):\(line): step \(step): \(field) expected \(expected), observed \(observed)"
    }
}

/// What a replay verified.
public struct ReplaySummary: Sendable, Equatable {
    /// Prompts re-run with the same tokens.
    public var prompts = 0
    /// Tokens reproduced.
    public var tokens = 0
    /// Knob changes applied.
    public var knobChanges = 0
    /// Projection setting changes applied.
    public var projectionChanges = 0
    /// Tokens whose projected latency was verified.
    public var projectedTokens = 0
    /// Captions passed through.
    public var captions = 0
    /// Checkpoints matched.
    public var checkpoints = 0
    /// Checkpoints whose digests were bit-identical (the others matched within tolerance).
    public var exactCheckpoints = 0
}

/// Re-executes a recorded session on a `LiveRun` event by event, verifying each against what
/// the run does now: tokens, checkpoints and every recorded metric but timings (`RecordedMetrics`).
/// Each call returns the event as re-executed (metrics measured now), so a screen can render a
/// replay as it renders a live run. Not thread-safe, like the run.
public final class SessionReplayer {
    /// The session file (for messages).
    public let path: String
    /// The run re-executing the session.
    public let run: LiveRun
    /// Whether checkpoints and recorded floats must be bit-identical (same machine and build), not
    /// just within tolerance.
    public let strict: Bool
    /// What has been verified so far.
    public private(set) var summary = ReplaySummary()
    /// What tokens are projected onto now; nil when the session projects nothing.
    public private(set) var projector: SessionProjector?

    /// Relative difference allowed between a recorded and a recomputed projected latency: the
    /// projection is plain arithmetic on the verified cache state, so only the last bits of a
    /// different libm could differ.
    public static let projectionTolerance = 1e-9

    /// A run of `model` under the header's settings (`threads` overrides the recorded count: results
    /// do not depend on it).
    public init(path: String, header: SessionHeader, model: LoadedModel, threads: Int? = nil, strict: Bool = false) throws {
        self.path = path
        self.strict = strict
        var settings: RunSettings
        do { settings = try header.settings.runSettings(headDim: model.config.headDim) } catch {
            throw SessionError(path: path, line: 1, problem: "header: \(error)")
        }
        if let threads { settings.threads = threads }
        do { run = try LiveRun(model: model, settings: settings, ghost: header.ghost) } catch {
            throw SessionError(path: path, line: 1, problem: "header: \(error)")
        }
        do { projector = try header.projection.map { try SessionProjector(settings: $0, model: model) } } catch {
            throw SessionError(path: path, line: 1, problem: "header: \(error)")
        }
    }

    /// Re-executes one recorded event; throws `ReplayMismatch` when the run differs and
    /// `SessionError` when the event cannot be applied.
    @discardableResult
    public func replay(_ record: SessionRecord) throws -> SessionEvent {
        let line = record.line
        func mismatch(_ field: String, _ expected: Any, _ observed: Any) -> ReplayMismatch {
            ReplayMismatch(path: path, line: line, step: record.event.step, field: field, expected: "\(expected)", observed: "\(observed)")
        }
        func failure(_ error: any Error) -> SessionError { SessionError(path: path, line: line, problem: "\(record.event.name): \(error)") }
        func check(_ difference: FieldDifference?) throws {
            if let difference { throw mismatch(difference.field, difference.expected, difference.observed) }
        }
        guard record.event.step == run.currentStep else { throw mismatch("\(record.event.name) step", record.event.step, run.currentStep) }
        switch record.event {
        case .prompt(let recorded):
            let observed: PromptSubmission
            do { observed = try run.submit(prompt: recorded.text, continuing: recorded.continuing) } catch { throw failure(error) }
            if observed.tokens != recorded.tokens {
                // The first difference, not two whole prompts.
                let index = zip(recorded.tokens, observed.tokens).prefix { $0 == $1 }.count
                func at(_ tokens: [Int]) -> String { index < tokens.count ? "\(tokens[index]) (of \(tokens.count))" : "the end (\(tokens.count))" }
                throw mismatch("prompt token \(index)", at(recorded.tokens), at(observed.tokens))
            }
            guard observed.continuing == recorded.continuing else { throw mismatch("prompt continuing", recorded.continuing, observed.continuing) }
            try check(RecordedMetrics.difference(recorded.report, observed.report, path: "report", strict: strict))
            summary.prompts += 1
            return .prompt(observed)
        case .knob(let recorded):
            let current = run.settings.value(of: recorded.knob)
            let old = try canonical(recorded.knob, recorded.old, failure)
            guard old == current else { throw mismatch("\(recorded.knob.rawValue) before the change", old, current) }
            let observed: KnobChange
            do { observed = try run.set(recorded.knob, to: recorded.new) } catch { throw failure(error) }
            guard observed.new == recorded.new else { throw mismatch(recorded.knob.rawValue, recorded.new, observed.new) }
            try check(RecordedMetrics.difference(recorded.ledger, observed.ledger, path: "ledger"))
            summary.knobChanges += 1
            return .knob(observed)
        case .ghost(let recorded):
            do { try run.setGhost(recorded.enabled) } catch { throw failure(error) }
            return .ghost(recorded)
        case .projection(let recorded):
            guard let current = projector else { throw failure(SessionProblem("the header sets no projection")) }
            let old = current.settings.value(of: recorded.setting)
            guard old == recorded.old else { throw mismatch("\(recorded.setting.rawValue) before the change", recorded.old, old) }
            do { projector = try current.setting(recorded.setting, to: recorded.new, model: run.model) } catch { throw failure(error) }
            summary.projectionChanges += 1
            return .projection(recorded)
        case .caption(let recorded):
            summary.captions += 1
            return .caption(recorded)
        case .token(let recorded):
            let outcome: StepOutcome
            do { outcome = try run.step() } catch { throw failure(error) }
            guard case .token(let observed) = outcome else { throw mismatch("outcome", describe(.token(recorded.metrics)), describe(outcome)) }
            let expected = recorded.metrics
            if observed.token != expected.token { throw mismatch("token", describe(expected), describe(observed)) }
            if observed.text != expected.text { throw mismatch("token text", quoted(expected.text), quoted(observed.text)) }
            if observed.report.position != expected.report.position {
                throw mismatch("position", expected.report.position, observed.report.position)
            }
            if observed.report.cacheEntries != expected.report.cacheEntries {
                throw mismatch("KV entries", expected.report.cacheEntries, observed.report.cacheEntries)
            }
            try check(RecordedMetrics.difference(recorded, observed, strict: strict))
            let projected = projector?.project(run: run, last: observed)?.decodeSeconds
            switch (recorded.projectedLatencySeconds, projected) {
            case (nil, nil): break
            case (let expected?, let observed?):
                guard abs(observed - expected) <= Self.projectionTolerance * max(abs(expected), abs(observed)) else {
                    throw mismatch("projected latency (s)", expected, observed)
                }
                summary.projectedTokens += 1
            case (let expected, let observed):
                throw mismatch("projected latency (s)", expected.map { "\($0)" } ?? "none", observed.map { "\($0)" } ?? "none")
            }
            summary.tokens += 1
            return .token(TokenEvent(metrics: observed, projectedLatencySeconds: projected))
        case .checkpoint(let recorded):
            let observed = run.checkpoint()
            switch observed.compare(toRecorded: recorded, strict: strict) {
            case .exact:
                summary.exactCheckpoints += 1
            case .withinTolerance:
                break
            case .mismatch(let field, let expected, let observed):
                throw mismatch("checkpoint \(field)", expected, observed)
            }
            summary.checkpoints += 1
            return .checkpoint(observed)
        case .stop(let recorded):
            let outcome: StepOutcome
            do { outcome = try run.step() } catch { throw failure(error) }
            guard outcome == .stopped(recorded.reason) else { throw mismatch("outcome", describe(.stopped(recorded.reason)), describe(outcome)) }
            return .stop(recorded)
        case .end(let recorded):
            // The step was compared above; the reader checked the event count.
            return .end(recorded)
        }
    }

    private func canonical(_ knob: Knob, _ value: String, _ failure: (any Error) -> SessionError) throws -> String {
        var settings = run.settings
        do { try settings.set(knob, to: value, headDim: run.model.config.headDim) } catch { throw failure(error) }
        return settings.value(of: knob)
    }

    private func describe(_ metrics: TokenMetrics) -> String { "\(metrics.token) \(quoted(metrics.text))" }

    private func describe(_ outcome: StepOutcome) -> String {
        switch outcome {
        case .token(let metrics): "token " + describe(metrics)
        case .stopped(let reason): "stop (\(reason.rawValue))"
        }
    }

    private func quoted(_ text: String) -> String { "\"" + text.replacingOccurrences(of: "\n", with: "\\n") + "\"" }
}

/// Finding a session's model again.
public enum SessionModel {
    /// Loads the model a session ran, verified by its SHA-256: `override` when given (a path, e.g.
    /// `--model`), else the recorded path when it holds the same file, else the embedded default
    /// model when it is the one recorded.
    public static func load(for header: SessionHeader, sessionPath: String, override: String? = nil,
                            tokenizer: String? = nil) throws -> LoadedModel {
        try load(model: header.model, sessionPath: sessionPath, override: override, tokenizer: tokenizer)
    }

    /// Loads the model `recorded` names, as `load(for:)` does (serve recordings name it too), run
    /// with the recorded context.
    public static func load(model recorded: ModelIdentity, sessionPath: String, override: String? = nil,
                            tokenizer: String? = nil) throws -> LoadedModel {
        let model = try find(recorded, sessionPath: sessionPath, override: override, tokenizer: tokenizer)
        do { return try model.withContext(recorded.context) } catch {
            throw SessionError(path: sessionPath, line: 1, problem: "model context: \(error)")
        }
    }

    private static func find(_ recorded: ModelIdentity, sessionPath: String, override: String?, tokenizer: String?) throws -> LoadedModel {
        func verified(_ path: String) throws -> Bool { try ModelIdentity.digest(of: path).sha256 == recorded.sha256 }
        if let override {
            guard try verified(override) else {
                throw SessionError(path: sessionPath, line: 1, problem:
                    "\(override) is not the recorded model \(recorded.name) (sha256 \(recorded.sha256.prefix(16))…)")
            }
            return try ModelLoader.load(path: override, tokenizerPath: tokenizer ?? recorded.tokenizer)
        }
        if let path = recorded.path, FileManager.default.fileExists(atPath: path), try verified(path) {
            return try ModelLoader.load(path: path, tokenizerPath: tokenizer ?? recorded.tokenizer)
        }
        if let embedded = EmbeddedModel.path, try verified(embedded) { return try EmbeddedModel.load() }
        throw SessionError(path: sessionPath, line: 1, problem:
            "the recorded model \(recorded.name) (\(recorded.path ?? "embedded"), sha256 \(recorded.sha256.prefix(16))…) is not here; "
            + "pass --model FILE, or --playback to show the recorded metrics without it")
    }
}
