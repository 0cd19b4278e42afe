import Foundation

/// A full frame that uses every widget with fixed sample data, laid out like the workbench sketch
/// (panels with shared borders): the frame the render benchmark times and the layout snapshots
/// compare. Its numbers are sample data, not engine output.
public struct WidgetGallery: Sendable {
    /// The glyphs drawn with.
    public var glyphs: GlyphSet
    /// Bars and maps told apart by glyph rather than colour (mono, ASCII).
    public var patterned: Bool
    /// Shifts the histories and the KV map, so successive frames differ as live ones do (the data
    /// keeps its size: every frame costs the same).
    public var step: Int
    /// Whether the help overlay is open.
    public var showsHelp: Bool
    /// The keys the footer hints at (by action name) and the help overlay lists.
    public var keys: KeyTable<String>

    /// A gallery frame drawn with `glyphs`.
    public init(glyphs: GlyphSet = .unicode, patterned: Bool = false, step: Int = 0, showsHelp: Bool = false,
                keys: KeyTable<String> = WidgetGallery.keyTable) {
        self.glyphs = glyphs
        self.patterned = patterned
        self.step = step
        self.showsHelp = showsHelp
        self.keys = keys
    }

    /// The sample key table of the workbench's kind.
    public static let keyTable = KeyTable<String>([
        KeyBinding([.character("?")], "show or hide this help", group: "General", action: "help"),
        KeyBinding([.character(" ")], "pause or resume generation", group: "General", action: "pause"),
        KeyBinding([.character("q"), .control("c")], "quit", group: "General", action: "quit"),
        KeyBinding([.character("e"), .character("E")], "next / previous eviction policy", group: "KV cache", action: "evict"),
        KeyBinding([.character("["), .character("]")], "budget down / up", group: "KV cache", action: "budget"),
        KeyBinding([.character("b"), .character("B")], "KV bits down / up", group: "KV cache", action: "bits"),
        KeyBinding([.character("s")], "next sparse attention mode", group: "KV cache", action: "sparse"),
        KeyBinding([.up, .down], "select a parameter", group: "Editor", action: "select"),
        KeyBinding([.left, .right], "change the selected parameter", group: "Editor", action: "change"),
    ])

    static let passage = """
        ROMEO: But, soft! what light through yonder window breaks? It is the east, and Juliet is the sun. \
        Arise, fair sun, and kill the envious moon, Who is already sick and pale with grief, That thou her \
        maid art far more fair than she.
        JULIET: O Romeo, Romeo! wherefore art thou Romeo? Deny thy father and refuse thy name.
        """
    /// Tokens two columns wide, shown when the glyph set is Unicode.
    static let wideLine = "(wide tokens: 月光 and 🌙)"

    private var unicode: Bool { glyphs.isUnicode }

    /// Text in the glyph set's alphabet.
    private func text(_ unicodeText: String, _ asciiText: String) -> String { unicode ? unicodeText : asciiText }

    /// Draws the whole frame over `buffer`.
    public func render(into buffer: inout Buffer) {
        buffer.reset()
        let screen = buffer.area
        let body = Rect(x: 0, y: 0, width: screen.width, height: screen.height - 1)
        let bands = Layout(.vertical, [.fill(3), .fill(2), .length(6)], spacing: -1).split(body)
        let top = Layout(.horizontal, [.percentage(55), .fill(1)], spacing: -1).split(bands[0])
        let middle = Layout(.horizontal, [.percentage(55), .fill(1)], spacing: -1).split(bands[1])
        let bottom = Layout(.horizontal, [.ratio(1, 3), .ratio(1, 3), .fill(1)], spacing: -1).split(bands[2])

        generation(top[0], &buffer)
        knobs(top[1], &buffer)
        kvMap(middle[0], &buffer)
        quality(middle[1], &buffer)
        memory(bottom[0], &buffer)
        traffic(bottom[1], &buffer)
        latency(bottom[2], &buffer)
        footer(screen.row(screen.height - 1), &buffer)
        if showsHelp { HelpOverlay(table: keys, glyphs: glyphs).render(area: screen, buffer: &buffer) }
    }

