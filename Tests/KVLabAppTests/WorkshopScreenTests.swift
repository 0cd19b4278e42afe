@testable import KVLabApp
import KVLabRun
import KVLabTUI
import Testing

/// Issue 16's screen items without a terminal: every layer on the KV map, the help reachable to
/// its last line, captions wrapped whole, the title bar of a replay, and the tour's stops.
@Suite struct WorkshopScreenTests {
    static func generating(_ tokens: Int, policy: String = "h2o:heavy=16,recent=16") throws -> Harness {
        let harness = try Harness(policy: policy, ghost: true)
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(tokens)
        return harness
    }

    /// The row labels of the KV map panel on a screen's text (the rows between its top border and the next).
    static func mapLabels(_ text: String) -> [String] {
        let lines = text.split(separator: "\n")
        guard let top = lines.firstIndex(where: { $0.contains("KV map") }) else { return [] }
        return lines[(top + 1)...].prefix { !$0.hasPrefix("├") && !$0.hasPrefix("└") }.compactMap { line in
            guard line.hasPrefix("│ L") else { return nil }
            return line.dropFirst(2).split(separator: " ").first.map(String.init)
        }
    }

    /// The embedded model's 8 layers all appear, one per row at 120×40 and two per row at 80×24
    /// (the issue saw L0, L2, L4, L6 at 80×24 and L0–L6 at 120×40).
    @Test func everyLayerIsOnTheMapAtEverySize() throws {
        let harness = try Self.generating(40)
        let small = harness.text(width: 80, height: 24)
        #expect(Self.mapLabels(small) == ["L0–1", "L2–3", "L4–5", "L6–7"], "\(small)")
        #expect(small.contains("L0–L7 of 8, 2 per row"), "\(small)")
        let large = harness.text(width: 120, height: 40)
        #expect(Self.mapLabels(large) == (0..<8).map { "L\($0)" }, "\(large)")
        #expect(large.contains("L0–L7 of 8 · positions"), "\(large)")
        let medium = harness.text(width: 100, height: 30)
        #expect(Set(Self.mapLabels(medium).flatMap { $0.dropFirst().split(separator: "–").compactMap { Int($0) } }).isSuperset(of: [0, 7]), "\(medium)")
    }

