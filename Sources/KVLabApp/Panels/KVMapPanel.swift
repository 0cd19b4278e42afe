import KVLabTUI

/// What the KV map panel shows: the map's per-position states (`KVMapSnapshot`, the one place
/// they come from), sampled down to the cells the panel has.
struct KVMapView {
    /// Nil before the engine's first snapshot.
    var map: KVMapSnapshot?

    init(_ state: AppState) { map = state.snapshot?.map }

    init(map: KVMapSnapshot?) { self.map = map }

    /// Positions per column for a panel of `columns` (a sequence longer than the panel is shown
    /// whole, several positions per column).
    func positionsPerColumn(columns: Int) -> Int { map.map { max(($0.positions + columns - 1) / columns, 1) } ?? 1 }

    /// The layers shown in `rows` rows (more layers than rows: an even sample), and per layer the
    /// state of each column over its positions:
    /// - retrieved when any position was fetched at the last step, so a rare miss stays visible;
    /// - else kept, quantized or evicted by majority (ties: kept before quantized before evicted);
    /// - a kept or quantized column is skipped only when none of its positions was read: a sparse
    ///   step reads few entries, and a majority would dim every column of a long sequence and
    ///   hide where the reads land.
    func cells(rows: Int, columns: Int) -> (layers: [Int], states: [[KVCellState]]) {
        guard let map, map.positions > 0 else { return ([], []) }
        let perColumn = positionsPerColumn(columns: columns)
        let shownLayers = min(map.layers, rows)
        let layers = (0..<shownLayers).map { $0 * map.layers / max(shownLayers, 1) }
        let states: [[KVCellState]] = layers.map { layer in
            stride(from: 0, to: map.positions, by: perColumn).map { start in
                var counts = [Int](repeating: 0, count: KVCellState.allCases.count)
                var read = false, fetched = false
                for position in start..<min(start + perColumn, map.positions) {
                    let state = map.state(layer: layer, position: position)
                    counts[Int(state.holding.rawValue)] += 1
                    fetched = fetched || state == .retrieved
                    read = read || state == .kept || state == .quantized
                }
                if fetched { return .retrieved }
                let holding = [KVCellState.kept, .quantized, .evicted].max { counts[Int($0.rawValue)] < counts[Int($1.rawValue)] } ?? .empty
                guard holding.isHeld else { return holding }
                return .held(quantized: holding == .quantized, read: read)
            }
        }
        return (layers, states)
    }

    /// Whether the map shows the last step's reads: any skipped or retrieved cell (dense
    /// attention reads every kept entry, so its map has neither).
    var showsReads: (skipped: Bool, retrieved: Bool) {
        guard let map else { return (false, false) }
        return (map.cells.contains { $0 == .keptSkipped || $0 == .quantizedSkipped }, map.cells.contains(.retrieved))
    }
}

/// The KV map panel: layer × position, each cell kept, quantized, evicted, skipped by the last
/// step (its kept or quantized mark dimmed) or fetched from host at the last step. A local
/// layer's row label gives its window (`L0 w24`): its band of kept entries is the window. A key to the
/// last two takes a row left under the layers, when there is one: kept, quantized and evicted
/// are keyed by the Generation panel's title, in the same roles.
struct KVMapPanel {
    var view: KVMapView
    var glyphs: GlyphSet

    func render(area: Rect, buffer: inout Buffer) {
        let map = view.map
        let labelWidth = map.map { map in (0..<map.layers).map { map.label(layer: $0).count + 1 }.max() ?? 3 } ?? 3
        let columns = max(area.width - 4 - labelWidth, 1)
        let perColumn = view.positionsPerColumn(columns: columns)
        let right = map.map { Line("positions 0–\($0.positions)" + (perColumn > 1 ? ", \(perColumn) per column" : ""), style: .role(.dimText)) }
        let frame = WorkbenchScreen.block("KV map: layer × position", right: right, glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard let map, map.positions > 0, !inner.isEmpty else {
            buffer.put(Line("no tokens yet", style: .role(.dimText)), row: inner.row(0), glyphs: glyphs)
            return
        }
        // Skipped entries keep their precision's glyph and role, dimmed: a sparse mode skips most
        // entries, so a colour of its own would hide which are quantized. Retrieved takes the
        // middle shade, which stays visible in mono's reverse video.
        let marks: [KVCellState: HeatMap.Entry] = [
            .kept: .mark(glyphs.shades[4], .role(.kvKept)), .quantized: .mark(glyphs.shades[3], .role(.kvQuantized)),
            .keptSkipped: .mark(glyphs.shades[4], .role(.kvKept, .dim)), .quantizedSkipped: .mark(glyphs.shades[3], .role(.kvQuantized, .dim)),
            .retrieved: .mark(glyphs.shades[2], .role(.kvRetrieved)), .evicted: .mark(glyphs.shades[1], .role(.kvEvicted)), .empty: .empty,
        ]
        let (layers, states) = view.cells(rows: inner.height, columns: columns)
        HeatMap(rows: states.map { $0.map { marks[$0] ?? .empty } }, rowLabels: layers.map { map.label(layer: $0) }, anchor: .trailing, glyphs: glyphs)
            .render(area: inner, buffer: &buffer)
        let shows = view.showsReads
        guard layers.count < inner.height, shows.skipped || shows.retrieved else { return }
        var key: [Span] = [Span(String(repeating: " ", count: labelWidth))]
        if shows.skipped { key += [Span(glyphs.shades[4], style: .role(.kvKept, .dim)), Span(" dimmed: not read this step  ", style: .role(.dimText))] }
        if shows.retrieved { key += [Span(glyphs.shades[2], style: .role(.kvRetrieved)), Span(" fetched from host", style: .role(.dimText))] }
        buffer.put(Line(key), row: inner.row(layers.count), glyphs: glyphs)
    }
}
