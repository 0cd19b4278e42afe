import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabHardware
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
@testable import KVLabSession
import Testing

/// Sessions that project every token onto a device and target: recording, device changes
/// mid-session, replay verification, the header and events on disk, names checked, CSV.
@Suite struct SessionProjectionTests {
    /// Records 24 tokens of kivi 2-bit projected onto Llama-3-8B at 32K on an A100 40GB, then the
    /// device, the target and the context changed mid-session. Returns the events written.
    @discardableResult
    static func record(to path: String) throws -> [SessionEvent] {
        let model = try SessionSupport.model.get()
        var settings = RunSettings(eviction: .full, sampler: SamplerSettings(temperature: 0), threads: 1)
        try settings.set(.kv, to: "kivi:bits=2,residual=8", headDim: model.config.headDim)
        let run = try LiveRun(model: model, settings: settings)
        let projection = ProjectionSettings(device: "a100-40gb", target: "llama-3-8b", context: 32768)
        let projector = try SessionProjector(settings: projection, model: model)
        let writer = try SessionWriter(path: path, header: SessionHeader(run: run, model: try ModelIdentity(model: model, path: nil),
                                                                         checkpointEvery: 8, projection: projection))
        var events: [SessionEvent] = []
        let recorder = SessionRecorder(run: run, checkpointEvery: 8, projector: projector) { event in
            events.append(event)
            try writer.append(event)
        }
        try recorder.submit(prompt: "ROMEO:\nBut soft, what light")
        for step in 0..<24 {
            switch step {
            case 8: try recorder.setProjection(.device, to: "h200")
            case 14: try recorder.setProjection(.target, to: HardwareCatalog.live)
            case 18:
                try recorder.setProjection(.target, to: "llama-3-8b")
                try recorder.setProjection(.context, to: "4096")
            default: break
            }
            try recorder.step()
        }
        try recorder.finish()
        return events
    }

    static func projected(_ events: [SessionEvent]) -> [Int: Double] {
        Dictionary(uniqueKeysWithValues: events.compactMap { event -> (Int, Double)? in
            guard case .token(let t) = event, let seconds = t.projectedLatencySeconds else { return nil }
            return (t.metrics.step, seconds)
        })
    }