    /// At 80×24 the help scrolls: every key and every definition is on screen at some offset,
    /// the last line included, and End reaches it.
    @Test func helpScrollsToItsLastLineAt80x24() throws {
        let harness = try Harness()
        harness.state.screen = (80, 24)
        harness.press(.character("?"))
        var seen = harness.text(width: 80, height: 24)
        #expect(seen.contains("more: ↓ PgDn"))
        for _ in 0..<80 {
            harness.press(.down)
            seen += harness.text(width: 80, height: 24)
        }
        let help = WorkbenchScreen.help(glyphs: .unicode)
        for row in help.sections.flatMap(\.rows) { #expect(seen.contains(row.summary), "\(row.summary)") }
        harness.press(.home)
        harness.press(.end)
        let end = harness.text(width: 80, height: 24)
        #expect(end.contains(help.sections.last!.rows.last!.summary) && end.contains("above: ↑ PgUp") && !end.contains("more: ↓"), "\(end)")
        harness.press(.escape)
        #expect(!harness.text(width: 80, height: 24).contains("kvlab keys"))
    }

    /// A replay at 80×24: the caption wraps to as many rows as it needs, the panels keep their
    /// rows above it, and the title bar says the screen is replaying (not "generating 20 tok/s").
    @Test func aReplayAt80x24ShowsItsWholeCaptionAndSaysItReplays() throws {
        let harness = try Self.generating(30)
        let caption = "Over 100 tokens each (positions 340-439), keys read per token: 2,399,232 B full vs 444,948 B Quest (5.4x less; values the same). "
            + "Resident KV at the end: the same 5,406,720 B of keys and values, plus 344,064 B of Quest's page bounds (5,589,504 vs 5,933,568 B). Cost: mean KL 0.036."
        var buffer = Buffer(width: 80, height: 24)
        ReplayScreen(state: harness.state, caption: caption, step: 12, total: 200, pace: .demo, reexecutes: true, jumpText: nil).render(into: &buffer)
        let lines = buffer.textLines
        let words = lines.joined(separator: " ").split(separator: " ").joined(separator: " ")
        #expect(words.contains("▶ " + caption), "\(lines.joined(separator: "\n"))")
        #expect(lines[0].contains("replaying 1×") && !lines[0].contains("generating"), "\(lines[0])")
        #expect(lines.contains { $0.contains("Generation") } && lines.contains { $0.contains("KV map") } && lines.contains { $0.contains("Traffic") })
        #expect(lines[23].contains("step 12 / 200"))
    }

    @Test func theTitleBarNamesTheTheme() throws {
        let harness = try Harness()
        #expect(harness.text(width: 160, height: 48).split(separator: "\n")[0].contains("theme dark"))
    }

    /// The tour highlights one panel at a time, waits for its key (which does what it always
    /// does), and Esc ends it.
    @Test func theTourWaitsForEachStopsKey() throws {
        let harness = try Self.generating(5, policy: "full")
        harness.state.tour = Tour()
        #expect(harness.text().contains("Tour 1/\(Tour.stops.count): Generation"))
        harness.press(.character("e"))  // not the key this stop waits for: the tour stays
        #expect(harness.state.tour?.index == 0)
        harness.press(.character("+"))
        #expect(harness.state.tour?.index == 1 && harness.state.pace == 50)
        let text = harness.text()
        #expect(text.contains("Tour 2/\(Tour.stops.count): Knobs") && text.contains("press e"), "\(text)")
        harness.press(.escape)
        #expect(harness.state.tour == nil && harness.state.status?.text.hasPrefix("tour ended") == true)
        for stop in Tour.stops { #expect(!Keymap.key(for: stop.action).isEmpty, "every stop waits for a key of the table") }
    }

    /// Mono colours cannot tell the memory bars' segments apart: they keep their patterns (whole
    /// cells in one fill per segment, no eighth blocks blending two colours).
    @Test func monoMemoryBarsKeepTheirPatterns() throws {
        let harness = try Self.generating(10, policy: "full")
        func memoryRows(_ patterned: Bool) -> String {
            harness.state.patterned = patterned
            let lines = harness.text().split(separator: "\n")
            return ["here", "SRAM", "L2 ", "HBM"].compactMap { tier in lines.first { $0.contains("│ \(tier)") } }.joined(separator: "\n")
        }
        let eighths = Set("▎▍▌▋▊▉")
        #expect(memoryRows(false).contains(where: eighths.contains), "\(memoryRows(false))")
        #expect(!memoryRows(true).contains(where: eighths.contains), "\(memoryRows(true))")
    }

    /// The stream wraps at word boundaries, and scrolled back its last row says so.
    @Test func generationWrapsAtWordsAndMarksTheScrollback() throws {
        var state = PanelViewTests.state(PanelViewTests.snapshot(RunSettings()))
        state.stream = [StreamPiece(text: "ROMEO:", position: nil), StreamPiece(text: " But soft, what light through yonder window breaks", position: 0)]
        var buffer = Buffer(width: 24, height: 8)
        GenerationPanel(view: GenerationView(state), glyphs: .unicode).render(area: buffer.area, buffer: &buffer)
        let rows = buffer.textLines.dropFirst().dropLast().map { $0.dropFirst(2).dropLast(2).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        #expect(rows == ["ROMEO: But soft,", "what light through", "yonder window breaks"], "\(rows)")
        state.stream += (0..<30).map { StreamPiece(text: "\nline \($0)", position: $0 + 1) }
        state.scrollback = 5
        buffer = Buffer(width: 40, height: 8)
        GenerationPanel(view: GenerationView(state), glyphs: .unicode).render(area: buffer.area, buffer: &buffer)
        #expect(buffer.textLines[6].contains("↑ 5 lines back (PgDn)"), "\(buffer.textLines.joined(separator: "\n"))")
    }
}
