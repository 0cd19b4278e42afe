import Foundation
@testable import KVLabApp
import KVLabSession
import KVLabTUI
import Testing

/// Every shipped demo on a projector's 80×24: each caption whole under the panels, and at the
/// end a card of the numbers its captions quote, recomputed from the session's events.
@Suite struct DemoScreenTests {
    static let names = DemoCatalog.demos(in: ReplayTests.demos.path).map(\.name)

    /// The screen's words joined by single spaces: a wrapped caption reads as one line.
    static func words(_ text: String) -> String { text.split(whereSeparator: { $0 == " " || $0 == "\n" }).joined(separator: " ") }

    @Test(arguments: names)
    func everyCaptionIsWholeAt80x24(name: String) throws {
        let path = ReplayTests.demos.appendingPathComponent(name + DemoCatalog.fileSuffix).path
        let player = try ReplayTests.player(path, playback: true)
        for caption in try ReplayTests.captions(path) {
            try player.jump(to: caption.step)
            let text = ReplayTests.screen(player, width: 80, height: 24)
            #expect(Self.words(text).contains("▶ " + Self.words(caption.text)), "\(name) step \(caption.step):\n\(text)")
            #expect(text.contains("┌ Generation") && text.contains("KV map") && text.contains("Traffic") && text.contains("Latency"), "\(text)")
            #expect(text.split(separator: "\n").first?.contains("replay") == true)
        }
    }

    /// At 80×24 the end card turns its table (one column per part, the parts named above it),
    /// so every number is on screen however long the varying setting (kivi's layouts are 72
    /// characters: a row per part pushed mean KL, KV at end and projected ms off the card).
    @Test(arguments: names)
    func theWholeEndCardIsOnScreenAt80x24(name: String) throws {
        let path = ReplayTests.demos.appendingPathComponent(name + DemoCatalog.fileSuffix).path
        let player = try ReplayTests.player(path, playback: true)
        try player.jump(to: player.totalSteps)
        let text = ReplayTests.screen(player, width: 80, height: 24)
        #expect(text.contains("End of session: its numbers, recomputed from the replay"), "\(text)")
        // The rows table where it fits, else the turned one: either way every line whole.
        let shown = [player.summary.table(), player.summary.table(compact: true)].first { $0.allSatisfy(text.contains) }
        #expect(shown != nil, "\(name): a line of the card is cut:\n\(text)")
    }

    /// The end card's numbers are the session's: mean KL per part from the recorded KL, and
    /// the parts as the session's reruns and projection changes cut it.
    @Test func theEndCardRecomputesTheCaptionsNumbers() throws {
        let path = ReplayTests.demos.appendingPathComponent("h2o-streaming-window-20pct" + DemoCatalog.fileSuffix).path
        let reader = try SessionReader(path: path)
        let summary = SessionSummary(header: reader.header, records: try reader.readAll())
        #expect(summary.varying == ["policy"])
        #expect(summary.parts.map(\.tokens) == [100, 100, 100])
        // The closing caption: "Mean KL to the full cache over 100 tokens each: H2O 0.037, StreamingLLM 0.033, window 0.044."
        #expect(summary.parts.map { String(format: "%.3f", $0.meanKL ?? -1) } == ["0.037", "0.033", "0.044"])
        let player = try ReplayTests.player(path, playback: true)
        try player.jump(to: player.totalSteps)
        let text = ReplayTests.screen(player, width: 100, height: 30)
        #expect(text.contains("End of session") && text.contains("0.0369") && text.contains("streaming:sinks=4,window=86"), "\(text)")
    }

    @Test func theProjectionDemoCutsPartsAtEachDevice() throws {
        let path = ReplayTests.demos.appendingPathComponent("a100-vs-h200-llama3.1-8b-32k" + DemoCatalog.fileSuffix).path
        let reader = try SessionReader(path: path)
        let summary = SessionSummary(header: reader.header, records: try reader.readAll())
        #expect(summary.varying == ["device"])
        #expect(summary.parts.count == 3 && summary.parts.allSatisfy { $0.projectedSeconds != nil })
        // The captions: 10.36, 7.90 and 3.36 ms per decode step on the A100 40GB, A100 80GB and H200.
        #expect(summary.table().dropFirst().map { $0.split(separator: " ").last.map(String.init) } == ["10.36", "7.90", "3.36"])
    }

    /// `?` on the replay screen: the replay's keys and the panels' definitions, scrolled to the end.
    @Test func theReplayHasAHelpWithTheDefinitions() throws {
        let player = try ReplayTests.player(playback: true)
        try player.jump(to: 10)
        player.helpKey(.character("?"), terminal: (80, 24))
        let first = ReplayTests.screen(player, width: 80, height: 24)
        #expect(first.contains("kvlab replay keys") && first.contains("jump to a step") && first.contains("more: ↓ PgDn"), "\(first)")
        player.helpKey(.end, terminal: (80, 24))
        let end = ReplayTests.screen(player, width: 80, height: 24)
        #expect(end.contains("a row joining layers") && end.contains("mean KL"), "\(end)")
        player.helpKey(.escape, terminal: (80, 24))
        #expect(!ReplayTests.screen(player, width: 80, height: 24).contains("kvlab replay keys"))
    }
}
