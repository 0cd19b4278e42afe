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

    /// The stream's last `rows` lines wrapped to `width`, each token in its KV state's colour.
    func lines(width: Int, rows: Int) -> [Line] {
        // Only the tail can be visible: wrap pieces from the end until they fill more than `rows` lines.
        let budget = width * (rows + 1)
        var first = stream.count, characters = 0
        while first > 0, characters <= budget {
            first -= 1
            characters += stream[first].text.count
        }
        var lines: [Line] = [Line([])], column = 0
        for piece in stream[first...] {
            let pieceStyle: Style = piece.position.map { position in Self.style(map?.tokenState(position: position) ?? .kept) } ?? .role(.text, .bold)
            var run = ""
            func flush() {
                if !run.isEmpty { lines[lines.count - 1].spans.append(Span(run, style: pieceStyle)); run = "" }
            }
            for character in piece.text {
                if character == "\n" {
                    flush()
                    lines.append(Line([]))
                    column = 0
                    continue
                }
                let characterWidth = CharacterWidth.of(character)
                if column + characterWidth > width {
                    flush()
                    lines.append(Line([]))
                    column = 0
                }
                run.append(character)
                column += characterWidth
            }
            flush()
        }
        return Array(lines.suffix(rows))
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
        let lines = view.lines(width: inner.width, rows: inner.height + view.scrollback)
        let end = max(lines.count - view.scrollback, 0)
        let shown = lines[max(end - inner.height, 0)..<end]
        for (index, line) in shown.enumerated() {
            buffer.put(line, x: inner.x, y: inner.y + index, clip: inner)
        }
        if view.scrollback > 0 {
            buffer.put(Line("↑ \(view.scrollback) lines back (\(Keymap.key(for: .scroll(up: false))))", style: .role(.warning), alignment: .right),
                       row: inner.row(inner.height - 1), glyphs: glyphs)
        }
    }
}