    private func panel(_ title: String, _ area: Rect, _ buffer: inout Buffer, right: Line? = nil) -> Rect {
        var block = Block(title: title, glyphs: glyphs)
        if let right { block.titles.append(Block.Title(right)) }
        block.render(area: area, buffer: &buffer)
        return block.inner(area)
    }

    private func generation(_ area: Rect, _ buffer: inout Buffer) {
        let inner = panel("Generation", area, &buffer, right: Line([Span(text("● ", "* "), style: .role(.error)), Span("REC 00:42", style: .role(.dimText))], alignment: .right))
        var spans: [Span] = []
        var index = 0
        for (lineIndex, line) in (Self.passage + (unicode ? "\n" + Self.wideLine : "")).split(separator: "\n").enumerated() {
            if lineIndex > 0 { spans.append(Span("\n")) }
            for (wordIndex, word) in line.split(separator: " ").enumerated() {
                let role: ThemeRole = index % 13 == 0 ? .kvEvicted : index % 7 == 3 ? .kvQuantized : index % 17 == 5 ? .kvRetrieved : .kvKept
                spans.append(Span((wordIndex > 0 ? " " : "") + word, style: .role(role)))
                index += 1
            }
        }
        Paragraph(spans: spans, scroll: .bottom(0)).render(area: inner, buffer: &buffer)
    }

    private func knobs(_ area: Rect, _ buffer: inout Buffer) {
        let inner = panel("Knobs", area, &buffer)
        let rows = [
            ("evict", "h2o:heavy=64,recent=64", "e/E [ ]"),
            ("kv", "kivi:bits=2,group=32,residual=128", "b/B"),
            ("sparse", "quest:page=16,budget=128", "s"),
            ("weights", "q8_0  kernel tiled  SRAM 228 KiB", "w a"),
        ].map { key, value, keys in
            KeyValueTable.Row(Line(key, style: .role(.dimText)), Line([Span(value), Span("  " + keys, style: .role(.key))]))
        }
        KeyValueTable(rows, glyphs: glyphs).render(area: inner, buffer: &buffer)
    }

    private func kvMap(_ area: Rect, _ buffer: inout Buffer) {
        let inner = panel(text("KV map: layer × position", "KV map: layer x position"), area, &buffer)
        let kept = glyphs.shades[4], quantized = glyphs.shades[3], retrieved = glyphs.shades[2]
        let evicted = text("·", ".")
        let positions = 240
        var rows: [[HeatMap.Entry]] = (0..<6).map { layer in
            (0..<positions).map { column in
                let age = positions - column, position = column + step
                if column < 4 || age <= 32 { return .mark(kept, .role(.kvKept)) }
                if (position * 31 + layer * 17) % 5 == 0 { return .mark(kept, .role(.kvKept)) }
                if (position + layer) % 9 == 0 { return .mark(retrieved, .role(.kvRetrieved)) }
                return age < 64 + layer * 8 ? .mark(quantized, .role(.kvQuantized)) : .mark(evicted, .role(.kvEvicted))
            }
        }
        rows.append((step..<(step + positions)).map { .level(0.5 + 0.5 * sin(Double($0) / 7)) })
        HeatMap(rows: rows, rowLabels: (0..<6).map { "L\($0)" } + ["score"], shaded: patterned, glyphs: glyphs)
            .render(area: inner, buffer: &buffer)
    }

    private func quality(_ area: Rect, _ buffer: inout Buffer) {
        let inner = panel("Quality vs full cache", area, &buffer)
        let parts = Layout(.vertical, [.length(2), .fill(1)]).split(inner)
        let kl = (step..<(step + 200)).map { (i: Int) -> Double in
            let x = Double(i)
            return 0.01 + 0.008 * sin(x / 5) + 0.004 * cos(x / 2.3)
        }
        Sparkline(kl, glyphs: glyphs).render(area: parts[0], buffer: &buffer)
        KeyValueTable([
            KeyValueTable.Row("KL", String(format: "%.3f", kl.last!)),
            KeyValueTable.Row(Line("top-1", style: .role(.dimText)), Line("98.2%", style: .role(.ok))),
            KeyValueTable.Row(text("ΔNLL", "dNLL"), "+0.021"),
            KeyValueTable.Row(Line("diverged", style: .role(.dimText)), Line("at token 311", style: .role(.warning))),
        ], glyphs: glyphs).render(area: parts[1], buffer: &buffer)
    }

