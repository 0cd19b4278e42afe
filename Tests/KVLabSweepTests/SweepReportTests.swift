import Foundation
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif
@testable import KVLabSweep

@Suite struct SweepReportTests {
    /// Hand-checked: lower x and lower y are better.
    ///
    ///     y
    ///     4 | a           a (1, 4)  frontier: lowest x
    ///     3 |    b     e  b (2, 3)  frontier
    ///     2 |       c     c (3, 2)  frontier; d (3, 2.5) is beaten by c at the same x
    ///     1 |          f  f (4, 1)  frontier; e (4, 3) is beaten by f; g (5, 1) ties f's y at more x
    ///       +------------ x
    @Test func frontierOfAHandCheckedGrid() {
        let points: [(x: Double, y: Double)] = [(1, 4), (2, 3), (3, 2), (3, 2.5), (4, 3), (4, 1), (5, 1)]
        #expect(SweepReport.frontier(points, lowerYIsBetter: true) == [0, 1, 2, 5])
        // Higher y better (accuracy): (1, 4) beats everything with more x and less y.
        #expect(SweepReport.frontier(points, lowerYIsBetter: false) == [0])
        // Equal points are both kept.
        #expect(SweepReport.frontier([(1, 1), (1, 1), (2, 2)], lowerYIsBetter: true) == [0, 1])
        #expect(SweepReport.frontier([], lowerYIsBetter: true).isEmpty)
    }

    static func point(_ label: String, family: String, kv: Double, delta: Double, accuracy: Double? = nil) -> ReportPoint {
        ReportPoint(model: "embedded", probe: accuracy == nil ? "perplexity" : "needle", label: label, family: family, cells: 1,
                    deltaNLL: delta, kl: delta / 2, top1: 0.9, accuracy: accuracy, meanKVBytes: kv, peakKVBytes: kv,
                    stepMilliseconds: 1, projected: ["h100-sxm@llama-3-8b": kv / 1e6])
    }

    @Test func plotIsWellFormedSVGWithTheFrontierThroughItsPoints() throws {
        let points = [Self.point("full", family: "full", kv: 800_000, delta: 0),
                      Self.point("h2o:heavy=8,recent=8", family: "h2o", kv: 200_000, delta: 0.05),
                      Self.point("h2o:heavy=4,recent=4", family: "h2o", kv: 100_000, delta: 0.2),
                      Self.point("tova:budget=16 <&>", family: "tova", kv: 200_000, delta: 0.1)]
        let svg = SVGPlot.scatter(points, x: .residentKV, y: .deltaNLL, title: "ΔNLL vs KV — \"test\" & <more>")
        let parser = XMLParser(data: Data(svg.utf8))
        #expect(parser.parse(), "\(String(describing: parser.parserError))")
        #expect(svg.contains("resident KV, mean over steps (bytes)"))
        #expect(svg.contains("ΔNLL vs the full cache (nats/token)"))
        // One series per family, and the frontier: h2o 4 (100 kB) → h2o 8 (200 kB) → full (800 kB); tova is beaten.
        #expect(svg.components(separatedBy: "<g class=\"series\"").count - 1 == 3)
        let frontier = try #require(svg.split(separator: "\n").first { $0.contains("class=\"frontier\"") })
        #expect(frontier.split(separator: " ").filter { $0.contains(",") }.count == 3)
    }

    /// A broken configuration (ΔNLL 3, where the frontier's worst is 0.2) does not flatten the
    /// plot: the y axis ends at 0.4 and its marker sits on the top edge, its tooltip exact.
    @Test func pointsFarAboveTheFrontierSitOnTheTopEdge() throws {
        let points = [Self.point("full", family: "full", kv: 800_000, delta: 0),
                      Self.point("h2o:heavy=4,recent=4", family: "h2o", kv: 100_000, delta: 0.2),
                      Self.point("uniform:kbits=2", family: "uniform", kv: 150_000, delta: 3)]
        #expect(SweepReport.ceiling(points.map(\.deltaNLL), frontier: [1, 0], metric: .deltaNLL) == 0.4)
        #expect(SweepReport.ceiling(points.map(\.deltaNLL), frontier: [1, 0], metric: .deltaNLL, extra: [2]) == nil, "a dot at 2 widens it")
        #expect(SweepReport.ceiling([0, 0.5], frontier: [0], metric: .needleAccuracy) == nil, "accuracy keeps its 0–100% axis")
        let svg = SVGPlot.scatter(points, x: .residentKV, y: .deltaNLL, title: "t")
        #expect(XMLParser(data: Data(svg.utf8)).parse())
        #expect(svg.contains("1 above 0.4: drawn on the top edge"))
        let broken = try #require(svg.split(separator: "\n").first { $0.contains("uniform:kbits=2: 146.5 KiB, 3<") })
        #expect(broken.contains("cy=\"\(SVGPlot.f(SVGPlot.top))\""), "\(broken)")
        #expect(!svg.contains(">3<") && svg.contains(">0.4<"), "the ticks end at the ceiling")
    }

    @Test func ticksAreRoundAndCoverTheRange() {
        let small = SVGPlot.ticks(min: 0.013, max: 0.092)
        #expect(small.count == 6 && abs(small[0] - 0) < 1e-12 && abs(small[5] - 0.1) < 1e-12)
        let ticks = SVGPlot.ticks(min: 100_000, max: 800_000)
        #expect(ticks.first! <= 100_000 && ticks.last! >= 800_000 && ticks.count <= 9)
        #expect(SVGPlot.ticks(min: 5, max: 5).count >= 2)
    }

    @Test func markdownMarksTheFrontier() {
        let points = [Self.point("full", family: "full", kv: 800_000, delta: 0),
                      Self.point("tova:budget=16", family: "tova", kv: 200_000, delta: 0.1),
                      Self.point("window:window=16", family: "window", kv: 200_000, delta: 0.3)]
        let table = SweepReport.markdown(points, pairs: ["h100-sxm@llama-3-8b"])
        #expect(table.contains("| ★ | `full` |"))
        #expect(table.contains("| ★ | `tova:budget=16` |"))
        #expect(table.contains("|  | `window:window=16` |"))
        #expect(table.contains("h100-sxm × llama-3-8b decode"))
    }
}
