import KVLabTUI

/// What the bottom row shows: the open editor, else the status message, else the key hints.
enum BottomLineView {
    case editor(LineEditor)
    case status(text: String, isError: Bool)
    case hints([(key: String, label: String)])

    init(_ state: AppState) {
        if let editor = state.editor {
            self = .editor(editor)
        } else if let status = state.status {
            self = .status(text: status.text, isError: status.isError)
        } else {
            self = .hints(state.pareto == nil ? Keymap.hints : Keymap.paretoHints)
        }
    }
}

/// The bottom row: the line editor with its cursor, the status message, or the key hints.
struct BottomLine {
    var view: BottomLineView
    var glyphs: GlyphSet

    func render(row: Rect, buffer: inout Buffer) {
        switch view {
        case .editor(let editor):
            let label = editor.purpose == .prompt ? "prompt> " : "method> "
            let hint = editor.purpose == .prompt ? "  Enter runs · Esc cancels · ↑↓ history"
                : editor.selected ? "  type to replace · ← → edit · Enter applies · Esc cancels" : "  Enter applies · Esc cancels"
            let text = Span(editor.string, style: editor.selected ? Style(attributes: .reverse) : .plain)
            let end = buffer.put(Line([Span(label, style: .role(.key, .bold)), text]), x: row.x, y: row.y, clip: row)
            let cursorX = row.x + CharacterWidth.of(label) + CharacterWidth.of(String(editor.text.prefix(editor.cursor)))
            if cursorX < row.right {
                buffer.setStyle(Rect(x: cursorX, y: row.y, width: 1, height: 1), Style(attributes: .reverse))
            }
            buffer.put(hint, x: max(end, cursorX + 1), y: row.y, style: .role(.dimText), clip: row)
        case .status(let text, let isError):
            buffer.put(Line(" " + text, style: .role(isError ? .error : .highlight)), row: row, glyphs: glyphs)
        case .hints(let hints):
            var spans: [Span] = []
            for hint in hints {
                spans.append(Span(" " + hint.key, style: .role(.key, .bold)))
                spans.append(Span(" " + hint.label, style: .role(.dimText)))
            }
            buffer.put(Line(spans), row: row, glyphs: glyphs)
        }
    }
}
