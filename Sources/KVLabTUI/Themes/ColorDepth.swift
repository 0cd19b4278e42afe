/// How many colours the screen is drawn with.
public enum ColorDepth: String, CaseIterable, Comparable, Sendable {
    /// Attributes only (bold, dim, underline, reverse).
    case mono
    /// The 8 ANSI colours.
    case palette8 = "8"
    /// The 16 ANSI colours.
    case palette16 = "16"
    /// xterm's 256-colour palette.
    case palette256 = "256"
    /// 24-bit colour.
    case truecolor

    public static func < (a: ColorDepth, b: ColorDepth) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// The colour to draw `color` with at this depth: nearest palette entries below truecolor
    /// (24-bit colours go to the cube and grey ramp at 256), the terminal default in mono.
    public func quantize(_ color: Color) -> Color {
        switch (self, color) {
        case (_, .terminalDefault), (.truecolor, _), (.palette256, .indexed): return color
        case (.mono, _): return .terminalDefault
        case (.palette256, .rgb(let rgb)): return .indexed(XtermPalette.nearest256(rgb))
        case (.palette16, .indexed(let index)) where index < 16: return color
        case (.palette8, .indexed(let index)) where index < 16: return .indexed(index % 8)
        case (.palette16, _), (.palette8, _):
            return .indexed(XtermPalette.nearestANSI(color.rgbValue!, count: self == .palette16 ? 16 : 8))
        }
    }
}

/// The `--color` setting: a depth, or `auto` to follow the terminal and environment.
public enum ColorSetting: String, CaseIterable, Sendable {
    case auto, truecolor, palette256 = "256", palette16 = "16", palette8 = "8", mono

    /// What a terminal can show, as its terminfo entry says.
    public struct Terminal: Sendable {
        /// terminfo `colors` (0 when it has none).
        public var colors: Int
        /// Whether colour numbers are 24-bit RGB values (direct-colour entries such as `xterm-direct`).
        public var directColor: Bool
        /// Whether palette entries can be redefined (`ccc`), so 24-bit colours can be shown
        /// through entries 16–255.
        public var canRedefineColors: Bool

        /// What a terminfo entry says about colours.
        public init(colors: Int, directColor: Bool, canRedefineColors: Bool) {
            self.colors = colors
            self.directColor = directColor
            self.canRedefineColors = canRedefineColors
        }

        /// The deepest depth the terminal can draw.
        public var maximumDepth: ColorDepth {
            if colors < 8 { return .mono }
            if directColor || (canRedefineColors && colors >= 256) { return .truecolor }
            return colors >= 256 ? .palette256 : colors >= 16 ? .palette16 : .palette8
        }
    }

    /// The depth to draw with. An explicit setting wins over the environment but never exceeds
    /// what the terminal can draw; `auto` is mono when `NO_COLOR` is set and not empty
    /// (no-color.org), truecolor when `COLORTERM` is `truecolor` or `24bit` or the terminfo entry is
    /// direct-colour, else the terminal's palette size.
    public func depth(environment: [String: String], terminal: Terminal) -> ColorDepth {
        let maximum = terminal.maximumDepth
        switch self {
        case .truecolor: return min(.truecolor, maximum)
        case .palette256: return min(.palette256, maximum)
        case .palette16: return min(.palette16, maximum)
        case .palette8: return min(.palette8, maximum)
        case .mono: return .mono
        case .auto:
            if let noColor = environment["NO_COLOR"], !noColor.isEmpty { return .mono }
            if terminal.directColor { return maximum }
            let colorTerm = environment["COLORTERM"]?.lowercased()
            if colorTerm == "truecolor" || colorTerm == "24bit" { return maximum }
            return min(maximum, .palette256)
        }
    }
}
