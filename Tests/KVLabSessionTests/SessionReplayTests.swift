import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
@testable import KVLabSession
import Testing

/// Record → replay on the embedded model: identical tokens and checkpoints, mismatches named by
/// step, and mutated files that never trap.
@Suite struct SessionReplayTests {
    /// Replays a whole file and returns the re-executed events.
    @discardableResult
    static func replay(_ path: String, threads: Int? = nil, strict: Bool = true) throws -> (events: [SessionEvent], summary: ReplaySummary) {
        let reader = try SessionReader(path: path)
        let model = try SessionModel.load(for: reader.header, sessionPath: path)
        let replayer = try SessionReplayer(path: path, header: reader.header, model: model, threads: threads, strict: strict)
        var events: [SessionEvent] = []
        while let record = try reader.next() { events.append(try replayer.replay(record)) }
        return (events, replayer.summary)
    }

    @Test(arguments: [Float(0), 0.9])
    func aReplayReproducesEveryTokenAndCheckpoint(temperature: Float) throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let recorded = try SessionSupport.record(to: path, temperature: temperature)
        let (replayed, summary) = try Self.replay(path)
        func tokens(_ events: [SessionEvent]) -> [Int] { events.compactMap { if case .token(let t) = $0 { t.metrics.token } else { nil } } }
        func checkpoints(_ events: [SessionEvent]) -> [Checkpoint] { events.compactMap { if case .checkpoint(let c) = $0 { c } else { nil } } }
        #expect(tokens(replayed) == tokens(recorded) && tokens(recorded).count == 44)
        #expect(checkpoints(replayed) == checkpoints(recorded))
        #expect(summary == ReplaySummary(prompts: 2, tokens: 44, knobChanges: 4, captions: 2, checkpoints: checkpoints(recorded).count,
                                         exactCheckpoints: checkpoints(recorded).count))
        // Ghost metrics are re-measured where the ghost ran, and absent where it was off.
        for (a, b) in zip(recorded, replayed) {
            guard case .token(let r) = a, case .token(let o) = b else { continue }
            #expect((r.metrics.ghost == nil) == (14..<26).contains(r.metrics.step))
            #expect(o.metrics.ghost?.kl == r.metrics.ghost?.kl && o.metrics.nll == r.metrics.nll)
        }
    }

    @Test func resultsDoNotDependOnTheThreadCount() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SessionSupport.record(to: path)
        #expect(try Self.replay(path, threads: 2).summary.tokens == 44)
    }

    @Test func aChangedTokenIsAMismatchNamingStepLineAndValues() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SessionSupport.record(to: path)
        var lines = try SessionSupport.lines(path)
        let index = try #require(lines.firstIndex { $0.contains(#""event":"token""#) && $0.contains(#""step":10,"#) })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(lines[index].utf8)) as? [String: Any])
        let recordedToken = try #require(object["token"] as? Int)
        lines[index] = try Self.replacingTopLevel("token", with: recordedToken + 1, in: lines[index])
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        do {
            try Self.replay(path)
            Issue.record("a changed token replayed")
        } catch let mismatch as ReplayMismatch {
            #expect(mismatch.line == index + 1 && mismatch.step == 10 && mismatch.field == "token", "\(mismatch)")
            #expect(mismatch.expected.hasPrefix("\(recordedToken + 1) ") && mismatch.observed.hasPrefix("\(recordedToken) "))
        }
    }

    @Test func aChangedPromptTokenNamesItsIndex() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SessionSupport.record(to: path)
        var lines = try SessionSupport.lines(path)
        let index = try #require(lines.firstIndex { $0.contains(#""event":"prompt""#) })
        var object = try #require(try JSONSerialization.jsonObject(with: Data(lines[index].utf8)) as? [String: Any])
        var tokens = try #require(object["tokens"] as? [Int])
        tokens[3] += 1
        object["tokens"] = tokens
        lines[index] = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ReplayMismatch(path: path, line: index + 1, step: 0, field: "prompt token 3",
                                       expected: "\(tokens[3]) (of \(tokens.count))", observed: "\(tokens[3] - 1) (of \(tokens.count))")) {
            try Self.replay(path)
        }
    }

    /// The line with its top-level member `key` set to `value` (through JSONSerialization).
    static func replacingTopLevel(_ key: String, with value: Int, in line: String) throws -> String {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        object[key] = value
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test func aChangedCheckpointFailsStrictReplays() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SessionSupport.record(to: path)
        var lines = try SessionSupport.lines(path)
        let index = try #require(lines.lastIndex { $0.contains(#""event":"checkpoint""#) })
        var object = try #require(try JSONSerialization.jsonObject(with: Data(lines[index].utf8)) as? [String: Any])
        object["logitsDigest"] = String(repeating: "0", count: 64)
        lines[index] = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ReplayMismatch.self) { try Self.replay(path, strict: true) }
        // Without --strict the magnitudes decide, and they are unchanged.
        let summary = try Self.replay(path, strict: false).summary
        #expect(summary.exactCheckpoints == summary.checkpoints - 1)
    }

    @Test func aPartialFileReplaysUpToItsLastCompleteEvent() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SessionSupport.record(to: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        // Cut in the middle of the 30th line.
        var newlines = 0, cut = 0
        for (offset, byte) in data.enumerated() where byte == 0x0A {
            newlines += 1
            if newlines == 29 { cut = offset + 20; break }
        }
        try data.prefix(cut).write(to: URL(fileURLWithPath: path))
        let reader = try SessionReader(path: path)
        let model = try SessionModel.load(for: reader.header, sessionPath: path)
        let replayer = try SessionReplayer(path: path, header: reader.header, model: model, strict: true)
        var count = 0
        while let record = try reader.next() {
            try replayer.replay(record)
            count += 1
        }
        #expect(count == 28 && reader.incompleteLine == 30)
    }

    @Test func theModelIsFoundBySHA256() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SessionSupport.record(to: path)
        var header = try SessionReader(path: path).header
        header.model.sha256 = String(repeating: "1", count: 64)
        #expect(throws: SessionError.self) { try SessionModel.load(for: header, sessionPath: path) }
        let embedded = try #require(EmbeddedModel.path)
        #expect(throws: SessionError.self) { try SessionModel.load(for: header, sessionPath: path, override: embedded) }
        header.model = try ModelIdentity(model: try SessionSupport.model.get(), path: "/nonexistent/model.gguf")
        #expect(try SessionModel.load(for: header, sessionPath: path, override: embedded).config.name == "kvlab-shakespeare")
        #expect(try SessionModel.load(for: header, sessionPath: path).path == embedded, "the embedded model, recognized by its sha256")
    }

    /// Random truncations and byte mutations of a real session: reading gives events or a
    /// `SessionError` with a line inside the file; replaying what still reads gives a result,
    /// a `ReplayMismatch` or a `SessionError`; nothing traps.
    @Test func mutatedSessionsNeverTrap() throws {
        let original = SessionSupport.temporaryPath("original")
        let path = SessionSupport.temporaryPath("mutant")
        defer {
            try? FileManager.default.removeItem(atPath: original)
            try? FileManager.default.removeItem(atPath: path)
        }
        try SessionSupport.record(to: original)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
        let lineCount = bytes.count { $0 == 0x0A }
        let model = try SessionSupport.model.get()
        var random = Xoshiro256(seed: 2024)
        let alphabet = Array("{}[]\":,0123456789-.eE \n\\tnulfasrx".utf8) + [0x00, 0xFF, 0xC3]
        var readErrors = 0, replays = 0, replayFailures = 0
        for trial in 0..<250 {
            var mutant = bytes
            switch trial % 5 {
            case 0: mutant = Array(mutant.prefix(Int.random(in: 0..<bytes.count, using: &random)))
            case 1:
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    mutant[Int.random(in: 0..<mutant.count, using: &random)] = alphabet.randomElement(using: &random)!
                }
            case 2:
                let start = Int.random(in: 0..<mutant.count, using: &random)
                mutant.removeSubrange(start..<min(mutant.count, start + Int.random(in: 1...200, using: &random)))
            case 3:
                let at = Int.random(in: 0...mutant.count, using: &random)
                mutant.insert(contentsOf: (0..<Int.random(in: 1...12, using: &random)).map { _ in alphabet.randomElement(using: &random)! }, at: at)
            default:
                // Digits changed inside numbers: plausible JSON with wrong values.
                let digits = mutant.indices.filter { (0x30...0x39).contains(mutant[$0]) }
                for _ in 0..<Int.random(in: 1...3, using: &random) {
                    mutant[digits.randomElement(using: &random)!] = UInt8.random(in: 0x30...0x39, using: &random)
                }
            }
            try Data(mutant).write(to: URL(fileURLWithPath: path))
            let records: [SessionRecord]
            let reader: SessionReader
            do {
                reader = try SessionReader(path: path)
                records = try reader.readAll()
            } catch let error as SessionError {
                readErrors += 1
                #expect(error.line.map { (1...(lineCount + 13)).contains($0) } ?? true, "\(error)")
                #expect(!error.description.contains("\n"))
                continue
            }
            guard replays < 8, trial % 5 >= 3 else { continue }
            replays += 1
            do {
                let replayer = try SessionReplayer(path: path, header: reader.header, model: model)
                for record in records { try replayer.replay(record) }
            } catch is ReplayMismatch {
                replayFailures += 1
            } catch is SessionError {
                replayFailures += 1
            }
        }
        #expect(readErrors > 60, "most mutants should be refused, \(readErrors) were")
        #expect(replays == 8 && replayFailures > 0)
    }
}
