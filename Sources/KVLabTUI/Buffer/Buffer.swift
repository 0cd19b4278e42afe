/// A grid of cells that widgets render into; a backend draws only what changed since the last
/// frame (`diff(from:)`).
public struct Buffer: Equatable, Sendable {
    /// The whole buffer, at the origin.
    public let area: Rect
    /// Cells row by row.
    public private(set) var cells: [Cell]

    /// A blank buffer of `width` columns and `height` rows.
    public init(width: Int, height: Int) {
        area = Rect(x: 0, y: 0, width: width, height: height)
        cells = Array(repeating: .blank, count: area.area)
    }

    /// Columns.
    public var width: Int { area.width }
    /// Rows.
    public var height: Int { area.height }

    /// The cell at a column and row inside the buffer.
    public subscript(x: Int, y: Int) -> Cell {
        get { cells[y * area.width + x] }
        set { cells[y * area.width + x] = newValue }
    }

    /// Blanks every cell.
    public mutating func reset() {
        for index in cells.indices { cells[index] = .blank }
    }

    /// Sets every cell of `rect` (clipped to the buffer) to `cell`.
    public mutating func fill(_ rect: Rect, with cell: Cell) {
        let clipped = rect.intersection(area)
        guard !clipped.isEmpty else { return }
        for y in clipped.y..<clipped.bottom {
            if clipped.x > 0 { detachWide(x: clipped.x, y: y) }
            if clipped.right < area.width { detachWide(x: clipped.right - 1, y: y) }
            for x in clipped.x..<clipped.right { self[x, y] = cell }
        }
    }

    /// Patches the style of every cell in `rect` (clipped to the buffer).
    public mutating func setStyle(_ rect: Rect, _ style: Style) {
        let clipped = rect.intersection(area)
        guard !clipped.isEmpty else { return }
        for y in clipped.y..<clipped.bottom {
            for x in clipped.x..<clipped.right { self[x, y].style = self[x, y].style.patched(with: style) }
        }
    }

    /// Writes `text` from column `x` of row `y`, cluster by cluster, patching cell styles with
    /// `style`, and stops at the right edge of `clip` (the buffer by default). Control characters
    /// are drawn as U+FFFD, zero-width clusters that start the text are dropped, and a wide
    /// cluster that does not fit is drawn as a space. Returns the column after the last one written.
    @discardableResult
    public mutating func put(_ text: some StringProtocol, x: Int, y: Int, style: Style = .plain, clip: Rect? = nil) -> Int {
        let bounds = (clip ?? area).intersection(area)
        guard y >= bounds.y, y < bounds.bottom else { return x }
        var column = x
        for character in text {
            if column >= bounds.right { break }
            if CharacterWidth.isControl(character) {
                column = putCluster("\u{FFFD}", width: 1, x: column, y: y, style: style, bounds: bounds)
                continue
            }
            let width = CharacterWidth.of(character)
            if width == 0 { continue }
            column = putCluster(String(character), width: width, x: column, y: y, style: style, bounds: bounds)
        }
        return column
    }

    /// Writes one grapheme cluster of known width; returns the column after it.
    @discardableResult
    public mutating func putCluster(_ symbol: String, width: Int, x: Int, y: Int, style: Style = .plain, bounds: Rect? = nil) -> Int {
        let bounds = (bounds ?? area).intersection(area)
        guard y >= bounds.y, y < bounds.bottom, x < bounds.right, x + width > bounds.x else { return x + width }
        guard x >= bounds.x else {  // the left half of a wide cluster is clipped: show its right half blank
            putCluster(" ", width: 1, x: x + 1, y: y, style: style, bounds: bounds)
            return x + width
        }
        if width == 2 && x + 1 >= bounds.right {
            return putCluster(" ", width: 1, x: x, y: y, style: style, bounds: bounds) + 1
        }
        detachWide(x: x, y: y)
        if width == 2 { detachWide(x: x + 1, y: y) }
        let patched = self[x, y].style.patched(with: style)
        self[x, y] = Cell(symbol, style: patched)
        if width == 2 { self[x + 1, y] = Cell("", style: patched) }
        return x + width
    }

    /// Before a cell is overwritten, blanks the other half of a wide cluster it belongs to.
    private mutating func detachWide(x: Int, y: Int) {
        if self[x, y].isContinuation, x > 0 {
            self[x - 1, y].symbol = " "
            self[x, y].symbol = " "
        } else if x + 1 < area.width, self[x + 1, y].isContinuation {
            self[x + 1, y].symbol = " "
        }
    }

    /// A horizontal stretch of cells that changed.
    public struct Run: Hashable, Sendable {
        /// The first changed column.
        public var x: Int
        /// The row.
        public var y: Int
        /// Cells in the run.
        public var count: Int

        /// A run of `count` cells from column `x` of row `y`.
        public init(x: Int, y: Int, count: Int) {
            self.x = x
            self.y = y
            self.count = count
        }
    }

    /// The runs of cells that differ from `previous` (every row when there is none or its size
    /// differs). A run never starts on the right half of a wide cluster.
    public func diff(from previous: Buffer?) -> [Run] {
        guard let previous, previous.area == area else {
            return (0..<area.height).map { Run(x: 0, y: $0, count: area.width) }
        }
        var runs: [Run] = []
        for y in 0..<area.height {
            let row = y * area.width
            var x = 0
            while x < area.width {
                guard cells[row + x] != previous.cells[row + x] else { x += 1; continue }
                var start = x
                if start > 0 && cells[row + start].isContinuation { start -= 1 }
                while x < area.width && cells[row + x] != previous.cells[row + x] { x += 1 }
                if let last = runs.last, last.y == y, last.x + last.count >= start {
                    runs[runs.count - 1].count = x - last.x
                } else {
                    runs.append(Run(x: start, y: y, count: x - start))
                }
            }
        }
        return runs
    }
}
