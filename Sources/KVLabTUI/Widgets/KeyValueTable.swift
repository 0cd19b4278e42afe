/// Rows of a key and a value (knob settings, quality figures): keys in a column as wide as the
/// widest key (at most half the area), values beside them, cut with an ellipsis when too long.
public struct KeyValueTable: Widget {
    /// One row of the table.
    public struct Row: Hashable, Sendable {
        public var key: Line
        public var value: Line

        public init(_ key: Line, _ value: Line) {
            self.key = key
            self.value = value
        }

        public init(_ key: String, _ value: String) {
            self.init(Line(key, style: .role(.dimText)), Line(value))
        }
    }

    public var rows: [Row]
    /// Columns between key and value.
    public var gap: Int
    /// Alignment of the values in their column.
    public var valueAlignment: Alignment
    public var glyphs: GlyphSet

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
