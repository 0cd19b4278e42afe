import Foundation
@testable import KVLabApp
import KVLabHardware
import KVLabMethods
import KVLabRun
import KVLabSession
import KVLabTUI
import Testing

/// Screen details a workshop run found: one default projection within its target's context, the
/// end card's prompt traffic, the playback map, compare's wait, the replay's size message, the
/// Pareto view's units and key, the method editor's prefilled text.
@Suite struct ResidualScreenTests {
    @Test func theDefaultProjectionIsWithinTheDefaultTargetsContext() throws {
        let target = try HardwareCatalog.target(ProjectionSettings.defaultTarget)
        #expect(ProjectionSettings.defaultContext <= target.maxContext)
        #expect(EngineCore.projectedContext == ProjectionSettings.defaultContext)
        #expect(ProjectionSettings() == ProjectionSettings(device: "h100-sxm", target: "llama-3.1-8b", context: 32768))
    }

    /// naive-vs-tiled-sram's closing caption quotes the prompt pass's traffic per kernel: the card
    /// shows both halves of it, so tiling's reloads (in activations) are on the card too.
    @Test func theEndCardShowsThePromptReloadsTheCaptionQuotes() throws {
        let path = ReplayTests.demos.appendingPathComponent("naive-vs-tiled-sram" + DemoCatalog.fileSuffix).path
        let reader = try SessionReader(path: path)
        let summary = SessionSummary(header: reader.header, records: try reader.readAll())
        #expect(summary.varying == ["attention"])
        let table = summary.table(compact: true)
        #expect(table.contains { $0.hasPrefix("prompt K,V,S") } && table.contains { $0.hasPrefix("prompt act.") }, "\(table)")
        let mb = { (value: UInt64?) in String(format: "%.1f", Double(value ?? 0) / 1e6) }
        #expect(summary.parts.map { mb($0.prefillAttentionBytes) } == ["97.1", "9.7", "8.7", "8.5"])
        #expect(summary.parts.map { mb($0.prefillActivationBytes) } == ["43.9", "74.1", "49.3", "43.9"])
        // Attention in all, as the caption sums it: K, V, scores and statistics plus the reloads.
        let naive = summary.parts[0].prefillActivationBytes ?? 0
        #expect(summary.parts.map { mb(($0.prefillAttentionBytes ?? 0) + ($0.prefillActivationBytes ?? 0) - naive) } == ["97.1", "40.0", "14.2", "8.5"])
        let caption = try #require(try ReplayTests.captions(path).last?.text)
        for number in ["97.1 MB", "9.7 / 8.7 / 8.5 MB", "43.9 MB", "74.1 / 49.3 / 43.9 MB", "40.0 / 14.2 / 8.5 MB"] {
            #expect(caption.contains(number), "\(caption)")
        }
        let player = try ReplayTests.player(path, playback: true)
        try player.jump(to: player.totalSteps)
        let text = ReplayTests.screen(player, width: 80, height: 24)
        #expect(text.contains("prompt act.") && text.contains("74.1 MB"), "\(text)")
    }

    @Test func aPlaybackMapSaysWhyItIsEmpty() throws {
        let player = try ReplayTests.player(playback: true)
        try player.jump(to: 40)
        let text = ReplayTests.screen(player, width: 80, height: 24)
        #expect(text.contains("playback: sessions record no KV map"), "\(text)")
        #expect(!text.contains("positions 0–0"), "no positions claimed for a map it does not have:\n\(text)")
    }

    @Test func compareSaysWhatItWaitsFor() {
        let map = KVMapSnapshot(layers: 1, positions: 300, cells: Array(repeating: .kept, count: 300))
        var state = PanelViewTests.state(PanelViewTests.snapshot(RunSettings(), map: map))
        #expect(state.handle(.character("c")) == [.engine(.compare(true))])
        #expect(state.status?.text == "compare: building B from A's 300 tokens (teacher-forced; generation waits)…")
        var buffer = Buffer(width: 120, height: 40)
        WorkbenchScreen(state: state).render(into: &buffer)
        #expect(buffer.textLines.last?.contains("building B from A's 300 tokens") == true)
    }

    @Test func theReplaysTooSmallNamesTheTerminal() throws {
        let player = try ReplayTests.player(playback: true)
        try player.jump(to: 10)
        let text = ReplayTests.screen(player, width: 80, height: 17)
        #expect(text.contains("terminal too small: 80×17") && text.contains("needs at least 80×18"), "\(text)")
        let narrow = ReplayTests.screen(player, width: 70, height: 30)
        #expect(narrow.contains("terminal too small: 70×30"), "\(narrow)")
    }

    @Test func paretoLatencyTicksHaveTheirUnitAndTheHintLineItsKey() throws {
        let harness = try Harness()
        #expect(!harness.text(width: 160, height: 48).split(separator: "\n").last!.contains(" p pareto"))
        harness.state.pareto = ParetoViewTests.sweep()
        harness.state.status = nil
        #expect(harness.text(width: 160, height: 48).split(separator: "\n").last!.contains(" p pareto"))
        harness.press(.character("p"))
        harness.press(.character("p"))
        let screen = harness.text(width: 200, height: 50)
        #expect(screen.contains("Pareto: ΔNLL vs projected latency"))
        let axis = try #require(screen.split(separator: "\n").first { $0.contains("└") && $0.contains("┬") }
            .flatMap { row in screen.split(separator: "\n").drop { $0 != row }.dropFirst().first })
        #expect(axis.contains(" ms"), "tick labels: \(axis)")
    }

    @Test func theMethodEditorReplacesItsPrefilledText() throws {
        var state = PanelViewTests.state(PanelViewTests.snapshot(RunSettings()))
        _ = state.handle(.character(":"))
        #expect(state.editor?.string == "policy=full" && state.editor?.selected == true)
        for character in "kv=q8_0" { _ = state.handle(.character(character)) }
        #expect(state.editor?.string == "kv=q8_0", "typing replaces the selected text")
        _ = state.handle(.escape)
        _ = state.handle(.character(":"))
        _ = state.handle(.left)
        _ = state.handle(.end)
        for character in ",window=64" { _ = state.handle(.character(character)) }
        #expect(state.editor?.string == "policy=full,window=64", "a cursor key keeps the text for editing")
        _ = state.handle(.escape)
        _ = state.handle(.character(":"))
        _ = state.handle(.backspace)
        #expect(state.editor?.string == "")
    }
}
