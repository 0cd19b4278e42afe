/// The characters widgets draw with: box drawing, bar and graph glyphs. `unicode` needs a UTF-8
/// locale; `ascii` is the fallback for any other (chosen by the caller from the locale).
public struct GlyphSet: Sendable {
    /// The set's name (`unicode`, `ascii`).
    public let name: String
    /// Line glyphs by side mask (`Sides`): the 16 ways of joining up, down, left and right.
    let lines: [String]
    /// Corner glyphs of rounded boxes (top-left, top-right, bottom-left, bottom-right), if any.
    let roundedCorners: [String]?
    /// Partial cells filled from the left, in eighths: index 0 (empty) … 8 (full).
    public let horizontalEighths: [String]
    /// Partial cells filled from the bottom, in eighths: index 0 (empty) … 8 (full).
    public let verticalEighths: [String]
    /// Shading from empty to full (heat maps without colour).
    public let shades: [String]
    /// Distinct fills for the segments of a stacked bar, when colour cannot tell them apart.
    public let patternedFills: [String]
    /// The unfilled part of a bar.
    public let barTrack: String
    /// The caps drawn around a bar.
    public let barCaps: (left: String, right: String)
    /// What replaces text cut off at the edge.
    public let ellipsis: String
    /// Dot columns per cell of a dot canvas (braille: 2).
    public let dotColumns: Int
    /// Dot rows per cell of a dot canvas (braille: 4).
    public let dotRows: Int
    /// Glyphs by dot mask (bit `row * dotColumns + column`).
    let dots: [String]

    /// Box drawing, eighth blocks and braille.
    public static let unicode: GlyphSet = {
        // Braille numbers its dots 1 2 3 7 down the left column and 4 5 6 8 down the right.
        let brailleBit: [UInt32] = [0x01, 0x08, 0x02, 0x10, 0x04, 0x20, 0x40, 0x80]
        let dots = (0..<256).map { mask -> String in
            var value: UInt32 = 0x2800
            for bit in 0..<8 where mask & (1 << bit) != 0 { value |= brailleBit[bit] }
            return String(Unicode.Scalar(value)!)
        }
        return GlyphSet(
            name: "unicode",
            lines: [" ", "╵", "╷", "│", "╴", "┘", "┐", "┤", "╶", "└", "┌", "├", "─", "┴", "┬", "┼"],
            roundedCorners: ["╭", "╮", "╰", "╯"],
            horizontalEighths: ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"],
            verticalEighths: [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"],
            shades: [" ", "░", "▒", "▓", "█"],
            patternedFills: ["█", "▓", "▒", "░"],
            barTrack: " ",
            barCaps: ("▕", "▏"),
            ellipsis: "…",
            dotColumns: 2, dotRows: 4, dots: dots
        )
    }()

    /// Seven-bit ASCII only.
    public static let ascii = GlyphSet(
        name: "ascii",
        lines: [" ", "|", "|", "|", "-", "+", "+", "+", "-", "+", "+", "+", "-", "+", "+", "+"],
        roundedCorners: nil,
        horizontalEighths: ["", "", "", "", "#", "#", "#", "#", "#"],  // whole cells, rounded
        verticalEighths: [" ", "_", "_", ".", ".", "-", "=", "=", "#"],
        shades: [" ", ".", ":", "+", "#"],
        patternedFills: ["#", "=", "+", "-"],
        barTrack: ".",
        barCaps: ("[", "]"),
        ellipsis: "~",
        dotColumns: 1, dotRows: 2, dots: [" ", "'", ".", ":"]
    )

    /// Whether this is the Unicode set (key labels with arrows, text with symbols).
    public var isUnicode: Bool { name == "unicode" }

    /// The set for a locale codeset: `unicode` for UTF-8, `ascii` otherwise.
    public static func forCodeset(_ codeset: String) -> GlyphSet {
        let normalized = codeset.uppercased().replacingOccurrences(of: "-", with: "")
        return normalized == "UTF8" ? .unicode : .ascii
    }

    /// Which sides of a cell a line glyph joins.
    public struct Sides: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Joins the cell above.
        public static let up = Sides(rawValue: 1)
        /// Joins the cell below.
        public static let down = Sides(rawValue: 2)
        /// Joins the cell to the left.
        public static let left = Sides(rawValue: 4)
        /// Joins the cell to the right.
        public static let right = Sides(rawValue: 8)
    }

    /// The line glyph joining `sides`.
    public func line(_ sides: Sides) -> String { lines[Int(sides.rawValue & 15)] }

    /// The sides a glyph of this set joins, if it is a line glyph.
    public func sides(of symbol: String) -> Sides? {
        if let index = lines.firstIndex(of: symbol), symbol != " " {
            // ASCII junctions are all "+", so a "+" already there joins every side.
            return symbol == "+" ? [.up, .down, .left, .right] : Sides(rawValue: UInt8(index))
        }
        if let corners = roundedCorners, let index = corners.firstIndex(of: symbol) {
            return [[.down, .right], [.down, .left], [.up, .right], [.up, .left]][index]
        }
        return nil
    }

    /// A rounded corner glyph (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right), or the
    /// plain one when the set has none.
    func roundedCorner(_ index: Int, sides: Sides) -> String { roundedCorners?[index] ?? line(sides) }

    /// The glyph for a dot mask of one cell.
    public func dotGlyph(_ mask: Int) -> String { dots[mask] }
}
