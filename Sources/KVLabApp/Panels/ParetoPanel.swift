import Foundation
import KVLabFoundation
import KVLabRun
import KVLabSweep
import KVLabTUI

/// What the Pareto view shows: a sweep's configurations as quality against one x axis (resident
/// KV or a projected decode step), the frontier, and the live configuration as a dot: on its
/// sweep point when the sweep ran it, else placed by this sequence's own measurements.
struct ParetoView {
    /// A configuration of the sweep.
    struct Point {
        var x: Double
        var y: Double
        var label: String
        /// Index into `families`.
        var family: Int
        var onFrontier: Bool
    }

    /// The live configuration (A, or B in compare mode).
    struct Dot {
        /// `now`, or `A` and `B` in compare mode.
        var name: String
        var label: String
        /// Where it is drawn: nil when it cannot be placed.
        var position: (x: Double, y: Double)?
        /// Whether the position is the sweep's point (else this sequence's measurements).
        var inSweep: Bool
        /// One line saying where it stands.
        var text: String
    }

    var x: ReportMetric
    var y: ReportMetric
    var modelName: String
    var points: [Point]
    var families: [String]
    /// Indices of the frontier's points, in increasing x.
    var frontier: [Int]
    var dots: [Dot]
    /// The top of the y range (`SweepReport.ceiling`, the dots included); points above it sit
    /// on the top row.
    var yCeiling: Double?

    /// The view of `sweep` against its axis `axis`, with `state`'s live configuration(s).
    init(sweep: ParetoSweep, axis: Int, state: AppState) {
        let x = sweep.axes[axis], y = sweep.quality
        self.x = x
        self.y = y
        modelName = sweep.modelName
        let drawn = sweep.points.filter { x.value($0) != nil }
        let families = Array(Set(drawn.map(\.family))).sorted()
        self.families = families
        let coordinates = drawn.map { (x: x.value($0)!, y: y.value($0)!) }
        let frontier = SweepReport.frontier(coordinates, lowerYIsBetter: y.lowerIsBetter)
        self.frontier = frontier
        let onFrontier = Set(frontier)
        points = drawn.indices.map { i in
            Point(x: coordinates[i].x, y: coordinates[i].y, label: drawn[i].label, family: families.firstIndex(of: drawn[i].family)!,
                  onFrontier: onFrontier.contains(i))
        }
        var dots: [Dot] = []
        if let settings = state.settings {
            dots.append(Self.dot(state.compare == nil ? "now" : "A", settings: settings, live: state, sweep: sweep, axis: axis))
        }
        if let b = state.compare?.settings { dots.append(Self.dot("B", settings: b, live: nil, sweep: sweep, axis: axis)) }
        self.dots = []
        self.dots = dots.map(placed)  // on the points, now that every property is set
        yCeiling = SweepReport.ceiling(coordinates.map(\.y), frontier: frontier, metric: y, extra: self.dots.compactMap { $0.position?.y })
    }

    /// The label a sweep gives `settings` (`SweepCell.label`).
    static func label(_ settings: RunSettings) -> String {
        SweepCell.label(policy: settings.value(of: .policy), sparse: settings.value(of: .sparse), kv: settings.value(of: .kv),
                        attention: settings.value(of: .attention))
    }

