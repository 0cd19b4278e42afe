import Foundation
@testable import KVLabApp
import KVLabFoundation
import KVLabRun
import KVLabSession
import KVLabTUI
import Testing

/// The replay screen drawn headless: a shipped demo re-executed on the embedded model or played
/// back from its recorded metrics, jumps, single steps, a mismatch, and the asciicast of it.
@Suite struct ReplayTests {
    static let demos = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("sessions/demos")
    static let quest = demos.appendingPathComponent("quest-vs-full.kvlab.jsonl").path

    static func player(_ path: String = quest, playback: Bool) throws -> SessionPlayer {
        let reader = try SessionReader(path: path)
        let records = try reader.readAll()
        let mode: SessionPlayer.Mode = playback ? .playback : .reexecute(try EmbeddedModel.load(), threads: nil, strict: false)
        let state = AppState(modelName: reader.header.model.name, choices: Harness.choices, device: "h100-sxm", target: "llama-3-8b", theme: "dark")
        return try SessionPlayer(path: path, header: reader.header, records: records, mode: mode, state: state)
    }

    static func screen(_ player: SessionPlayer, width: Int = 120, height: Int = 34) -> String {
        var buffer = Buffer(width: width, height: height)
        player.prepareFrame()
        ReplayScreen(player: player, pace: .demo).render(into: &buffer)
        return buffer.textLines.joined(separator: "\n")
    }

    static func captions(_ path: String = quest) throws -> [Caption] {
        try SessionReader(path: path).readAll().compactMap { if case .caption(let caption) = $0.event { caption } else { nil } }
    }

    @Test func reexecutedStepShowsPanelsCaptionAndProgress() throws {
        let player = try Self.player(playback: false)
        try player.jump(to: 120)
        #expect(player.failure == nil)
        #expect(player.step == 120)
        let caption = try Self.captions().last { $0.step <= 120 }!
        #expect(player.caption == caption.text)
        let text = Self.screen(player)
        #expect(text.contains("step 120 / \(player.totalSteps)"), "\(text)")
        #expect(text.contains("▶ " + String(caption.text.prefix(60))), "\(text)")
        #expect(text.contains("verified"))
        #expect(text.contains("┌ Generation"))
        #expect(!text.contains("no tokens yet"), "the KV map shows the live cache")
        #expect(text.contains("proj."), "the latency panel shows the projection")
    }

    @Test func playbackShowsRecordedMetricsAndSaysWhatIsMissing() throws {
        let player = try Self.player(playback: true)
        try player.jump(to: 40)
        let text = Self.screen(player)
        #expect(text.contains("step 40 / \(player.totalSteps)"), "\(text)")
        #expect(text.contains("playback: no model, no KV map or projection"))
        #expect(text.contains("here ") && text.contains(" ms"), "the latency panel shows recorded latencies")
        #expect(player.state.totals.latency.values.count == 40)
    }

    @Test func playbackFollowsTheRecordedDeviceChanges() throws {
        let player = try Self.player(Self.demos.appendingPathComponent("a100-vs-h200-llama3.1-8b-32k.kvlab.jsonl").path, playback: true)
        #expect(player.state.device == "a100-40gb")
        try player.jump(to: player.totalSteps)
        #expect(player.state.device == "h200")
        #expect(Self.screen(player).contains("device h200"))
    }

    @Test func singleStepsAndBackwardJumpsReplayTheSameTokens() throws {
        let player = try Self.player(playback: false)
        for _ in 0..<3 { player.stepToken() }
        #expect(player.step == 3)
        let stream = player.state.stream
        try player.jump(to: 10)
        try player.jump(to: 3)
        #expect(player.step == 3)
        #expect(player.state.stream == stream)
        try player.jump(to: 1_000_000)
        #expect(player.finished && player.failure == nil)
        #expect(player.step == player.totalSteps)
        #expect(player.state.status?.text.hasPrefix("end of session: \(player.totalSteps) tokens and") == true)
    }

    @Test func aChangedTokenStopsWithStepExpectedAndObserved() throws {
        var lines = try String(contentsOfFile: Self.quest, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let index = try #require(lines.firstIndex { $0.contains("\"event\":\"token\"") && $0.contains("\"step\":5,") })
        let token = try #require(lines[index].firstMatch(of: /"token":(\d+)\}$/))
        lines[index].replaceSubrange(token.range, with: "\"token\":\(Int(token.1)! == 0 ? 1 : 0)}")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("replay-mismatch-\(UUID()).kvlab.jsonl").path
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let player = try Self.player(path, playback: false)
        try player.jump(to: 50)
        #expect(player.step == 5)
        let failure = try #require(player.failure)
        #expect(failure.contains("step 5: token expected"), "\(failure)")
        #expect(player.state.status?.isError == true)
        let text = Self.screen(player, width: 240)
        #expect(text.contains(" stopped: \(failure)"), "\(text)")
        #expect(text.contains("step 5 / \(player.totalSteps)") && text.contains("mismatch"))
    }

    @Test func paceSpeedsStayInRange() {
        var pace = ReplayPace.demo
        #expect(pace.speedLabel == "1×")
        #expect(pace.delayMilliseconds(after: .token, recordedNanoseconds: 0) == 125)
        for _ in 0..<20 { pace.change(faster: false) }
        #expect(pace.speedLabel == "0.25×")
        #expect(pace.delayMilliseconds(after: .caption, recordedNanoseconds: 0) == 12_000)
        for _ in 0..<20 { pace.change(faster: true) }
        #expect(pace.speedLabel == "max")
        #expect(pace.delayMilliseconds(after: .token, recordedNanoseconds: 5_000_000) == 0)
        #expect(ReplayPace.recorded.delayMilliseconds(after: .token, recordedNanoseconds: 5_000_000) == 5)
    }

    @Test func castOfADemoIsValidAsciinemaV2() throws {
        let player = try Self.player(playback: true)
        let cast = SessionCast.render(player, width: 100, height: 30, palette: Theme.plain.palette(depth: .truecolor),
                                      tokenMilliseconds: 50, captionHoldMilliseconds: 1000)
        let lines = cast.split(separator: "\n")
        let header = try JSONValue.parse(Data(lines[0].utf8))
        #expect(header["version"]?.integer == 2)
        #expect(header["width"]?.integer == 100)
        #expect(header["height"]?.integer == 30)
        var last = -1.0, output = ""
        for line in lines.dropFirst() {
            let event = try #require(JSONValue.parse(Data(line.utf8)).array)
            #expect(event.count == 3 && event[1].string == "o")
            let time = try #require(event[0].double)
            #expect(time > last)
            last = time
            output += event[2].string ?? ""
        }
        #expect(lines.count > player.totalSteps)
        #expect(output.contains(try Self.captions()[0].text))
        #expect(last >= Double(player.totalSteps) * 0.05)
    }

    /// The replay's hints and its key handling read one table: the hints name the keys that act.
    @Test func replayHintsAndKeysComeFromOneTable() {
        #expect(ReplayControls.hints.map { "\($0.0) \($0.1)" } == ["space pause", ". → step", "← back", "+ - speed", "g jump", "q quit"])
        #expect(ReplayControls.command(for: .character(" ")) == .togglePause)
        #expect(ReplayControls.command(for: .right) == .step)
        #expect(ReplayControls.command(for: .character("-")) == .speed(faster: false))
        #expect(ReplayControls.command(for: .character("=")) == .speed(faster: true))
        #expect(ReplayControls.command(for: .control("c")) == .quit)
        #expect(ReplayControls.command(for: .character("x")) == nil)
    }
}
