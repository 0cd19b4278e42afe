import KVLabFoundation

/// A KV budget as a method string gives it (`ratio=`, `budget=` or `bytes=`), for the `kvpress:`
/// presses and kvlab's own methods alike: kvpress's `compression_ratio` (the share of the prompt's
/// entries removed), an entry count per (layer, KV head), or bytes of fp32 keys and values over the
/// whole cache, shared equally by its (layer, KV head)s.
public enum KVBudget: Sendable, Hashable {
    case ratio(Double)
    case entries(Int)
    case bytes(Int)

    /// The keys a budget is written with, in canonical order.
    static let keys = ["ratio", "budget", "bytes"]

    /// Schema entries for the keys; 0 stands for "not written" (`given` reads what was).
    static let entries: [ParameterSchema.Entry] = [
        ParameterSchema.share("ratio", 0.5), ParameterSchema.int("budget", 0, 0...1_048_576),
        ParameterSchema.byteSize("bytes", 0...Int(Int64.max / 2)),
    ]

    /// The budget `spec` writes (`p`: its parameters resolved with `entries`), nil when it writes
    /// none; more than one, or a size of 0, is an error.
    static func given(_ spec: MethodSpec, _ p: ResolvedParameters, method: String) throws(MethodSpecError) -> KVBudget? {
        let written = keys.filter { spec.value($0) != nil }
        guard written.count <= 1 else { throw MethodSpecError("\(method): give one of ratio, budget and bytes") }
        switch written.first {
        case "ratio": return .ratio(p.real("ratio"))
        case "budget", "bytes":
            let key = written[0]
            guard p.int(key) > 0 else { throw MethodSpecError("\(method): \(key)=\(spec.value(key)!) keeps nothing") }
            return key == "budget" ? .entries(p.int(key)) : .bytes(p.int(key))
        default: return nil
        }
    }

    /// Entries per (layer, KV head) that `bytes` of fp32 keys and values hold over `layout`'s cache.
    static func entriesPerHead(bytes: Int, layout: KVLayout) -> Int {
        bytes / (layout.layerCount * layout.kvHeadCount * 2 * layout.headDim * 4)
    }

    /// Refuses `bytes` that hold no entry per (layer, KV head) of `layout`'s cache, rather than
    /// keeping one entry silently.
    static func checkBytes(_ bytes: Int, layout: KVLayout, method: String) throws(MethodSpecError) {
        let entry = layout.layerCount * layout.kvHeadCount * 2 * layout.headDim * 4
        guard bytes < entry else { return }
        throw MethodSpecError("\(method): bytes=\(formatBytes(bytes, .exact)) holds no entry: one entry in every (layer, KV head) "
                              + "takes \(formatBytes(entry, .exact)) on this model (\(layout.layerCount) layers × \(layout.kvHeadCount) KV heads × "
                              + "fp32 key and value of \(layout.headDim))")
    }

    /// The token budget per (layer, KV head) of kvlab's own methods, for a prompt of `length`
    /// tokens: kvpress's `compute_n_kept` of it for a ratio (at least one entry), the count, or
    /// what the bytes hold (at least one entry).
    func tokens(length: Int, layout: KVLayout) -> Int {
        switch self {
        case .ratio(let r): max(1, Int(Double(length) * (1 - r)))
        case .entries(let n): n
        case .bytes(let b): max(1, Self.entriesPerHead(bytes: b, layout: layout))
        }
    }

    /// kvpress's `k_len · (1 − compression_ratio)` for `count` entries, before rounding: the
    /// number of entries a press keeps (pyramidkv spreads it over layers).
    func keptShare(of count: Int, layout: KVLayout) -> Double {
        switch self {
        case .ratio(let r): Double(count) * (1 - r)
        case .entries(let n): Double(min(n, count))
        case .bytes(let b): Double(min(count, Self.entriesPerHead(bytes: b, layout: layout)))
        }
    }

    /// kvpress's `1 − compression_ratio`: the share of `count` entries kept.
    func keptFraction(of count: Int, layout: KVLayout) -> Double {
        if case .ratio(let r) = self { return 1 - r }
        return keptShare(of: count, layout: layout) / Double(max(1, count))
    }

    /// kvpress's `compression_ratio`: the share of `count` entries removed.
    func compressionRatio(of count: Int, layout: KVLayout) -> Double {
        if case .ratio(let r) = self { return r }
        return 1 - keptFraction(of: count, layout: layout)
    }

    /// kvpress's `compute_n_kept`: at least one entry.
    func keptCount(of count: Int, layout: KVLayout) -> Int {
        min(count, max(1, Int(keptShare(of: count, layout: layout))))
    }
}
