import KVLabTUI

/// What the KV map panel shows: the map's per-position states (`KVMapSnapshot`, the one place
/// they come from), sampled down to the cells the panel has.
struct KVMapView {
    /// Nil before the engine's first snapshot.
    var map: KVMapSnapshot?
    /// Whether the state is a playback of recorded metrics, which carry no KV map.
    var playback = false

    init(_ state: AppState) {
        map = state.snapshot?.map
        playback = state.replay.map { !$0.reexecutes } ?? false
    }

    init(map: KVMapSnapshot?) { self.map = map }

    /// Positions per column for a panel of `columns` (a sequence longer than the panel is shown
    /// whole, several positions per column).
    func positionsPerColumn(columns: Int) -> Int { map.map { max(($0.positions + columns - 1) / columns, 1) } ?? 1 }

    /// Layers per row for a panel of `rows`: every layer is shown, several to a row when there
    /// are more layers than rows.
    func layersPerRow(rows: Int) -> Int { map.map { max(($0.layers + max(rows, 1) - 1) / max(rows, 1), 1) } ?? 1 }

    /// The layers of each row (`layersPerRow` consecutive layers), and per row the state of each
    /// column over its positions and layers:
    /// - retrieved when any entry was fetched at the last step, so a rare miss stays visible;
    /// - else kept, quantized or evicted by majority (ties: kept before quantized before evicted);
    /// - a kept or quantized column is skipped only when none of its entries was read: a sparse
    ///   step reads few entries, and a majority would dim every column of a long sequence and
    ///   hide where the reads land.
    func rows(rows: Int, columns: Int) -> (layers: [ClosedRange<Int>], states: [[KVCellState]]) {
        guard let map, map.positions > 0 else { return ([], []) }
        let perColumn = positionsPerColumn(columns: columns), perRow = layersPerRow(rows: rows)
        let groups = stride(from: 0, to: map.layers, by: perRow).map { $0...min($0 + perRow, map.layers) - 1 }
        let states: [[KVCellState]] = groups.map { layers in
            stride(from: 0, to: map.positions, by: perColumn).map { start in
                var counts = [Int](repeating: 0, count: KVCellState.allCases.count)
                var read = false, fetched = false
                for layer in layers {
                    for position in start..<min(start + perColumn, map.positions) {
                        let state = map.state(layer: layer, position: position)
                        counts[Int(state.holding.rawValue)] += 1
                        fetched = fetched || state == .retrieved
                        read = read || state == .kept || state == .quantized
                    }
                }
                if fetched { return .retrieved }
                let holding = [KVCellState.kept, .quantized, .evicted].max { counts[Int($0.rawValue)] < counts[Int($1.rawValue)] } ?? .empty
                guard holding.isHeld else { return holding }
                return .held(quantized: holding == .quantized, read: read)
            }
        }
        return (groups, states)
    }

    /// As `rows`, each row named by its first layer.
    func cells(rows: Int, columns: Int) -> (layers: [Int], states: [[KVCellState]]) {
        let (groups, states) = self.rows(rows: rows, columns: columns)
        return (groups.map(\.lowerBound), states)
    }

    /// A row's label: the layer's own (`L3`, `L3 w24`) or the range it joins (`L2–3`).
    func label(_ layers: ClosedRange<Int>) -> String {
        guard let map else { return "" }
        return layers.count == 1 ? map.label(layer: layers.lowerBound) : "L\(layers.lowerBound)–\(layers.upperBound)"
    }

    /// Which layers the map shows, for its title: `L0–L7 of 8`, and how many join a row.
    func layerSummary(rows: Int) -> String? {
        guard let map, map.layers > 0 else { return nil }
        let perRow = layersPerRow(rows: rows)
        return "L0–L\(map.layers - 1) of \(map.layers)" + (perRow > 1 ? ", \(perRow) per row" : "")
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

    /// The map's marks, for the help overlay.
    static func legend(glyphs: GlyphSet) -> HelpSection {
        HelpSection(title: "KV map (rows: layers, columns: positions)", rows: [
            HelpSection.Row(keys: glyphs.shades[4], summary: "kept at full precision (and read by the last step)"),
            HelpSection.Row(keys: glyphs.shades[3], summary: "kept, key or value stored quantized"),
            HelpSection.Row(keys: glyphs.shades[1], summary: "evicted: no longer in the cache"),
            HelpSection.Row(keys: "dimmed", summary: "kept but not read this step (a sparse mode skipped it)"),
            HelpSection.Row(keys: glyphs.shades[2], summary: "fetched from host DRAM this step (block retrieval)"),
            HelpSection.Row(keys: "L2–3", summary: "a row joining layers when the panel has fewer rows"),
        ])
    }

    func render(area: Rect, buffer: inout Buffer) {
        let map = view.map
        let rowsAvailable = max(area.height - 2, 1)
        let groups = view.rows(rows: rowsAvailable, columns: 1).layers
        let labelWidth = max(groups.map { view.label($0).count + 1 }.max() ?? 3, 3)
        let columns = max(area.width - 4 - labelWidth, 1)
        let perColumn = view.positionsPerColumn(columns: columns)
        // The longest right line that fits (which layers first, then positions), beside the
        // full title when there is room, else beside "KV map". The border takes 8 cells besides the
        // titles (`Block`): two corners, a space each side of each title, a border cell at each end.
        var rights: [String] = []
        if let map, map.positions > 0 {
            let layers = view.layerSummary(rows: rowsAvailable)
            let positions = "positions 0–\(map.positions)" + (perColumn > 1 ? ", \(perColumn) per column" : "")
            rights = [layers.map { $0 + " · " + positions } ?? positions, layers.map { $0 + " · pos. 0–\(map.positions)" }, layers].compactMap { $0 }
        }
        let title = "KV map: layer × position"
        let (left, right) = [title, "KV map"].lazy.compactMap { left -> (String, String?)? in
            guard let right = rights.first(where: { CharacterWidth.of(left) + CharacterWidth.of($0) + 8 <= area.width }) else { return nil }
            return (left, right)
        }.first ?? (rights.isEmpty ? title : "KV map", nil)
        let frame = WorkbenchScreen.block(left, right: right.map { Line($0, style: .role(.dimText)) }, glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard let map, map.positions > 0, !inner.isEmpty else {
            // Playback says so on one line that fits the 80×24 panel, and how to get the map on the next.
            let note = view.playback ? [Line("playback: sessions record no KV map", style: .role(.warning)),
                                        Line("a replay without --playback draws it", style: .role(.dimText))]
                                     : [Line("no tokens yet", style: .role(.dimText))]
            Paragraph(note).render(area: inner, buffer: &buffer)
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
        let (layers, states) = view.rows(rows: inner.height, columns: columns)
        HeatMap(rows: states.map { $0.map { marks[$0] ?? .empty } }, rowLabels: layers.map { view.label($0) }, anchor: .trailing, glyphs: glyphs)
            .render(area: inner, buffer: &buffer)
        let shows = view.showsReads
        guard layers.count < inner.height, shows.skipped || shows.retrieved else { return }
        var key: [Span] = [Span(String(repeating: " ", count: labelWidth))]
        if shows.skipped { key += [Span(glyphs.shades[4], style: .role(.kvKept, .dim)), Span(" dimmed: not read this step  ", style: .role(.dimText))] }
        if shows.retrieved { key += [Span(glyphs.shades[2], style: .role(.kvRetrieved)), Span(" fetched from host", style: .role(.dimText))] }
        buffer.put(Line(key), row: inner.row(layers.count), glyphs: glyphs)
    }
}
