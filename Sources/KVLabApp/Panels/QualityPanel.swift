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
    /// Share of tokens whose top-1 agreed, and mean ΔNLL; nil before the first compared token.
    var top1Share: Double?
    var meanDeltaNLL: Double?
    var firstDivergence: Int?
    var compare: Compare?

    init(_ state: AppState) {
        let ghost = state.totals.ghost
        ghostOn = state.ghost
        tokens = ghost.tokens
        last = ghost.last
        kl = state.totals.kl.values
        top1Share = tokens > 0 ? Double(ghost.top1Agreements) / Double(tokens) : nil
        meanDeltaNLL = tokens > 0 ? ghost.deltaNLLSum / Double(tokens) : nil
        firstDivergence = ghost.firstDivergence
        if state.compare != nil {
            let b = state.totals.compare, n = Double(b.tokens)
            compare = Compare(tokens: b.tokens, meanDeltaNLL: b.tokens > 0 ? b.deltaNLLSum / n : nil, meanKL: b.tokens > 0 ? b.klSum / n : nil,
                              meanGhostKL: b.ghostKL.tokens > 0 ? b.ghostKL.sum / Double(b.ghostKL.tokens) : nil)
        }
    }
}

/// The Quality panel: KL with its sparkline, top-1 agreement, ΔNLL, first divergence, attention
/// mass kept, and B's line in compare mode.
struct QualityPanel {
    var view: QualityView
    var glyphs: GlyphSet

    func render(area: Rect, buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Quality vs full cache", right: Line(view.ghostOn ? "ghost on" : "ghost off", style: .role(view.ghostOn ? .ok : .dimText)),
                                          glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        guard view.ghostOn || view.tokens > 0 else {
            buffer.put(Line("\(Keymap.key(for: .toggleGhost)) runs the full-cache fp32 ghost in lockstep:", style: .role(.dimText)),
                       row: inner.row(0), glyphs: glyphs)
            buffer.put(compareLine ?? Line("KL, top-1 agreement, ΔNLL, attention mass kept", style: .role(.dimText)),
                       row: inner.row(1), glyphs: glyphs)
            return
        }
        let klText = view.last.map { String(format: "%.4f", $0.kl) } ?? "–"
        let head = buffer.put(Line([Span("KL ", style: .role(.dimText)), Span(klText, style: .role(.highlight)), Span(" ")]), x: inner.x, y: inner.y, clip: inner)
        Sparkline(view.kl, glyphs: glyphs).render(area: Rect(x: head, y: inner.y, width: max(inner.right - head, 0), height: 1), buffer: &buffer)
        let top1 = view.top1Share.map { String(format: "%.1f%%", 100 * $0) } ?? "–"
        let delta = view.meanDeltaNLL.map { String(format: "%+.4f", $0) } ?? "–"
        let lines: [Line] = [
            Line([Span("top-1 ", style: .role(.dimText)), Span(top1, style: .role(.highlight)), Span("  ΔNLL ", style: .role(.dimText)),
                  Span(delta, style: .role(.highlight)), Span(" nats/token over \(view.tokens)", style: .role(.dimText))]),
        ] + (compareLine.map { [$0] } ?? []) + [
            Line(view.firstDivergence.map { "first divergence at token \($0)" } ?? "no top-1 divergence yet",
                 style: .role(view.firstDivergence == nil ? .ok : .warning)),
            Line([Span("attention mass kept ", style: .role(.dimText)),
                  Span(view.last?.massKept.map { String(format: "%.1f%%", 100 * $0) } ?? "–", style: .role(.highlight))]),
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
