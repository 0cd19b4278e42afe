/// A 24-bit colour.
public struct RGB: Hashable, Sendable, CustomStringConvertible {
    /// Red, 0–255.
    public var red: UInt8
    /// Green, 0–255.
    public var green: UInt8
    /// Blue, 0–255.
    public var blue: UInt8

    /// A colour from its channels.
    public init(_ red: UInt8, _ green: UInt8, _ blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// A colour from `0xRRGGBB`.
    public init(hex: UInt32) {
        self.init(UInt8(truncatingIfNeeded: hex >> 16), UInt8(truncatingIfNeeded: hex >> 8), UInt8(truncatingIfNeeded: hex))
    }

    /// The colour packed as `0xRRGGBB`.
    public var hex: UInt32 { UInt32(red) << 16 | UInt32(green) << 8 | UInt32(blue) }

    public var description: String {
        let digits = String(hex, radix: 16)
        return "#" + String(repeating: "0", count: 6 - digits.count) + digits
    }

    /// Squared Euclidean distance in RGB space.
    public func distance(to other: RGB) -> Int {
        let dr = Int(red) - Int(other.red), dg = Int(green) - Int(other.green), db = Int(blue) - Int(other.blue)
        return dr * dr + dg * dg + db * db
    }

    /// The colour `fraction` (0…1) of the way to `other`, channel by channel.
    func mixed(with other: RGB, _ fraction: Double) -> RGB {
        func channel(_ a: UInt8, _ b: UInt8) -> UInt8 { UInt8((Double(a) + (Double(b) - Double(a)) * fraction).rounded()) }
        return RGB(channel(red, other.red), channel(green, other.green), channel(blue, other.blue))
    }
}

/// A terminal colour: the terminal's own default, an entry of its palette, or a 24-bit colour.
public enum Color: Hashable, Sendable, CustomStringConvertible {
    /// The terminal's default foreground or background.
    case terminalDefault
    /// Palette entry 0–255 (0–15 are the terminal's ANSI colours, 16–255 xterm's cube and greys).
    case indexed(UInt8)
    /// A 24-bit colour.
    case rgb(RGB)

    public var description: String {
        switch self {
        case .terminalDefault: "default"
        case .indexed(let index): "\(index)"
        case .rgb(let rgb): rgb.description
        }
    }

    /// The colour's RGB value in xterm's default palette (nil for the terminal default).
    public var rgbValue: RGB? {
        switch self {
        case .terminalDefault: nil
        case .indexed(let index): XtermPalette.rgb(index)
        case .rgb(let rgb): rgb
        }
    }

    /// Colour names theme files may use, with their palette index.
    public static let names: [(String, UInt8)] = [
        ("black", 0), ("red", 1), ("green", 2), ("yellow", 3), ("blue", 4), ("magenta", 5), ("cyan", 6), ("white", 7),
        ("bright_black", 8), ("gray", 8), ("grey", 8), ("bright_red", 9), ("bright_green", 10), ("bright_yellow", 11),
        ("bright_blue", 12), ("bright_magenta", 13), ("bright_cyan", 14), ("bright_white", 15),
    ]

    /// Parses `#rrggbb`, `#rgb`, a palette index 0–255, a colour name or `default`.
    public init?(parsing text: some StringProtocol) {
        let text = text.lowercased()
        if text == "default" {
            self = .terminalDefault
        } else if text.hasPrefix("#") {
            let digits = text.dropFirst()
            guard digits.count == 3 || digits.count == 6, digits.allSatisfy(\.isHexDigit), let value = UInt32(digits, radix: 16) else { return nil }
            if digits.count == 6 {
                self = .rgb(RGB(hex: value))
            } else {  // #rgb → #rrggbb
                let r = value >> 8 & 0xF, g = value >> 4 & 0xF, b = value & 0xF
                self = .rgb(RGB(hex: (r * 17) << 16 | (g * 17) << 8 | b * 17))
            }
        } else if text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber), let index = UInt8(text) {
            self = .indexed(index)
        } else if let named = Self.names.first(where: { $0.0 == text }) {
            self = .indexed(named.1)
        } else {
            return nil
        }
    }
}

/// xterm's 256-colour palette and the nearest-colour searches into it.
public enum XtermPalette {
    /// xterm's defaults for the 16 ANSI colours.
    static let ansi: [RGB] = [
        0x000000, 0xCD0000, 0x00CD00, 0xCDCD00, 0x0000EE, 0xCD00CD, 0x00CDCD, 0xE5E5E5,
        0x7F7F7F, 0xFF0000, 0x00FF00, 0xFFFF00, 0x5C5CFF, 0xFF00FF, 0x00FFFF, 0xFFFFFF,
    ].map { RGB(hex: $0) }
    /// Channel levels of the 6×6×6 cube (indices 16–231).
    static let cubeLevels: [UInt8] = [0, 95, 135, 175, 215, 255]

    /// The RGB value of a palette entry.
    public static func rgb(_ index: UInt8) -> RGB {
        switch index {
        case 0..<16: return ansi[Int(index)]
        case 16..<232:
            let i = Int(index) - 16
            return RGB(cubeLevels[i / 36], cubeLevels[i / 6 % 6], cubeLevels[i % 6])
        default:
            let level = UInt8(8 + 10 * (Int(index) - 232))
            return RGB(level, level, level)
        }
    }

    /// The nearest of entries 16–255 (the cube and the grey ramp, which terminals rarely
    /// redefine): the nearest cube colour or the nearest grey, whichever is closer.
    public static func nearest256(_ color: RGB) -> UInt8 {
        func cubeIndex(_ v: UInt8) -> Int { v < 48 ? 0 : v < 115 ? 1 : (Int(v) - 35) / 40 }
        let r = cubeIndex(color.red), g = cubeIndex(color.green), b = cubeIndex(color.blue)
        let cube = RGB(cubeLevels[r], cubeLevels[g], cubeLevels[b])
        let cubeEntry = UInt8(16 + 36 * r + 6 * g + b)
        if cube == color { return cubeEntry }
        let average = (Int(color.red) + Int(color.green) + Int(color.blue)) / 3
        let greyStep = average > 238 ? 23 : max(average - 3, 0) / 10
        let greyLevel = UInt8(8 + 10 * greyStep)
        let grey = RGB(greyLevel, greyLevel, greyLevel)
        return color.distance(to: grey) < color.distance(to: cube) ? UInt8(232 + greyStep) : cubeEntry
    }

    /// The nearest of the first `count` ANSI colours (8 or 16) in xterm's default palette. Near-greys
    /// only consider the greys (black, white and their bright forms): by distance alone a mid grey
    /// would turn dark yellow.
    public static func nearestANSI(_ color: RGB, count: Int) -> UInt8 {
        let channels = [color.red, color.green, color.blue]
        let greyish = Int(channels.max()!) - Int(channels.min()!) < 32
        let candidates = (0..<min(count, 16)).filter { !greyish || [0, 7, 8, 15].contains($0) }
        return UInt8(candidates.min { color.distance(to: ansi[$0]) < color.distance(to: ansi[$1]) }!)
    }
}