    @Test func aProjectedSessionRoundTripsWithDeviceChanges() throws {
        let path = SessionSupport.temporaryPath("projection")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let recorded = try Self.record(to: path)
        let latency = Self.projected(recorded)
        #expect(latency.count == 24, "every token carries a projected latency")
        // H200's HBM is about 3× an A100 40GB's, and decode is memory-bound; the live model is tiny.
        let a100 = try #require(latency[7]), h200 = try #require(latency[8]), live = try #require(latency[14])
        #expect(h200 < a100 / 2.5 && h200 > a100 / 3.5, "A100 \(a100) s, H200 \(h200) s")
        #expect(live < h200 / 100)
        #expect(try #require(latency[18]) < h200, "4K context reads less KV than 32K")

        let (replayed, summary) = try SessionReplayTests.replay(path)
        #expect(summary.tokens == 24 && summary.projectedTokens == 24 && summary.projectionChanges == 4)
        #expect(Self.projected(replayed) == latency)
        let changes = recorded.compactMap { if case .projection(let c) = $0 { c } else { nil } }
        #expect(changes == [ProjectionChange(step: 8, setting: .device, old: "a100-40gb", new: "h200"),
                            ProjectionChange(step: 14, setting: .target, old: "llama-3-8b", new: "live"),
                            ProjectionChange(step: 18, setting: .target, old: "live", new: "llama-3-8b"),
                            ProjectionChange(step: 18, setting: .context, old: "32768", new: "4096")])
    }

    @Test func theHeaderAndEventsDecodeAsWritten() throws {
        let path = SessionSupport.temporaryPath("projection")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let recorded = try Self.record(to: path)
        let lines = try SessionSupport.lines(path)
        #expect(lines[0].contains(#""projection":{"context":32768,"device":"a100-40gb","target":"llama-3-8b"}"#))
        #expect(lines.contains(#"{"event":"projection","new":"h200","old":"a100-40gb","setting":"device","step":8}"#))
        let reader = try SessionReader(path: path)
        #expect(reader.header.version == SessionHeader.currentVersion)
        #expect(reader.header.projection == ProjectionSettings(device: "a100-40gb", target: "llama-3-8b", context: 32768))
        var read: [SessionEvent] = []
        while let record = try reader.next() { read.append(record.event) }
        #expect(read == recorded)
    }

    @Test func aChangedProjectedLatencyIsAMismatch() throws {
        let path = SessionSupport.temporaryPath("projection")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.record(to: path)
        var lines = try SessionSupport.lines(path)
        let index = try #require(lines.firstIndex { $0.contains(#""event":"token""#) && $0.contains(#""step":10,"#) })
        var object = try #require(try JSONSerialization.jsonObject(with: Data(lines[index].utf8)) as? [String: Any])
        let recorded = try #require(object["projectedLatencySeconds"] as? Double)
        object["projectedLatencySeconds"] = recorded * 1.001
        lines[index] = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        do {
            try SessionReplayTests.replay(path)
            Issue.record("a changed projected latency replayed")
        } catch let mismatch as ReplayMismatch {
            #expect(mismatch.line == index + 1 && mismatch.step == 10 && mismatch.field == "projected latency (s)", "\(mismatch)")
        }
    }

    @Test func theProjectorMatchesAProjectionOfTheRunsCache() throws {
        let model = try SessionSupport.model.get()
        var settings = RunSettings(sampler: SamplerSettings(temperature: 0), threads: 1)
        try settings.set(.policy, to: "h2o:heavy=8,recent=8", headDim: model.config.headDim)
        try settings.set(.attention, to: "tiled:sram=64KiB", headDim: model.config.headDim)
        let run = try LiveRun(model: model, settings: settings)
        try run.submit(prompt: "ROMEO:\nBut soft, what light through yonder window breaks")
        guard case .token(let metrics) = try run.step() else { Issue.record("no token"); return }
        let projector = try SessionProjector(settings: ProjectionSettings(device: "h200", target: "mistral-7b", context: 8192), model: model)
        let projection = projector.project(run: run, last: metrics)
        let expected = Projection(ProjectionSetup(device: try HardwareCatalog.device("h200"), target: try HardwareCatalog.target("mistral-7b"),
                                                  context: 8192, eviction: run.settings.eviction, quant: run.settings.quant,
                                                  sparse: run.settings.sparse, kernel: .tiled(sramBytes: 64 << 10),
                                                  live: LiveKVState(cache: run.cache, positions: run.position, lastStep: metrics.report.ledger)))
        #expect(projection == expected)
        // H2O's 16-entry budget carries over to the target in tokens.
        #expect(projection?.meanKept == 16)
    }

    @Test func unknownNamesListTheValidOnes() throws {
        var settings = ProjectionSettings()
        #expect(throws: SessionProblem("unknown device 'h900' (\(ProjectionSettings.deviceNames.joined(separator: ", ")))")) {
            try settings.set(.device, to: "h900")
        }
        #expect(!ProjectionSettings.deviceNames.contains(HardwareCatalog.thisMachine), "this-machine differs between machines")
        #expect(ProjectionSettings.deviceNames.contains("h200") && ProjectionSettings.targetNames.contains("llama-3-8b"))
        #expect(throws: SessionProblem.self) { try settings.set(.target, to: "gpt-5") }
        #expect(throws: SessionProblem.self) { try settings.set(.context, to: "lots") }
        #expect(throws: SessionProblem.self) { try settings.set(.context, to: "0") }
        #expect(settings == ProjectionSettings(), "a refused value is not kept")

        // In a file: the header's names are checked when it is read, a change's when its line is.
        let path = SessionSupport.temporaryPath("projection")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Self.record(to: path)
        var lines = try SessionSupport.lines(path)
        lines[0] = lines[0].replacingOccurrences(of: #""device":"a100-40gb""#, with: #""device":"tpu-v9""#)
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try SessionReader(path: path)
            Issue.record("an unknown device was read")
        } catch let error as SessionError {
            #expect(error.line == 1 && error.problem.hasPrefix("header: unknown device 'tpu-v9' (a100-40gb, "), "\(error)")
        }
    }

    @Test func theCSVFillsTheProjectedColumn() throws {
        let path = SessionSupport.temporaryPath("projection")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let events = try Self.record(to: path)
        let reader = try SessionReader(path: path)
        var table = SessionCSV(header: reader.header)
        var rows: [[String]] = []
        while let record = try reader.next() { if let row = table.row(for: record.event) { rows.append(SessionFormatTests.parseCSVRow(row)) } }
        let column = { (name: String) in SessionCSV.columns.firstIndex(of: name)! }
        let latency = Self.projected(events)
        #expect(rows.count == 24)
        for row in rows {
            let step = Int(row[column("step")])!
            #expect(Double(row[column("projected_latency_s")]) == latency[step])
            #expect(row[column("device")] == (step < 8 ? "a100-40gb" : "h200"))
            #expect(row[column("target")] == ((14..<18).contains(step) ? "live" : "llama-3-8b"))
            #expect(row[column("projected_context")] == (step < 18 ? "32768" : "4096"))
        }
    }

    /// Mutated projection members (the header's settings, change events, projected latencies) are
    /// refused as one-line errors or replay mismatches, never traps.
    @Test func mutatedProjectionsNeverTrap() throws {
        let original = SessionSupport.temporaryPath("projection")
        let path = SessionSupport.temporaryPath("projection-mutant")
        defer {
            try? FileManager.default.removeItem(atPath: original)
            try? FileManager.default.removeItem(atPath: path)
        }
        try Self.record(to: original)
        let lines = try SessionSupport.lines(original)
        let targets = lines.indices.filter { $0 == 0 || lines[$0].contains("projection") || lines[$0].contains("projectedLatencySeconds") }
        let model = try SessionSupport.model.get()
        var random = Xoshiro256(seed: 77)
        let alphabet = Array("{}[]\":,0123456789-.eE nulfa".utf8)
        var refused = 0
        for trial in 0..<40 {
            var mutant = lines
            let index = targets.randomElement(using: &random)!
            var bytes = Array(mutant[index].utf8)
            // Inside the projection members: from "projection" on, or around the projected latency.
            let anchor = mutant[index].range(of: index == 0 ? "projection" : trial % 2 == 0 ? "projected" : "\"new\"")
            let start = anchor.map { mutant[index].utf8.distance(from: mutant[index].startIndex, to: $0.lowerBound) } ?? 0
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                bytes[Int.random(in: start..<bytes.count, using: &random)] = alphabet.randomElement(using: &random)!
            }
            mutant[index] = String(decoding: bytes, as: UTF8.self)
            try mutant.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
            do {
                let reader = try SessionReader(path: path)
                let replayer = try SessionReplayer(path: path, header: reader.header, model: model)
                while let record = try reader.next() { try replayer.replay(record) }
            } catch let error as SessionError {
                refused += 1
                #expect(!error.description.contains("\n"))
            } catch let mismatch as ReplayMismatch {
                refused += 1
                #expect(!mismatch.description.contains("\n"))
            }
        }
        #expect(refused > 20, "most mutants should be refused, \(refused) were")
    }
}
