import Foundation
import KVLabRun
import KVLabTUI

/// What the Quality panel shows: the run against the full-cache ghost, and B against A in
/// compare mode, as means over the tokens compared.
struct QualityView {
    /// B against A (and the ghost), in compare mode.
    struct Compare: Equatable {
        /// Tokens B followed.
        var tokens: Int
        /// Mean ΔNLL of B against A, and mean KL(A ‖ B); nil before B's first token.
        var meanDeltaNLL: Double?
        var meanKL: Double?
        /// Mean KL(ghost ‖ B) over the tokens the ghost ran for; nil when it ran for none.
        var meanGhostKL: Double?
    }

    var ghostOn: Bool
    /// Tokens compared with the ghost.
    var tokens: Int
    /// The last token's comparison.
    var last: GhostComparison?
    /// KL(ghost ‖ run) per token.
    var kl: [Double]
    /// Share of tokens whose top-1 agreed, and mean KL(ghost ‖ run); nil before the first
    /// compared token. Both compare the two distributions on the same context, so the run cannot
    /// improve them by choosing its own tokens (its ΔNLL on those could: greedy picks its own top-1).
    var top1Share: Double?
    var meanKL: Double?
    /// The first divergence of this sequence (a rerun starts again).
    var firstDivergence: RunTotals.Divergence?
    var compare: Compare?

    init(_ state: AppState) {
        let ghost = state.totals.ghost
        ghostOn = state.ghost
        tokens = ghost.tokens
        last = ghost.last
        kl = state.totals.kl.values
        top1Share = tokens > 0 ? Double(ghost.top1Agreements) / Double(tokens) : nil
        meanKL = tokens > 0 ? ghost.klSum / Double(tokens) : nil
        firstDivergence = ghost.firstDivergence
        if state.compare != nil {
            let b = state.totals.compare, n = Double(b.tokens)
            compare = Compare(tokens: b.tokens, meanDeltaNLL: b.tokens > 0 ? b.deltaNLLSum / n : nil, meanKL: b.tokens > 0 ? b.klSum / n : nil,
                              meanGhostKL: b.ghostKL.tokens > 0 ? b.ghostKL.sum / Double(b.ghostKL.tokens) : nil)
        }
    }
}

/// The Quality panel: KL with its sparkline, mean KL and top-1 agreement, the first divergence
/// of this sequence, the attention mass of the entries read, B's line in compare mode, and what
/// the numbers are measured on (the help overlay defines each, `QualityPanel.definitions`).
struct QualityPanel {
    var view: QualityView
    var glyphs: GlyphSet

    /// One line per number the panel shows, for the help overlay.
    static let definitions = HelpSection(title: "Quality panel (ghost: the full fp32 cache on the same tokens)", rows: [
        HelpSection.Row(keys: "KL", summary: "KL(ghost ‖ run) of this step's next-token distributions"),
        HelpSection.Row(keys: "mean KL", summary: "mean KL this run: the expected ΔNLL of the ghost's own tokens"),
        HelpSection.Row(keys: "top-1", summary: "steps where run and ghost rank the same token first"),
        HelpSection.Row(keys: "diverged", summary: "first position this run whose top-1 differed (R resets it)"),
        HelpSection.Row(keys: "mass read", summary: "ghost's attention mass on the entries this step read"),
        HelpSection.Row(keys: "own text", summary: "both score the run's own tokens; NLL of a text: kvlab eval"),
        HelpSection.Row(keys: "B vs A", summary: "compare: B's ΔNLL and KL(A ‖ B) on A's tokens (B cannot pick)"),
    ])

    func render(area: Rect, buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Quality vs full cache", right: Line(view.ghostOn ? "ghost on" : "ghost off", style: .role(view.ghostOn ? .ok : .dimText)),
                                          glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        guard view.ghostOn || view.tokens > 0 else {
            buffer.put(Line("\(Keymap.key(for: .toggleGhost)) runs the full-cache fp32 ghost in lockstep:", style: .role(.dimText)),
                       row: inner.row(0), glyphs: glyphs)
            buffer.put(compareLine ?? Line("KL, top-1 agreement, attention mass read", style: .role(.dimText)),
                       row: inner.row(1), glyphs: glyphs)
            return
        }
        let klText = view.last.map { String(format: "%.4f", $0.kl) } ?? "–"
        let head = buffer.put(Line([Span("KL ", style: .role(.dimText)), Span(klText, style: .role(.highlight)), Span(" ")]), x: inner.x, y: inner.y, clip: inner)
        Sparkline(view.kl, glyphs: glyphs).render(area: Rect(x: head, y: inner.y, width: max(inner.right - head, 0), height: 1), buffer: &buffer)
        let top1 = view.top1Share.map { String(format: "%.1f%%", 100 * $0) } ?? "–"
        let meanKL = view.meanKL.map { String(format: "%.4f", $0) } ?? "–"
        let divergence = view.firstDivergence.map {
            Line([Span("diverged: position ", style: .role(.dimText)), Span("\($0.position)", style: .role(.warning)),
                  Span(" (token \($0.generated + 1))", style: .role(.dimText))])
        } ?? Line("no top-1 divergence this run", style: .role(.ok))
        let lines: [Line] = [
            Line([Span("mean KL ", style: .role(.dimText)), Span(meanKL, style: .role(.highlight)), Span(" top-1 ", style: .role(.dimText)),
                  Span(top1, style: .role(.highlight)), Span(" of \(view.tokens)", style: .role(.dimText))]),
        ] + (compareLine.map { [$0] } ?? []) + [
            divergence,
            Line([Span("attention mass read ", style: .role(.dimText)),
                  Span(view.last?.massKept.map { String(format: "%.1f%%", 100 * $0) } ?? "–", style: .role(.highlight))]),
            Line("on the run's own text · \(Keymap.key(for: .toggleHelp)) defines", style: .role(.dimText)),
        ]
        for (index, line) in lines.enumerated() where index + 1 < inner.height {
            buffer.put(line, row: inner.row(index + 1), glyphs: glyphs)
        }
    }

    /// B against A (and the ghost) in compare mode: mean ΔNLL and KL over the tokens B followed.
    private var compareLine: Line? {
        guard let b = view.compare else { return nil }
        guard let deltaNLL = b.meanDeltaNLL, let kl = b.meanKL else {
            return Line([Span("B ", style: .role(.seriesB, .bold)), Span("vs A: no tokens yet", style: .role(.dimText))])
        }
        var spans = [Span("B ", style: .role(.seriesB, .bold)), Span("vs A ΔNLL ", style: .role(.dimText)),
                     Span(String(format: "%+.4f", deltaNLL), style: .role(.highlight)),
                     Span(" KL ", style: .role(.dimText)), Span(String(format: "%.4f", kl), style: .role(.highlight))]
        if let ghostKL = b.meanGhostKL {
            spans += [Span(" vs ghost KL ", style: .role(.dimText)), Span(String(format: "%.4f", ghostKL), style: .role(.highlight))]
        }
        spans.append(Span(" over \(b.tokens)", style: .role(.dimText)))
        return Line(spans)
    }
}
