import KVLabEngine

/// The positions each (layer, KV head) of a cache keeps, as `kvlab run --kept-out` writes them:
/// `{"positions": [[[p, …] per KV head] per layer]}`, positions counted from the sequence's first
/// token (BOS is 0), ascending; while `think` has key channels pruned, also
/// `"channels": [[[c, …] per KV head] per layer]`, the key channels each head keeps, ascending.
/// Researchers read it; `scripts/kvpress_check.py` compares it with what kvpress keeps.
public struct KeptPositions: Codable, Sendable, Equatable {
    public var positions: [[[Int]]]
    /// nil (absent from the JSON) unless `think` pruned key channels.
    public var channels: [[[Int]]]?

    public init(positions: [[[Int]]], channels: [[[Int]]]? = nil) {
        self.positions = positions
        self.channels = channels
    }

    public init(cache: PagedKVCache) {
        let layers = 0..<cache.layout.layerCount, heads = 0..<cache.layout.kvHeadCount
        positions = layers.map { layer in heads.map { cache.keptPositions(layer: layer, head: $0).sorted() } }
        // keptChannels is nil for every head or for none (`think` prunes the whole cache at once).
        channels = cache.keptChannels(layer: 0, head: 0) == nil ? nil
            : layers.map { layer in heads.map { cache.keptChannels(layer: layer, head: $0)! } }
    }
}
