/// A bar sparkline of recent values, newest at the right edge, in eighth blocks; taller areas
/// stack rows. Colour follows the theme's graph gradient (by value on one row, by height on more).
public struct Sparkline: Widget {
    /// Values oldest first; NaN leaves a gap.
    public var values: [Double]
    /// The value of a full-height bar (nil: the largest value shown).
    public var maximum: Double?
    /// The gradient bars are painted with, or nil for `style`.
    public var gradient: ThemeGradient?
    /// How bars are drawn (their colour when there is no gradient).
    public var style: Style
    /// The glyphs drawn with.
    public var glyphs: GlyphSet

    /// A sparkline of `values`.
    public init(_ values: [Double], maximum: Double? = nil, gradient: ThemeGradient? = .graph, style: Style = .plain, glyphs: GlyphSet = .unicode) {
        self.values = values
        self.maximum = maximum
        self.gradient = gradient
        self.style = style
        self.glyphs = glyphs
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        guard !area.isEmpty else { return }
        let shown = values.suffix(area.width)
        let top = maximum ?? shown.filter { !$0.isNaN }.max() ?? 0
        let offset = area.width - shown.count
        for (column, value) in shown.enumerated() where !value.isNaN {
            let fraction = top > 0 ? min(max(value / top, 0), 1) : 0
            let height = Int((fraction * Double(area.height * 8)).rounded())
            for row in 0..<area.height {
                let level = min(max(height - row * 8, 0), 8)
                guard level > 0 else { break }
                var cellStyle = style
                if let gradient {
                    let position = area.height == 1 ? fraction : Double(row + 1) / Double(area.height)
                    cellStyle.foreground = .gradient(gradient, fraction: position)
                }
                buffer.putCluster(glyphs.verticalEighths[level], width: 1, x: area.x + offset + column, y: area.bottom - 1 - row, style: cellStyle)
            }
        }
    }
}
