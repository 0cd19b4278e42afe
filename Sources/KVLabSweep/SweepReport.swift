import Foundation
import KVLabFoundation

/// One method configuration in a report: its cells' numbers averaged over texts and probe
/// placements (needle depths and seeds).
public struct ReportPoint: Sendable, Equatable {
    public var model: String
    /// `perplexity`, `needle` or `two-question`.
    public var probe: String
    public var label: String
    public var family: String
    public var cells: Int
    public var deltaNLL: Double
    public var kl: Double
    public var top1: Double?
    /// Share of probe cells answered (probe points).
    public var accuracy: Double?
    public var meanKVBytes: Double
    public var peakKVBytes: Double
    public var stepMilliseconds: Double
    /// Projected decode step per `DEVICE@TARGET`.
    public var projected: [String: Double]
    /// Suite points: the mean task score (0–100), the compression ratio and each task's score.
    public var suiteScore: Double? = nil
    public var compressionRatio: Double? = nil
    public var taskScores: [SuiteScore.Group] = []
}

/// A quantity a plot draws, and which way is better.
public struct ReportMetric: Sendable {
    /// In file names.
    public var name: String
    /// In plot titles.
    public var label: String
    public var axisTitle: String
    public var lowerIsBetter: Bool
    /// Ticks at round numbers of KiB, MiB, … rather than of powers of ten.
    public var binaryTicks = false
    /// An axis drawn over this whole range whatever the values (a share: 0 to 100%).
    public var range: ClosedRange<Double>?
    public var probe: String
    public var value: @Sendable (ReportPoint) -> Double?
    /// Tick labels.
    public var format: @Sendable (Double) -> String

    public static let deltaNLL = ReportMetric(name: "delta-nll", label: "ΔNLL", axisTitle: "ΔNLL vs the full cache (nats/token)", lowerIsBetter: true,
                                              probe: "perplexity", value: { $0.deltaNLL }, format: { tick($0) })
    public static let kl = ReportMetric(name: "kl", label: "KL", axisTitle: "KL(full ‖ method) (nats/token)", lowerIsBetter: true,
                                        probe: "perplexity", value: { $0.kl }, format: { tick($0) })
    public static let needleAccuracy = ReportMetric(name: "needle-accuracy", label: "needle accuracy", axisTitle: "needle accuracy (% answered)",
                                                    lowerIsBetter: false, range: 0...100, probe: "needle", value: { $0.accuracy.map { $0 * 100 } }, format: { tick($0) + "%" })
    public static let suiteScore = ReportMetric(name: "score", label: "score", axisTitle: "score (RULER string match, mean over tasks, %)",
                                                lowerIsBetter: false, range: 0...100, probe: SweepProbe.suitePrefix, value: { $0.suiteScore },
                                                format: { tick($0) + "%" })
    /// kvpress's x axis: the share of the prompt's KV the method removes (bytes, so quantization counts).
    public static let compressionRatio = ReportMetric(name: "compression", label: "compression ratio",
                                                      axisTitle: "compression ratio (share of the prompt's KV bytes removed)", lowerIsBetter: false,
                                                      probe: "", value: { $0.compressionRatio }, format: { tick($0) })
    public static let residentKV = ReportMetric(name: "kv", label: "resident KV", axisTitle: "resident KV, mean over steps (bytes)", lowerIsBetter: true,
                                                binaryTicks: true, probe: "", value: { $0.meanKVBytes }, format: { formatBytes(Int($0.rounded())) })

    public static func projectedLatency(_ pair: String) -> ReportMetric {
        ReportMetric(name: "latency-" + pair.replacingOccurrences(of: "@", with: "-on-").replacingOccurrences(of: "/", with: "_"),
                     label: "projected latency", axisTitle: "projected decode step, \(pair.replacingOccurrences(of: "@", with: " × ")) (ms)", lowerIsBetter: true,
                     probe: "", value: { $0.projected[pair] }, format: { tick($0) })
    }

