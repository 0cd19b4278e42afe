import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
@testable import KVLabMethods
@testable import KVLabRun
@testable import KVLabSession
import Testing

/// The end event: a whole recording is told from one cut anywhere, old formats stay whole.
@Suite struct SessionCompletenessTests {
    /// Reads every event; returns them and the reader (its `cut` is then known).
    static func read(_ path: String) throws -> (records: [SessionRecord], reader: SessionReader) {
        let reader = try SessionReader(path: path)
        return (try reader.readAll(), reader)
    }

    @Test func aWholeRecordingEndsWithItsEventCountAndLastStep() throws {
        let path = try SessionSupport.copy()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let (records, reader) = try Self.read(path)
        #expect(records.last?.event == .end(RecordingEnd(step: 44, events: records.count - 1)))
        #expect(reader.cut == nil && reader.end != nil && reader.header.version == SessionHeader.currentVersion)
        let (_, summary) = try SessionReplayTests.replay(path)
        #expect(summary.tokens == 44)
    }

    /// Cut at line ends, in the middle of lines (the end line's too) and after the header: each
    /// reads, replays what it holds and is reported cut after the tokens it holds.
    @Test func aRecordingCutAnywhereIsReportedCut() throws {
        let data = try SessionSupport.recorded.get()
        let lineEnds = data.indices.filter { data[$0] == 0x0A }
        let cuts = [lineEnds[0] + 1, lineEnds[0] + 30, lineEnds[5] + 1, lineEnds[20] + 17, lineEnds[lineEnds.count - 2] + 1,
                    lineEnds[lineEnds.count - 2] + 12, data.count - 1]
        for (index, cut) in cuts.enumerated() {
            let path = try SessionSupport.copy(data.prefix(cut))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let (records, reader) = try Self.read(path)
            let tokens = records.count { if case .token = $0.event { true } else { false } }
            #expect(reader.cut == RecordingCut(path: path, step: tokens, events: records.count, reason: "no end-of-recording event"), "cut \(index)")
            #expect(reader.cut?.description == "\(path): recording cut after step \(tokens): no end-of-recording event")
            if index == 3 {
                let (_, summary) = try SessionReplayTests.replay(path)
                #expect(summary.tokens == tokens && tokens > 0, "what a cut file holds still replays")
            }
        }
    }

    /// Format 2 files had no end event: whole unless the header stands alone or the last line is
    /// incomplete.
    @Test func olderFormatsAreWholeUnlessVisiblyCut() throws {
        var lines = try String(decoding: SessionSupport.recorded.get(), as: UTF8.self).split(separator: "\n").map(String.init)
        lines[0] = lines[0].replacingOccurrences(of: #""version":\#(SessionHeader.currentVersion)"#, with: #""version":2"#)
        lines.removeLast()  // the end event
        let whole = lines.joined(separator: "\n") + "\n"
        let cases: [(String, RecordingCut?)] = [
            (whole, nil),
            (lines[0] + "\n", RecordingCut(path: "", step: 0, events: 0, reason: "no end-of-recording event")),
            (String(whole.dropLast(9)), RecordingCut(path: "", step: 44, events: lines.count - 2, reason: "line \(lines.count) is incomplete")),
        ]
        for (content, expected) in cases {
            let path = try SessionSupport.copy(Data(content.utf8))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let reader = try Self.read(path).reader
            #expect(reader.cut == expected.map { RecordingCut(path: path, step: $0.step, events: $0.events, reason: $0.reason) })
        }
        // The shipped demos are whole, each re-recorded in the format with the end event.
        for demo in try FileManager.default.contentsOfDirectory(atPath: ReplayDemo.directory.path) where demo.hasSuffix(".kvlab.jsonl") {
            let reader = try Self.read(ReplayDemo.directory.appendingPathComponent(demo).path).reader
            #expect(reader.header.version >= SessionHeader.endEventVersion, "\(demo)")
            #expect(reader.cut == nil, "\(demo)")
        }
    }

    @Test func linesLostBeforeOrAddedAfterTheEndAreErrors() throws {
        let lines = try String(decoding: SessionSupport.recorded.get(), as: UTF8.self).split(separator: "\n").map(String.init)
        let caption = try #require(lines.lastIndex { $0.contains(#""event":"caption""#) })
        var lost = lines
        lost.remove(at: caption)
        var added = lines
        added.append(#"{"event":"caption","step":44,"text":"after the end"}"#)
        let cases = [(lost, "\n", lines.count - 1, "end: the recording wrote \(lines.count - 2) events, the file holds \(lines.count - 3)"),
                     (added, "\n", lines.count + 1, "a line after the end-of-recording event"),
                     (lines + ["{\"ev"], "", lines.count + 1, "a line after the end-of-recording event")]
        for (content, last, line, problem) in cases {
            let path = try SessionSupport.copy(Data((content.joined(separator: "\n") + last).utf8))
            defer { try? FileManager.default.removeItem(atPath: path) }
            #expect(throws: SessionError(path: path, line: line, problem: problem)) { try Self.read(path) }
        }
    }

    @Test func eventsAfterTheEndAreRefused() throws {
        let model = try SessionSupport.model.get()
        let run = try LiveRun(model: model, settings: RunSettings(), ghost: false)
        var events: [SessionEvent] = []
        let recorder = SessionRecorder(run: run, checkpointEvery: 0) { events.append($0) }
        try recorder.submit(prompt: "ROMEO:")
        try recorder.step()
        try recorder.finish()
        try recorder.finish()
        #expect(events.last == .end(RecordingEnd(step: 1, events: 2)) && events.count == 3, "a second finish writes nothing")
        #expect(throws: SessionProblem.self) { try recorder.caption("late") }
    }
}

/// Where the shipped demos are, from this file.
enum ReplayDemo {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("sessions/demos")
}
