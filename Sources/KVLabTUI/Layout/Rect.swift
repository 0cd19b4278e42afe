/// A rectangle of cells: column `x`, row `y`, `width` columns by `height` rows.
public struct Rect: Hashable, Sendable, CustomStringConvertible {
    /// The leftmost column.
    public var x: Int
    /// The top row.
    public var y: Int
    /// Columns (never negative).
    public var width: Int
    /// Rows (never negative).
    public var height: Int

    /// A rectangle; negative sizes become zero.
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = max(width, 0)
        self.height = max(height, 0)
    }

    /// The column just right of the rectangle.
    public var right: Int { x + width }
    /// The row just below the rectangle.
    public var bottom: Int { y + height }
    /// Whether the rectangle holds no cell.
    public var isEmpty: Bool { width == 0 || height == 0 }
    /// Cells in the rectangle.
    public var area: Int { width * height }

    public var description: String { "\(width)×\(height)@\(x),\(y)" }

    /// The cells both rectangles hold (empty, at this origin, when they do not overlap).
    public func intersection(_ other: Rect) -> Rect {
        let left = max(x, other.x), top = max(y, other.y)
        let width = min(right, other.right) - left, height = min(bottom, other.bottom) - top
        guard width > 0, height > 0 else { return Rect(x: x, y: y, width: 0, height: 0) }
        return Rect(x: left, y: top, width: width, height: height)
    }

    /// Whether a cell lies inside.
    public func contains(x column: Int, y row: Int) -> Bool {
        column >= x && column < right && row >= y && row < bottom
    }

    /// The rectangle shrunk by `horizontal` columns on the left and right and `vertical` rows on
    /// the top and bottom (never below zero size).
    public func inset(horizontal: Int = 0, vertical: Int = 0) -> Rect {
        let h = min(horizontal, width / 2), v = min(vertical, height / 2)
        return Rect(x: x + h, y: y + v, width: width - 2 * h, height: height - 2 * v)
    }

    /// A rectangle of at most the given size centred in this one (popups).
    public func centered(width: Int, height: Int) -> Rect {
        let w = min(width, self.width), h = min(height, self.height)
        return Rect(x: x + (self.width - w) / 2, y: y + (self.height - h) / 2, width: w, height: h)
    }

    /// The single row `index` rows down (empty when outside).
    public func row(_ index: Int) -> Rect {
        guard index >= 0, index < height else { return Rect(x: x, y: y, width: 0, height: 0) }
        return Rect(x: x, y: y + index, width: width, height: 1)
    }
}
