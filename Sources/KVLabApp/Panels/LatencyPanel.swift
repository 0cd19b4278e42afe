import Foundation
import KVLabFoundation
import KVLabTUI

/// What the Latency panel shows: measured step times (and B's in compare mode), the prompt's
/// TTFT, and the projection's decode time and TTFT on device × target.
struct LatencyView {
    /// B's last step time and median, in compare mode.
    struct Compare: Equatable {
        var last: Double
        var p50: Double
    }

    /// The projected decode step and TTFT.
    struct Projected: Equatable {
        var decodeSeconds: Double
        var ttftSeconds: Double
        var context: Int
        var device: String
        var target: String
        /// Memory needed and the device's, when the batch does not fit it.
        var overflow: Overflow?
        /// The target's trained context, when the projected context passes it.
        var beyond: Int?
    }

    /// Bytes a projection needs beyond the device's memory.
    struct Overflow: Equatable {
        var used: Double
        var memory: Double
    }

    /// Measured step times (ms), oldest first.
    var history: History
    var compare: Compare?
    /// The sequence's prompt pass (ms).
    var ttft: Double?
    var projected: Projected?

    init(_ state: AppState) {
        history = state.totals.latency
        let b = state.totals.compare.latency
        if let last = b.values.last, let p50 = b.quantile(0.5) { compare = Compare(last: last, p50: p50) }
        ttft = state.totals.ttft
        if let projection = state.snapshot?.projection {
            let setup = projection.setup
            let capacity = projection.capacity
            projected = Projected(decodeSeconds: projection.decodeSeconds, ttftSeconds: projection.ttft, context: setup.context,
                                  device: setup.device.name, target: setup.target.name,
                                  overflow: capacity.fits ? nil : Overflow(used: capacity.used, memory: capacity.deviceMemory),
                                  beyond: setup.context > setup.target.maxContext ? setup.target.maxContext : nil)
        }
    }
}

/// The Latency panel.
struct LatencyPanel {
    var view: LatencyView
    var glyphs: GlyphSet

    func render(area: Rect, buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Latency", glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        var y = 0
        func line(_ line: Line) {
            guard y < inner.height else { return }
            buffer.put(line, row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        let history = view.history
        if let last = history.values.last, let p50 = history.quantile(0.5), let p99 = history.quantile(0.99) {
            let head = buffer.put(Line([Span("here ", style: .role(.dimText)), Span(String(format: "%.2f ms ", last), style: .role(.seriesA, .bold))]),
                                  x: inner.x, y: inner.y, clip: inner)
            Sparkline(history.values, glyphs: glyphs).render(area: Rect(x: head, y: inner.y, width: max(inner.right - head, 0), height: 1), buffer: &buffer)
            y = 1
            if let b = view.compare {
                line(Line([Span("B    ", style: .role(.dimText)), Span(String(format: "%.2f ms", b.last), style: .role(.seriesB, .bold)),
                           Span(String(format: " Δ %+.2f", b.last - last), style: .role(.highlight)),
                           Span(String(format: "  p50 %.2f Δ %+.2f", b.p50, b.p50 - p50), style: .role(.dimText))]))
            }
            line(Line([Span("p50 ", style: .role(.dimText)), Span(String(format: "%.2f", p50)), Span("  p99 ", style: .role(.dimText)),
                       Span(String(format: "%.2f ms", p99)), Span("  tok/s ", style: .role(.dimText)), Span(String(format: "%.0f", 1000 / max(p50, 1e-6)))]))
        } else {
            line(Line("here: no tokens yet", style: .role(.dimText)))
        }
        // The projection's limits before the rest, so a short panel still shows them.
        if let overflow = view.projected?.overflow {
            line(Line([Span("does not fit ", style: .role(.error, .bold)),
                       Span("\(formatBytes(overflow.used, .compact))/\(formatBytes(overflow.memory, .compact))", style: .role(.error))]))
        }
        if let trained = view.projected?.beyond {
            // Short where the panel is narrow (80 columns), so the figure stays visible.
            let words = inner.width >= 36 ? "beyond the target's context " : "beyond context "
            line(Line([Span(words, style: .role(.warning, .bold)), Span("(\(trained))", style: .role(.warning))]))
        }
        if let ttft = view.ttft { line(Line([Span("TTFT ", style: .role(.dimText)), Span(String(format: "%.1f ms", ttft)), Span(" (prompt pass)", style: .role(.dimText))])) }
        if let projected = view.projected {
            line(Line([Span("proj. ", style: .role(.dimText)), Span(String(format: "%.2f ms/token", projected.decodeSeconds * 1000), style: .role(.seriesB, .bold)),
                       Span(String(format: "  %.0f tok/s", 1 / max(projected.decodeSeconds, 1e-12)))]))
            line(Line([Span("TTFT ", style: .role(.dimText)), Span(String(format: "%.1f ms", projected.ttftSeconds * 1000)),
                       Span(" at \(projected.context) tokens", style: .role(.dimText))]))
            line(Line("\(projected.device) × \(projected.target)", style: .role(.dimText)))
        }
    }
}
