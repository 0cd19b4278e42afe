import Foundation
@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
@testable import KVLabSession
import Testing

/// The `*.kvlab.jsonl` format: exact round trips, streaming reads, line-numbered errors.
@Suite struct SessionFormatTests {
    static func header() -> SessionHeader {
        SessionHeader(model: ModelIdentity(name: "m", path: "/models/m.gguf", bytes: 10, sha256: String(repeating: "ab", count: 32)),
                      settings: SessionSettings(RunSettings(sampler: SamplerSettings(temperature: 0.8, topK: 40, topP: 0.95, seed: .max))),
                      ghost: true, checkpointEvery: 16, ui: UISettings(columns: 120, rows: 40, theme: "dark"),
                      projection: ProjectionSettings(device: "h200", target: "llama-3-8b", context: 32768))
    }

    /// A token event whose floating-point members are arbitrary bit patterns.
    static func token(step: Int, using random: inout Xoshiro256) -> SessionEvent {
        func double() -> Double {
            var value: Double
            repeat { value = Double(bitPattern: random.next()) } while value.isNaN
            return value
        }
        func float() -> Float {
            var value: Float
            repeat { value = Float(bitPattern: UInt32(truncatingIfNeeded: random.next())) } while value.isNaN
            return value
        }
        var ledger = IOLedger()
        ledger.read(.keys, Int(random.next() >> 20))
        ledger.write(.scores, Int(random.next() >> 20))
        var cache = KVResidency()
        cache.pageSlack = Int(random.next() >> 40)
        let report = StepReport(phase: .decode, position: step + 3, tokenCount: 1, token: 7, top: TopToken(id: 9, logProbability: float()),
                                entropy: float(), timings: StepTimings(), ledger: ledger, cache: cache, cacheEntries: 12)
        let metrics = TokenMetrics(step: step, token: 7, text: "é\n\"x\"", report: report, nll: double(),
                                   ghost: GhostComparison(kl: double(), top1Agrees: true, ghostTop: 3, ghostNLL: .infinity, deltaNLL: -.infinity,
                                                          massKept: double()))
        // A projected latency is a finite duration: any such bit pattern.
        var seconds: Double
        repeat { seconds = abs(double()) } while !seconds.isFinite
        return .token(TokenEvent(metrics: metrics, projectedLatencySeconds: seconds, tierTraffic: [TierTraffic(tier: "HBM", read: .max, written: 0)]))
    }

