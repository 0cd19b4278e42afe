extension EvictionMethod {
    /// Each (layer, KV head)'s token budget, layer-major, as the method's policy sets it before
    /// seeing any data: nil where unbounded (`full`; `duo`, whose retrieval heads are chosen on
    /// the prompt, until then).
    public func budgets(layout: KVLayout) -> [Int?] {
        let policy = makePolicy(layout: layout)
        return (0..<layout.layerCount).flatMap { layer in
            (0..<layout.kvHeadCount).map { policy.budget(layer: layer, head: $0) }
        }
    }

    /// Bytes of state the cache keeps per entry for this method beside the entry's 4-byte
    /// position: the policy's scores or counters, and the merge count of `merge`.
    public var stateBytesPerEntry: Int {
        makePolicy(layout: Self.probeLayout).stateBytesPerEntry + (merge ? 4 : 0)
    }

    /// Whether the policy reads each decode step's attention probabilities (`s_t`), which a
    /// fused attention kernel must then emit.
    public var needsAttentionScores: Bool { makePolicy(layout: Self.probeLayout).needsScores }

    /// A one-head layout for asking a policy what does not depend on the layout.
    private static let probeLayout = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 2, groupSize: 1, capacity: 1)
}