    /// A dot not yet on the sweep's points: placed by the live measurements (this sequence's
    /// mean KL to the ghost as its ΔNLL, its mean resident KV or the workbench's projected decode step),
    /// or with `text` saying why it cannot be. B has no live placement (the ghost measures A).
    private static func dot(_ name: String, settings: RunSettings, live: AppState?, sweep: ParetoSweep, axis: Int) -> Dot {
        var dot = Dot(name: name, label: label(settings), position: nil, inSweep: false, text: "not in the sweep")
        guard let state = live, sweep.quality.probe == ReportMetric.deltaNLL.probe else { return dot }
        let ghost = state.totals.ghost, kv = state.totals.kvBytes.values
        guard ghost.tokens > 0 else {
            dot.text += " (\(Keymap.key(for: .toggleGhost)) starts the ghost to place it live)"
            return dot
        }
        let measuredX: Double
        if let pair = sweep.pairs[axis] {
            // The same arithmetic as the cells' projections, on the same device, target and context.
            let context = state.snapshot?.projection?.setup.context
            guard pair == "\(state.device)@\(state.target)", let projection = state.snapshot?.projection, context == sweep.projectContext else {
                dot.text += " (live projection: \(state.device) × \(state.target) at \(context.map(String.init) ?? "?") tokens"
                    + ", the sweep's: \(pair.replacingOccurrences(of: "@", with: " × ")) at \(sweep.projectContext.map(String.init) ?? "several") tokens)"
                return dot
            }
            measuredX = projection.decodeSeconds * 1000
        } else {
            measuredX = kv.reduce(0, +) / Double(max(kv.count, 1))
        }
        // Mean KL(ghost ‖ run), the expected ΔNLL of tokens the full cache samples: a ΔNLL of the
        // run's own tokens would flatter it (greedy decoding picks its own most likely token).
        dot.position = (measuredX, ghost.klSum / Double(ghost.tokens))
        return dot
    }

    /// An x value with its unit (the latency metric formats bare milliseconds).
    func xText(_ value: Double) -> String { x.format(value) + (x.binaryTicks ? "" : " ms") }

    /// `dot` on its sweep point when there is one, with the line saying where it stands.
    private func placed(_ dot: Dot) -> Dot {
        var dot = dot
        let name = dot.name == "now" ? "" : dot.name + " "
        if let index = points.firstIndex(where: { $0.label == dot.label }) {
            let point = points[index]
            dot.position = (point.x, point.y)
            dot.inSweep = true
            let values = "\(y.label) \(y.format(point.y)), \(x.label) \(xText(point.x))"
            // A point off the frontier is beaten by the frontier's best at no more x.
            if !point.onFrontier, let better = frontier.last(where: { points[$0].x <= point.x }).map({ points[$0] }) {
                dot.text = "\(name)\(dot.label): \(values); beaten by \(better.label) (\(y.format(better.y)), \(xText(better.x)))"
            } else {
                dot.text = "\(name)\(dot.label): \(values), on the frontier"
            }
        } else if let position = dot.position {
            dot.text = "\(name)\(dot.label): not in the sweep; live KL \(y.format(position.y)) for \(y.label), \(x.label) \(xText(position.x)) "
                + "(this sequence; \(Keymap.key(for: .rerun)) restarts it)"
        } else {
            dot.text = "\(name)\(dot.label): \(dot.text)"
        }
        return dot
    }
}

/// The Pareto view, drawn in the generation panel's place while it is open (`p` cycles its axes).
struct ParetoPanel {
    var view: ParetoView
    var glyphs: GlyphSet

    /// Series styles, one per family in turn.
    /// Nine roles against ten markers, so no two of the first 90 families look alike.
    static let styles: [ThemeRole] = [.seriesA, .seriesB, .ok, .warning, .kvQuantized, .kvRetrieved, .kvKept, .error, .tierWeights]
    static let unicodeMarkers = ["●", "▲", "■", "◆", "▼", "○", "△", "□", "◇", "▽"]
    static let asciiMarkers = ["o", "^", "#", "*", "v", "O", "A", "H", "X", "V"]

    func marker(_ family: Int) -> (symbol: String, role: ThemeRole) {
        let markers = glyphs.isUnicode ? Self.unicodeMarkers : Self.asciiMarkers
        return (markers[family % markers.count], Self.styles[family % Self.styles.count])
    }