    @Test func headerAndEventsRoundTripBitExactly() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        var random = Xoshiro256(seed: 3)
        var events: [SessionEvent] = (0..<200).map { Self.token(step: $0, using: &random) }
        events += [.caption(Caption(step: 200, text: "a, \"quoted\"\ncaption")), .ghost(GhostChange(step: 200, enabled: false)),
                   .knob(KnobChange(step: 200, knob: .kv, old: "fp32", new: "kivi:bits=2,group=32,residual=128", ledger: IOLedger())),
                   .projection(ProjectionChange(step: 200, setting: .device, old: "h200", new: "a100-80gb")),
                   .stop(StopEvent(step: 200, reason: .endOfSequence))]
        let writer = try SessionWriter(path: path, header: Self.header())
        for event in events { try writer.append(event) }
        let reader = try SessionReader(path: path)
        #expect(reader.header == Self.header())
        let records = try reader.readAll()
        #expect(records.map(\.event) == events)
        #expect(records.map(\.line) == Array(2...(events.count + 1)))
        #expect(reader.incompleteLine == nil)
        #expect(try SessionSupport.lines(path).count == events.count + 2, "one line per event, newline-terminated")
    }

    @Test func anIncompleteLastLineIsLeftOutWithANote() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let writer = try SessionWriter(path: path, header: Self.header())
        try writer.append(.caption(Caption(step: 0, text: "kept")))
        try writer.append(.caption(Caption(step: 0, text: "cut")))
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.dropLast(5).write(to: URL(fileURLWithPath: path))
        let reader = try SessionReader(path: path)
        #expect(try reader.readAll().map(\.event) == [.caption(Caption(step: 0, text: "kept"))])
        #expect(reader.incompleteLine == 3)
        #expect(reader.incompleteLineNote == "\(path):3: incomplete last line ignored (the writer stopped mid-line); read up to line 2")
    }

    @Test func corruptLinesAreErrorsNamingFileAndLine() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let header = String(decoding: try SessionLineEncoder().line(Self.header()), as: UTF8.self)
        let caption = #"{"event":"caption","step":0,"text":"ok"}"#
        let cases: [(String, Int?, String)] = [
            ("", nil, "empty file, expected a kvlab session header on line 1"),
            ("{\"format\":\"kvlab-session\"", 1, "the header line is incomplete (no newline)"),
            ("{\"hello\":1}\n", 1, "not a kvlab session (line 1 has no \"format\": \"kvlab-session\")"),
            (header + caption + "\n{\"event\":\"caption\",\"step\":0,\"text\":\n", 3, "not valid JSON"),
            (header + caption + "\n\n", 3, "empty line"),
            (header + "{\"event\":\"caption\",\"step\":1.79e308,\"text\":\"x\"}\n", 2, "'step' = 1.79e+308 is out of range (too large for its field)"),
            (header + "{\"event\":\"caption\",\"step\":99999999999999999999,\"text\":\"x\"}\n", 2, "'step' = 1e+20 is out of range"),
            (header + "{\"event\":\"teleport\",\"step\":0}\n", 2, "'event': unknown event 'teleport'"),
            (header + "{\"event\":\"caption\",\"step\":\"zero\",\"text\":\"x\"}\n", 2, "'step' is not an integer"),
            (header + "{\"event\":\"caption\",\"text\":\"x\"}\n", 2, "'step' is missing"),
            (header + "{\"event\":\"caption\",\"step\":-4,\"text\":\"x\"}\n", 2, "caption: step must be ≥ 0, got -4"),
            (header + #"{"event":"knob","knob":"policy","ledger":{},"new":"h2o:heavyy=1","old":"full","step":0}"# + "\n", 2,
             "knob: policy: h2o: unknown parameter 'heavyy' (known: heavy, recent, ratio, budget, bytes)"),
            (header.replacingOccurrences(of: "\"threads\":1", with: "\"threads\":0"), 1, "header: threads must be between 1 and 256, got 0"),
            (header.replacingOccurrences(of: "\"checkpointEvery\":16", with: "\"checkpointEvery\":-1"), 1, "header: checkpointEvery must be ≥ 0, got -1"),
        ]
        for (content, line, problem) in cases {
            try Data(content.utf8).write(to: URL(fileURLWithPath: path))
            do {
                _ = try SessionReader(path: path).readAll()
                Issue.record("no error for \(content.debugDescription)")
            } catch let error as SessionError {
                #expect(error.line == line, "\(error)")
                #expect(error.problem.hasPrefix(problem), "\(error)")
                #expect(!error.description.contains("\n"))
            }
        }
        #expect(throws: SessionError(path: "/nonexistent/x.kvlab.jsonl", line: nil, problem: "no such file")) {
            try SessionReader(path: "/nonexistent/x.kvlab.jsonl")
        }
    }

    @Test func aNewerFormatIsRefusedWithAClearMessage() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        // A future header may have fields this version does not know: the version decides first.
        let newer = SessionHeader.currentVersion + 1
        try Data(#"{"format":"kvlab-session","version":\#(newer),"kvlab":"9.0.0","hologram":true}"#.utf8 + [0x0A]).write(to: URL(fileURLWithPath: path))
        #expect(throws: SessionError(path: path, line: 1, problem:
            "session format \(newer) (written by kvlab 9.0.0) is newer than this kvlab \(kvlabVersion) reads (format \(SessionHeader.currentVersion)); use a newer kvlab")) {
            try SessionReader(path: path)
        }
    }

    @Test func theCSVHasOneRowPerTokenAndTheSettingsInEffect() throws {
        let path = SessionSupport.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let events = try SessionSupport.record(to: path)
        let reader = try SessionReader(path: path)
        var table = SessionCSV(header: reader.header)
        var rows = [table.headerRow]
        while let record = try reader.next() { if let row = table.row(for: record.event) { rows.append(row) } }
        let parsed = rows.map(Self.parseCSVRow)
        #expect(parsed[0] == SessionCSV.columns)
        #expect(parsed.count == 1 + events.filter { if case .token = $0 { true } else { false } }.count)
        #expect(parsed.allSatisfy { $0.count == SessionCSV.columns.count })
        let column = { (name: String) in SessionCSV.columns.firstIndex(of: name)! }
        let byStep = Dictionary(uniqueKeysWithValues: parsed.dropFirst().map { (Int($0[column("step")])!, $0) })
        #expect(byStep[7]?[column("policy")] == "full" && byStep[8]?[column("policy")] == "h2o:heavy=8,recent=8")
        #expect(byStep[13]?[column("ghost")] == "on" && byStep[14]?[column("ghost")] == "off" && byStep[14]?[column("kl")] == "")
        #expect(byStep[22]?[column("caption")] == "quest reads 16 entries")
        #expect(byStep[30]?[column("weights")] == "q8_0")
        guard case .token(let first) = events.first(where: { if case .token = $0 { true } else { false } }) else { return }
        #expect(byStep[0]?[column("text")] == first.metrics.text)
        #expect(byStep[0]?[column("kv_bytes")] == String(first.metrics.report.cache.total))
    }

    /// RFC 4180 fields of one row.
    static func parseCSVRow(_ row: String) -> [String] {
        var fields: [String] = [], field = "", quoted = false
        var characters = row.makeIterator()
        while let c = characters.next() {
            if quoted {
                if c == "\"" {
                    if let next = characters.next() {
                        if next == "\"" { field.append("\"") } else { quoted = false; if next == "," { fields.append(field); field = "" } else { field.append(next) } }
                    } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" { quoted = true } else if c == "," { fields.append(field); field = "" } else { field.append(c) }
        }
        fields.append(field)
        return fields
    }
}
