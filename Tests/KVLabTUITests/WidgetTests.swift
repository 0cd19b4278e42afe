import Foundation
import KVLabTUI
import Testing

/// Each widget rendered alone into a small buffer, compared line by line (and style by style
/// where the style carries the meaning).
@Suite struct WidgetTests {
    @Test func blockDrawsBordersTitlesAndInnerArea() {
        var block = Block(title: "KV", glyphs: .unicode)
        block.titles.append(Block.Title(Line("1.2 ms", alignment: .right)))
        block.titles.append(Block.Title(Line("end"), position: .bottom))
        let buffer = rendered(block, width: 16, height: 4)
        #expect(buffer.textLines == ["┌ KV ─ 1.2 ms ─┐", "│              │", "│              │", "└ end ─────────┘"])
        #expect(buffer[2, 0].style == .role(.title))
        #expect(buffer[0, 0].style == .role(.border))
        #expect(block.inner(buffer.area) == Rect(x: 1, y: 1, width: 14, height: 2))
        #expect(rendered(Block(title: "x", glyphs: .ascii), width: 5, height: 3).textLines == ["+ x +", "|   |", "+---+"])
        #expect(rendered(Block(rounded: true), width: 3, height: 3).textLines == ["╭─╮", "│ │", "╰─╯"])
    }

    @Test func longTitlesEndWithAnEllipsisAndRightTitlesYield() {
        var block = Block(title: "Generation stream", glyphs: .unicode)
        block.titles.append(Block.Title(Line("REC", alignment: .right)))
        #expect(rendered(block, width: 12, height: 2).textLines.first == "┌ Generat… ┐")
        #expect(rendered(block, width: 28, height: 2).textLines.first == "┌ Generation stream ─ REC ─┐")
    }

    @Test func neighbouringBlocksMergeTheirBorders() {
        var buffer = Buffer(width: 9, height: 5)
        let rows = Layout(.vertical, [.fill(1), .fill(1)], spacing: -1).split(buffer.area)
        let top = Layout(.horizontal, [.fill(1), .fill(1)], spacing: -1).split(rows[0])
        for area in top + [rows[1]] { Block().render(area: area, buffer: &buffer) }
        #expect(buffer.textLines == ["┌───┬───┐", "│   │   │", "├───┴───┤", "│       │", "└───────┘"])
    }

    @Test func paragraphWrapsWordsCharactersOrNot() {
        let text = Paragraph([Line("the quick brown fox"), Line("jumps")])
        #expect(rendered(text, width: 9, height: 4).textLines == ["the quick", "brown fox", "jumps", ""])
        var characters = text
        characters.wrap = .character
        #expect(rendered(characters, width: 7, height: 4).textLines == ["the qui", "ck brow", "n fox", "jumps"])
        var unwrapped = text
        unwrapped.wrap = .none
        #expect(rendered(unwrapped, width: 7, height: 2).textLines == ["the qui", "jumps"])
        #expect(rendered(Paragraph([Line("abcdefghij xy")]), width: 4, height: 4).textLines == ["abcd", "efgh", "ij", "xy"])
        #expect(rendered(Paragraph([Line("a\tb")]), width: 8, height: 1).textLines == ["a   b"])
        #expect(text.rowCount(width: 9) == 3)
    }

    @Test func paragraphScrollsFromTheTopOrFollowsTheEnd() {
        let lines = (1...6).map { Line("line \($0)") }
        #expect(rendered(Paragraph(lines, scroll: .top(2)), width: 8, height: 2).textLines == ["line 3", "line 4"])
        #expect(rendered(Paragraph(lines, scroll: .bottom(0)), width: 8, height: 2).textLines == ["line 5", "line 6"])
        #expect(rendered(Paragraph(lines, scroll: .bottom(3)), width: 8, height: 2).textLines == ["line 2", "line 3"])
        #expect(rendered(Paragraph(lines, scroll: .bottom(10)), width: 8, height: 2).textLines == ["", ""])
    }

    @Test func paragraphKeepsEachTokensStyleAcrossWraps() {
        let spans = [Span("kept ", style: .role(.kvKept)), Span("evicted", style: .role(.kvEvicted)), Span("\nnext", style: .role(.kvQuantized))]
        let buffer = rendered(Paragraph(spans: spans, scroll: .bottom(0)), width: 6, height: 3)
        #expect(buffer.textLines == ["evicte", "d", "next"])
        #expect(buffer[0, 0].style == .role(.kvEvicted) && buffer[0, 1].style == .role(.kvEvicted))
        #expect(buffer[0, 2].style == .role(.kvQuantized))
    }

    @Test func capacityBarStacksSegmentsToAnEighthOfACell() {
        // 10 cells = 80 eighths: weights 0–30, KV 30–45, free after.
        let bar = CapacityBar(segments: [.init(3, .role(.tierWeights)), .init(1.5, .role(.tierKVPayload))], capacity: 8, caps: false)
        let buffer = rendered(bar, width: 10, height: 1)
        #expect(buffer.textLines == ["███▊█▋"])
        #expect(buffer[2, 0].style == Style(foreground: .role(.tierWeights)))
        #expect(buffer[3, 0].style == Style(foreground: .role(.tierWeights), background: .role(.tierKVPayload)))  // 6/8 weights, 2/8 KV
        #expect(buffer[5, 0].style == Style(foreground: .role(.tierKVPayload), background: .role(.tierFree)))
        #expect(buffer[9, 0].style == Style(background: .role(.tierFree)))
    }

