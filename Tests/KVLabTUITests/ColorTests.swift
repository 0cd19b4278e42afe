import KVLabTUI
import Testing

/// Colour parsing, the xterm palette, quantization to each depth, and choosing a depth.
@Suite struct ColorTests {
    @Test func parsesEveryColourSpelling() {
        #expect(Color(parsing: "#1a2B3c") == .rgb(RGB(hex: 0x1A2B3C)))
        #expect(Color(parsing: "#f80") == .rgb(RGB(hex: 0xFF8800)))
        #expect(Color(parsing: "0") == .indexed(0))
        #expect(Color(parsing: "255") == .indexed(255))
        #expect(Color(parsing: "bright_blue") == .indexed(12))
        #expect(Color(parsing: "Grey") == .indexed(8))
        #expect(Color(parsing: "default") == .terminalDefault)
        for bad in ["256", "-1", "#12345", "#gggggg", "blu", "", "١٢"] { #expect(Color(parsing: bad) == nil, "\(bad)") }
        #expect(RGB(hex: 0x0A0B0C).description == "#0a0b0c")
    }

    @Test func everyCubeAndGreyEntryQuantizesToItself() {
        for index in UInt8(16)...255 {
            #expect(XtermPalette.nearest256(XtermPalette.rgb(index)) == index, "entry \(index)")
        }
    }

    @Test func nearest256MatchesKnownEntries() {
        let cases: [(UInt32, UInt8)] = [
            (0x000000, 16), (0xFFFFFF, 231), (0xFF0000, 196), (0x808080, 244), (0x5F87AF, 67),
            (0x121212, 233), (0xEEEEEE, 255), (0x767676, 243), (0xFF8700, 208), (0x7EE081, 114), (0x2D4F86, 24),
        ]
        for (hex, index) in cases { #expect(XtermPalette.nearest256(RGB(hex: hex)) == index, "\(RGB(hex: hex))") }
    }

    @Test func nearestANSIStaysWithinTheRequestedColours() {
        for index in UInt8(0)..<16 { #expect(XtermPalette.nearestANSI(XtermPalette.rgb(index), count: 16) == index) }
        #expect(XtermPalette.nearestANSI(RGB(hex: 0xFF8800), count: 16) == 3)  // orange → (dark) yellow
        #expect(XtermPalette.nearestANSI(RGB(hex: 0xFF0000), count: 8) == 1)
        #expect(XtermPalette.nearestANSI(RGB(hex: 0x5C5CFF), count: 8) == 4)
        #expect(XtermPalette.nearestANSI(RGB(hex: 0x808080), count: 8) == 7)  // a grey stays grey, not yellow
        #expect(XtermPalette.nearestANSI(RGB(hex: 0x404040), count: 8) == 0)
        #expect(XtermPalette.nearestANSI(RGB(hex: 0x808080), count: 16) == 8)
    }

    @Test func depthsQuantizeColours() {
        let orange = Color.rgb(RGB(hex: 0xFF8700))
        #expect(ColorDepth.truecolor.quantize(orange) == orange)
        #expect(ColorDepth.palette256.quantize(orange) == .indexed(208))
        #expect(ColorDepth.palette256.quantize(.indexed(3)) == .indexed(3))
        #expect(ColorDepth.palette16.quantize(orange) == .indexed(3))
        #expect(ColorDepth.palette16.quantize(.indexed(196)) == .indexed(9))
        #expect(ColorDepth.palette8.quantize(.indexed(9)) == .indexed(1))
        #expect(ColorDepth.palette8.quantize(orange) == .indexed(3))
        #expect(ColorDepth.mono.quantize(orange) == .terminalDefault)
        #expect(ColorDepth.palette8.quantize(.terminalDefault) == .terminalDefault)
    }

    @Test func depthFollowsFlagEnvironmentAndTerminal() {
        let xterm256 = ColorSetting.Terminal(colors: 256, directColor: false, canRedefineColors: true)
        let linuxConsole = ColorSetting.Terminal(colors: 8, directColor: false, canRedefineColors: false)
        let vt100 = ColorSetting.Terminal(colors: 0, directColor: false, canRedefineColors: false)
        let direct = ColorSetting.Terminal(colors: 1 << 24, directColor: true, canRedefineColors: false)
        #expect(ColorSetting.auto.depth(environment: [:], terminal: xterm256) == .palette256)
        #expect(ColorSetting.auto.depth(environment: ["COLORTERM": "truecolor"], terminal: xterm256) == .truecolor)
        #expect(ColorSetting.auto.depth(environment: ["COLORTERM": "24bit"], terminal: linuxConsole) == .palette8)
        #expect(ColorSetting.auto.depth(environment: [:], terminal: direct) == .truecolor)
        #expect(ColorSetting.auto.depth(environment: ["NO_COLOR": "1", "COLORTERM": "truecolor"], terminal: xterm256) == .mono)
        #expect(ColorSetting.auto.depth(environment: ["NO_COLOR": ""], terminal: xterm256) == .palette256)  // empty: not set
        #expect(ColorSetting.palette16.depth(environment: ["NO_COLOR": "1"], terminal: xterm256) == .palette16)  // a flag wins
        #expect(ColorSetting.truecolor.depth(environment: [:], terminal: ColorSetting.Terminal(colors: 256, directColor: false, canRedefineColors: false)) == .palette256)
        #expect(ColorSetting.palette256.depth(environment: [:], terminal: vt100) == .mono)
        #expect(ColorSetting.auto.depth(environment: ["COLORTERM": "truecolor"], terminal: vt100) == .mono)
    }
}
