/// A run of text in one style.
public struct Span: Hashable, Sendable, ExpressibleByStringLiteral {
    /// The text (no line breaks inside a line).
    public var text: String
    /// How it is drawn.
    public var style: Style

    /// A span of `text` in `style`.
    public init(_ text: String, style: Style = .plain) {
        self.text = text
        self.style = style
    }

    public init(stringLiteral text: String) { self.init(text) }

    /// Columns the text takes.
    public var width: Int { CharacterWidth.of(text) }
}

/// One line of styled spans.
public struct Line: Hashable, Sendable, ExpressibleByStringLiteral {
    /// The spans, left to right.
    public var spans: [Span]
    /// Where the line sits in its area.
    public var alignment: Alignment

    /// A line of `spans`.
    public init(_ spans: [Span], alignment: Alignment = .left) {
        self.spans = spans
        self.alignment = alignment
    }

    /// A line of one span.
    public init(_ text: String, style: Style = .plain, alignment: Alignment = .left) {
        self.init([Span(text, style: style)], alignment: alignment)
    }

    public init(stringLiteral text: String) { self.init(text) }

    /// Columns the line takes.
    public var width: Int { spans.reduce(0) { $0 + $1.width } }
}

extension Buffer {
    /// Writes a line's spans from column `x` of row `y`, stopping at the right edge of `clip`;
    /// returns the column after the last one written.
    @discardableResult
    public mutating func put(_ line: Line, x: Int, y: Int, clip: Rect? = nil) -> Int {
        var column = x
        for span in line.spans { column = put(span.text, x: column, y: y, style: span.style, clip: clip) }
        return column
    }

    /// Writes a line into one row of `area`, aligned as the line says; a line too wide for the
    /// area is cut one column short and ends with the glyph set's ellipsis.
    public mutating func put(_ line: Line, row area: Rect, glyphs: GlyphSet) {
        guard !area.isEmpty else { return }
        let width = line.width
        if width <= area.width {
            let offset = switch line.alignment {
            case .left: 0
            case .center: (area.width - width) / 2
            case .right: area.width - width
            }
            put(line, x: area.x + offset, y: area.y, clip: area)
            return
        }
        let ellipsisWidth = CharacterWidth.of(glyphs.ellipsis)
        let kept = Rect(x: area.x, y: area.y, width: max(area.width - ellipsisWidth, 0), height: 1)
        let end = put(line, x: area.x, y: area.y, clip: kept)
        put(glyphs.ellipsis, x: min(end, kept.right), y: area.y, style: line.spans.last?.style ?? .plain, clip: area)
    }
}