    private func memory(_ area: Rect, _ buffer: inout Buffer) {
        let inner = panel("Memory hierarchy", area, &buffer)
        let tiers: [(String, [Double], Double, String)] = [
            ("SRAM", [96, 24, 8, 4], 228, "132/228 KiB"),
            ("L2", [22, 6, 2, 1], 50, "31/50 MiB"),
            ("HBM", [13.1, 2.6, 0.4, 0.3], 80, "16.4/80 GiB"),
            ("DRAM", [0, 0, 0, 0], 2048, "0 / 2 TiB"),
        ]
        let paints: [Paint] = [.role(.tierWeights), .role(.tierKVPayload), .role(.tierKVMetadata), .role(.tierActivations)]
        for (index, tier) in tiers.enumerated() where index < inner.height {
            let row = inner.row(index)
            let columns = Layout(.horizontal, [.length(5), .fill(1), .length(12)], spacing: 1).split(row)
            buffer.put(tier.0, x: columns[0].x, y: row.y, style: .role(.dimText), clip: columns[0])
            CapacityBar(segments: zip(tier.1, paints).map { CapacityBar.Segment($0, $1) }, capacity: tier.2, patterned: patterned, glyphs: glyphs)
                .render(area: columns[1], buffer: &buffer)
            buffer.put(Line(tier.3, alignment: .right), row: columns[2], glyphs: glyphs)
        }
    }

    private func traffic(_ area: Rect, _ buffer: inout Buffer) {
        let inner = panel("Traffic per token", area, &buffer)
        let parts = Layout(.vertical, [.length(1), .fill(1)]).split(inner)
        buffer.put(Line([Span(text("HBM→SRAM ", "HBM->SRAM "), style: .role(.dimText)), Span("W 13.1G ", style: .role(.seriesA)), Span("KV 0.41G", style: .role(.seriesB))]),
                   row: parts[0], glyphs: glyphs)
        let weights = (step..<(step + 400)).map { 13 + sin(Double($0) / 9) }
        let kv = (step..<(step + 400)).map { 4 + 3 * Double($0 % 97) / 97 }
        LineGraph(series: [LineGraph.Series(weights, style: .role(.seriesA)), LineGraph.Series(kv, style: .role(.seriesB))],
                  range: 0...15, glyphs: glyphs).render(area: parts[1], buffer: &buffer)
    }

    private func latency(_ area: Rect, _ buffer: inout Buffer) {
        let inner = panel("Latency", area, &buffer)
        let parts = Layout(.vertical, [.length(2), .fill(1)]).split(inner)
        let history = (step..<(step + 300)).map { (i: Int) -> Double in
            let spike = i % 23 == 0 ? 0.7 : 0
            return 1.2 + 0.3 * sin(Double(i) / 3) + spike
        }
        Sparkline(history, glyphs: glyphs).render(area: parts[0], buffer: &buffer)
        KeyValueTable([
            KeyValueTable.Row("here", String(format: "%.2f ms  p50 1.2 p99 1.9", history.last!)),
            KeyValueTable.Row("proj.", "4.93 ms (H100, Llama-3-8B)"),
        ], glyphs: glyphs).render(area: parts[1], buffer: &buffer)
    }

    private func footer(_ row: Rect, _ buffer: inout Buffer) {
        var spans: [Span] = [" "]
        for binding in keys.bindings.prefix(7) {
            spans.append(Span(binding.label(unicode: unicode), style: .role(.key)))
            spans.append(Span(" " + binding.action + "  ", style: .role(.dimText)))
        }
        buffer.put(Line(spans), row: row, glyphs: glyphs)
    }
}
