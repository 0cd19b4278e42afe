import Foundation
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// `kvlab eval --suite` and the suite as sweep cells, end to end on a tiny generated suite.
@Suite(.serialized) struct SuiteCLITests {
    static let suite = """
        name: tiny
        seed: 3
        lengths: [200]
        depths: [0.5]
        tasks:
          - {name: niah_single_1, type: niah, haystack: repeat, tokens: 4}
          - {name: cwe, type: cwe, common: 2, tokens: 4}
        """

    /// A fresh directory holding `suite.yaml` and the sweep tests' play-like `text.txt`.
    static func workspace() throws -> URL {
        let directory = try SweepCLITests.workspace()
        try suite.write(to: directory.appendingPathComponent("suite.yaml"), atomically: true, encoding: .utf8)
        return directory
    }

    @Test func evalScoresEveryMethodAndDrawsThePlot() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        let arguments = ["eval", "--suite", path("suite.yaml"), "--text", path("text.txt"), "--policy", "full", "--policy", "window:window=24"]
        let run = try CLITests.run(arguments + ["--plot", path("plot.svg"), "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let rows = try #require(report["results"] as? [[String: Any]])
        #expect(rows.map { $0["method"] as? String } == ["full", "window:window=24"])
        for row in rows {
            let score = try #require(row["score"] as? [String: Any])
            #expect((score["tasks"] as? [[String: Any]])?.map { $0["name"] as? String } == ["niah_single_1", "cwe"])
            #expect((score["outcomes"] as? [Any])?.count == 2)
            let ratio = try #require(score["compressionRatio"] as? Double)
            // The full cache keeps everything; a 24-entry window drops most of a ~196-token prompt.
            #expect(row["method"] as? String == "full" ? ratio == 0 : ratio > 0.8, "\(row)")
        }
        let svg = try Data(contentsOf: URL(fileURLWithPath: path("plot.svg")))
        #expect(XMLParser(data: svg).parse())
        #expect(String(decoding: svg, as: UTF8.self).contains("compression ratio"))
        let table = try CLITests.run(arguments)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("niah_single_1") && table.stdout.contains("window:window=24"), "\(table.stdout)")
    }

    @Test func sameSeedWritesTheSameSamples() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        for name in ["a.jsonl", "b.jsonl"] {
            let run = try CLITests.run(["eval", "--suite", path("suite.yaml"), "--text", path("text.txt"), "--samples-out", path(name)])
            #expect(run.status == 0, "\(run.stderr)")
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: path("a.jsonl")))
        #expect(a == (try Data(contentsOf: URL(fileURLWithPath: path("b.jsonl")))))
        #expect(String(decoding: a, as: UTF8.self).split(separator: "\n").count == 2)
    }

    @Test func badSuitesAndOptionsAreOneLineErrors() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        try "lengths: [64]\ntasks: [{name: a, type: vt, hops: 0}]".write(toFile: path("bad.yaml"), atomically: true, encoding: .utf8)
        for (arguments, problem) in [
            (["--suite", path("bad.yaml")], "'hops' must be a whole number from 1 to 32"),
            (["--suite", path("missing.yaml")], "missing.yaml"),
            (["--suite", "rulr"], "neither a built-in suite"),
            (["--suite", path("suite.yaml"), "--probe", "needle"], "does not combine with --probe"),
            (["--plot", path("p.svg")], "--samples-out and --plot go with --suite"),
        ] {
            let run = try CLITests.run(["eval", "--text", path("text.txt")] + arguments)
            #expect(run.status != 0)
            let message = run.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(message.contains(problem) && !message.contains("\n"), "\(arguments): \(run.stderr)")
        }
    }

    @Test func sweepRunsSuiteCellsAndReportDrawsScoreAgainstCompression() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = { (name: String) in directory.appendingPathComponent(name).path }
        let run = try CLITests.run(["sweep", "run", "--store", path("store"), "--text", path("text.txt"), "--probe", "suite:" + path("suite.yaml"),
                                    "--policy", "full", "--policy", "streaming:sinks=4,window={budget}", "--budget", "16,32", "--quiet"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try CLITests.run(["sweep", "report", "--store", path("store")])
        #expect(report.status == 0, "\(report.stderr)")
        let files = report.stdout.split(separator: "\n").map(String.init)
        let plot = try #require(files.first { $0.hasSuffix("/score-vs-compression.svg") }, "\(files)")
        let svg = String(decoding: try Data(contentsOf: URL(fileURLWithPath: plot)), as: UTF8.self)
        #expect(XMLParser(data: Data(svg.utf8)).parse())
        // The streaming budgets as one line, kvpress's leaderboard style.
        #expect(svg.contains("class=\"method\""))
        let summary = try String(contentsOfFile: try #require(files.first { $0.hasSuffix("/summary.md") }), encoding: .utf8)
        #expect(summary.contains("suite suite.yaml") && summary.contains("niah_single_1"), "\(summary)")
    }
}
