import KVLabEngine

/// The positions each (layer, KV head) of a cache keeps, as `kvlab run --kept-out` writes them:
/// `{"positions": [[[p, …] per KV head] per layer]}`, positions counted from the sequence's first
/// token (BOS is 0), ascending. Researchers read it; `scripts/kvpress_check.py` compares it with
/// the entries kvpress keeps.
public struct KeptPositions: Codable, Sendable, Equatable {
    public var positions: [[[Int]]]

    public init(positions: [[[Int]]]) { self.positions = positions }

    public init(cache: PagedKVCache) {
        positions = (0..<cache.layout.layerCount).map { layer in
            (0..<cache.layout.kvHeadCount).map { cache.keptPositions(layer: layer, head: $0).sorted() }
        }
    }
}
