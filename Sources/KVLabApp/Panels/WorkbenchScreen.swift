import Foundation
import KVLabEngine
import KVLabHardware
import KVLabTUI

/// The workbench screen: title bar, the seven panels, and the hint, status or editor line, drawn
/// from an `AppState` into a buffer (the DESIGN sketch's layout, using all the space it gets).
public struct WorkbenchScreen {
    /// The smallest screen the workbench draws on.
    public static let minimumSize = (width: 80, height: 24)

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
        guard area.width >= Self.minimumSize.width, area.height >= Self.minimumSize.height else {
            tooSmall(area, &buffer)
            return
        }
        titleBar(area.row(0), &buffer)
        let body = Rect(x: 0, y: 1, width: area.width, height: area.height - 2)
        let middle = max(6, body.height / 4), bottom = max(7, body.height * 2 / 7)
        let rows = Layout(.vertical, [.fill(1), .length(middle), .length(bottom)], spacing: -1).split(body)
        let top = Layout(.horizontal, [.percentage(55), .fill(1)], spacing: -1).split(rows[0])
        let center = Layout(.horizontal, [.percentage(55), .fill(1)], spacing: -1).split(rows[1])
        let lower = Layout(.horizontal, [.ratio(1, 3), .ratio(1, 3), .fill(1)], spacing: -1).split(rows[2])
        generation(top[0], &buffer)
        knobs(top[1], &buffer)
        kvMap(center[0], &buffer)
        quality(center[1], &buffer)
        memory(lower[0], &buffer)
        traffic(lower[1], &buffer)
        latency(lower[2], &buffer)
        bottomLine(area.row(area.height - 1), &buffer)
        if state.helpVisible { HelpOverlay(title: "kvlab keys", table: Keymap.table, glyphs: glyphs).render(area: body, buffer: &buffer) }
    }

    // MARK: - Frame

    private func tooSmall(_ area: Rect, _ buffer: inout Buffer) {
        let lines = ["terminal too small: \(area.width)×\(area.height)",
                     "kvlab needs at least \(Self.minimumSize.width)×\(Self.minimumSize.height); q quits"]
        let top = max((area.height - lines.count) / 2, 0)
        for (index, text) in lines.enumerated() {
            buffer.put(Line(text, style: .role(index == 0 ? .warning : .dimText), alignment: .center), row: area.row(top + index), glyphs: glyphs)
        }
    }

    private func titleBar(_ row: Rect, _ buffer: inout Buffer) {
        buffer.fill(row, with: Cell(" ", style: Style(background: .role(.selectedBackground))))
        let separator = Span(" \(glyphs.line([.left, .right])) ", style: .role(.dimText))
        var spans: [Span] = [Span(" kvlab", style: .role(.title, .bold)), separator,
                             Span(state.modelName, style: .role(.highlight)), Span(" " + weightLabel, style: .role(.text)), separator,
                             Span("device ", style: .role(.dimText)), Span(state.device, style: .role(.text)), separator,
                             Span("target ", style: .role(.dimText)), Span(state.target, style: .role(.text))]
        spans += [separator, runState]
        if state.compare != nil { spans += [separator, Span("compare A|B", style: .role(.warning, .bold))] }
        if let recording = state.recording {
            spans += [separator, Span("● REC ", style: .role(.error, .bold)), Span((recording as NSString).lastPathComponent, style: .role(.text))]
        }
        buffer.put(Line(spans), row: row, glyphs: glyphs)
    }

    private var weightLabel: String {
        let value = state.settings[.weights] ?? ""
        return value.isEmpty ? "" : value
    }

    private var runState: Span {
        if state.paused { return Span("paused", style: .role(.warning, .bold)) }
        if state.generating { return Span("generating " + (state.pace.map { "\($0) tok/s" } ?? "unpaced"), style: .role(.ok)) }
        return Span("idle (i: prompt)", style: .role(.dimText))
    }

    private func bottomLine(_ row: Rect, _ buffer: inout Buffer) {
        if let editor = state.editor {
            let label = editor.purpose == .prompt ? "prompt> " : "method> "
            let hint = editor.purpose == .prompt ? "  Enter runs · Esc cancels · ↑↓ history" : "  Enter applies · Esc cancels"
            let end = buffer.put(Line([Span(label, style: .role(.key, .bold)), Span(editor.string)]), x: row.x, y: row.y, clip: row)
            let cursorX = row.x + CharacterWidth.of(label) + CharacterWidth.of(String(editor.text.prefix(editor.cursor)))
            if cursorX < row.right {
                buffer.setStyle(Rect(x: cursorX, y: row.y, width: 1, height: 1), Style(attributes: .reverse))
            }
            buffer.put(hint, x: max(end, cursorX + 1), y: row.y, style: .role(.dimText), clip: row)
            return
        }
        if let status = state.status {
            buffer.put(Line(" " + status.text, style: .role(status.isError ? .error : .highlight)), row: row, glyphs: glyphs)
            return
        }
        var spans: [Span] = []
        for hint in Keymap.hints {
            spans.append(Span(" " + hint.key, style: .role(.key, .bold)))
            spans.append(Span(" " + hint.label, style: .role(.dimText)))
        }
        buffer.put(Line(spans), row: row, glyphs: glyphs)
    }

    private func block(_ title: String, right: Line? = nil) -> Block {
        var titles = [Block.Title(Line(title, style: .role(.title, .bold)))]
        if var right {
            right.alignment = .right
            titles.append(Block.Title(right))
        }
        return Block(titles: titles, glyphs: glyphs)
    }

    // MARK: - Generation

    private func style(_ kv: KVCellState) -> Style {
        switch kv {
        case .kept, .empty: .role(.kvKept)
        case .evicted: .role(.kvEvicted, .dim)
        case .quantized: .role(.kvQuantized)
        }
    }

    private func generation(_ area: Rect, _ buffer: inout Buffer) {
        let legend = Line([Span("kept", style: .role(.kvKept)), Span(" quantized", style: .role(.kvQuantized)),
                           Span(" evicted", style: .role(.kvEvicted))])
        let frame = block("Generation", right: legend)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        if state.stream.isEmpty {
            buffer.put(Line("Press i, type a prompt, Enter: the model generates here.", style: .role(.dimText)), row: inner.row(0), glyphs: glyphs)
            return
        }
        let lines = wrappedStream(width: inner.width, rows: inner.height + state.scrollback)
        let end = max(lines.count - state.scrollback, 0)
        let shown = lines[max(end - inner.height, 0)..<end]
        for (index, line) in shown.enumerated() {
            buffer.put(line, x: inner.x, y: inner.y + index, clip: inner)
        }
        if state.scrollback > 0 {
            buffer.put(Line("↑ \(state.scrollback) lines back (PgDn)", style: .role(.warning), alignment: .right), row: inner.row(inner.height - 1), glyphs: glyphs)
        }
    }

    /// The stream's last `rows` lines wrapped to `width`, each token in its KV state's colour.
    func wrappedStream(width: Int, rows: Int) -> [Line] {
        // Only the tail can be visible: wrap pieces from the end until they fill more than `rows` lines.
        let budget = width * (rows + 1)
        var first = state.stream.count, characters = 0
        while first > 0, characters <= budget {
            first -= 1
            characters += state.stream[first].text.count
        }
        let map = state.snapshot?.map
        var lines: [Line] = [Line([])], column = 0
        for piece in state.stream[first...] {
            let pieceStyle: Style = piece.position.map { position in style(map?.tokenState(position: position) ?? .kept) } ?? .role(.text, .bold)
            var run = ""
            func flush() {
                if !run.isEmpty { lines[lines.count - 1].spans.append(Span(run, style: pieceStyle)); run = "" }
            }
            for character in piece.text {
                if character == "\n" {
                    flush()
                    lines.append(Line([]))
                    column = 0
                    continue
                }
                let characterWidth = CharacterWidth.of(character)
                if column + characterWidth > width {
                    flush()
                    lines.append(Line([]))
                    column = 0
                }
                run.append(character)
                column += characterWidth
            }
            flush()
        }
        return Array(lines.suffix(rows))
    }

    // MARK: - Knobs

    private func knobs(_ area: Rect, _ buffer: inout Buffer) {
        let compare = state.compare
        let frame = block("Knobs", right: compare.map { _ in Line("A | B: keys change B", style: .role(.warning)) })
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        let rows: [(String, Knob?, String)] = [
            ("evict", .policy, "e/E [ ]"), ("kv", .kv, "b/B"), ("sparse", .sparse, "s/S"), ("weights", .weights, "w"),
            ("kernel", .attention, "a m/M"), ("ghost", nil, "g"),
        ]
        var y = inner.y
        func put(_ label: String, _ spans: [Span], keys: String) {
            guard y < inner.bottom else { return }
            let row = Rect(x: inner.x, y: y, width: inner.width, height: 1)
            buffer.put(Line(keys, style: .role(.key), alignment: .right), row: row, glyphs: glyphs)
            let valueArea = Rect(x: row.x, y: y, width: max(row.width - CharacterWidth.of(keys) - 1, 0), height: 1)
            buffer.put(Line([Span(label.padding(toLength: 8, withPad: " ", startingAt: 0), style: .role(.dimText))] + spans),
                       row: valueArea, glyphs: glyphs)
            y += 1
        }
        for (label, knob, keys) in rows {
            guard let knob else { put(label, methodSpans(state.ghost ? "on" : "off"), keys: keys); continue }
            let a = state.settings[knob] ?? ""
            // Compare mode: one line when A and B agree, else A's line and B's under it.
            guard let b = compare?.settings[knob] else { put(label, methodSpans(a), keys: keys); continue }
            if a == b {
                put(label, [Span("A=B ", style: .role(.dimText))] + methodSpans(a), keys: keys)
            } else {
                put(label, [Span("A ", style: .role(.seriesA, .bold))] + methodSpans(a), keys: "")
                put("", [Span("B ", style: .role(.seriesB, .bold))] + methodSpans(b), keys: keys)
            }
        }
        guard let snapshot = state.snapshot, y < inner.bottom else { return }
        let resident = snapshot.residency.total
        let kept = snapshot.map.cells.filter { $0 == .kept || $0 == .quantized }.count
        let total = snapshot.map.cells.count
        let share = total > 0 ? String(format: "%.0f%%", 100 * Double(kept) / Double(total)) : "–"
        buffer.put(Line([Span("KV now  ", style: .role(.dimText)), Span(formatBytes(resident), style: .role(.highlight)),
                         Span(" resident, \(share) of entries kept, position \(snapshot.position)/\(snapshot.contextLength)", style: .role(.text))]),
                   row: Rect(x: inner.x, y: y, width: inner.width, height: 1), glyphs: glyphs)
    }

    /// A method string as spans: the name highlighted, parameters as `key value`.
    private func methodSpans(_ text: String) -> [Span] {
        guard let spec = try? MethodSpec(parsing: text) else { return [Span(text, style: .role(.highlight))] }
        var spans = [Span(spec.name, style: .role(.highlight, .bold))]
        for parameter in spec.parameters {
            spans.append(Span(" " + parameter.key, style: .role(.dimText)))
            spans.append(Span(" " + parameter.value, style: .role(.text)))
        }
        for modifier in spec.modifiers { spans.append(Span(" +" + modifier.description, style: .role(.text))) }
        return spans
    }

    // MARK: - KV map

    private func kvMap(_ area: Rect, _ buffer: inout Buffer) {
        let map = state.snapshot?.map
        let labelWidth = map.map { "L\($0.layers - 1) ".count } ?? 3
        let columns = max(area.width - 4 - labelWidth, 1)
        // A sequence longer than the panel is shown whole, several positions per column.
        let perColumn = map.map { max(($0.positions + columns - 1) / columns, 1) } ?? 1
        let right = map.map { Line("positions 0–\($0.positions)" + (perColumn > 1 ? ", \(perColumn) per column" : ""), style: .role(.dimText)) }
        let frame = block("KV map: layer × position", right: right)
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
        // More layers than rows: every row shows one layer of an even sample.
        let shownLayers = min(map.layers, inner.height)
        let layers = (0..<shownLayers).map { $0 * map.layers / max(shownLayers, 1) }
        let rows: [[HeatMap.Entry]] = layers.map { layer in
            stride(from: 0, to: map.positions, by: perColumn).map { start in
                var counts = [0, 0, 0, 0]
                for position in start..<min(start + perColumn, map.positions) { counts[Int(map.state(layer: layer, position: position).rawValue)] += 1 }
                let state = [KVCellState.kept, .quantized, .evicted].max { counts[Int($0.rawValue)] < counts[Int($1.rawValue)] } ?? .empty
                return marks[state] ?? .empty
            }
        }
        HeatMap(rows: rows, rowLabels: layers.map { "L\($0)" }, anchor: .trailing, glyphs: glyphs).render(area: inner, buffer: &buffer)
    }

    // MARK: - Quality

    private func quality(_ area: Rect, _ buffer: inout Buffer) {
        let frame = block("Quality vs full cache", right: Line(state.ghost ? "ghost on" : "ghost off", style: .role(state.ghost ? .ok : .dimText)))
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        guard state.ghost || state.ghostTokens > 0 else {
            buffer.put(Line("g runs the full-cache fp32 ghost in lockstep:", style: .role(.dimText)), row: inner.row(0), glyphs: glyphs)
            buffer.put(compareQuality ?? Line("KL, top-1 agreement, ΔNLL, attention mass kept", style: .role(.dimText)),
                       row: inner.row(1), glyphs: glyphs)
            return
        }
        let ghost = state.lastGhost
        let klText = ghost.map { String(format: "%.4f", $0.kl) } ?? "–"
        let head = buffer.put(Line([Span("KL ", style: .role(.dimText)), Span(klText, style: .role(.highlight)), Span(" ")]), x: inner.x, y: inner.y, clip: inner)
        Sparkline(state.kl.values, glyphs: glyphs).render(area: Rect(x: head, y: inner.y, width: max(inner.right - head, 0), height: 1), buffer: &buffer)
        let top1 = state.ghostTokens > 0 ? String(format: "%.1f%%", 100 * Double(state.top1Agreements) / Double(state.ghostTokens)) : "–"
        let delta = state.ghostTokens > 0 ? String(format: "%+.4f", state.deltaNLLSum / Double(state.ghostTokens)) : "–"
        let lines: [Line] = [
            Line([Span("top-1 ", style: .role(.dimText)), Span(top1, style: .role(.highlight)), Span("  ΔNLL ", style: .role(.dimText)),
                  Span(delta, style: .role(.highlight)), Span(" nats/token over \(state.ghostTokens)", style: .role(.dimText))]),
        ] + (compareQuality.map { [$0] } ?? []) + [
            Line(state.firstDivergence.map { "first divergence at token \($0)" } ?? "no top-1 divergence yet",
                 style: .role(state.firstDivergence == nil ? .ok : .warning)),
            Line([Span("attention mass kept ", style: .role(.dimText)),
                  Span(ghost?.massKept.map { String(format: "%.1f%%", 100 * $0) } ?? "–", style: .role(.highlight))]),
        ]
        for (index, line) in lines.enumerated() where index + 1 < inner.height {
            buffer.put(line, row: inner.row(index + 1), glyphs: glyphs)
        }
    }

    /// B against A (and the ghost) in compare mode: mean ΔNLL and KL over the tokens B followed.
    private var compareQuality: Line? {
        guard state.compare != nil else { return nil }
        let n = state.compareTokens
        guard n > 0 else { return Line([Span("B ", style: .role(.seriesB, .bold)), Span("vs A: no tokens yet", style: .role(.dimText))]) }
        var spans = [Span("B ", style: .role(.seriesB, .bold)), Span("vs A ΔNLL ", style: .role(.dimText)),
                     Span(String(format: "%+.4f", state.compareDeltaNLLSum / Double(n)), style: .role(.highlight)),
                     Span(" KL ", style: .role(.dimText)), Span(String(format: "%.4f", state.compareKLSum / Double(n)), style: .role(.highlight))]
        if state.compareGhostKL.tokens > 0 {
            spans += [Span(" vs ghost KL ", style: .role(.dimText)),
                      Span(String(format: "%.4f", state.compareGhostKL.sum / Double(state.compareGhostKL.tokens)), style: .role(.highlight))]
        }
        spans.append(Span(" over \(n)", style: .role(.dimText)))
        return Line(spans)
    }

    // MARK: - Memory hierarchy

    private func memory(_ area: Rect, _ buffer: inout Buffer) {
        let frame = block("Memory hierarchy")
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty, let snapshot = state.snapshot else { return }
        let labelWidth = 5, valueWidth = min(17, max(inner.width / 2 - 2, 8))
        let barWidth = max(inner.width - labelWidth - valueWidth - 1, 3)
        var y = inner.y
        func row(_ label: String, _ segments: [CapacityBar.Segment], capacity: Double, value: String) {
            guard y < inner.bottom else { return }
            buffer.put(label, x: inner.x, y: y, style: .role(.dimText), clip: inner)
            CapacityBar(segments: segments, capacity: capacity, glyphs: glyphs)
                .render(area: Rect(x: inner.x + labelWidth, y: y, width: barWidth, height: 1), buffer: &buffer)
            buffer.put(Line(value, alignment: .right), row: Rect(x: inner.right - valueWidth, y: y, width: valueWidth, height: 1), glyphs: glyphs)
            y += 1
        }
        // This machine: what the run holds (the share of each part; RAM dwarfs a small model).
        let residency = snapshot.residency
        let payload = residency.fullPrecisionPayload + residency.quantizedPayload + residency.residualWindow + residency.pageSlack
        let metadata = residency.quantMetadata + residency.policyState
        let live = [(snapshot.weightBytes, ThemeRole.tierWeights), (payload, .tierKVPayload), (metadata, .tierKVMetadata),
                    (snapshot.activationBytes, .tierActivations)]
        let liveTotal = live.reduce(0) { $0 + $1.0 }
        if let compare = state.compare {
            let b = compare.residency
            let bPayload = b.fullPrecisionPayload + b.quantizedPayload + b.residualWindow + b.pageSlack
            let bMetadata = b.quantMetadata + b.policyState
            let bLive = [(compare.weightBytes, ThemeRole.tierWeights), (bPayload, .tierKVPayload), (bMetadata, .tierKVMetadata),
                         (snapshot.activationBytes, .tierActivations)]
            let capacity = Double(max(liveTotal, bLive.reduce(0) { $0 + $1.0 }))
            row("A", live.map { CapacityBar.Segment(Double($0.0), .role($0.1)) }, capacity: capacity, value: "KV \(formatBytes(payload + metadata))")
            row("B", bLive.map { CapacityBar.Segment(Double($0.0), .role($0.1)) }, capacity: capacity,
                value: "KV \(Self.short(Double(bPayload + bMetadata))) \(Self.delta(bPayload + bMetadata - payload - metadata))")
        } else {
            row("here", live.map { CapacityBar.Segment(Double($0.0), .role($0.1)) }, capacity: Double(liveTotal),
                value: "KV \(formatBytes(payload + metadata))")
        }
        guard let projection = snapshot.projection else {
            if y < inner.bottom { buffer.put("no projection (d/t: device, target)", x: inner.x, y: y, style: .role(.dimText), clip: inner) }
            return
        }
        let kv = projection.kv
        let kvMetadataShare = kv.total > 0 ? (kv.metadata + kv.policyState) / kv.total : 0
        for tier in projection.hierarchy {
            var segments: [CapacityBar.Segment] = []
            for item in tier.items {
                let label = item.label.lowercased()
                if label.contains("weight") {
                    segments.append(.init(item.bytes, .role(.tierWeights)))
                } else if label.contains("kv") || label.contains("k/v") {
                    segments.append(.init(item.bytes * (1 - kvMetadataShare), .role(.tierKVPayload)))
                    segments.append(.init(item.bytes * kvMetadataShare, .role(.tierKVMetadata)))
                } else {
                    segments.append(.init(item.bytes, .role(.tierActivations)))
                }
            }
            row(String(tier.name.prefix(labelWidth - 1)), segments, capacity: tier.capacity,
                value: "\(Self.short(tier.used))/\(Self.short(tier.capacity))")
        }
    }

    /// A signed byte difference in at most 7 columns (`+1.5K`, `−512B`).
    static func delta(_ bytes: Int) -> String { (bytes < 0 ? "−" : "+") + short(Double(abs(bytes))) }

    /// Bytes in at most 6 columns (`132K`, `16.4G`).
    static func short(_ bytes: Double) -> String {
        let units = ["B", "K", "M", "G", "T", "P"]
        var value = bytes, unit = 0
        while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
        return value >= 100 || unit == 0 ? String(format: "%.0f%@", value, units[unit]) : String(format: "%.1f%@", value, units[unit])
    }

    // MARK: - Traffic

    private func traffic(_ area: Rect, _ buffer: inout Buffer) {
        let frame = block("Traffic per token")
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        guard let ledger = state.lastToken?.report.ledger else {
            buffer.put(Line("bytes moved per link, per token", style: .role(.dimText)), row: inner.row(0), glyphs: glyphs)
            return
        }
        func bytes(_ value: UInt64) -> String { Self.short(Double(value)) }
        let kvRead = ledger.bytes(.keys, .hbmToSRAM) + ledger.bytes(.values, .hbmToSRAM)
        let other = ledger.total(.hbmToSRAM) - ledger.bytes(.weights, .hbmToSRAM) - kvRead
        let lines: [Line] = [
            Line([Span("HBM→SRAM ", style: .role(.dimText)), Span("W ", style: .role(.tierWeights)), Span(bytes(ledger.bytes(.weights, .hbmToSRAM))),
                  Span(" KV ", style: .role(.tierKVPayload)), Span(bytes(kvRead)), Span(" other ", style: .role(.dimText)), Span(bytes(other))]),
            Line([Span("SRAM→HBM ", style: .role(.dimText)), Span(bytes(ledger.total(.sramToHBM))),
                  Span("  on chip ", style: .role(.dimText)), Span(bytes(ledger.total(.sram)))]),
            Line([Span("DRAM→HBM ", style: .role(.dimText)), Span(bytes(ledger.total(.dramToHBM))),
                  Span(ledger.total(.dramToHBM) == 0 ? " (no host fetches)" : " fetched", style: .role(.dimText))]),
        ]
        var y = 0
        if let b = state.lastCompareStep?.report.ledger {
            let aTotal = ledger.total(.hbmToSRAM), bTotal = b.total(.hbmToSRAM)
            let sign = bTotal < aTotal ? "−" : "+"
            let change = bTotal < aTotal ? aTotal - bTotal : bTotal - aTotal
            buffer.put(Line([Span("HBM→SRAM ", style: .role(.dimText)), Span("A ", style: .role(.seriesA, .bold)), Span(bytes(aTotal)),
                             Span("  B ", style: .role(.seriesB, .bold)), Span(bytes(bTotal)), Span(" Δ \(sign)\(bytes(change))", style: .role(.highlight))]),
                       row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        for line in lines where y < inner.height {
            buffer.put(line, row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        if y < inner.height, let projection = state.snapshot?.projection {
            let decode = projection.decode
            let intensity = decode.bytes > 0 ? decode.flops / decode.bytes : 0
            let device = projection.setup.device
            let ridge = device.effectivePeak(.fp16) / max(device.effectiveHBMBandwidth, 1)
            buffer.put(Line([Span("proj. AI ", style: .role(.dimText)), Span(String(format: "%.2f", intensity), style: .role(.highlight)),
                             Span(String(format: " F/B  ridge %.0f", ridge), style: .role(.dimText)),
                             Span(intensity < ridge ? " memory-bound" : " compute-bound", style: .role(intensity < ridge ? .warning : .ok))]),
                       row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        if y < inner.height {
            LineGraph(series: [LineGraph.Series(state.traffic.values, style: .role(.seriesA))], glyphs: glyphs)
                .render(area: Rect(x: inner.x, y: inner.y + y, width: inner.width, height: inner.height - y), buffer: &buffer)
        }
    }

    // MARK: - Latency

    private func latency(_ area: Rect, _ buffer: inout Buffer) {
        let frame = block("Latency")
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        var y = 0
        func line(_ line: Line) {
            guard y < inner.height else { return }
            buffer.put(line, row: inner.row(y), glyphs: glyphs)
            y += 1
        }
        let history = state.latency
        if let last = history.values.last, let p50 = history.quantile(0.5), let p99 = history.quantile(0.99) {
            let head = buffer.put(Line([Span("here ", style: .role(.dimText)), Span(String(format: "%.2f ms ", last), style: .role(.seriesA, .bold))]),
                                  x: inner.x, y: inner.y, clip: inner)
            Sparkline(history.values, glyphs: glyphs).render(area: Rect(x: head, y: inner.y, width: max(inner.right - head, 0), height: 1), buffer: &buffer)
            y = 1
            if let bLast = state.compareLatency.values.last, let bP50 = state.compareLatency.quantile(0.5) {
                line(Line([Span("B    ", style: .role(.dimText)), Span(String(format: "%.2f ms", bLast), style: .role(.seriesB, .bold)),
                           Span(String(format: " Δ %+.2f", bLast - last), style: .role(.highlight)),
                           Span(String(format: "  p50 %.2f Δ %+.2f", bP50, bP50 - p50), style: .role(.dimText))]))
            }
            line(Line([Span("p50 ", style: .role(.dimText)), Span(String(format: "%.2f", p50)), Span("  p99 ", style: .role(.dimText)),
                       Span(String(format: "%.2f ms", p99)), Span("  tok/s ", style: .role(.dimText)), Span(String(format: "%.0f", 1000 / max(p50, 1e-6)))]))
        } else {
            line(Line("here: no tokens yet", style: .role(.dimText)))
        }
        if let ttft = state.ttft { line(Line([Span("TTFT ", style: .role(.dimText)), Span(String(format: "%.1f ms", ttft)), Span(" (prompt pass)", style: .role(.dimText))])) }
        if let projection = state.snapshot?.projection {
            let setup = projection.setup
            line(Line([Span("proj. ", style: .role(.dimText)), Span(String(format: "%.2f ms/token", projection.decodeSeconds * 1000), style: .role(.seriesB, .bold)),
                       Span(String(format: "  %.0f tok/s", 1 / max(projection.decodeSeconds, 1e-12)))]))
            line(Line([Span("TTFT ", style: .role(.dimText)), Span(String(format: "%.1f ms", projection.ttft * 1000)),
                       Span(" at \(setup.context) tokens", style: .role(.dimText))]))
            line(Line("\(setup.device.name) × \(setup.target.name)", style: .role(.dimText)))
        }
    }
}