    func render(area: Rect, buffer: inout Buffer) {
        let right = Line([Span("\(view.modelName) · \(view.points.count) configurations · ", style: .role(.dimText)),
                          Span(Keymap.key(for: .cyclePareto), style: .role(.key)), Span(" next axis", style: .role(.dimText))])
        let frame = WorkbenchScreen.block("Pareto: \(view.y.label) vs \(view.x.label)", right: right, glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        let dotSymbol = glyphs.isUnicode ? "◉" : "@", dotStyle = Style(foreground: .role(.selectedForeground), background: .role(.selectedBackground), attributes: .bold)
        // Under the plot: the legend, then where each dot stands, wrapped (at most half the panel).
        let notes = Paragraph(view.dots.map { dot in
            Line([Span(dotSymbol, style: dotStyle), Span(" " + dot.text, style: .role(dot.inSweep ? .text : .dimText))])
        })
        let noteRows = min(notes.rowCount(width: inner.width), max(inner.height / 2 - 1, view.dots.count))
        let footer = 1 + noteRows
        guard inner.height >= footer + 4, inner.width >= 20 else { return }
        let plotRows = inner.height - footer - 2
        guard !view.points.isEmpty else {
            buffer.put(Line("no configurations of this sweep have \(view.x.label)", style: .role(.dimText)), row: inner.row(0), glyphs: glyphs)
            return
        }
        let placed = view.dots.compactMap(\.position)
        let xTicks = SVGPlot.ticks(view.points.map(\.x) + placed.map(\.x), metric: view.x)
        let yTicks = SVGPlot.ticks((view.points.map(\.y) + placed.map(\.y)).map { min($0, view.yCeiling ?? $0) }, metric: view.y)
        let labelWidth = yTicks.map { view.y.format($0).count }.max()! + 1
        let plot = Rect(x: inner.x + labelWidth + 1, y: inner.y, width: inner.width - labelWidth - 1, height: plotRows)
        func column(_ value: Double) -> Double { (value - xTicks.first!) / (xTicks.last! - xTicks.first!) * Double(plot.width - 1) }
        // Rows count down from the top; better quality is lower for ΔNLL, so it sits at the bottom.
        func row(_ value: Double) -> Double { (1 - (value - yTicks.first!) / (yTicks.last! - yTicks.first!)) * Double(plot.height - 1) }

        // The y axis: a line with the ticks that land on distinct rows.
        var labelled = Set<Int>()
        for tick in yTicks {
            let r = Int(row(tick).rounded())
            guard labelled.insert(r).inserted else { continue }
            let text = view.y.format(tick)
            buffer.put(text, x: inner.x + labelWidth - text.count, y: plot.y + r, style: .role(.dimText))
        }
        for r in 0..<plot.height {
            buffer.put(glyphs.line(labelled.contains(r) ? [.up, .down, .left] : [.up, .down]), x: plot.x - 1, y: plot.y + r, style: .role(.border))
        }
        // The x axis and its tick labels, skipping those that would overlap.
        let axisY = plot.bottom
        buffer.put(glyphs.line([.up, .right]), x: plot.x - 1, y: axisY, style: .role(.border))
        for c in 0..<plot.width { buffer.put(glyphs.line([.left, .right]), x: plot.x + c, y: axisY, style: .role(.border)) }
        var free = plot.x
        for tick in xTicks {
            let c = Int(column(tick).rounded())
            buffer.put(glyphs.line([.left, .right, .down]), x: plot.x + c, y: axisY, style: .role(.border))
            let text = view.xText(tick)
            let start = min(max(plot.x + c - text.count / 2, plot.x), plot.right - text.count)
            guard start >= free else { continue }
            buffer.put(text, x: start, y: axisY + 1, style: .role(.dimText))
            free = start + text.count + 1
        }
        let title = view.x.axisTitle
        if free + title.count + 2 <= inner.right { buffer.put(title, x: inner.right - title.count, y: axisY + 1, style: .role(.dimText)) }

        // The frontier as a dotted line, under the points.
        let frontier = view.frontier.map { view.points[$0] }
        var canvas = DotCanvas(area: plot, glyphs: glyphs)
        for (a, b) in zip(frontier, frontier.dropFirst()) {
            canvas.line(from: (column(a.x), row(a.y)), to: (column(b.x), row(b.y)))
        }
        canvas.render(into: &buffer, style: .role(.dimText))
        // Points: frontier points bold and last, so a beaten point never hides one.
        let above = glyphs.isUnicode ? "↑" : "'"
        for point in view.points.sorted(by: { !$0.onFrontier && $1.onFrontier }) {
            let (symbol, role) = marker(point.family)
            let clipped = view.yCeiling.map { point.y > $0 } ?? false
            buffer.putCluster(clipped ? above : symbol, width: 1, x: plot.x + Int(column(point.x).rounded()),
                              y: plot.y + (clipped ? 0 : Int(row(point.y).rounded())), style: .role(role, point.onFrontier ? .bold : []), bounds: plot)
        }
        for dot in view.dots {
            guard let position = dot.position else { continue }
            buffer.putCluster(dotSymbol, width: 1, x: plot.x + Int(column(position.x).rounded()), y: plot.y + Int(row(position.y).rounded()),
                              style: dotStyle, bounds: plot)
        }

        var spans: [Span] = []
        for (index, family) in view.families.enumerated() {
            let (symbol, role) = marker(index)
            spans += [Span(symbol, style: .role(role, .bold)), Span(" \(family)  ", style: .role(.dimText))]
        }
        spans += [Span(glyphs.dotGlyph(glyphs.isUnicode ? 0b1111_0000 : 2), style: .role(.dimText)), Span(" frontier (bold: on it)", style: .role(.dimText))]
        if let ceiling = view.yCeiling { spans.append(Span("  \(above) above \(view.y.format(ceiling))", style: .role(.dimText))) }
        buffer.put(Line(spans), row: inner.row(axisY + 2 - inner.y), glyphs: glyphs)
        notes.render(area: Rect(x: inner.x, y: axisY + 3, width: inner.width, height: noteRows), buffer: &buffer)
    }
}

/// Dots on a canvas of braille (2×4 per cell) or ASCII (1×2) dots over a rectangle, for lines
/// between points placed in cell coordinates.
struct DotCanvas {
    let area: Rect
    let glyphs: GlyphSet
    private var masks: [Int]

