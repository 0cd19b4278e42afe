@testable import KVLabTUI
import Testing

/// Buffers as ANSI text: whole frames, diffs, SGR colours per depth, wide clusters.
@Suite struct ANSISerializerTests {
    static let esc = "\u{1B}["
    static let palette = Theme.plain.palette(depth: .truecolor)

    @Test func aFirstFrameClearsAndWritesEveryRow() {
        var buffer = Buffer(width: 4, height: 2)
        _ = buffer.put("ab", x: 0, y: 0)
        let text = ANSISerializer.frame(buffer, previous: nil, palette: Self.palette)
        #expect(text.hasPrefix(Self.esc + "0m" + Self.esc + "2J" + Self.esc + "1;1H"))
        #expect(text.contains("ab  "))
        #expect(text.contains(Self.esc + "2;1H    "))
        #expect(text.hasSuffix(Self.esc + "0m"))
    }

    @Test func aDiffWritesOnlyTheChangedCellsAndNothingWhenEqual() {
        var previous = Buffer(width: 6, height: 3)
        _ = previous.put("hello", x: 0, y: 1)
        var next = previous
        _ = next.put("J", x: 2, y: 2, style: Style(foreground: .color(.rgb(RGB(1, 2, 3)))))
        let text = ANSISerializer.frame(next, previous: previous, palette: Self.palette)
        #expect(text == Self.esc + "3;3H" + Self.esc + "0;38;2;1;2;3;49mJ" + Self.esc + "0m")
        #expect(ANSISerializer.frame(next, previous: next, palette: Self.palette) == "")
    }

    @Test func colorsFollowTheDepthAndAttributesAreSet() {
        let style = ResolvedStyle(foreground: .indexed(3), background: .indexed(12), attributes: [.bold, .reverse])
        #expect(ANSISerializer.sgr(style) == Self.esc + "0;1;7;33;104m")
        let indexed = ResolvedStyle(foreground: .indexed(200), background: .rgb(RGB(9, 8, 7)), attributes: [.dim, .underline])
        #expect(ANSISerializer.sgr(indexed) == Self.esc + "0;2;4;38;5;200;48;2;9;8;7m")
        // At 256 colours a 24-bit paint goes to the palette.
        var buffer = Buffer(width: 1, height: 1)
        _ = buffer.put("x", x: 0, y: 0, style: Style(foreground: .color(.rgb(RGB(255, 0, 0)))))
        #expect(ANSISerializer.frame(buffer, previous: nil, palette: Theme.plain.palette(depth: .palette256)).contains("38;5;196;49mx"))
    }

    @Test func aWideClusterIsWrittenOnce() {
        var buffer = Buffer(width: 4, height: 1)
        _ = buffer.put("界a", x: 0, y: 0)
        let text = ANSISerializer.frame(buffer, previous: nil, palette: Self.palette)
        #expect(text.contains("界a "))
        #expect(!text.contains("界 "))
    }
}
