/// A bordered box with titles, around a panel. Borders merge with lines already in the buffer,
/// so neighbouring panels that share an edge draw `┬ ┼ ┤` junctions (as in the workbench sketch).
public struct Block: Widget {
    /// Which edges have a border.
    public struct Borders: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The top edge.
        public static let top = Borders(rawValue: 1)
        /// The bottom edge.
        public static let bottom = Borders(rawValue: 2)
        /// The left edge.
        public static let left = Borders(rawValue: 4)
        /// The right edge.
        public static let right = Borders(rawValue: 8)
        /// Every edge.
        public static let all: Borders = [.top, .bottom, .left, .right]
    }

    /// A title on the top or bottom border.
    public struct Title: Hashable, Sendable {
        /// Which border a title sits on.
        public enum Position: Hashable, Sendable { case top, bottom }
        /// The title text; its alignment places it.
        public var line: Line
        /// The border it sits on.
        public var position: Position

        /// A title placed by the line's alignment on the top or bottom border.
        public init(_ line: Line, position: Position = .top) {
            self.line = line
            self.position = position
        }
    }

    /// Titles on the borders.
    public var titles: [Title]
    /// Which edges have a border.
    public var borders: Borders
    /// How borders are drawn.
    public var borderStyle: Style
    /// Rounded corners where the glyph set has them.
    public var rounded: Bool
    /// Whether borders join the lines already under them (`┼` where two boxes meet).
    public var mergesBorders: Bool
    /// Columns kept empty inside the left and right borders.
    public var horizontalPadding: Int
    /// The glyphs drawn with.
    public var glyphs: GlyphSet

    /// A block with these borders and titles.
    public init(titles: [Title] = [], borders: Borders = .all, borderStyle: Style = .role(.border), rounded: Bool = false,
                mergesBorders: Bool = true, horizontalPadding: Int = 0, glyphs: GlyphSet = .unicode) {
        self.titles = titles
        self.borders = borders
        self.borderStyle = borderStyle
        self.rounded = rounded
        self.mergesBorders = mergesBorders
        self.horizontalPadding = horizontalPadding
        self.glyphs = glyphs
    }

    /// A bordered block with one title at the top left, in the theme's title role.
    public init(title: String, glyphs: GlyphSet = .unicode) {
        self.init(titles: [Title(Line(title, style: .role(.title)))], glyphs: glyphs)
    }

    /// The area inside the borders and padding.
    public func inner(_ area: Rect) -> Rect {
        let left = (borders.contains(.left) ? 1 : 0) + horizontalPadding
        let right = (borders.contains(.right) ? 1 : 0) + horizontalPadding
        let top = borders.contains(.top) ? 1 : 0, bottom = borders.contains(.bottom) ? 1 : 0
        return Rect(x: area.x + left, y: area.y + top, width: area.width - left - right, height: area.height - top - bottom)
            .intersection(area)
    }

    public func render(area: Rect, buffer: inout Buffer) {
        let area = area.intersection(buffer.area)
        guard !area.isEmpty else { return }
        drawBorders(area, &buffer)
        drawTitles(area, .top, &buffer)
        drawTitles(area, .bottom, &buffer)
    }

    private func drawBorders(_ area: Rect, _ buffer: inout Buffer) {
        let top = borders.contains(.top), bottom = borders.contains(.bottom)
        let left = borders.contains(.left), right = borders.contains(.right)
        func draw(_ x: Int, _ y: Int, _ sides: GlyphSet.Sides, corner: Int? = nil) {
            var joined = sides
            if mergesBorders, let existing = glyphs.sides(of: buffer[x, y].symbol) { joined.formUnion(existing) }
            let symbol = rounded && joined == sides && corner != nil ? glyphs.roundedCorner(corner!, sides: sides) : glyphs.line(joined)
            buffer.putCluster(symbol, width: 1, x: x, y: y, style: borderStyle)
        }
        let lastX = area.right - 1, lastY = area.bottom - 1
        for x in area.x...lastX {
            var horizontal: GlyphSet.Sides = []
            if x > area.x || !left { horizontal.insert(.left) }
            if x < lastX || !right { horizontal.insert(.right) }
            if top && !((x == area.x && left) || (x == lastX && right)) { draw(x, area.y, horizontal) }
            if bottom && lastY > area.y && !((x == area.x && left) || (x == lastX && right)) { draw(x, lastY, horizontal) }
        }
        for y in area.y...lastY {
            var vertical: GlyphSet.Sides = []
            if y > area.y || !top { vertical.insert(.up) }
            if y < lastY || !bottom { vertical.insert(.down) }
            if left { draw(area.x, y, vertical.union(cornerSides(y, area, horizontal: .right)), corner: cornerIndex(y, area, column: 0)) }
            if right && lastX > area.x { draw(lastX, y, vertical.union(cornerSides(y, area, horizontal: .left)), corner: cornerIndex(y, area, column: 1)) }
        }
    }

    /// The horizontal side a left or right border cell joins: at the top and bottom rows it turns
    /// into the top or bottom border.
    private func cornerSides(_ y: Int, _ area: Rect, horizontal: GlyphSet.Sides) -> GlyphSet.Sides {
        (y == area.y && borders.contains(.top)) || (y == area.bottom - 1 && borders.contains(.bottom)) ? horizontal : []
    }

    private func cornerIndex(_ y: Int, _ area: Rect, column: Int) -> Int? {
        if y == area.y && borders.contains(.top) { return column }
        if y == area.bottom - 1 && borders.contains(.bottom) { return 2 + column }
        return nil
    }

    /// Titles are drawn " like this " over the border: left ones first, then right and centred
    /// ones where they still fit; a left title too long for the border ends with an ellipsis.
    private func drawTitles(_ area: Rect, _ position: Title.Position, _ buffer: inout Buffer) {
        let row = position == .top ? area.y : area.bottom - 1
        guard position == .top || area.height > 1 else { return }
        let start = area.x + 1, end = area.right - 1  // inside the corners
        guard end - start >= 3 else { return }
        var leftEnd = start
        for title in titles where title.position == position && title.line.alignment == .left {
            let width = title.line.width + 2
            let room = Rect(x: leftEnd, y: row, width: min(width, end - leftEnd), height: 1)
            guard room.width >= 3 else { break }
            buffer.put(" ", x: room.x, y: row, style: borderStyle, clip: room)
            buffer.put(title.line, row: Rect(x: room.x + 1, y: row, width: room.width - 2, height: 1), glyphs: glyphs)
            buffer.put(" ", x: room.right - 1, y: row, style: borderStyle, clip: room)
            leftEnd = room.right + 1
        }
        var rightStart = end - 1  // one border cell before the corner, as on the left
        for title in titles.reversed() where title.position == position && title.line.alignment == .right {
            let width = title.line.width + 2
            guard rightStart - width >= leftEnd else { break }
            rightStart -= width
            buffer.put(" ", x: rightStart, y: row, style: borderStyle)
            buffer.put(title.line, x: rightStart + 1, y: row)
            buffer.put(" ", x: rightStart + width - 1, y: row, style: borderStyle)
            rightStart -= 1
        }
        for title in titles where title.position == position && title.line.alignment == .center {
            let width = title.line.width + 2
            let x = area.x + (area.width - width) / 2
            guard x >= leftEnd, x + width <= rightStart else { continue }
            buffer.put(" ", x: x, y: row, style: borderStyle)
            buffer.put(title.line, x: x + 1, y: row)
            buffer.put(" ", x: x + width - 1, y: row, style: borderStyle)
        }
    }
}
