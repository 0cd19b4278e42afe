/// The `?` help: a centred popup listing key bindings by group, in two columns when the rows do
/// not fit in one and the screen is wide enough; rows that still do not fit scroll (`offset`),
/// with a marker at the top and bottom saying that rows are hidden there.
public struct HelpOverlay: Widget {
    /// The popup's title.
    public var title: String
    /// The bindings listed, by section.
    public var sections: [HelpSection]
    /// The glyphs drawn with.
    public var glyphs: GlyphSet

    /// A help popup listing `sections`.
    public init(title: String = "Keys", sections: [HelpSection], glyphs: GlyphSet = .unicode) {
        self.title = title
        self.sections = sections
        self.glyphs = glyphs
    }

    /// The help of a key table, with key labels in the glyph set's alphabet.
    public init<Action>(title: String = "Keys", table: KeyTable<Action>, glyphs: GlyphSet = .unicode) {
        self.init(title: title, sections: table.helpSections(unicode: glyphs.isUnicode), glyphs: glyphs)
    }

    /// Rows scrolled past (clamped to `maxOffset`): a help longer than the screen scrolls.
    public var offset = 0
    /// What the last row says when rows follow below (`… more`).
    public var moreLabel = "more"
    /// What the first row says when scrolled (`… above`).
    public var aboveLabel = "above"

    private enum Item {
        case heading(String)
        case binding(keys: String, summary: String)
    }

    private var items: [Item] {
        var items: [Item] = []
        for (index, section) in sections.enumerated() {
            if index > 0 { items.append(.heading("")) }
            items.append(.heading(section.title))
            items += section.rows.map { .binding(keys: $0.keys, summary: $0.summary) }
        }
        return items
    }

    private struct Geometry {
        var keyWidth: Int
        var columnWidth: Int
        var columns: Int
        var popup: Rect
    }

    private func geometry(_ area: Rect, items: Int) -> Geometry? {
        guard area.width >= 12, area.height >= 4 else { return nil }
        let allRows = sections.flatMap(\.rows)
        let keyWidth = allRows.map { CharacterWidth.of($0.keys) }.max() ?? 0
        let headingWidth = sections.map { CharacterWidth.of($0.title) }.max() ?? 0
        let columnWidth = max(keyWidth + 2 + (allRows.map { CharacterWidth.of($0.summary) }.max() ?? 0), headingWidth)
        let maxInner = (width: area.width - 4, height: area.height - 2)
        let columns = items > maxInner.height && 2 * columnWidth + 3 <= maxInner.width ? 2 : 1
        let perColumn = (items + columns - 1) / columns
        let innerWidth = min(columns * columnWidth + (columns - 1) * 3, maxInner.width)
        let innerHeight = min(perColumn, maxInner.height)
        return Geometry(keyWidth: keyWidth, columnWidth: columnWidth, columns: columns,
                        popup: area.centered(width: innerWidth + 4, height: innerHeight + 2))
    }

    /// The largest useful `offset` in `area`: the one that shows the last row.
    public func maxOffset(area: Rect) -> Int {
        let count = items.count
        guard let geometry = geometry(area, items: count) else { return 0 }
        return max(count - geometry.columns * (geometry.popup.height - 2), 0)
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        var items = self.items
        guard let geometry = geometry(area, items: items.count) else { return }
        let (keyWidth, columnWidth, columns, popup) = (geometry.keyWidth, geometry.columnWidth, geometry.columns, geometry.popup)

        Clear().render(area: popup, buffer: &buffer)
        let block = Block(titles: [Block.Title(Line(title, style: .role(.title))),
                                   Block.Title(Line("? or Esc closes", style: .role(.dimText)), position: .bottom)],
                          mergesBorders: false, horizontalPadding: 1, glyphs: glyphs)
        block.render(area: popup, buffer: &buffer)
        let inner = block.inner(popup)
        let columnStep = columns == 2 ? (inner.width + 3) / 2 : inner.width
        let capacity = columns * inner.height
        var markers: [(row: Int, text: String)] = []
        if items.count > capacity {
            // Rows that do not fit: the first and last rows say so rather than dropping them silently.
            let start = min(max(offset, 0), items.count - capacity)
            let below = start + capacity < items.count
            items = Array(items[start..<(start + capacity - (below ? 1 : 0))])
            if start > 0 {
                items[0] = .heading("")
                markers.append((0, aboveLabel))
            }
            if below { markers.append((inner.height - 1, moreLabel)) }
        }
        defer {
            for marker in markers {
                buffer.put(Line(glyphs.ellipsis + " " + marker.text, style: .role(.dimText), alignment: .right), row: inner.row(marker.row), glyphs: glyphs)
            }
        }
        for (index, item) in items.enumerated() {
            let column = index / inner.height, row = index % inner.height
            let x = inner.x + column * columnStep
            let cellArea = Rect(x: x, y: inner.y + row, width: min(columns == 2 ? columnWidth : inner.width, inner.right - x), height: 1)
            switch item {
            case .heading(let text):
                buffer.put(Line(text, style: .role(.title)), row: cellArea, glyphs: glyphs)
            case .binding(let keys, let summary):
                buffer.put(Line([Span(keys, style: .role(.key))]), row: Rect(x: cellArea.x, y: cellArea.y, width: min(keyWidth, cellArea.width), height: 1), glyphs: glyphs)
                let summaryX = cellArea.x + keyWidth + 2
                buffer.put(Line(summary), row: Rect(x: summaryX, y: cellArea.y, width: max(cellArea.right - summaryX, 0), height: 1), glyphs: glyphs)
            }
        }
    }
}
