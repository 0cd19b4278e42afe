/// Text attributes a cell can carry; every terminal kvlab targets has all four.
public struct TextAttributes: OptionSet, Hashable, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Bold (or bright) text.
    public static let bold = TextAttributes(rawValue: 1 << 0)
    /// Faint text.
    public static let dim = TextAttributes(rawValue: 1 << 1)
    /// Underlined text.
    public static let underline = TextAttributes(rawValue: 1 << 2)
    /// Foreground and background swapped.
    public static let reverse = TextAttributes(rawValue: 1 << 3)

    /// Attribute names as theme files spell them, in a fixed order.
    public static let names: [(String, TextAttributes)] = [("bold", .bold), ("dim", .dim), ("underline", .underline), ("reverse", .reverse)]
}

/// Where a cell's colour comes from: a semantic role or gradient position resolved by the theme,
/// or a colour given directly.
public enum Paint: Hashable, Sendable {
    /// The theme's colour (and attributes) for a role.
    case role(ThemeRole)
    /// A position on one of the theme's gradients, 0 (start) … 255 (end).
    case gradient(ThemeGradient, UInt8)
    /// A colour that does not change with the theme.
    case color(Color)

    /// The gradient position of a fraction 0…1 (clamped; NaN is the start).
    public static func gradient(_ gradient: ThemeGradient, fraction: Double) -> Paint {
        let clamped = fraction.isNaN ? 0 : min(max(fraction, 0), 1)
        return .gradient(gradient, UInt8((clamped * 255).rounded()))
    }
}

/// How a cell is drawn. A nil paint means "unchanged" when patching and the theme's text or
/// background colour when drawn.
public struct Style: Hashable, Sendable {
    /// The glyph colour (nil: unchanged when patching, the theme text when drawn).
    public var foreground: Paint?
    /// The cell colour (nil: unchanged when patching, the theme background when drawn).
    public var background: Paint?
    /// Attributes added to those of the roles painted with.
    public var attributes: TextAttributes

    /// A style of the given paints and attributes.
    public init(foreground: Paint? = nil, background: Paint? = nil, attributes: TextAttributes = []) {
        self.foreground = foreground
        self.background = background
        self.attributes = attributes
    }

    /// The empty style: theme text on the theme background.
    public static let plain = Style()

    /// A style drawing in a role's colour.
    public static func role(_ role: ThemeRole, _ attributes: TextAttributes = []) -> Style {
        Style(foreground: .role(role), attributes: attributes)
    }

    /// This style with `other`'s paints where it has them and both styles' attributes.
    public func patched(with other: Style) -> Style {
        Style(foreground: other.foreground ?? foreground, background: other.background ?? background,
              attributes: attributes.union(other.attributes))
    }
}

/// One terminal cell: a grapheme cluster and its style. A wide grapheme occupies its cell and a
/// continuation cell to its right, whose symbol is empty.
public struct Cell: Hashable, Sendable {
    /// The grapheme cluster drawn (empty in the right half of a wide one).
    public var symbol: String
    /// How it is drawn.
    public var style: Style

    /// A cell showing `symbol` in `style`.
    public init(_ symbol: String = " ", style: Style = .plain) {
        self.symbol = symbol
        self.style = style
    }

    /// A blank cell in the default style.
    public static let blank = Cell()

    /// Whether this cell is the right half of a wide grapheme drawn in the cell to its left.
    public var isContinuation: Bool { symbol.isEmpty }
}
