/// A line graph of one or more series on a dot canvas (braille: 2×4 dots per cell; ASCII: 1×2),
/// newest value at the right edge, consecutive points joined by vertical strokes.
public struct LineGraph: Widget {
    /// One line of the graph.
    public struct Series: Hashable, Sendable {
        /// Values oldest first; NaN leaves a gap.
        public var values: [Double]
        /// How the line is drawn.
        public var style: Style

        /// A series of `values` drawn in `style`.
        public init(_ values: [Double], style: Style) {
            self.values = values
            self.style = style
        }
    }

    /// Series drawn in order; where two share a cell, the later one's style wins.
    public var series: [Series]
    /// The value range from the bottom to the top row (nil: the range of the values shown).
    public var range: ClosedRange<Double>?
    /// Whether the area under each line is filled.
    public var filled: Bool
    /// The glyphs drawn with (braille or ASCII dots).
    public var glyphs: GlyphSet

    /// A graph of `series`.
    public init(series: [Series], range: ClosedRange<Double>? = nil, filled: Bool = false, glyphs: GlyphSet = .unicode) {
        self.series = series
        self.range = range
        self.filled = filled
        self.glyphs = glyphs
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        guard !area.isEmpty else { return }
        let dotWidth = area.width * glyphs.dotColumns, dotHeight = area.height * glyphs.dotRows
        let shown = series.map { $0.values.suffix(dotWidth).filter { !$0.isNaN } }
        let low = range?.lowerBound ?? shown.compactMap { $0.min() }.min() ?? 0
        let high = range?.upperBound ?? shown.compactMap { $0.max() }.max() ?? 1
        let span = high > low ? high - low : 1
        var masks = [Int](repeating: 0, count: area.area)
        var owners = [Int](repeating: -1, count: area.area)
        func plot(_ x: Int, _ y: Int, _ owner: Int) {  // y counts dots up from the bottom
            let column = x / glyphs.dotColumns, row = area.height - 1 - y / glyphs.dotRows
            let bit = (glyphs.dotRows - 1 - y % glyphs.dotRows) * glyphs.dotColumns + x % glyphs.dotColumns
            masks[row * area.width + column] |= 1 << bit
            owners[row * area.width + column] = owner
        }
        for (index, line) in series.enumerated() {
            let values = line.values.suffix(dotWidth)
            let offset = dotWidth - values.count
            var previous: Int?
            for (step, value) in values.enumerated() {
                guard !value.isNaN else { previous = nil; continue }
                let y = min(max(Int(((value - low) / span * Double(dotHeight - 1)).rounded()), 0), dotHeight - 1)
                let from = filled ? 0 : min(previous ?? y, y), to = filled ? y : max(previous ?? y, y)
                for dot in from...to { plot(offset + step, dot, index) }
                previous = y
            }
        }
        for row in 0..<area.height {
            for column in 0..<area.width where masks[row * area.width + column] != 0 {
                let cell = row * area.width + column
                buffer.putCluster(glyphs.dotGlyph(masks[cell]), width: 1, x: area.x + column, y: area.y + row, style: series[owners[cell]].style)
            }
        }
    }
}
