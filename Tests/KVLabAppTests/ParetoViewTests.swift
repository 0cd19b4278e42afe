import Foundation
@testable import KVLabApp
@testable import KVLabSweep
import KVLabTUI
import Testing

/// The Pareto view over a hand-made sweep, driven by the workbench's keys on the embedded model.
@Suite struct ParetoViewTests {
    static let pair = "h100-sxm@llama-3-8b"

    static func point(_ label: String, family: String, kv: Double, delta: Double, latency: Double) -> ReportPoint {
        ReportPoint(model: "embedded", probe: "perplexity", label: label, family: family, cells: 1, deltaNLL: delta, kl: delta, top1: nil,
                    accuracy: nil, meanKVBytes: kv, peakKVBytes: kv, stepMilliseconds: 1, projected: [pair: latency])
    }

    /// Hand-checked against resident KV: the frontier is h2o (300 kB, 0.2) → full (1 MB, 0); the
    /// window at 1.2 MB and 0.05 is beaten by the full cache (less KV, lower ΔNLL). Against the
    /// projected latency the window is on the frontier (4 ms, between h2o and full). The broken
    /// TOVA (ΔNLL 5) is above the y range, which ends at twice the worst frontier point (0.4).
    static func sweep() -> ParetoSweep {
        ParetoSweep(store: "/s", modelName: "embedded kvlab-shakespeare", points: [
            point("full", family: "full", kv: 1_000_000, delta: 0, latency: 6),
            point("window:window=128", family: "window", kv: 1_200_000, delta: 0.05, latency: 4),
            point("h2o:heavy=8,recent=8", family: "h2o", kv: 300_000, delta: 0.2, latency: 3),
            point("tova:budget=8", family: "tova", kv: 300_000, delta: 5, latency: 3),
        ], pairs: [pair], projectContext: 32768)
    }

    /// Where the live dot is drawn in the plot, as (column, row); the dot lines under the plot
    /// start at the panel's first inner column.
    static func dot(_ buffer: Buffer) -> (Int, Int)? {
        for y in 0..<buffer.height { for x in 3..<buffer.width where buffer[x, y].symbol == "◉" { return (x, y) } }
        return nil
    }

    @Test func theDotFollowsTheKnobsAcrossTheSweep() throws {
        let harness = try Harness()
        harness.state.pareto = Self.sweep()
        harness.press(.character("p"))
        var screen = harness.text(width: 200, height: 50)
        #expect(screen.contains("Pareto: ΔNLL vs resident KV"))
        #expect(!screen.contains("Generation"), "the view takes the generation panel's place")
        #expect(screen.contains("◉ full: ΔNLL 0, resident KV 976.6 KiB, on the frontier"))
        #expect(screen.contains("● full") && screen.contains("▲ h2o") && screen.contains("■ tova") && screen.contains("◆ window"),
                "one marker per family in the legend")
        #expect(screen.contains("↑ above 0.4") && screen.contains("0.4┤"), "the broken point does not flatten the frontier")
        let atFull = try #require(Self.dot(harness.screen(width: 120, height: 40)))

        harness.press(.character("e"))  // full → window: the same dot, at the window's point
        screen = harness.text(width: 200, height: 50)
        #expect(screen.contains("◉ window:window=128: ΔNLL 0.05, resident KV 1.1 MiB; beaten by full (0, 976.6 KiB)"))
        let atWindow = try #require(Self.dot(harness.screen(width: 120, height: 40)))
        #expect(atWindow.0 > atFull.0, "more KV: further right")
        #expect(atWindow.1 < atFull.1, "higher ΔNLL: higher up")

        harness.press(.character("p"))  // against the projected latency the window is on the frontier
        screen = harness.text(width: 200, height: 50)
        #expect(screen.contains("Pareto: ΔNLL vs projected latency"))
        #expect(screen.contains("◉ window:window=128: ΔNLL 0.05, projected latency 4 ms, on the frontier"))

        harness.press(.character("p"))  // the last axis: closed
        #expect(harness.text(width: 200, height: 50).contains("Generation"))
    }

    @Test func aConfigurationOutsideTheSweepIsPlacedLive() throws {
        let harness = try Harness()
        harness.state.pareto = Self.sweep()
        harness.press(.character("b"))  // fp32 → kivi: not in the sweep
        harness.press(.character("p"))
        #expect(harness.text(width: 200, height: 50).contains("full kivi:bits=2,group=32,residual=128: not in the sweep (g starts the ghost to place it live)"))
        #expect(Self.dot(harness.screen(width: 120, height: 40)) == nil)

        harness.press(.character("g"))
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(24)
        let screen = harness.text(width: 260, height: 50)
        let notes = screen.split(separator: "\n").filter { $0.contains("◉ ") }
        #expect(screen.contains("not in the sweep; live ΔNLL"), "\(notes)")
        #expect(screen.contains("(this sequence; R restarts it)"), "\(notes)")
        #expect(Self.dot(harness.screen(width: 120, height: 40)) != nil)
    }

    @Test func withoutASweepTheKeySaysHowToGiveOne() throws {
        let harness = try Harness()
        harness.press(.character("p"))
        let screen = harness.text(width: 200, height: 50)
        #expect(screen.contains("no sweep to draw: start the workbench with --sweep DIR"))
        #expect(screen.contains("Generation"))
    }

    @Test func drawsAtTheSmallestScreenAndInASCII() throws {
        let harness = try Harness()
        harness.state.pareto = Self.sweep()
        harness.press(.character("p"))
        let small = harness.text(width: 80, height: 24)
        #expect(small.contains("Pareto: ΔNLL vs resident KV"))
        #expect(small.contains("◉"))
        var buffer = Buffer(width: 120, height: 40)
        WorkbenchScreen(state: harness.state, glyphs: .ascii).render(into: &buffer)
        let ascii = buffer.textLines.joined(separator: "\n")
        #expect(ascii.contains("@ full: ΔNLL 0"))
        #expect(ascii.contains("o full") && ascii.contains("^ h2o"))
    }

    @Test func aStoreIsReadOrRefusedInOneLine() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-pareto-\(UUID().uuidString)").path
        #expect(throws: (any Error).self) { try ParetoSweep(store: missing, model: nil) }
        do { _ = try ParetoSweep(store: missing, model: nil) } catch {
            #expect("\(error)" == "\(missing): is not a sweep store (no results/ directory; kvlab sweep run --store makes one)")
        }
        try ResultStore(directory: missing).create()
        defer { try? FileManager.default.removeItem(atPath: missing) }
        do { _ = try ParetoSweep(store: missing, model: "/models/m.gguf") } catch {
            #expect("\(error)" == "\(missing): has no results for m.gguf (no finished cells)")
        }
    }
}
