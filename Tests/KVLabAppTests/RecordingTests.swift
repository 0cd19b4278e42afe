import Foundation
@testable import KVLabApp
import KVLabRun
import KVLabSession
import Testing

/// A session recorded from the workbench replays showing what the user was looking at.
@Suite struct WorkbenchRecordingTests {
    @Test func recordingReplaysOnTheDeviceAndTargetShown() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-app-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let harness = try Harness(sessionDirectory: directory.path)
        harness.state.screen = (columns: 120, rows: 40)
        harness.press(.character("d"))  // h100-sxm → a100-80gb
        harness.press(.character("t"))  // llama-3-8b → mistral-7b
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(5)
        harness.press(.character("r"))
        let path = try #require(harness.state.recording)
        harness.generate(20)
        harness.press(.character("d"))  // a100-80gb → l4, while recording
        harness.generate(10)
        harness.press(.character("r"))
        #expect(harness.state.status?.text == "recorded \(path)")

        let reader = try SessionReader(path: path)
        #expect(reader.header.projection == ProjectionSettings(device: "a100-80gb", target: "mistral-7b", context: EngineCore.projectedContext))
        #expect(reader.header.ui == UISettings(columns: 120, rows: 40, theme: "dark"))
        let state = AppState(modelName: reader.header.model.name, choices: Harness.choices, device: "h100-sxm", target: "llama-3-8b", theme: "dark")
        let player = try SessionPlayer(path: path, header: reader.header, records: try reader.readAll(),
                                       mode: .reexecute(try EmbeddedModel.load(), threads: nil, strict: false), state: state)
        try player.jump(to: 10)
        #expect(player.state.device == "a100-80gb")
        #expect(player.state.target == "mistral-7b")
        let screen = ReplayTests.screen(player)
        #expect(screen.contains("device a100-80gb") && screen.contains("target mistral-7b"), "\(screen)")
        try player.jump(to: player.totalSteps)
        #expect(player.failure == nil)
        #expect(player.state.device == "l4", "the device change recorded mid-session replays")
        #expect(player.state.target == "mistral-7b")
    }

    /// Quitting (`q`, or a stop signal the run loop handles) stops the engine thread, which closes
    /// a recording in progress with its end event.
    @Test func quittingClosesARecordingWithItsEndEvent() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-app-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let run = try LiveRun(model: try EmbeddedModel.load(), settings: RunSettings(), ghost: false)
        let worker = EngineWorker(core: EngineCore(run: run, device: "h100-sxm", target: "llama-3-8b", sessionDirectory: directory.path))
        worker.send(.pace(nil))
        worker.send(.submit("ROMEO:"))
        worker.send(.startRecording(ui: UISettings(columns: 100, rows: 30, theme: "dark")))
        var path: String?, tokens = 0
        let deadline = Date().addingTimeInterval(60)
        while tokens < 5, Date() < deadline {
            for snapshot in worker.drain() {
                path = path ?? snapshot.recording
                if path != nil, case .token = snapshot.event { tokens += 1 }
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        worker.stop()
        let records = try SessionReader(path: try #require(path)).readAll()
        guard case .end(let end) = records.last?.event else {
            Issue.record("no end event: \(records.last.map { "\($0.event)" } ?? "no events")")
            return
        }
        #expect(end.events == records.count - 1 && end.step >= 5)
    }

    /// `r` toggled off closes the recording with its end event; a copy cut before it still plays
    /// and the status line says where it was cut.
    @Test func aStoppedRecordingEndsAndACutOnePlaysSayingSo() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-app-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let harness = try Harness(sessionDirectory: directory.path)
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.press(.character("r"))
        let path = try #require(harness.state.recording)
        harness.generate(6)
        harness.press(.character("r"))
        let records = try SessionReader(path: path).readAll()
        #expect(records.last?.event == .end(RecordingEnd(step: 6, events: records.count - 1)))

        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").dropLast()
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        for mode in [SessionPlayer.Mode.playback, .reexecute(try EmbeddedModel.load(), threads: nil, strict: true)] {
            let reader = try SessionReader(path: path)
            let player = try SessionPlayer(path: path, header: reader.header, records: try reader.readAll(), cut: reader.cut, mode: mode,
                                           state: AppState(modelName: reader.header.model.name, choices: Harness.choices, device: "h100-sxm",
                                                           target: "llama-3-8b", theme: "dark"))
            try player.jump(to: player.totalSteps)
            #expect(player.failure == nil && player.step == 6)
            let status = try #require(player.state.status)
            #expect(status.text.hasPrefix("recording cut after step 6: no end-of-recording event: 6 ") && status.isError, "\(status)")
        }
    }
}
