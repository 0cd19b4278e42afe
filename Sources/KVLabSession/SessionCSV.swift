import KVLabMethods
import KVLabRun

/// Per-token metrics of a session as CSV: a header row, then one row per token event with the
/// knob values, ghost state, projection settings and caption in effect when it was generated.
public struct SessionCSV {
    /// The column names, in order.
    public static let columns: [String] = {
        var names = ["step", "position", "token", "text", "latency_ns", "projection_ns", "attention_ns", "feed_forward_ns",
                     "classifier_ns", "kv_bytes", "kv_fp32_payload", "kv_quantized_payload", "kv_quant_metadata",
                     "kv_residual_window", "kv_policy_state", "kv_page_slack", "kv_entries"]
        // Traffic per memory link and buffer, e.g. `hbmToSRAM_keys`.
        names += IOLink.allCases.flatMap { link in IOBuffer.allCases.map { "\(link.key)_\($0.key)" } }
        names += ["nll", "entropy_next", "kl", "top1_agrees", "ghost_nll", "delta_nll", "mass_kept", "projected_latency_s"]
        names += Knob.allCases.map(\.rawValue) + ["ghost", "device", "target", "projected_context", "caption"]
        return names
    }()

    private var settings: [Knob: String]
    private var ghost: Bool
    private var projection: ProjectionSettings?
    private var caption = ""

    /// A table starting from the header's settings.
    public init(header: SessionHeader) {
        settings = Dictionary(uniqueKeysWithValues: Knob.allCases.map { ($0, header.settings.value(of: $0)) })
        ghost = header.ghost
        projection = header.projection
    }

    /// The header row.
    public var headerRow: String { Self.columns.joined(separator: ",") }

    /// Follows one event; returns a row for a token event, nil for the others.
    public mutating func row(for event: SessionEvent) -> String? {
        switch event {
        case .knob(let change):
            settings[change.knob] = change.new
            return nil
        case .ghost(let change):
            ghost = change.enabled
            return nil
        case .projection(let change):
            // The reader validated the change; a session without header projection has none to apply.
            try? projection?.set(change.setting, to: change.new)
            return nil
        case .caption(let text):
            caption = text.text
            return nil
        case .prompt, .checkpoint, .stop, .end:
            return nil
        case .token(let event):
            let m = event.metrics, r = m.report, c = r.cache, t = r.timings
            var cells: [String] = [String(m.step), String(r.position), String(m.token), Self.escape(m.text)]
            cells += [t.totalNanoseconds, t.projectionNanoseconds, t.attentionNanoseconds, t.feedForwardNanoseconds,
                      t.classifierNanoseconds].map { String($0) }
            cells += [c.total, c.fullPrecisionPayload, c.quantizedPayload, c.quantMetadata, c.residualWindow, c.policyState,
                      c.pageSlack, r.cacheEntries].map { String($0) }
            cells += IOLink.allCases.flatMap { link in IOBuffer.allCases.map { String(r.ledger.bytes($0, link)) } }
            let g = m.ghost
            cells += [String(m.nll), String(r.entropy), g.map { String($0.kl) } ?? "", g.map { $0.top1Agrees ? "1" : "0" } ?? "",
                      g.map { String($0.ghostNLL) } ?? "", g.map { String($0.deltaNLL) } ?? "",
                      g?.massKept.map { String($0) } ?? "", event.projectedLatencySeconds.map { String($0) } ?? ""]
            cells += Knob.allCases.map { Self.escape(settings[$0] ?? "") }
            cells += [ghost ? "on" : "off"] + ProjectionSetting.allCases.map { setting in projection.map { Self.escape($0.value(of: setting)) } ?? "" }
            cells += [Self.escape(caption)]
            return cells.joined(separator: ",")
        }
    }

    /// RFC 4180 quoting: a cell with a comma, quote or line break is quoted, quotes doubled.
    static func escape(_ cell: String) -> String {
        guard cell.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return cell }
        return "\"" + cell.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
