/// The queries of one layer a policy asked the cache to keep (`EvictionPolicy.recordedQueries`):
/// each token's queries of every query head as the model computed them (after its query norm and
/// RoPE, before the attention's logit scale), with the rotary position RoPE gave them, oldest
/// first. kvpress's ExpectedAttention, NonCausalAttn and Compactor recompute them from the
/// prompt's hidden states; the policy empties them once it has scored.
package final class RecordedQueries {
    /// Floats per token: query heads × headDim.
    package let width: Int
    package private(set) var values: [Float] = []
    package private(set) var rotary: [Int] = []

    package init(width: Int) { self.width = width }

    package var count: Int { rotary.count }

    /// Appends `count` consecutive tokens' queries (`width` each, at rotary positions from
    /// `firstRotary`), each divided by `scale`; only the last `limit` stay.
    package func append(_ queries: UnsafePointer<Float>, count: Int, firstRotary: Int, scale: Float, limit: Int) {
        for t in max(0, count - limit)..<count {
            for c in 0..<width { values.append(queries[t * width + c] / scale) }
            rotary.append(firstRotary + t)
        }
        if rotary.count > limit {
            values.removeFirst((rotary.count - limit) * width)
            rotary.removeFirst(rotary.count - limit)
        }
    }

    package func removeAll() {
        values.removeAll(keepingCapacity: true)
        rotary.removeAll(keepingCapacity: true)
    }
}