    init(area: Rect, glyphs: GlyphSet) {
        self.area = area
        self.glyphs = glyphs
        masks = [Int](repeating: 0, count: max(area.area, 0))
    }

    /// A straight line between two points given in cells (fractions allowed).
    mutating func line(from a: (Double, Double), to b: (Double, Double)) {
        let columns = Double(glyphs.dotColumns), rows = Double(glyphs.dotRows)
        let (ax, ay) = ((a.0 + 0.5) * columns, (a.1 + 0.5) * rows), (bx, by) = ((b.0 + 0.5) * columns, (b.1 + 0.5) * rows)
        let steps = max(Int(max(abs(bx - ax), abs(by - ay)).rounded(.up)), 1)
        for step in 0...steps {
            let t = Double(step) / Double(steps)
            set(Int(ax + (bx - ax) * t), Int(ay + (by - ay) * t))
        }
    }

    private mutating func set(_ dotX: Int, _ dotY: Int) {
        let column = dotX / glyphs.dotColumns, row = dotY / glyphs.dotRows
        guard dotX >= 0, dotY >= 0, column < area.width, row < area.height else { return }
        masks[row * area.width + column] |= 1 << ((dotY % glyphs.dotRows) * glyphs.dotColumns + dotX % glyphs.dotColumns)
    }

    func render(into buffer: inout Buffer, style: Style) {
        for row in 0..<area.height {
            for column in 0..<area.width where masks[row * area.width + column] != 0 {
                buffer.putCluster(glyphs.dotGlyph(masks[row * area.width + column]), width: 1, x: area.x + column, y: area.y + row, style: style)
            }
        }
    }
}
