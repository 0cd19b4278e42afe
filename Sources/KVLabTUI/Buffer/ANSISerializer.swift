/// Writes buffers as ANSI terminal text (cursor moves and SGR colours): what a terminal must
/// receive to go from one frame to the next. Pure: no terminal, no curses (asciicast export).
public enum ANSISerializer {
    /// Control Sequence Introducer.
    static let csi = "\u{1B}["

    /// The text that turns a terminal showing `previous` (nil: anything; the screen is cleared)
    /// into one showing `buffer`: each changed run as a cursor move and its cells, a style change
    /// only where the style differs, and the attributes reset at the end.
    public static func frame(_ buffer: Buffer, previous: Buffer?, palette: Palette) -> String {
        let full = previous == nil || previous?.area != buffer.area
        var out = full ? csi + "0m" + csi + "2J" : ""
        var current: ResolvedStyle?
        for run in buffer.diff(from: full ? nil : previous) {
            out += csi + "\(run.y + 1);\(run.x + 1)H"
            for x in run.x..<run.x + run.count {
                let cell = buffer[x, run.y]
                // The wide cluster to the left already covered this column.
                guard !cell.isContinuation else { continue }
                let style = palette.resolve(cell.style)
                if style != current {
                    out += sgr(style)
                    current = style
                }
                out += cell.symbol
            }
        }
        if current != nil { out += csi + "0m" }
        return out
    }

    /// The SGR sequence selecting exactly `style` (reset first, so no attribute carries over).
    public static func sgr(_ style: ResolvedStyle) -> String {
        var codes = ["0"]
        for (attribute, code) in [(TextAttributes.bold, "1"), (.dim, "2"), (.underline, "4"), (.reverse, "7")]
        where style.attributes.contains(attribute) {
            codes.append(code)
        }
        codes.append(colorCode(style.foreground, background: false))
        codes.append(colorCode(style.background, background: true))
        return csi + codes.joined(separator: ";") + "m"
    }

    /// A colour's SGR parameters: the default (39/49), the 16 ANSI colours (30–37, 90–97 and
    /// 40–47, 100–107), xterm's 256 (38;5;n) or 24-bit (38;2;r;g;b).
    static func colorCode(_ color: Color, background: Bool) -> String {
        switch color {
        case .terminalDefault: return background ? "49" : "39"
        case .indexed(let index) where index < 8: return String((background ? 40 : 30) + Int(index))
        case .indexed(let index) where index < 16: return String((background ? 100 : 90) + Int(index) - 8)
        case .indexed(let index): return (background ? "48;5;" : "38;5;") + String(index)
        case .rgb(let rgb): return (background ? "48;2;" : "38;2;") + "\(rgb.red);\(rgb.green);\(rgb.blue)"
        }
    }
}
