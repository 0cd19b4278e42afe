import Foundation

/// Scatter plots as standalone SVG: one colour and marker per method family, the Pareto frontier
/// as a dashed line through its points, axes with ticks and units, a legend beside the plot.
/// Sized for a slide (960 × 540) and readable in a browser.
public enum SVGPlot {
    static let width = 960.0, height = 540.0
    static let left = 96.0, right = 220.0, top = 56.0, bottom = 72.0
    /// Colour-blind-safe (Okabe–Ito) colours, then repeated with other markers.
    static let palette = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

    /// With `lines`, each family's points are joined in x order (kvpress's leaderboard: a curve per method).
    public static func scatter(_ points: [ReportPoint], x: ReportMetric, y: ReportMetric, title: String, lines: Bool = false) -> String {
        let xs = points.map { x.value($0)! }, values = points.map { y.value($0)! }
        let frontier = SweepReport.frontier(zip(xs, values).map { ($0, $1) }, lowerYIsBetter: y.lowerIsBetter, lowerXIsBetter: x.lowerIsBetter)
        // Points above the ceiling sit on the plot's top edge; their tooltips keep the real values.
        let ceiling = SweepReport.ceiling(values, frontier: frontier, metric: y)
        let xTicks = ticks(xs, metric: x), yTicks = ticks(values.map { min($0, ceiling ?? $0) }, metric: y)
        let ys = values.map { value in ceiling.map { value > $0 ? yTicks.last! : value } ?? value }
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func px(_ v: Double) -> Double { left + (v - xTicks.first!) / (xTicks.last! - xTicks.first!) * plotWidth }
        func py(_ v: Double) -> Double { top + plotHeight - (v - yTicks.first!) / (yTicks.last! - yTicks.first!) * plotHeight }
        var svg = [
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" "
                + "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"14\">",
            "<title>\(escape(title))</title>",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(f(width / 2))\" y=\"30\" text-anchor=\"middle\" font-size=\"18\">\(escape(title))</text>",
        ]
        // Grid and ticks.
        for t in xTicks {
            svg.append("<line x1=\"\(f(px(t)))\" y1=\"\(f(top))\" x2=\"\(f(px(t)))\" y2=\"\(f(top + plotHeight))\" stroke=\"#e0e0e0\"/>")
            svg.append("<text x=\"\(f(px(t)))\" y=\"\(f(top + plotHeight + 20))\" text-anchor=\"middle\">\(escape(x.format(t)))</text>")
        }
        for t in yTicks {
            svg.append("<line x1=\"\(f(left))\" y1=\"\(f(py(t)))\" x2=\"\(f(left + plotWidth))\" y2=\"\(f(py(t)))\" stroke=\"#e0e0e0\"/>")
            svg.append("<text x=\"\(f(left - 8))\" y=\"\(f(py(t) + 5))\" text-anchor=\"end\">\(escape(y.format(t)))</text>")
        }
        svg.append("<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotWidth))\" height=\"\(f(plotHeight))\" fill=\"none\" stroke=\"#333\"/>")
        svg.append("<text x=\"\(f(left + plotWidth / 2))\" y=\"\(f(height - 24))\" text-anchor=\"middle\">\(escape(x.axisTitle))</text>")
        svg.append("<text transform=\"translate(24 \(f(top + plotHeight / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(y.axisTitle))</text>")
        // The frontier under the points.
        if frontier.count > 1 {
            let path = frontier.map { "\(f(px(xs[$0]))),\(f(py(ys[$0])))" }.joined(separator: " ")
            svg.append("<polyline class=\"frontier\" points=\"\(path)\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>")
        }
        // Points, one series per family.
        let families = Array(Set(points.map(\.family))).sorted()
        let onFrontier = Set(frontier)
        for (index, family) in families.enumerated() {
            let colour = palette[index % palette.count]
            let members = points.indices.filter { points[$0].family == family }.sorted { xs[$0] < xs[$1] }
            if lines, members.count > 1 {
                let path = members.map { "\(f(px(xs[$0]))),\(f(py(ys[$0])))" }.joined(separator: " ")
                svg.append("<polyline class=\"method\" points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"/>")
            }
            svg.append("<g class=\"series\" fill=\"\(colour)\" stroke=\"\(colour)\">")
            for i in points.indices where points[i].family == family {
                svg.append(marker(index / palette.count, x: px(xs[i]), y: py(ys[i]), emphasized: onFrontier.contains(i),
                                  label: "\(points[i].label): \(x.format(xs[i])), \(y.format(values[i]))"))
            }
            svg.append("</g>")
            let ly = top + 10 + Double(index) * 24
            svg.append("<g class=\"legend\" fill=\"\(colour)\" stroke=\"\(colour)\">"
                + marker(index / palette.count, x: left + plotWidth + 24, y: ly, emphasized: false, label: family) + "</g>")
            svg.append("<text x=\"\(f(left + plotWidth + 38))\" y=\"\(f(ly + 5))\">\(escape(family))</text>")
        }
        let ly = top + 10 + Double(families.count) * 24
        svg.append("<line x1=\"\(f(left + plotWidth + 14))\" y1=\"\(f(ly))\" x2=\"\(f(left + plotWidth + 34))\" y2=\"\(f(ly))\" stroke=\"#222\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"/>")
        svg.append("<text x=\"\(f(left + plotWidth + 38))\" y=\"\(f(ly + 5))\">Pareto frontier</text>")
        if let ceiling {
            let above = values.filter { $0 > ceiling }.count
            svg.append("<text class=\"ceiling\" x=\"\(f(left + plotWidth))\" y=\"\(f(top - 8))\" text-anchor=\"end\" font-size=\"12\">"
                       + "\(above) above \(escape(y.format(ceiling))): drawn on the top edge</text>")
        }
        svg.append("</svg>")
        return svg.joined(separator: "\n") + "\n"
    }

    /// A circle, square or triangle (by `shape`), outlined black when on the frontier, with a tooltip.
    static func marker(_ shape: Int, x: Double, y: Double, emphasized: Bool, label: String) -> String {
        let outline = emphasized ? " stroke=\"#000\" stroke-width=\"2\"" : ""
        let tooltip = "<title>\(escape(label))</title>"
        switch shape % 3 {
        case 0: return "<circle cx=\"\(f(x))\" cy=\"\(f(y))\" r=\"6\"\(outline)>\(tooltip)</circle>"
        case 1: return "<rect x=\"\(f(x - 5.5))\" y=\"\(f(y - 5.5))\" width=\"11\" height=\"11\"\(outline)>\(tooltip)</rect>"
        default: return "<polygon points=\"\(f(x)),\(f(y - 7)) \(f(x + 7)),\(f(y + 5)) \(f(x - 7)),\(f(y + 5))\"\(outline)>\(tooltip)</polygon>"
        }
    }

    /// Round ticks covering `values` (or the metric's fixed range); with `binaryTicks`, round in
    /// the largest power of 1024 below the maximum.
    public static func ticks(_ values: [Double], metric: ReportMetric) -> [Double] {
        if let range = metric.range { return ticks(min: range.lowerBound, max: range.upperBound) }
        let high = values.max()!
        let unit = metric.binaryTicks && high >= 1024 ? pow(1024, floor(log(high) / log(1024))) : 1
        return ticks(min: values.min()! / unit, max: high / unit).map { $0 * unit }
    }

    /// Round tick values covering `min…max` (about 5 intervals of 1, 2 or 5 × 10^k).
    static func ticks(min low: Double, max high: Double) -> [Double] {
        var low = low, high = high
        if high - low < 1e-12 * Swift.max(1, abs(high)) {
            let pad = low == 0 ? 1 : abs(low) * 0.1
            low -= pad
            high += pad
        }
        let raw = (high - low) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        let first = floor(low / step) * step, last = ceil(high / step) * step
        return stride(from: first, through: last + step / 2, by: step).map { abs($0) < step * 1e-9 ? 0 : $0 }
    }

    static func f(_ value: Double) -> String { String(format: "%.1f", value) }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
