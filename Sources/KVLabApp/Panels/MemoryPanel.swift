import KVLabFoundation
import KVLabMethods
import KVLabTUI

/// What the Memory hierarchy panel shows: one capacity bar for what this machine holds (two in
/// compare mode, A and B on one scale), then one per tier of the projected device.
struct MemoryView {
    /// One bar: its label, coloured segments on a capacity, and the figure at its right.
    struct Bar {
        var label: String
        var segments: [CapacityBar.Segment]
        var capacity: Double
        var value: String
    }

    /// Columns of a bar's label.
    static let labelWidth = 5

    var bars: [Bar] = []
    /// Whether the device tiers follow (false: the panel says there is no projection).
    var projected: Bool

    /// Nil before the engine's first snapshot.
    init?(_ state: AppState) {
        guard let snapshot = state.snapshot else { return nil }
        // This machine: what the run holds (the share of each part; RAM dwarfs a small model).
        let a = Self.live(snapshot.residency, weights: snapshot.weightBytes, activations: snapshot.activationBytes)
        let aTotal = a.parts.reduce(0) { $0 + $1.0 }
        if let compare = state.compare {
            let b = Self.live(compare.residency, weights: compare.weightBytes, activations: snapshot.activationBytes)
            let capacity = Double(max(aTotal, b.parts.reduce(0) { $0 + $1.0 }))
            bars.append(Bar(label: "A", segments: Self.segments(a.parts), capacity: capacity, value: "KV \(formatBytes(a.kv))"))
            bars.append(Bar(label: "B", segments: Self.segments(b.parts), capacity: capacity,
                            value: "KV \(formatBytes(b.kv, .compact)) \(WorkbenchScreen.delta(b.kv - a.kv))"))
        } else {
            bars.append(Bar(label: "here", segments: Self.segments(a.parts), capacity: Double(aTotal), value: "KV \(formatBytes(a.kv))"))
        }
        guard let projection = snapshot.projection else {
            projected = false
            return
        }
        projected = true
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
            bars.append(Bar(label: String(tier.name.prefix(Self.labelWidth - 1)), segments: segments, capacity: tier.capacity,
                            value: "\(formatBytes(tier.used, .compact))/\(formatBytes(tier.capacity, .compact))"))
        }
    }

    /// A run's parts in memory (weights, KV payload, KV metadata, activations) and its KV bytes.
    private static func live(_ residency: KVResidency, weights: Int, activations: Int) -> (parts: [(Int, ThemeRole)], kv: Int) {
        let payload = residency.fullPrecisionPayload + residency.quantizedPayload + residency.residualWindow + residency.pageSlack
        let metadata = residency.quantMetadata + residency.policyState
        return ([(weights, .tierWeights), (payload, .tierKVPayload), (metadata, .tierKVMetadata), (activations, .tierActivations)], payload + metadata)
    }

    private static func segments(_ parts: [(Int, ThemeRole)]) -> [CapacityBar.Segment] {
        parts.map { CapacityBar.Segment(Double($0.0), .role($0.1)) }
    }
}

/// The Memory hierarchy panel: capacity bars for this machine and the projected device's tiers.
struct MemoryPanel {
    var view: MemoryView?
    var glyphs: GlyphSet
    /// Segments drawn in patterns too (`AppState.patterned`).
    var patterned = false

    func render(area: Rect, buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Memory hierarchy", glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty, let view else { return }
        let labelWidth = MemoryView.labelWidth, valueWidth = min(17, max(inner.width / 2 - 2, 8))
        let barWidth = max(inner.width - labelWidth - valueWidth - 1, 3)
        var y = inner.y
        for bar in view.bars where y < inner.bottom {
            buffer.put(bar.label, x: inner.x, y: y, style: .role(.dimText), clip: inner)
            CapacityBar(segments: bar.segments, capacity: bar.capacity, patterned: patterned, glyphs: glyphs)
                .render(area: Rect(x: inner.x + labelWidth, y: y, width: barWidth, height: 1), buffer: &buffer)
            buffer.put(Line(bar.value, alignment: .right), row: Rect(x: inner.right - valueWidth, y: y, width: valueWidth, height: 1), glyphs: glyphs)
            y += 1
        }
        if !view.projected, y < inner.bottom {
            let keys = Keymap.key(for: .cycleDevice(forward: true)) + "/" + Keymap.key(for: .cycleTarget(forward: true))
            buffer.put("no projection (\(keys): device, target)", x: inner.x, y: y, style: .role(.dimText), clip: inner)
        }
    }
}
