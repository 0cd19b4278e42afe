/// Rows of a key and a value (knob settings, quality figures): keys in a column as wide as the
/// widest key (at most half the area), values beside them, cut with an ellipsis when too long.
public struct KeyValueTable: Widget {
    /// One row of the table.
    public struct Row: Hashable, Sendable {
        /// The key, in its own style.
        public var key: Line
        /// The value.
        public var value: Line

        /// A row of styled key and value.
        public init(_ key: Line, _ value: Line) {
            self.key = key
            self.value = value
        }

        /// A row of a dim key and a plain value.
        public init(_ key: String, _ value: String) {
            self.init(Line(key, style: .role(.dimText)), Line(value))
        }
    }

    /// The rows, top to bottom.
    public var rows: [Row]
    /// Columns between key and value.
    public var gap: Int
    /// Alignment of the values in their column.
    public var valueAlignment: Alignment
    /// The glyphs drawn with (the ellipsis).
    public var glyphs: GlyphSet

    /// A table of `rows`.
    public init(_ rows: [Row], gap: Int = 1, valueAlignment: Alignment = .left, glyphs: GlyphSet = .unicode) {
        self.rows = rows
        self.gap = gap
        self.valueAlignment = valueAlignment
        self.glyphs = glyphs
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        guard !area.isEmpty else { return }
        let keyWidth = min(rows.map(\.key.width).max() ?? 0, area.width / 2)
        let valueX = area.x + keyWidth + gap
        for (index, row) in rows.prefix(area.height).enumerated() {
            let y = area.y + index
            buffer.put(row.key, row: Rect(x: area.x, y: y, width: keyWidth, height: 1), glyphs: glyphs)
            var value = row.value
            value.alignment = valueAlignment
            buffer.put(value, row: Rect(x: valueX, y: y, width: area.right - valueX, height: 1), glyphs: glyphs)
        }
    }
}
