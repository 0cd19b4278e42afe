import Foundation
import KVLabFoundation
import KVLabTUI

/// The workbench screen: title bar, the seven panels, and the hint, status or editor line, drawn
/// from an `AppState` into a buffer (the DESIGN sketch's layout, using all the space it gets).
/// Each panel draws from its own view model, built from the state.
public struct WorkbenchScreen {
    /// The smallest screen the workbench draws on.
    public static let minimumSize = (width: 80, height: 24)

    /// The fewest rows the screen draws on below the minimum: a replay's caption takes rows from it.
    public static let compactHeight = 16
    /// The fewest rows this screen draws on (`minimumSize`, or `compactHeight` under a caption).
    public var minimumHeight = WorkbenchScreen.minimumSize.height
    /// Rows of the terminal its caller draws below this screen (a replay's caption and progress
    /// line), so that "too small" names the terminal's size and the terminal size it needs.
    public var rowsBelow = 0

    /// The state drawn.
    public var state: AppState
    /// Box drawing and graph glyphs.
    public var glyphs: GlyphSet

    /// A screen for a state.
    public init(state: AppState, glyphs: GlyphSet = .unicode) {
        self.state = state
        self.glyphs = glyphs
    }

    /// Draws the whole screen over `buffer`.
    public func render(into buffer: inout Buffer) {
        buffer.reset()
        let area = buffer.area
        guard area.width >= Self.minimumSize.width, area.height >= minimumHeight else {
            tooSmall(area, &buffer)
            return
        }
        TitleBar(view: TitleBarView(state), glyphs: glyphs).render(row: area.row(0), buffer: &buffer)
        let body = Rect(x: 0, y: 1, width: area.width, height: area.height - 2)
        // The middle band gives the KV map a row per layer (and one for its key) when a third of
        // the body allows; fewer rows join layers (`KVMapView.layersPerRow`).
        let layers = state.snapshot?.map.layers ?? 0
        // Below the minimum height (a replay's caption), both bands keep four rows inside.
        let compact = body.height < Self.minimumSize.height - 2
        let middle = compact ? 6 : min(max(7, layers + 3), max(7, body.height / 3)), bottom = compact ? 6 : max(7, body.height * 2 / 7)
        let rows = Layout(.vertical, [.fill(1), .length(middle), .length(bottom)], spacing: -1).split(body)
        let top = Layout(.horizontal, [.percentage(55), .fill(1)], spacing: -1).split(rows[0])
        let center = Layout(.horizontal, [.percentage(55), .fill(1)], spacing: -1).split(rows[1])
        let lower = Layout(.horizontal, [.ratio(1, 3), .ratio(1, 3), .fill(1)], spacing: -1).split(rows[2])
        let areas: [WorkbenchPanel: Rect] = [.generation: top[0], .knobs: top[1], .kvMap: center[0], .quality: center[1],
                                             .memory: lower[0], .traffic: lower[1], .latency: lower[2]]
        if let sweep = state.pareto, let axis = state.paretoAxis {
            ParetoPanel(view: ParetoView(sweep: sweep, axis: axis, state: state), glyphs: glyphs).render(area: top[0], buffer: &buffer)
        } else {
            GenerationPanel(view: GenerationView(state), glyphs: glyphs).render(area: top[0], buffer: &buffer)
        }
        KnobsPanel(view: KnobsView(state), glyphs: glyphs).render(area: top[1], buffer: &buffer)
        KVMapPanel(view: KVMapView(state), glyphs: glyphs).render(area: center[0], buffer: &buffer)
        QualityPanel(view: QualityView(state), glyphs: glyphs).render(area: center[1], buffer: &buffer)
        MemoryPanel(view: MemoryView(state), glyphs: glyphs, patterned: state.patterned).render(area: lower[0], buffer: &buffer)
        TrafficPanel(view: TrafficView(state), glyphs: glyphs).render(area: lower[1], buffer: &buffer)
        LatencyPanel(view: LatencyView(state), glyphs: glyphs).render(area: lower[2], buffer: &buffer)
        BottomLine(view: BottomLineView(state), glyphs: glyphs).render(row: area.row(area.height - 1), buffer: &buffer)
        if let tour = state.tour, !state.helpVisible, let panel = areas[tour.stop.panel] {
            TourCard(tour: tour, glyphs: glyphs).render(panel: panel, body: body, buffer: &buffer)
        }
        if state.helpVisible {
            var help = Self.help(glyphs: glyphs, replay: state.replayHelp)
            help.offset = state.helpOffset
            help.render(area: body, buffer: &buffer)
        }
    }

    /// The `?` overlay: the key table (the replay's on the replay screen), then what the panels'
    /// numbers and marks mean.
    static func help(glyphs: GlyphSet, replay: Bool = false) -> HelpOverlay {
        let keys = replay ? ReplayControls.table.helpSections(unicode: glyphs.isUnicode) : Keymap.table.helpSections(unicode: glyphs.isUnicode)
        var help = HelpOverlay(title: replay ? "kvlab replay keys" : "kvlab keys",
                               sections: keys + [QualityPanel.definitions, KVMapPanel.legend(glyphs: glyphs)], glyphs: glyphs)
        help.moreLabel = "more: ↓ PgDn"
        help.aboveLabel = "above: ↑ PgUp"
        return help
    }

    /// The area the help overlay takes on a screen of `columns` × `rows`.
    static func helpArea(columns: Int, rows: Int) -> Rect { Rect(x: 0, y: 1, width: columns, height: max(rows - 2, 0)) }

    private func tooSmall(_ area: Rect, _ buffer: inout Buffer) {
        let lines = ["terminal too small: \(area.width)×\(area.height + rowsBelow)",
                     "kvlab needs at least \(Self.minimumSize.width)×\(minimumHeight + rowsBelow); \(Keymap.key(for: .quit)) quits"]
        let top = max((area.height - lines.count) / 2, 0)
        for (index, text) in lines.enumerated() {
            buffer.put(Line(text, style: .role(index == 0 ? .warning : .dimText), alignment: .center), row: area.row(top + index), glyphs: glyphs)
        }
    }

    /// A panel's box: its title at the left, an optional line at the right.
    static func block(_ title: String, right: Line? = nil, glyphs: GlyphSet) -> Block {
        var titles = [Block.Title(Line(title, style: .role(.title, .bold)))]
        if var right {
            right.alignment = .right
            titles.append(Block.Title(right))
        }
        return Block(titles: titles, glyphs: glyphs)
    }

    /// A signed byte difference in at most 7 columns (`+1.5K`, `−512B`).
    static func delta(_ bytes: Int) -> String { (bytes < 0 ? "−" : "+") + formatBytes(abs(bytes), .compact) }
}
