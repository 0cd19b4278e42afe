/// Styled text, wrapped to its area and scrolled from the top or, for streams, from the bottom.
public struct Paragraph: Widget {
    /// How lines longer than the area continue.
    public enum Wrap: Hashable, Sendable {
        /// Cut at the right edge.
        case none
        /// Continue on the next row at any cluster.
        case character
        /// Continue on the next row at spaces; words longer than a row break anywhere.
        case word
    }

    /// Which rows are visible.
    public enum Scroll: Hashable, Sendable {
        /// Skip this many rows from the top.
        case top(Int)
        /// End this many rows above the last row (0 follows the end of a stream).
        case bottom(Int)
    }

    /// The text, line by line.
    public var lines: [Line]
    /// How long lines continue.
    public var wrap: Wrap
    /// Which rows are visible.
    public var scroll: Scroll
    /// Spaces a tab advances to (the next multiple).
    public var tabWidth: Int

    /// A paragraph of `lines`.
    public init(_ lines: [Line], wrap: Wrap = .word, scroll: Scroll = .top(0), tabWidth: Int = 4) {
        self.lines = lines
        self.wrap = wrap
        self.scroll = scroll
        self.tabWidth = max(tabWidth, 1)
    }

    /// A paragraph of spans that may contain line breaks (a generation stream, token by token).
    public init(spans: [Span], wrap: Wrap = .word, scroll: Scroll = .top(0)) {
        var lines: [Line] = [Line([])]
        for span in spans {
            var first = true
            for piece in span.text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
                if !first { lines.append(Line([])) }
                first = false
                if !piece.isEmpty { lines[lines.count - 1].spans.append(Span(String(piece), style: span.style)) }
            }
        }
        self.init(lines, wrap: wrap, scroll: scroll)
    }

    /// A cluster laid out on a row.
    struct Glyph {
        var symbol: String
        var width: Int
        var style: Style
        var isSpace: Bool { symbol == " " }
    }

    /// Rows the text takes at a width (for scroll limits and scrollbars).
    public func rowCount(width: Int) -> Int {
        lines.reduce(0) { $0 + rows(of: $1, width: width).count }
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        guard !area.isEmpty else { return }
        var visible: [(row: [Glyph], alignment: Alignment)] = []
        switch scroll {
        case .top(let skip):
            var skipped = 0
            outer: for line in lines {
                for row in rows(of: line, width: area.width) {
                    if skipped < max(skip, 0) { skipped += 1; continue }
                    visible.append((row, line.alignment))
                    if visible.count == area.height { break outer }
                }
            }
        case .bottom(let offset):
            // Lay out only as many lines, from the end, as the area and offset need.
            let needed = area.height + max(offset, 0)
            var reversed: [(row: [Glyph], alignment: Alignment)] = []
            for line in lines.reversed() {
                for row in rows(of: line, width: area.width).reversed() { reversed.append((row, line.alignment)) }
                if reversed.count >= needed { break }
            }
            let end = min(max(offset, 0), reversed.count)
            visible = reversed[end..<min(needed, reversed.count)].reversed()
        }
        for (index, entry) in visible.enumerated() {
            let width = entry.row.reduce(0) { $0 + $1.width }
            var x = area.x + (entry.alignment == .center ? (area.width - width) / 2 : entry.alignment == .right ? area.width - width : 0)
            for glyph in entry.row {
                x = buffer.putCluster(glyph.symbol, width: glyph.width, x: x, y: area.y + index, style: glyph.style, bounds: area)
            }
        }
    }

    /// The clusters of a line with their widths; tabs become spaces, controls U+FFFD, and
    /// zero-width clusters are dropped.
    func glyphs(of line: Line) -> [Glyph] {
        var glyphs: [Glyph] = []
        var column = 0
        for span in line.spans {
            for character in span.text {
                if character == "\t" {
                    let spaces = tabWidth - column % tabWidth
                    for _ in 0..<spaces { glyphs.append(Glyph(symbol: " ", width: 1, style: span.style)) }
                    column += spaces
                    continue
                }
                let control = CharacterWidth.isControl(character)
                let width = control ? 1 : CharacterWidth.of(character)
                guard width > 0 else { continue }
                glyphs.append(Glyph(symbol: control ? "\u{FFFD}" : String(character), width: width, style: span.style))
                column += width
            }
        }
        return glyphs
    }

    /// The rows a line wraps into at `width` (at least one, possibly empty).
    func rows(of line: Line, width: Int) -> [[Glyph]] {
        let glyphs = glyphs(of: line)
        guard wrap != .none, width > 0 else { return [glyphs] }
        var rows: [[Glyph]] = []
        var row: [Glyph] = [], rowWidth = 0
        func newRow() {
            while let last = row.last, last.isSpace { row.removeLast() }
            rows.append(row)
            row = []
            rowWidth = 0
        }
        func append(_ glyph: Glyph) {
            if rowWidth + glyph.width > width { newRow() }
            row.append(glyph)
            rowWidth += glyph.width
        }
        var start = 0
        while start < glyphs.count {
            var end = start + 1
            if wrap == .word { while end < glyphs.count && glyphs[end].isSpace == glyphs[start].isSpace { end += 1 } }
            let word = glyphs[start..<end]
            let wordWidth = word.reduce(0) { $0 + $1.width }
            if rowWidth + wordWidth <= width {
                row.append(contentsOf: word)
                rowWidth += wordWidth
            } else if wrap == .word && glyphs[start].isSpace {
                newRow()  // spaces at a break are dropped
            } else if wrap == .word && wordWidth <= width {
                newRow()
                row.append(contentsOf: word)
                rowWidth = wordWidth
            } else {
                if wrap == .word && rowWidth > 0 { newRow() }  // a word longer than a row starts its own
                for glyph in word { append(glyph) }
            }
            start = end
        }
        rows.append(row)
        return rows
    }
}
