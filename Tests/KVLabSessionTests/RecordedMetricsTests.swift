import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
@testable import KVLabMethods
@testable import KVLabRun
@testable import KVLabSession
import Testing

/// Every metric a session records is verified by a replay: each edit (a damaged or doctored file)
/// is a mismatch naming its field, floats within the tolerance pass unless strict.
@Suite struct RecordedMetricsTests {
    /// A recorded field edited (as a damaged or doctored file would have it), the line's other
    /// members unchanged.
    struct Edit: CustomTestStringConvertible, Sendable {
        var name: String
        /// The event to edit: the first for which `edit` returns true.
        var edit: @Sendable (inout SessionEvent) -> Bool
        /// The field the mismatch names.
        var field: String
        var testDescription: String { name }
    }

    static func token(at step: Int, _ change: @escaping @Sendable (inout TokenMetrics) -> Void) -> @Sendable (inout SessionEvent) -> Bool {
        { event in
            guard case .token(var token) = event, token.metrics.step == step else { return false }
            change(&token.metrics)
            event = .token(token)
            return true
        }
    }

    static let edits: [Edit] = [
        Edit(name: "nll", edit: token(at: 10) { $0.nll *= 1.01 }, field: "nll"),
        Edit(name: "nll NaN", edit: token(at: 10) { $0.nll = .nan }, field: "nll"),
        Edit(name: "kl", edit: token(at: 10) { $0.ghost?.kl += 0.25 }, field: "ghost.kl"),
        Edit(name: "top-1", edit: token(at: 10) { $0.ghost?.top1Agrees.toggle() }, field: "ghost.top1Agrees"),
        Edit(name: "ghost top", edit: token(at: 10) { $0.ghost?.ghostTop += 1 }, field: "ghost.ghostTop"),
        Edit(name: "ghost NLL", edit: token(at: 10) { $0.ghost?.ghostNLL = .infinity }, field: "ghost.ghostNLL"),
        Edit(name: "ΔNLL", edit: token(at: 10) { $0.ghost?.deltaNLL -= 0.1 }, field: "ghost.deltaNLL"),
        Edit(name: "mass kept", edit: token(at: 10) { $0.ghost?.massKept = 0.5 }, field: "ghost.massKept"),
        Edit(name: "mass kept NaN", edit: token(at: 10) { $0.ghost?.massKept = .nan }, field: "ghost.massKept"),
        Edit(name: "ledger", edit: token(at: 10) { $0.report.ledger.read(.keys, 4) }, field: "report.ledger.hbmToSRAM.keys"),
        Edit(name: "residency", edit: token(at: 10) { $0.report.cache.pageSlack += 64 }, field: "report.cache.pageSlack"),
        Edit(name: "argmax", edit: token(at: 10) { $0.report.top.id += 1 }, field: "report.top.id"),
        Edit(name: "log-probability", edit: token(at: 10) { $0.report.top.logProbability -= 0.5 }, field: "report.top.logProbability"),
        Edit(name: "entropy", edit: token(at: 10) { $0.report.entropy = .nan }, field: "report.entropy"),
        Edit(name: "prompt ledger", edit: { event in
            guard case .prompt(var prompt) = event else { return false }
            prompt.report.ledger.write(.activations, 1)
            event = .prompt(prompt)
            return true
        }, field: "report.ledger.sramToHBM.activations"),
        Edit(name: "knob ledger", edit: { event in
            guard case .knob(var change) = event, change.knob == .kv else { return false }
            change.ledger.read(.values, 8)
            event = .knob(change)
            return true
        }, field: "ledger.hbmToSRAM.values"),
        Edit(name: "key magnitude NaN", edit: { event in
            guard case .checkpoint(var checkpoint) = event, checkpoint.step == 12 else { return false }
            checkpoint.keyMagnitude = .nan
            event = .checkpoint(checkpoint)
            return true
        }, field: "checkpoint key magnitude"),
        Edit(name: "value magnitude", edit: { event in
            // The digests still match: they cover the cache, not the magnitudes recorded beside them.
            guard case .checkpoint(var checkpoint) = event, checkpoint.step == 12 else { return false }
            checkpoint.valueMagnitude *= 1.001
            event = .checkpoint(checkpoint)
            return true
        }, field: "checkpoint value magnitude"),
    ]

    /// The session with the first event `edit` accepts changed; returns the path and its line.
    static func edited(_ edit: (inout SessionEvent) -> Bool) throws -> (path: String, line: Int, step: Int) {
        var lines = try String(decoding: SessionSupport.recorded.get(), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let decoder = JSONDocument.decoder()
        for index in 1..<(lines.count - 1) {
            var event = try decoder.decode(SessionEvent.self, from: Data(lines[index].utf8))
            guard edit(&event) else { continue }
            lines[index] = String(decoding: try SessionLineEncoder().line(event).dropLast(), as: UTF8.self)
            return (try SessionSupport.copy(Data(lines.joined(separator: "\n").utf8)), index + 1, event.step)
        }
        throw SessionProblem("no event to edit")
    }

    @Test(arguments: edits)
    func anEditedMetricIsAMismatchNamingItsField(_ edit: Edit) throws {
        let (path, line, step) = try Self.edited(edit.edit)
        defer { try? FileManager.default.removeItem(atPath: path) }
        for strict in [true, false] {
            do {
                try SessionReplayTests.replay(path, strict: strict)
                Issue.record("\(edit.name) replayed (strict: \(strict))")
            } catch let mismatch as ReplayMismatch {
                #expect(mismatch.line == line && mismatch.step == step && mismatch.field == edit.field, "\(mismatch)")
                #expect(mismatch.description.hasPrefix("\(path):\(line): step \(step): \(edit.field) expected "))
            }
        }
    }

    /// Floats within the tolerance pass unless strict; integers have none.
    @Test func floatsAgreeWithinTheToleranceUnlessStrict() throws {
        let path = try Self.edited(Self.token(at: 10) { $0.nll *= 1 + 1e-7 }).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try SessionReplayTests.replay(path, strict: false).summary.tokens == 44)
        #expect(throws: ReplayMismatch.self) { try SessionReplayTests.replay(path, strict: true) }
        #expect(Checkpoint.agrees(1, 1 + 1e-5, tolerance: Checkpoint.tolerance) && !Checkpoint.agrees(1, 1 + 1e-3, tolerance: Checkpoint.tolerance))
        #expect(Checkpoint.agrees(1e-9, 5e-5, tolerance: Checkpoint.tolerance), "near 0 the tolerance is absolute")
        #expect(!Checkpoint.agrees(.infinity, 1e300, tolerance: Checkpoint.tolerance) && !Checkpoint.agrees(.nan, 0, tolerance: Checkpoint.tolerance))
        #expect(Checkpoint.agrees(.nan, -.nan, tolerance: nil) && !Checkpoint.agrees(0, -0.0, tolerance: nil))
    }
}
