import KVLabTestSupport
import KVLabTUI
import Testing

/// Every widget together in a frame laid out like the workbench, at the minimum and a large
/// terminal size, in both glyph sets, compared with committed snapshots.
@Suite struct GalleryTests {
    @Test(arguments: [(80, 24), (160, 48)])
    func unicodeFrame(width: Int, height: Int) {
        var buffer = Buffer(width: width, height: height)
        WidgetGallery().render(into: &buffer)
        expectSnapshot(buffer, "gallery-unicode-\(width)x\(height)")
    }

    @Test(arguments: [(80, 24), (160, 48)])
    func asciiPatternedFrame(width: Int, height: Int) {
        var buffer = Buffer(width: width, height: height)
        WidgetGallery(glyphs: .ascii, patterned: true).render(into: &buffer)
        expectSnapshot(buffer, "gallery-ascii-\(width)x\(height)")
        #expect(buffer.cells.allSatisfy { $0.symbol.unicodeScalars.allSatisfy(\.isASCII) })
    }

    @Test(arguments: [(80, 24), (160, 48)])
    func helpOverlay(width: Int, height: Int) {
        var buffer = Buffer(width: width, height: height)
        WidgetGallery(showsHelp: true).render(into: &buffer)
        expectSnapshot(buffer, "gallery-help-\(width)x\(height)")
    }
}