    @Test func patternedBarsAndOverflowAndCaps() {
        let segments: [CapacityBar.Segment] = [.init(2, .role(.tierWeights)), .init(2, .role(.tierKVPayload)), .init(100, .role(.tierKVMetadata))]
        let patterned = CapacityBar(segments: segments, capacity: 8, patterned: true, glyphs: .ascii)
        #expect(rendered(patterned, width: 10, height: 1).textLines == ["[##==++++]"])
        let empty = CapacityBar(segments: segments, capacity: 0, patterned: true, glyphs: .ascii)
        #expect(rendered(empty, width: 6, height: 1).textLines == ["[....]"])
    }

    @Test func sparklineDrawsNewestRightInEighths() {
        let line = Sparkline([0, 2, 4, 6, 8], maximum: 8, gradient: nil)
        #expect(rendered(line, width: 5, height: 1).textLines == [" ▂▄▆█"])
        #expect(rendered(line, width: 3, height: 1).textLines == ["▄▆█"])
        #expect(rendered(Sparkline([8, .nan, 4], gradient: nil), width: 3, height: 1).textLines == ["█ ▄"])
        #expect(rendered(Sparkline([2, 8], gradient: nil), width: 2, height: 2).textLines == [" █", "▄█"])
        #expect(rendered(Sparkline([1, 2, 4], gradient: nil, glyphs: .ascii), width: 3, height: 1).textLines == ["_.#"])
        let colored = rendered(Sparkline([4, 8], maximum: 8, gradient: .graph), width: 2, height: 1)
        #expect(colored[0, 0].style.foreground == .gradient(.graph, 128))
        #expect(colored[1, 0].style.foreground == .gradient(.graph, 255))
    }

    @Test func lineGraphPlotsBrailleDotsAndJoinsSteps() {
        let flat = LineGraph(series: [.init([1, 1, 1, 1], style: .role(.seriesA))], range: 0...2)
        #expect(rendered(flat, width: 2, height: 1).textLines == ["⠒⠒"])  // the middle of 4 dot rows rounds to the second from the top
        let step = LineGraph(series: [.init([0, 3], style: .role(.seriesA))], range: 0...3)
        #expect(rendered(step, width: 1, height: 1).textLines == ["⣸"])  // left: the bottom dot; right: the stroke up
        let ascii = LineGraph(series: [.init([0, 1], style: .role(.seriesA))], range: 0...1, glyphs: .ascii)
        #expect(rendered(ascii, width: 2, height: 1).textLines == [".:"])
        let two = LineGraph(series: [.init([0, 0], style: .role(.seriesA)), .init([1, 1], style: .role(.seriesB))], range: 0...1, glyphs: .ascii)
        let buffer = rendered(two, width: 2, height: 1)
        #expect(buffer.textLines == ["::"])
        #expect(buffer[0, 0].style == .role(.seriesB))
    }

    @Test func heatMapShowsTheNewestColumnsWithLabels() {
        let rows: [[HeatMap.Entry]] = [
            [.mark("a", .role(.kvKept)), .mark("b", .role(.kvEvicted)), .mark("c", .role(.kvKept)), .level(1)],
            [.level(0), .empty, .level(0.5)],
        ]
        let map = HeatMap(rows: rows, rowLabels: ["L0", "L1"], glyphs: .unicode)
        let buffer = rendered(map, width: 6, height: 2)
        #expect(buffer.textLines == ["L0 bc█", "L1  █"])
        #expect(buffer[5, 0].style.foreground == .gradient(.heat, 255))
        #expect(buffer[4, 1].style.foreground == .gradient(.heat, 128))
        var leading = map
        leading.anchor = .leading
        leading.shaded = true
        #expect(rendered(leading, width: 6, height: 2).textLines == ["L0 abc", "L1 ░ ▓"])
    }

    @Test func keyValueTableAlignsKeysAndCutsLongValues() {
        let table = KeyValueTable([KeyValueTable.Row("evict", "h2o:heavy=64,recent=64"), KeyValueTable.Row("kv", "q8_0")])
        #expect(rendered(table, width: 16, height: 3).textLines == ["evict h2o:heavy…", "kv    q8_0", ""])
        var right = table
        right.valueAlignment = .right
        #expect(rendered(right, width: 12, height: 2).textLines[1] == "kv      q8_0")
    }

    @Test func keyTableDrivesActionsHelpAndMarkdown() {
        let table = WidgetGallery.keyTable
        #expect(table.action(for: .character("E")) == "evict")
        #expect(table.action(for: .control("c")) == "quit")
        #expect(table.action(for: .character("z")) == nil)
        #expect(table.helpSections().map(\.title) == ["General", "KV cache", "Editor"])
        #expect(table.helpSections(unicode: false).last?.rows.first?.keys == "Up/Down")
        let markdown = table.markdown()
        #expect(markdown.hasPrefix("| keys | action |\n|---|---|\n| **General** | |\n| `?` | show or hide this help |\n"))
    }

    @Test func helpOverlayIsCentredAndSaysWhenRowsDoNotFit() {
        let overlay = HelpOverlay(table: WidgetGallery.keyTable, glyphs: .ascii)
        let small = rendered(overlay, width: 46, height: 8)
        func row(_ text: String) -> String { "| " + text.padding(toLength: 42, withPad: " ", startingAt: 0) + " |" }
        #expect(small.textLines == [
            "+ Keys " + String(repeating: "-", count: 38) + "+",
            row("General"),
            row("?           show or hide this help"),
            row("Space       pause or resume generation"),
            row("q/Ctrl-C    quit"),
            row(""),
            row(String(repeating: " ", count: 36) + "~ more"),
            "+ ? or Esc closes " + String(repeating: "-", count: 27) + "+",
        ])
        let wide = rendered(overlay, width: 120, height: 10)
        #expect(wide.textLines[1].contains("General") && wide.textLines[1].contains("[/]"))  // two columns
        #expect(!wide.textLines.joined().contains("more"))
    }
}