    /// A short decimal: 3 significant digits.
    static func tick(_ value: Double) -> String {
        if value == 0 { return "0" }
        let text = String(format: "%.3g", value)
        return text.contains("e") ? String(format: "%.2e", value) : text
    }
}

public enum SweepReport {
    /// The points of `results`, grouped by everything but the text and the probe's placement.
    public static func points(_ results: [SweepResult]) -> [ReportPoint] {
        struct Key: Hashable {
            var model: String, probe: String, tokens: Int?, chunks: Int, prefill: Int, label: String, projections: [String], context: Int
        }
        var groups: [Key: [SweepResult]] = [:], order: [Key] = []
        for r in results {
            let c = r.cell
            let key = Key(model: c.model, probe: c.probeKind, tokens: c.tokens, chunks: c.chunks, prefill: c.prefill, label: c.label,
                          projections: c.projections, context: c.projectContext)
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        return order.map { key in
            let members = groups[key]!
            func mean(_ value: (SweepResult) -> Double) -> Double { members.map(value).reduce(0, +) / Double(members.count) }
            let answered = members.compactMap(\.quality.answered)
            let top1 = members.compactMap(\.quality.summary.top1Agreement)
            var projected: [String: Double] = [:]
            for pair in key.projections {
                let values = members.compactMap { $0.projections.first { $0.pair == pair }?.decodeMilliseconds }
                if !values.isEmpty { projected[pair] = values.reduce(0, +) / Double(values.count) }
            }
            let suites = members.compactMap(\.quality.suite)
            var taskScores: [SuiteScore.Group] = []
            for task in suites.first?.tasks ?? [] {
                let scores = suites.compactMap { $0.tasks.first { $0.name == task.name } }
                taskScores.append(SuiteScore.Group(name: task.name, samples: scores.map(\.samples).reduce(0, +),
                                                   score: scores.map(\.score).reduce(0, +) / Double(scores.count)))
            }
            return ReportPoint(model: key.model, probe: key.probe, label: key.label, family: members[0].cell.family, cells: members.count,
                               deltaNLL: mean(\.quality.deltaNLL), kl: mean(\.quality.kl),
                               top1: top1.isEmpty ? nil : top1.reduce(0, +) / Double(top1.count),
                               accuracy: answered.isEmpty ? nil : Double(answered.filter { $0 }.count) / Double(answered.count),
                               meanKVBytes: mean(\.quality.meanResidentKVBytes), peakKVBytes: mean { Double($0.quality.peakResidentKVBytes) },
                               stepMilliseconds: mean(\.measured.stepMilliseconds), projected: projected,
                               suiteScore: suites.isEmpty ? nil : suites.map(\.score).reduce(0, +) / Double(suites.count),
                               compressionRatio: suites.isEmpty ? nil : suites.map(\.compressionRatio).reduce(0, +) / Double(suites.count),
                               taskScores: taskScores)
        }
    }

    /// Indices of the Pareto-optimal points of `(x, y)`: none other is at least as good in both
    /// (x lower, or higher when `lowerXIsBetter` is false; y likewise) and better in one. Equal
    /// points are all kept. From the best x.
    public static func frontier(_ points: [(x: Double, y: Double)], lowerYIsBetter: Bool, lowerXIsBetter: Bool = true) -> [Int] {
        let sign = lowerYIsBetter ? 1.0 : -1.0, xSign = lowerXIsBetter ? 1.0 : -1.0
        let order = points.indices.sorted { a, b in
            points[a].x != points[b].x ? xSign * points[a].x < xSign * points[b].x : sign * points[a].y < sign * points[b].y
        }
        var result: [Int] = []
        var best = Double.infinity, bestX = -Double.infinity
        for i in order {
            let y = sign * points[i].y
            if y < best || (y == best && points[i].x == bestX) {
                result.append(i)
                best = y
                bestX = points[i].x
            }
        }
        return result
    }

    /// The top of a plot's y range when points far worse than the frontier (a method that broke,
    /// at many times the others' loss) would flatten it: twice the worst of the frontier's `ys`
    /// and of `extra` (the workbench's live dot). Nil when every point fits below it, or the
    /// metric is not lower-is-better over an open range. Points above it are drawn at the top.
    public static func ceiling(_ ys: [Double], frontier: [Int], metric: ReportMetric, extra: [Double] = []) -> Double? {
        let worst = (frontier.map { ys[$0] } + extra).max() ?? 0
        guard metric.lowerIsBetter, metric.range == nil, worst > 0, ys.contains(where: { $0 > 2 * worst }) else { return nil }
        return 2 * worst
    }

    /// The report's files: `NAME.svg` per plot and `summary.md`, as (file name, content).
    public static func files(_ results: [SweepResult]) -> [(name: String, content: String)] {
        let all = points(results)
        var files: [(String, String)] = []
        let models = Array(Set(all.map(\.model))).sorted()
        let pairs = Array(Set(results.flatMap(\.cell.projections))).sorted()
        for model in models {
            let modelPoints = all.filter { $0.model == model }
            let prefix = models.count > 1 ? (model as NSString).lastPathComponent.replacingOccurrences(of: ".", with: "_") + "-" : ""
            for y in [ReportMetric.deltaNLL, .kl, .needleAccuracy] {
                let candidates = modelPoints.filter { $0.probe == y.probe && y.value($0) != nil }
                guard !candidates.isEmpty else { continue }
                for x in [ReportMetric.residentKV] + pairs.map(ReportMetric.projectedLatency) {
                    let drawn = candidates.filter { x.value($0) != nil }
                    guard !drawn.isEmpty else { continue }
                    let title = "\(y.label) vs \(x.label) — \(modelName(model)), \(drawn.count) configurations"
                    files.append(("\(prefix)\(y.name)-vs-\(x.name).svg", SVGPlot.scatter(drawn, x: x, y: y, title: title)))
                }
            }
            // kvpress's leaderboard: score against compression ratio, a line per method.
            let suites = Array(Set(modelPoints.compactMap { $0.suiteScore == nil ? nil : $0.probe })).sorted()
            for suite in suites {
                let drawn = modelPoints.filter { $0.probe == suite && $0.suiteScore != nil }
                let suiteName = suiteDisplayName(suite)
                let title = "\(suiteName) score vs compression ratio — \(modelName(model)), \(drawn.count) configurations"
                let fileSuffix = suites.count > 1 ? "-" + suiteName.replacingOccurrences(of: ".", with: "_") : ""
                files.append(("\(prefix)score-vs-compression\(fileSuffix).svg",
                              SVGPlot.scatter(drawn, x: .compressionRatio, y: .suiteScore, title: title, lines: true)))
            }
        }
        files.append(("summary.md", markdown(all, pairs: pairs)))
        return files
    }

    /// A model as plots and tables name it: the file name, or the embedded model.
    public static func modelName(_ model: String) -> String {
        model == SweepCell.embeddedModel ? "embedded kvlab-shakespeare" : (model as NSString).lastPathComponent
    }

    /// A suite as plots and tables name it: its built-in name or file name.
    public static func suiteDisplayName(_ probe: String) -> String {
        let name = String(probe.dropFirst(probe.hasPrefix(SweepProbe.suitePrefix) ? SweepProbe.suitePrefix.count : 0))
        return SuiteSpec.builtIn[name] == nil ? (name as NSString).lastPathComponent : name
    }

    /// A suite's table (header first): per configuration the compression ratio, the score (the
    /// mean over tasks, RULER's average) and each task's score; rows by family then compression;
    /// ★ marks the frontier of score against compression ratio.
    public static func suiteRows(_ points: [ReportPoint]) -> [[String]] {
        let tasks = points.first?.taskScores.map(\.name) ?? []
        let onFrontier = Set(frontier(points.map { ($0.compressionRatio ?? 0, $0.suiteScore ?? 0) }, lowerYIsBetter: false, lowerXIsBetter: false))
        let order = points.indices.sorted { a, b in
            (points[a].family, points[a].compressionRatio ?? 0, points[a].label) < (points[b].family, points[b].compressionRatio ?? 0, points[b].label)
        }
        let header = ["", "method", "family", "compression", "score"] + tasks + ["KV peak", "step"]
        return [header] + order.map { i in
            let p = points[i]
            return [onFrontier.contains(i) ? "★" : "", "`\(p.label)`", p.family, String(format: "%.2f", p.compressionRatio ?? 0),
                    String(format: "%.1f", p.suiteScore ?? 0)]
                + tasks.map { task in p.taskScores.first { $0.name == task }.map { String(format: "%.1f", $0.score) } ?? "-" }
                + [formatBytes(Int(p.peakKVBytes.rounded())), String(format: "%.3f ms", p.stepMilliseconds)]
        }
    }

    /// One table per model and probe kind, rows by family then resident KV; `*` marks points on
    /// the frontier of quality (ΔNLL, or accuracy for probes) against resident KV.
    public static func markdown(_ points: [ReportPoint], pairs: [String]) -> String {
        var lines = ["# Sweep summary", "",
                     "Each row is one method configuration, averaged over its cells (texts, needle depths and seeds). "
                     + "ΔNLL and KL are against the full-cache ghost in nats per token; KV is resident KV bytes (mean, peak); "
                     + "step is the measured decode step; ★ marks the Pareto frontier of quality against mean resident KV.", ""]
        let groups = Dictionary(grouping: points) { "\($0.model)\u{0}\($0.probe)" }
        for key in groups.keys.sorted() {
            let group = groups[key]!
            let probe = group[0].probe
            if probe.hasPrefix(SweepProbe.suitePrefix) {
                let rows = suiteRows(group)
                lines.append("## \(modelName(group[0].model)): suite \(suiteDisplayName(probe))")
                lines.append("")
                lines.append("| " + rows[0].joined(separator: " | ") + " |")
                lines.append("|" + rows[0].map { _ in " --- " }.joined(separator: "|") + "|")
                lines += rows.dropFirst().map { "| " + $0.joined(separator: " | ") + " |" }
                lines.append("")
                continue
            }
            // Probes (needle, two-question) by their share answered.
            let metric = probe == "perplexity" ? ReportMetric.deltaNLL : .needleAccuracy
            let onFrontier = Set(frontier(group.map { ($0.meanKVBytes, metric.value($0) ?? .nan) }, lowerYIsBetter: metric.lowerIsBetter))
            lines.append("## \(modelName(group[0].model)): \(probe)")
            lines.append("")
            var header = ["", "method", "family", "cells", "ΔNLL", "KL", "top-1", probe == "perplexity" ? nil : "answered", "KV mean", "KV peak",
                          "step"].compactMap { $0 }
            header += pairs.map { "\($0.replacingOccurrences(of: "@", with: " × ")) decode" }
            lines.append("| " + header.joined(separator: " | ") + " |")
            lines.append("|" + header.map { _ in " --- " }.joined(separator: "|") + "|")
            let order = group.indices.sorted { a, b in
                (group[a].family, group[a].meanKVBytes, group[a].label) < (group[b].family, group[b].meanKVBytes, group[b].label)
            }
            for i in order {
                let p = group[i]
                var row = [onFrontier.contains(i) ? "★" : "", "`\(p.label)`", p.family, "\(p.cells)", String(format: "%+.4f", p.deltaNLL),
                           String(format: "%.4f", p.kl), p.top1.map { String(format: "%.1f%%", $0 * 100) } ?? "-"]
                if probe != "perplexity" { row.append(p.accuracy.map { String(format: "%.0f%%", $0 * 100) } ?? "-") }
                row += [formatBytes(Int(p.meanKVBytes.rounded())), formatBytes(Int(p.peakKVBytes.rounded())),
                        String(format: "%.3f ms", p.stepMilliseconds)]
                row += pairs.map { pair in p.projected[pair].map { String(format: "%.3f ms", $0) } ?? "-" }
                lines.append("| " + row.joined(separator: " | ") + " |")
            }
            lines.append("")
        }
        return lines.joined(separator: "\n")
    }
}
