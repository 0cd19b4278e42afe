import KVLabFoundation
import KVLabTUI

/// What the Traffic panel shows: the last token's bytes per link, A against B in compare mode,
/// the projected arithmetic intensity against the device's ridge, and the traffic history.
struct TrafficView {
    /// The last token's bytes per link.
    struct Links: Equatable {
        var weightsRead: UInt64
        var kvRead: UInt64
        /// HBM→SRAM bytes that are neither weights nor KV (activations, scores).
        var otherRead: UInt64
        var written: UInt64
        var onChip: UInt64
        var fetched: UInt64
    }

    /// The projected decode step's arithmetic intensity (FLOP per byte) and the device's ridge point.
    struct Roofline: Equatable {
        var intensity: Double
        var ridge: Double
        var memoryBound: Bool { intensity < ridge }
    }

    /// Nil before the first token.
    var links: Links?
    /// HBM→SRAM bytes of A's and B's last step, in compare mode.
    var compare: (a: UInt64, b: UInt64)?
    var roofline: Roofline?
    /// HBM traffic per token.
    var history: [Double]

    init(_ state: AppState) {
        history = state.totals.traffic.values
        if let projection = state.snapshot?.projection {
            let decode = projection.decode
            let device = projection.setup.device
            roofline = Roofline(intensity: decode.bytes > 0 ? decode.flops / decode.bytes : 0,
                                ridge: device.effectivePeak(.fp16) / max(device.effectiveHBMBandwidth, 1))
        }
        guard let ledger = state.totals.lastToken?.report.ledger else { return }
        let kvRead = ledger.bytes(.keys, .hbmToSRAM) + ledger.bytes(.values, .hbmToSRAM)
        links = Links(weightsRead: ledger.bytes(.weights, .hbmToSRAM), kvRead: kvRead,
                      otherRead: ledger.total(.hbmToSRAM) - ledger.bytes(.weights, .hbmToSRAM) - kvRead, written: ledger.total(.sramToHBM),
                      onChip: ledger.total(.sram), fetched: ledger.total(.dramToHBM))
        if let b = state.totals.compare.lastStep?.report.ledger { compare = (ledger.total(.hbmToSRAM), b.total(.hbmToSRAM)) }
    }
}

/// The Traffic per token panel.
struct TrafficPanel {
    var view: TrafficView
    var glyphs: GlyphSet

    func render(area: Rect, buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Traffic per token", glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        guard let links = view.links else {
            buffer.put(Line("bytes moved per link, per token", style: .role(.dimText)), row: inner.row(0), glyphs: glyphs)
            return
        }
        func bytes(_ value: UInt64) -> String { formatBytes(Double(value), .compact) }
        let lines: [Line] = [
            Line([Span("HBM→SRAM ", style: .role(.dimText)), Span("W ", style: .role(.tierWeights)), Span(bytes(links.weightsRead)),
                  Span(" KV ", style: .role(.tierKVPayload)), Span(bytes(links.kvRead)), Span(" other ", style: .role(.dimText)), Span(bytes(links.otherRead))]),
            Line([Span("SRAM→HBM ", style: .role(.dimText)), Span(bytes(links.written)),
                  Span("  on chip ", style: .role(.dimText)), Span(bytes(links.onChip))]),
            Line([Span("DRAM→HBM ", style: .role(.dimText)), Span(bytes(links.fetched)),
                  Span(links.fetched == 0 ? " (no host fetches)" : " fetched", style: .role(.dimText))]),
        ]
        var y = 0
        if let (aTotal, bTotal) = view.compare {
            let sign = bTotal < aTotal ? "−" : "+"
            let change = bTotal < aTotal ? aTotal - bTotal : bTotal - aTotal
            buffer.put(Line([Span("HBM→SRAM ", style: .role(.dimText)), Span("A ", style: .role(.seriesA, .bold)), Span(bytes(aTotal)),
                             Span("  B ", style: .role(.seriesB, .bold)), Span(bytes(bTotal)), Span(" Δ \(sign)\(bytes(change))", style: .role(.highlight))]),
                       row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        for line in lines where y < inner.height {
            buffer.put(line, row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        if y < inner.height, let roofline = view.roofline {
            buffer.put(Line([Span("proj. AI ", style: .role(.dimText)), Span(String(format: "%.2f", roofline.intensity), style: .role(.highlight)),
                             Span(String(format: " F/B  ridge %.0f", roofline.ridge), style: .role(.dimText)),
                             Span(roofline.memoryBound ? " memory-bound" : " compute-bound", style: .role(roofline.memoryBound ? .warning : .ok))]),
                       row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        if y < inner.height {
            LineGraph(series: [LineGraph.Series(view.history, style: .role(.seriesA))], glyphs: glyphs)
                .render(area: Rect(x: inner.x, y: inner.y + y, width: inner.width, height: inner.height - y), buffer: &buffer)
        }
    }
}
