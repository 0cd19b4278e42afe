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
    /// state of each column: the majority over its positions (ties: kept before quantized before
    /// evicted).
    func cells(rows: Int, columns: Int) -> (layers: [Int], states: [[KVCellState]]) {
        guard let map, map.positions > 0 else { return ([], []) }
        let perColumn = positionsPerColumn(columns: columns)
        let shownLayers = min(map.layers, rows)
        let layers = (0..<shownLayers).map { $0 * map.layers / max(shownLayers, 1) }
        let states: [[KVCellState]] = layers.map { layer in
            stride(from: 0, to: map.positions, by: perColumn).map { start in
                var counts = [0, 0, 0, 0]
                for position in start..<min(start + perColumn, map.positions) { counts[Int(map.state(layer: layer, position: position).rawValue)] += 1 }
                return [KVCellState.kept, .quantized, .evicted].max { counts[Int($0.rawValue)] < counts[Int($1.rawValue)] } ?? .empty
            }
        }
        return (layers, states)
    }
}

/// The KV map panel: layer × position, each cell kept, quantized or evicted.
struct KVMapPanel {
    var view: KVMapView
    var glyphs: GlyphSet

    func render(area: Rect, buffer: inout Buffer) {
        let map = view.map
        let labelWidth = map.map { "L\($0.layers - 1) ".count } ?? 3
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
        let marks: [KVCellState: HeatMap.Entry] = [
            .kept: .mark(glyphs.shades[4], .role(.kvKept)), .quantized: .mark(glyphs.shades[3], .role(.kvQuantized)),
            .evicted: .mark(glyphs.shades[1], .role(.kvEvicted)), .empty: .empty,
        ]
        let (layers, states) = view.cells(rows: inner.height, columns: columns)
        HeatMap(rows: states.map { $0.map { marks[$0] ?? .empty } }, rowLabels: layers.map { "L\($0)" }, anchor: .trailing, glyphs: glyphs)
            .render(area: inner, buffer: &buffer)
    }
}
