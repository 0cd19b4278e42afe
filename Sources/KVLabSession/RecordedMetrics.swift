import KVLabEngine
import KVLabMethods
import KVLabRun

/// The first field in which what an event records differs from what the re-executed run
/// measured, named by its path in the event's JSON (`report.ledger.hbmToSRAM.keys`).
struct FieldDifference: Equatable {
    var field: String
    var expected: String
    var observed: String
}

/// Compares recorded metrics with re-measured ones, field by field, keeping the first
/// difference. Integers (ids, byte counts, entries) and flags must be equal; floats (NLL, KL,
/// log-probabilities, attention mass) must agree within `Checkpoint.tolerance`, or bit for bit
/// when strict (`Checkpoint.agrees`). Timings are measurements of this machine and are not compared.
struct RecordedMetrics {
    /// nil: bit for bit.
    let tolerance: Double?
    private(set) var difference: FieldDifference?

    init(strict: Bool) {
        tolerance = strict ? nil : Checkpoint.tolerance
    }

    /// The first difference between a recorded and an observed token's metrics (beyond the
    /// token, its text, position and entries, which the replayer compares first).
    static func difference(_ recorded: TokenEvent, _ observed: TokenMetrics, strict: Bool) -> FieldDifference? {
        var check = RecordedMetrics(strict: strict)
        check.report(recorded.metrics.report, observed.report, path: "report")
        check.number("nll", recorded.metrics.nll, observed.nll)
        check.ghost(recorded.metrics.ghost, observed.ghost)
        // Reserved: this kvlab measures no per-tier traffic, so a recorded one cannot be reproduced.
        if let traffic = recorded.tierTraffic { check.exact("tierTraffic", "\(traffic.count) tiers", "none") }
        return check.difference
    }

    /// The first difference between a recorded and an observed step report (a prompt's prefill or
    /// a token's decode step).
    static func difference(_ recorded: StepReport, _ observed: StepReport, path: String, strict: Bool) -> FieldDifference? {
        var check = RecordedMetrics(strict: strict)
        check.report(recorded, observed, path: path)
        return check.difference
    }

    /// The first difference between two ledgers (a knob change's traffic).
    static func difference(_ recorded: IOLedger, _ observed: IOLedger, path: String) -> FieldDifference? {
        var check = RecordedMetrics(strict: true)
        check.ledger(recorded, observed, path: path)
        return check.difference
    }

    private mutating func report(_ recorded: StepReport, _ observed: StepReport, path: String) {
        exact("\(path).phase", recorded.phase.rawValue, observed.phase.rawValue)
        exact("\(path).position", recorded.position, observed.position)
        exact("\(path).tokenCount", recorded.tokenCount, observed.tokenCount)
        exact("\(path).token", recorded.token, observed.token)
        exact("\(path).cacheEntries", recorded.cacheEntries, observed.cacheEntries)
        residency(recorded.cache, observed.cache, path: "\(path).cache")
        ledger(recorded.ledger, observed.ledger, path: "\(path).ledger")
        exact("\(path).top.id", recorded.top.id, observed.top.id)
        number("\(path).top.logProbability", Double(recorded.top.logProbability), Double(observed.top.logProbability))
        number("\(path).entropy", Double(recorded.entropy), Double(observed.entropy))
    }

    private mutating func residency(_ recorded: KVResidency, _ observed: KVResidency, path: String) {
        let parts: [(String, KeyPath<KVResidency, Int>)] = [
            ("fullPrecisionPayload", \.fullPrecisionPayload), ("quantizedPayload", \.quantizedPayload), ("quantMetadata", \.quantMetadata),
            ("residualWindow", \.residualWindow), ("policyState", \.policyState), ("pageSlack", \.pageSlack)]
        for (name, part) in parts { exact("\(path).\(name)", recorded[keyPath: part], observed[keyPath: part]) }
    }

    private mutating func ledger(_ recorded: IOLedger, _ observed: IOLedger, path: String) {
        for link in IOLink.allCases {
            for buffer in IOBuffer.allCases {
                exact("\(path).\(link.key).\(buffer.key)", recorded.bytes(buffer, link), observed.bytes(buffer, link))
            }
        }
    }

    private mutating func ghost(_ recorded: GhostComparison?, _ observed: GhostComparison?) {
        guard let recorded, let observed else {
            exact("ghost", recorded == nil ? "none" : "a comparison", observed == nil ? "none" : "a comparison")
            return
        }
        exact("ghost.top1Agrees", recorded.top1Agrees, observed.top1Agrees)
        exact("ghost.ghostTop", recorded.ghostTop, observed.ghostTop)
        number("ghost.kl", recorded.kl, observed.kl)
        number("ghost.ghostNLL", recorded.ghostNLL, observed.ghostNLL)
        number("ghost.deltaNLL", recorded.deltaNLL, observed.deltaNLL)
        switch (recorded.massKept, observed.massKept) {
        case (let expected?, let observed?): number("ghost.massKept", expected, observed)
        case (nil, nil): break
        case (let expected, let observed): exact("ghost.massKept", expected.map { "\($0)" } ?? "none", observed.map { "\($0)" } ?? "none")
        }
    }

    private mutating func exact<T: Equatable>(_ field: String, _ recorded: T, _ observed: T) {
        guard difference == nil, recorded != observed else { return }
        difference = FieldDifference(field: field, expected: "\(recorded)", observed: "\(observed)")
    }

    private mutating func number(_ field: String, _ recorded: Double, _ observed: Double) {
        guard difference == nil, !Checkpoint.agrees(recorded, observed, tolerance: tolerance) else { return }
        difference = FieldDifference(field: field, expected: "\(recorded)", observed: "\(observed)")
    }
}
