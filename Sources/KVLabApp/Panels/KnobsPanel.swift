import Foundation
import KVLabFoundation
import KVLabMethods
import KVLabRun
import KVLabTUI

/// A knob's value as the panel spells it: the method's name, then its parameters and modifiers.
struct MethodText: Equatable {
    struct Parameter: Equatable {
        var key: String
        var value: String
    }

    var name: String
    var parameters: [Parameter] = []
    var modifiers: [String] = []

    init(name: String, parameters: [Parameter] = [], modifiers: [String] = []) {
        self.name = name
        self.parameters = parameters
        self.modifiers = modifiers
    }

    /// A kvpress press joins the name as the method string writes it (`kvpress:kvzip`), so a row
    /// too narrow for the parameters still says which press runs.
    init(_ spec: MethodSpec) {
        var parameters = spec.parameters.map { Parameter(key: $0.key, value: $0.value) }
        var name = spec.name
        if name == KVPressMethod.methodName, parameters.first?.key == KVPressMethod.pressKey {
            name += ":" + parameters.removeFirst().value
        }
        self.init(name: name, parameters: parameters, modifiers: spec.modifiers.map(\.description))
    }

    /// A knob of `settings`, from the typed value (the canonical method, every parameter spelled out).
    init(_ settings: RunSettings, _ knob: Knob) {
        switch knob {
        case .policy: self.init(settings.eviction.spec)
        case .sparse: self.init(settings.sparse.spec)
        case .kv: self.init(settings.quant.spec)
        case .weights: self.init(name: settings.value(of: .weights))
        case .attention:
            switch settings.attention {
            case .naive: self.init(name: "naive")
            case .tiled(let bytes): self.init(name: "tiled", parameters: [Parameter(key: "sram", value: formatBytes(bytes, .exact))])
            }
        }
    }
}

/// What the Knobs panel shows: one row per knob (two in compare mode when A and B differ), with
/// the keys that change it, and the KV cache's state now.
struct KnobsView: Equatable {
    /// Which configuration a row shows in compare mode.
    enum Side: Equatable {
        /// A and B agree.
        case both
        case a
        case b
    }

    struct Row: Equatable {
        var label: String
        var side: Side?
        /// Nil before the engine's first snapshot.
        var value: MethodText?
        /// The keys that change it, from the key table.
        var keys: String
    }

    /// Resident KV bytes, the share of (layer, position) entries kept, and the sequence's progress.
    struct KVNow: Equatable {
        var resident: Int
        var keptShare: Double?
        var position: Int
        var contextLength: Int
    }

    var comparing: Bool
    var rows: [Row] = []
    var kvNow: KVNow?

    /// The knob rows: label, knob, and the keys from the key table.
    static let knobs: [(label: String, knob: Knob, keys: String)] = [
        ("evict", .policy, Keymap.keys(of: .cycleEviction(forward: true), separator: "/") + " " + Keymap.keys(of: .budget(up: false), separator: " ")),
        ("kv", .kv, Keymap.key(for: .cycleBits) + "/" + Keymap.key(for: .cycleQuant)),
        ("sparse", .sparse, Keymap.keys(of: .cycleSparse(forward: true), separator: "/")),
        ("weights", .weights, Keymap.key(for: .cycleWeights)),
        ("kernel", .attention, Keymap.key(for: .toggleAttention) + " " + Keymap.keys(of: .sram(up: true), separator: "/")),
    ]

