import CNCursesW
import KVLabTUI

/// Curses colour numbers and pairs for resolved colours, allocated on first use.
///
/// Direct-colour terminals (`xterm-direct`: colour numbers are 24-bit RGB) take RGB values as they
/// are; at truecolor depth on a 256-colour terminal that can redefine its palette, 24-bit colours
/// are given palette entries 16–255 with `init_extended_color` (the nearest already given one once
/// all are taken; ncurses restores the palette on exit); palette colours are their index.
struct ColorAllocator {
    let directColor: Bool
    let canRedefineColors: Bool
    let colors: Int32
    let colorPairs: Int32
    private var pairs: [PairKey: Int32] = [:]
    private var slots: [RGB: Int32] = [:]
    private var nextSlot: Int32 = 16

    private struct PairKey: Hashable {
        var foreground: Int32
        var background: Int32
    }

    init(directColor: Bool, canRedefineColors: Bool, colors: Int32, colorPairs: Int32) {
        self.directColor = directColor
        self.canRedefineColors = canRedefineColors
        self.colors = colors
        self.colorPairs = colorPairs
    }

    /// Forgets every pair and palette entry (the theme or depth changed).
    mutating func reset() {
        pairs.removeAll()
        slots.removeAll()
        nextSlot = 16
        reset_color_pairs()
    }

    /// The pair drawing `foreground` on `background` (0, the terminal's default pair, when colours
    /// are off or every pair is taken).
    mutating func pair(foreground: Color, background: Color) -> Int32 {
        guard colors > 0, colorPairs > 1 else { return 0 }
        let key = PairKey(foreground: number(foreground), background: number(background))
        if key.foreground == -1 && key.background == -1 { return 0 }
        if let pair = pairs[key] { return pair }
        let pair = Int32(pairs.count + 1)
        guard pair < colorPairs, init_extended_pair(pair, key.foreground, key.background) == OK else { return 0 }
        pairs[key] = pair
        return pair
    }

    /// The curses colour number of a colour (-1: the terminal default).
    mutating func number(_ color: Color) -> Int32 {
        switch color {
        case .terminalDefault:
            return -1
        case .indexed(let index):
            // Direct-colour entries keep 0–7 as the ANSI colours and read larger numbers as RGB.
            if directColor, let rgb = color.rgbValue, index >= 8 { return Int32(rgb.hex) }
            return Int32(index) < colors ? Int32(index) : -1
        case .rgb(let rgb):
            if directColor { return Int32(rgb.hex) }
            guard canRedefineColors && colors >= 256 else { return Int32(XtermPalette.nearest256(rgb)) }
            if let slot = slots[rgb] { return slot }
            if nextSlot < 256 {
                let slot = nextSlot
                func scaled(_ channel: UInt8) -> Int32 { Int32(channel) * 1000 / 255 }
                guard init_extended_color(slot, scaled(rgb.red), scaled(rgb.green), scaled(rgb.blue)) == OK else {
                    return Int32(XtermPalette.nearest256(rgb))
                }
                nextSlot += 1
                slots[rgb] = slot
                return slot
            }
            return slots.min { rgb.distance(to: $0.key) < rgb.distance(to: $1.key) }!.value
        }
    }
}
