import KVLabTUI

/// What the Generation panel shows: the stream, each token tinted by its position's KV state,
/// scrolled back some lines.
struct GenerationView {
    var stream: [StreamPiece]
    /// The KV map that tints tokens (nil before a snapshot: every token kept).
    var map: KVMapSnapshot?
    var scrollback: Int

    init(_ state: AppState) {
        stream = state.stream
        map = state.snapshot?.map
        scrollback = state.scrollback
    }

    /// The stream's tail as a paragraph, each token in its KV state's colour, wrapped at word
    /// boundaries and scrolled back `scrollback` rows. Only the tail can be visible: pieces are
    /// taken from the end until they hold `characters`.
    func paragraph(characters: Int) -> Paragraph {
        var first = stream.count, count = 0
        while first > 0, count <= characters {
            first -= 1
            count += stream[first].text.count
        }
        let spans = stream[first...].map { piece in
            Span(piece.text, style: piece.position.map { Self.style(map?.tokenState(position: $0) ?? .kept) } ?? .role(.text, .bold))
        }
        return Paragraph(spans: spans, wrap: .word, scroll: .bottom(scrollback))
    }

    static func style(_ kv: KVCellState) -> Style {
        switch kv.holding {
        case .evicted: .role(.kvEvicted, .dim)
        case .quantized: .role(.kvQuantized)
        default: .role(.kvKept)
        }
    }
}

/// The Generation panel: the generated text, with a legend of the token tints.
struct GenerationPanel {
    var view: GenerationView
    var glyphs: GlyphSet

    func render(area: Rect, buffer: inout Buffer) {
        let legend = Line([Span("kept", style: .role(.kvKept)), Span(" quantized", style: .role(.kvQuantized)),
                           Span(" evicted", style: .role(.kvEvicted))])
        let frame = WorkbenchScreen.block("Generation", right: legend, glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        if view.stream.isEmpty {
            buffer.put(Line("Press \(Keymap.key(for: .editPrompt)), type a prompt, Enter: the model generates here.", style: .role(.dimText)),
                       row: inner.row(0), glyphs: glyphs)
            return
        }
        // Wrapping at words leaves rows short: twice the characters of the rows shown is plenty.
        view.paragraph(characters: 2 * inner.width * (inner.height + view.scrollback + 1)).render(area: inner, buffer: &buffer)
        if view.scrollback > 0 {
            buffer.put(Line("↑ \(view.scrollback) lines back (\(Keymap.key(for: .scroll(up: false))))", style: .role(.warning), alignment: .right),
                       row: inner.row(inner.height - 1), glyphs: glyphs)
        }
    }
}