    init(_ state: AppState) {
        comparing = state.compare != nil
        for (label, knob, keys) in Self.knobs {
            let a = state.settings.map { MethodText($0, knob) }
            // Compare mode: one row when A and B agree, else A's row and B's under it.
            guard let bSettings = state.compare?.settings else { rows.append(Row(label: label, side: nil, value: a, keys: keys)); continue }
            let b = MethodText(bSettings, knob)
            if a == b {
                rows.append(Row(label: label, side: .both, value: a, keys: keys))
            } else {
                rows.append(Row(label: label, side: .a, value: a, keys: ""))
                rows.append(Row(label: "", side: .b, value: b, keys: keys))
            }
        }
        rows.append(Row(label: "ghost", side: nil, value: MethodText(name: state.ghost ? "on" : "off"), keys: Keymap.key(for: .toggleGhost)))
        if let snapshot = state.snapshot {
            let cells = snapshot.map.cells
            let kept = cells.filter { $0 == .kept || $0 == .quantized }.count
            kvNow = KVNow(resident: snapshot.residency.total, keptShare: cells.isEmpty ? nil : Double(kept) / Double(cells.count),
                          position: snapshot.position, contextLength: snapshot.contextLength)
        }
    }
}

/// The Knobs panel: each knob's method, the keys that change it, and the KV cache now.
struct KnobsPanel {
    var view: KnobsView
    var glyphs: GlyphSet

    func render(area: Rect, buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Knobs", right: view.comparing ? Line("A | B: keys change B", style: .role(.warning)) : nil, glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        var y = inner.y
        for row in view.rows where y < inner.bottom {
            let line = Rect(x: inner.x, y: y, width: inner.width, height: 1)
            buffer.put(Line(row.keys, style: .role(.key), alignment: .right), row: line, glyphs: glyphs)
            let valueArea = Rect(x: line.x, y: y, width: max(line.width - CharacterWidth.of(row.keys) - 1, 0), height: 1)
            let lead = [Span(row.label.padding(toLength: 8, withPad: " ", startingAt: 0), style: .role(.dimText))] + Self.sideSpans(row.side)
            buffer.put(Line(lead + Self.methodSpans(row.value, width: valueArea.width - Self.width(lead))), row: valueArea, glyphs: glyphs)
            y += 1
        }
        guard let now = view.kvNow, y < inner.bottom else { return }
        let share = now.keptShare.map { String(format: "%.0f%%", 100 * $0) } ?? "–"
        // Past the context a bounded cache goes on with its entries renumbered for RoPE.
        let position = now.position <= now.contextLength ? "position \(now.position)/\(now.contextLength)"
            : "position \(now.position), past the \(now.contextLength) context"
        buffer.put(Line([Span("KV now  ", style: .role(.dimText)), Span(formatBytes(now.resident), style: .role(.highlight)),
                         Span(" resident, \(share) of entries kept, \(position)", style: .role(.text))]),
                   row: Rect(x: inner.x, y: y, width: inner.width, height: 1), glyphs: glyphs)
    }

    private static func sideSpans(_ side: KnobsView.Side?) -> [Span] {
        switch side {
        case nil: []
        case .both: [Span("A=B ", style: .role(.dimText))]
        case .a: [Span("A ", style: .role(.seriesA, .bold))]
        case .b: [Span("B ", style: .role(.seriesB, .bold))]
        }
    }

    /// A method as spans: the name highlighted, parameters as `key value`, then its modifiers,
    /// which say when it acts (`+every:steps=N`): in a row too narrow for all, the last
    /// parameters give way to " …" before the modifiers do.
    private static func methodSpans(_ method: MethodText?, width: Int) -> [Span] {
        guard let method else { return [] }
        let name = Span(method.name, style: .role(.highlight, .bold))
        var parameters = method.parameters.flatMap { [Span(" " + $0.key, style: .role(.dimText)), Span(" " + $0.value, style: .role(.text))] }
        let modifiers = method.modifiers.map { Span(" +" + $0, style: .role(.text)) }
        if !modifiers.isEmpty, Self.width([name] + parameters + modifiers) > width {
            let ellipsis = Span(" …", style: .role(.dimText))
            while !parameters.isEmpty, Self.width([name] + parameters + [ellipsis] + modifiers) > width { parameters.removeLast(2) }
            parameters.append(ellipsis)
        }
        return [name] + parameters + modifiers
    }

    private static func width(_ spans: [Span]) -> Int { spans.reduce(0) { $0 + CharacterWidth.of($1.text) } }
}
