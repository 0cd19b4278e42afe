@testable import KVLabApp
@testable import KVLabEngine
import KVLabMethods
@testable import KVLabRun
import KVLabTUI
import Testing

/// Issue 16's quality panel: numbers the method cannot flatter by choosing its own tokens, a
/// divergence counted in the current sequence, and definitions reachable from the panel.
@Suite struct QualityHonestyTests {
    /// A token at `position`, the `step`-th of the session, compared with the ghost.
    static func token(step: Int, position: Int, agrees: Bool, kl: Double, deltaNLL: Double) -> TokenMetrics {
        let report = StepReport(phase: .decode, position: position, tokenCount: 1, token: 1, top: TopToken(id: 1, logProbability: 0),
                                entropy: 0, timings: StepTimings(), ledger: IOLedger(), cache: KVResidency(), cacheEntries: 0)
        return TokenMetrics(step: step, token: 1, text: "x", report: report, nll: 1,
                            ghost: GhostComparison(kl: kl, top1Agrees: agrees, ghostTop: 1, ghostNLL: 1, deltaNLL: deltaNLL, massKept: 0.5))
    }

    /// Greedy decoding picks the run's own most likely token, so its ΔNLL against the ghost is
    /// negative even when the method loses information (issue: −0.118 nats/token with 12% of the
    /// entries kept). The panel shows KL and top-1 on the same context instead: never negative.
    @Test func thePanelShowsNoSelfChosenDeltaNLL() {
        var state = PanelViewTests.state(PanelViewTests.snapshot(RunSettings()))
        state.ghost = true
        for step in 0..<4 { state.totals.add(Self.token(step: step, position: 10 + step, agrees: step != 2, kl: 0.1, deltaNLL: -0.12), compareStep: nil) }
        let view = QualityView(state)
        #expect(abs((view.meanKL ?? 0) - 0.1) < 1e-12)
        var buffer = Buffer(width: 50, height: 8)
        QualityPanel(view: view, glyphs: .unicode).render(area: buffer.area, buffer: &buffer)
        let text = buffer.textLines.joined(separator: "\n")
        #expect(!text.contains("ΔNLL"), "\(text)")
        #expect(!text.contains("-0.12") && !text.contains("−0.12"), "\(text)")
        #expect(text.contains("mean KL 0.1000 top-1 75.0% of 4"), "\(text)")
        #expect(text.contains("attention mass read 50.0%"), "\(text)")
        #expect(text.contains("on the run's own text · ? defines"), "the panel says what it measures on and where the definitions are")
    }

    /// The first divergence is the sequence's: its position (as the KV map numbers them) and how
    /// many tokens of this sequence came before it, not the session's step count (issue: after
    /// `R`, "positions 0–271" beside "first divergence at token 282").
    @Test func theFirstDivergenceIsCountedInTheCurrentSequence() {
        var totals = RunTotals()
        totals.add(Self.token(step: 280, position: 260, agrees: true, kl: 0, deltaNLL: 0), compareStep: nil)
        totals.add(Self.token(step: 281, position: 261, agrees: true, kl: 0, deltaNLL: 0), compareStep: nil)
        totals.add(Self.token(step: 282, position: 262, agrees: false, kl: 0.3, deltaNLL: 0.2), compareStep: nil)
        #expect(totals.ghost.firstDivergence == RunTotals.Divergence(position: 262, generated: 2))
    }

    @Test func everyNumberOfThePanelHasADefinitionInTheHelp() {
        let definitions = QualityPanel.definitions.rows.map(\.keys)
        #expect(definitions == ["KL", "mean KL", "top-1", "diverged", "mass read", "own text", "B vs A"])
        let help = WorkbenchScreen.help(glyphs: .unicode)
        #expect(help.sections.contains(QualityPanel.definitions))
        // One line each at 80 columns: the key column and the summary fit the overlay's 76.
        let keyWidth = help.sections.flatMap(\.rows).map { CharacterWidth.of($0.keys) }.max() ?? 0
        for row in help.sections.flatMap(\.rows) { #expect(keyWidth + 2 + CharacterWidth.of(row.summary) <= 76, "\(row.summary)") }
    }
}
