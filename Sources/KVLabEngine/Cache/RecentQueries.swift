import KVLabMethods

/// Each layer's last `capacity` queries (every query head, as attention scored them) and their
/// positions: the observation window of a method that acts once at a prompt's end (snapkv,
/// pyramidkv, adakv, duo) when it is chosen between steps, so it can act at once on the
/// sequence so far (`PagedKVCache.setEviction`).
final class RecentQueries {
    /// Queries kept per layer.
    static let capacity = 64
    private let arena = BufferArena()
    private let width: Int
    /// Per (layer, ring slot): one token's queries (`headCount × headDim`).
    private let queries: UnsafeMutablePointer<Float>
    private let positions: UnsafeMutablePointer<Int>
    /// Queries each layer has recorded since the reset (the ring's write position).
    private let recorded: UnsafeMutablePointer<Int>
    private let layerCount: Int

    init(layout: KVLayout) {
        layerCount = layout.layerCount
        width = layout.kvHeadCount * layout.groupSize * layout.headDim
        queries = arena.allocate(Float.self, count: layout.layerCount * Self.capacity * width)
        positions = arena.allocate(Int.self, count: layout.layerCount * Self.capacity)
        recorded = arena.allocate(count: layout.layerCount, repeating: 0)
    }

    func reset() { recorded.update(repeating: 0, count: layerCount) }

    /// Takes another ring's queries (a cache forked from a prefix: `PagedKVCache.share`).
    func copy(from other: RecentQueries) {
        queries.update(from: other.queries, count: layerCount * Self.capacity * width)
        positions.update(from: other.positions, count: layerCount * Self.capacity)
        recorded.update(from: other.recorded, count: layerCount)
    }

    /// Records `count` consecutive tokens' queries of `layer` from `first` (only the last
    /// `capacity` stay).
    func record(layer: Int, first: Int, queries source: UnsafePointer<Float>, count: Int) {
        for t in max(0, count - Self.capacity)..<count {
            let slot = layer * Self.capacity + recorded[layer] % Self.capacity
            (queries + slot * width).update(from: source + t * width, count: width)
            positions[slot] = first + t
            recorded[layer] += 1
        }
    }

    /// How many of `layer`'s last queries are kept, at most `limit`.
    func available(layer: Int, limit: Int) -> Int { min(limit, recorded[layer], Self.capacity) }

    /// Query `i` of the last `n` of `layer` (oldest first) and its position.
    func query(layer: Int, last n: Int, _ i: Int) -> (queries: UnsafePointer<Float>, position: Int) {
        let slot = layer * Self.capacity + (recorded[layer] - n + i) % Self.capacity
        return (UnsafePointer(queries + slot * width), positions[slot])
    }
}
