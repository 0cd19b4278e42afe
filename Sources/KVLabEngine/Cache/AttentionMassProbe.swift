import KVLabMethods

/// The ghost's measurement: the share of a reference cache's attention (a full cache run on the
/// same tokens, which records `s_t`) that fell on the entries this cache *read* at the last step
/// (every kept entry under dense attention, only the listed ones under a sparse mode), summed per
/// head as attention runs and averaged over layers and query heads.
final class AttentionMassProbe {
    /// The ghost cache measured against.
    weak var reference: PagedKVCache?
    /// The share at the last step; nil without a reference.
    private(set) var massKept: Double?
    private var sum = 0.0

    /// A step's first layer starts a new sum.
    func begin(layer: Int) { if layer == 0 { sum = 0 } }

    /// Adds the reference's attention on the `visible` entries one head of `store` attended.
    func add(layer: Int, head: Int, store: PageStore, visible: Int) {
        guard let reference else { return }
        sum += Self.mass(of: reference.store, layer: layer, head: head, on: store, visible: visible)
    }

    /// Adds the reference's attention on the `count` slots a sparse step of one head of `store`
    /// listed. Top-k's per-query-head masks are not seen: a slot any query head read counts.
    func add(layer: Int, head: Int, store: PageStore, slots: UnsafePointer<Int32>, count: Int) {
        guard let reference else { return }
        sum += Self.mass(of: reference.store, layer: layer, head: head, onSlots: slots, count: count, of: store)
    }

    /// After the last layer: the mean over layers and query heads.
    func end(layer: Int, layout: KVLayout) {
        guard reference != nil, layer == layout.layerCount - 1 else { return }
        massKept = sum / Double(layout.layerCount * layout.kvHeadCount * layout.groupSize)
    }

    /// A new sequence: nothing measured yet.
    func reset() { massKept = nil }

    /// The reference's last `s_t` summed over the positions `other` attended in one head (its
    /// first `visible` entries).
    static func mass(of reference: PageStore, layer: Int, head: Int, on other: PageStore, visible: Int) -> Double {
        let index = layer * reference.layout.kvHeadCount + head, otherIndex = layer * other.layout.kvHeadCount + head
        let count = reference.counts[index]
        let mine = reference.positions + index * reference.capacity
        let scores = reference.stepScores + index * reference.capacity
        let theirs = other.positions + otherIndex * other.capacity
        // Both lists are in position order: one merge pass.
        var i = 0, sum: Float = 0
        for j in 0..<visible {
            let p = theirs[j]
            while i < count, mine[i] < p { i += 1 }
            if i < count, mine[i] == p { sum += scores[i] }
        }
        return Double(sum)
    }

    /// The reference's last `s_t` summed over the positions of `count` listed slots of `other`
    /// (in any order; the reference's list is in position order, so each is a binary search).
    static func mass(of reference: PageStore, layer: Int, head: Int, onSlots slots: UnsafePointer<Int32>, count listed: Int,
                     of other: PageStore) -> Double {
        let index = layer * reference.layout.kvHeadCount + head, otherIndex = layer * other.layout.kvHeadCount + head
        let count = reference.counts[index]
        let mine = reference.positions + index * reference.capacity
        let scores = reference.stepScores + index * reference.capacity
        let slotPositions = other.slotPositions + otherIndex * other.capacity
        var sum: Float = 0
        for n in 0..<listed {
            let p = slotPositions[Int(slots[n])]
            var low = 0, high = count
            while low < high {
                let middle = (low + high) / 2
                if mine[middle] < p { low = middle + 1 } else { high = middle }
            }
            if low < count, mine[low] == p { sum += scores[low] }
        }
        return Double(sum)
    }
}
