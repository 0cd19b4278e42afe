import KVLabTUI
import Testing

/// Cells, grapheme widths, clipping and diffs of the cell buffer.
@Suite struct BufferTests {
    @Test func characterWidthsFollowWcwidthRules() {
        #expect(CharacterWidth.of("a" as Character) == 1)
        #expect(CharacterWidth.of("─" as Character) == 1)
        #expect(CharacterWidth.of("⣿" as Character) == 1)
        #expect(CharacterWidth.of("中" as Character) == 2)
        #expect(CharacterWidth.of("한" as Character) == 2)
        #expect(CharacterWidth.of("Ａ" as Character) == 2)  // fullwidth A
        #expect(CharacterWidth.of("🌙" as Character) == 2)
        #expect(CharacterWidth.of("❤️" as Character) == 2)  // text-default heart with VS16
        #expect(CharacterWidth.of("❤" as Character) == 1)
        #expect(CharacterWidth.of("🇫🇷" as Character) == 2)
        #expect(CharacterWidth.of("e\u{301}" as Character) == 1)
        #expect(CharacterWidth.of(Unicode.Scalar(0x301)!) == 0)
        #expect(CharacterWidth.of(Unicode.Scalar(0x200B)!) == 0)
        #expect(CharacterWidth.of("月光 and 🌙") == 11)
    }

    @Test func putWritesClipsAndReturnsTheNextColumn() {
        var buffer = Buffer(width: 8, height: 2)
        let end = buffer.put("hello world", x: 1, y: 0, style: .role(.title), clip: Rect(x: 0, y: 0, width: 6, height: 1))
        #expect(end == 6)
        #expect(buffer.textLines == [" hello", ""])
        #expect(buffer[1, 0].style == .role(.title))
        #expect(buffer.put("x", x: 0, y: 5) == 0)  // outside: nothing drawn
    }

    @Test func wideClustersTakeTwoCellsAndOverwritesRepairHalves() {
        var buffer = Buffer(width: 6, height: 1)
        buffer.put("中a月", x: 0, y: 0)
        #expect(buffer.cells.map(\.symbol) == ["中", "", "a", "月", "", " "])
        buffer.put("b", x: 1, y: 0)  // the right half of 中: its left half becomes a space
        #expect(buffer.cells.map(\.symbol) == [" ", "b", "a", "月", "", " "])
        buffer.put("c", x: 3, y: 0)  // the left half of 月: its right half becomes a space
        #expect(buffer.cells.map(\.symbol) == [" ", "b", "a", "c", " ", " "])
        buffer.put("x月", x: 4, y: 0)  // no room for the wide cluster at the edge: a space
        #expect(buffer.cells.map(\.symbol) == [" ", "b", "a", "c", "x", " "])
        #expect(buffer.textLines == [" bacx"])
    }

    @Test func controlsAreReplacedAndLeadingMarksDropped() {
        var buffer = Buffer(width: 6, height: 1)
        buffer.put("\u{301}a\u{7}e\u{301}", x: 0, y: 0)
        #expect(buffer.cells.map(\.symbol).prefix(3) == ["a", "\u{FFFD}", "e\u{301}"])
    }

    @Test func stylesPatchWhatIsUnder() {
        var buffer = Buffer(width: 4, height: 1)
        buffer.fill(buffer.area, with: Cell(" ", style: Style(background: .role(.selectedBackground))))
        buffer.put("ab", x: 0, y: 0, style: Style(foreground: .role(.selectedForeground), attributes: .bold))
        #expect(buffer[0, 0].style == Style(foreground: .role(.selectedForeground), background: .role(.selectedBackground), attributes: .bold))
        buffer.setStyle(Rect(x: 1, y: 0, width: 2, height: 1), Style(attributes: .underline))
        #expect(buffer[1, 0].style.attributes == [.bold, .underline])
        #expect(buffer[2, 0].style.attributes == .underline)
    }

    @Test func diffFindsChangedRunsOnly() {
        var before = Buffer(width: 10, height: 3)
        before.put("abcdefghij", x: 0, y: 1)
        #expect(before.diff(from: before).isEmpty)
        #expect(before.diff(from: nil).count == 3)
        #expect(before.diff(from: Buffer(width: 10, height: 2)).count == 3)

        var after = before
        after.put("XY", x: 2, y: 1)
        after.put("Z", x: 7, y: 1)
        after.put("q", x: 0, y: 2)
        #expect(after.diff(from: before) == [Buffer.Run(x: 2, y: 1, count: 2), Buffer.Run(x: 7, y: 1, count: 1), Buffer.Run(x: 0, y: 2, count: 1)])

        var styled = before
        styled.setStyle(Rect(x: 4, y: 1, width: 1, height: 1), .role(.error))
        #expect(styled.diff(from: before) == [Buffer.Run(x: 4, y: 1, count: 1)])
    }

    @Test func diffRunsStartAtTheLeftHalfOfAWideCluster() {
        var before = Buffer(width: 4, height: 1)
        before.put("中", x: 0, y: 0)
        var after = before
        after[1, 0].style = .role(.error)  // only the continuation cell differs
        #expect(after.diff(from: before) == [Buffer.Run(x: 0, y: 0, count: 2)])
    }

    @Test func snapshotListsTextAndStyles() {
        var buffer = Buffer(width: 5, height: 2)
        buffer.put("ab", x: 0, y: 0, style: .role(.title, .bold))
        buffer.put("中", x: 2, y: 1, style: Style(foreground: .gradient(.heat, 128), background: .color(.rgb(RGB(hex: 0x102030)))))
        #expect(buffer.snapshot() == """
            ab
              中
            -- styles --
            aa
            ..bb
            -- legend --
            a fg=title bold
            b fg=heat@128 bg=#102030

            """)
    }
}
