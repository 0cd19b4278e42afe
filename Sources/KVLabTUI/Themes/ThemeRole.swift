/// A semantic colour role (htop's ColorElements): widgets and panels paint with roles, themes give
/// each role a colour and attributes. The raw value is the key in theme files.
public enum ThemeRole: String, CaseIterable, Hashable, Sendable {
    /// The screen background (`""` or `default` keeps the terminal's).
    case background = "main_bg"
    /// Body text.
    case text = "main_fg"
    /// Secondary text: units, hints, axis labels.
    case dimText = "dim_fg"
    /// Panel titles.
    case title
    /// Panel borders and dividers.
    case border
    /// Values that changed or deserve attention.
    case highlight
    /// Text of the selected row or knob.
    case selectedForeground = "selected_fg"
    /// Background of the selected row or knob.
    case selectedBackground = "selected_bg"
    /// Keys in hints and the help overlay.
    case key
    /// KV entries kept at full precision.
    case kvKept = "kv_kept"
    /// KV entries evicted.
    case kvEvicted = "kv_evicted"
    /// KV entries stored quantized.
    case kvQuantized = "kv_quantized"
    /// KV entries fetched back (retrieval, sparse reads from host memory).
    case kvRetrieved = "kv_retrieved"
    /// Memory holding weights.
    case tierWeights = "tier_weights"
    /// Memory holding KV payload.
    case tierKVPayload = "tier_kv_payload"
    /// Memory holding KV metadata (scales, zero points, indices, policy state).
    case tierKVMetadata = "tier_kv_metadata"
    /// Memory holding activations and scratch.
    case tierActivations = "tier_activations"
    /// Free capacity in a memory bar.
    case tierFree = "tier_free"
    /// Configuration A in compare mode (and the live run elsewhere).
    case seriesA = "series_a"
    /// Configuration B in compare mode (and projections).
    case seriesB = "series_b"
    /// Good news: within budget, matching the ghost.
    case ok
    /// Something to watch.
    case warning
    /// Something wrong.
    case error
}

/// A colour gradient of a theme, given by `<name>_start`, optional `<name>_mid` and `<name>_end`
/// keys (btop's convention).
public enum ThemeGradient: String, CaseIterable, Hashable, Sendable {
    /// Graphs and sparklines, from low to high.
    case graph
    /// Heat maps (KV map scores and bits), from cold to hot.
    case heat

    /// The theme-file keys of the stops, in order.
    public var keys: (start: String, mid: String, end: String) { (rawValue + "_start", rawValue + "_mid", rawValue + "_end") }
}
