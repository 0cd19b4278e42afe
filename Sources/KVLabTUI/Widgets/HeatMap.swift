/// A grid of values or states, one cell each (the KV map: layers × positions), with optional row
/// labels on the left. Levels are painted through a theme gradient and, when shaded, also drawn
/// with denser glyphs so they read without colour.
public struct HeatMap: Widget {
    /// What one grid cell shows.
    public enum Entry: Hashable, Sendable {
        /// Nothing (drawn blank).
        case empty
        /// A level 0…1 through the gradient.
        case level(Double)
        /// A state drawn as a given glyph and style (kept, evicted, quantized, retrieved).
        case mark(String, Style)
    }

    /// Which columns stay visible when the grid is wider than the area.
    public enum Anchor: Hashable, Sendable {
        /// The first columns.
        case leading
        /// The last columns (a map that scrolls with the context).
        case trailing
    }

    /// Rows of entries; rows may differ in length.
    public var rows: [[Entry]]
    /// Labels drawn left of each row (padded to the widest).
    public var rowLabels: [String]
    /// The gradient levels are painted through.
    public var gradient: ThemeGradient
    /// Levels drawn as shades (`░▒▓█`, `.:+#`) instead of full blocks.
    public var shaded: Bool
    /// Which columns stay visible.
    public var anchor: Anchor
    /// The glyphs drawn with.
    public var glyphs: GlyphSet

    /// A map of `rows` with optional labels.
    public init(rows: [[Entry]], rowLabels: [String] = [], gradient: ThemeGradient = .heat, shaded: Bool = false,
                anchor: Anchor = .trailing, glyphs: GlyphSet = .unicode) {
        self.rows = rows
        self.rowLabels = rowLabels
        self.gradient = gradient
        self.shaded = shaded
        self.anchor = anchor
        self.glyphs = glyphs
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        guard !area.isEmpty else { return }
        let labelWidth = rowLabels.isEmpty ? 0 : min(rowLabels.map { CharacterWidth.of($0) }.max()! + 1, area.width)
        let grid = Rect(x: area.x + labelWidth, y: area.y, width: area.width - labelWidth, height: area.height)
        let columns = rows.map(\.count).max() ?? 0
        let first = anchor == .trailing ? max(columns - grid.width, 0) : 0
        for (index, row) in rows.prefix(area.height).enumerated() {
            let y = area.y + index
            if index < rowLabels.count {
                buffer.put(rowLabels[index], x: area.x, y: y, style: .role(.dimText), clip: Rect(x: area.x, y: y, width: labelWidth - 1, height: 1))
            }
            guard first < row.count else { continue }
            for (offset, entry) in row[first...].prefix(grid.width).enumerated() {
                let cell: Cell
                switch entry {
                case .empty: continue
                case .level(let level):
                    let clamped = level.isNaN ? 0 : min(max(level, 0), 1)
                    let steps = glyphs.shades.count - 1  // shades past the blank one, in equal bins
                    let shade = shaded ? 1 + min(Int(clamped * Double(steps)), steps - 1) : steps
                    cell = Cell(glyphs.shades[shade], style: Style(foreground: .gradient(gradient, fraction: clamped)))
                case .mark(let symbol, let style):
                    cell = Cell(symbol, style: style)
                }
                buffer.put(cell.symbol, x: grid.x + offset, y: y, style: cell.style, clip: grid)
            }
        }
    }
}
