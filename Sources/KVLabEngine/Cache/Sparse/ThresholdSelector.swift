import KVLabMethods

/// threshold: read only the entries whose `s_t` at the last step reached `theta`, and the new
/// entry (the cache collects `s_t` every step while the mode is on).
final class ThresholdSelector: SparseSelector {
    let theta: Float

    init(theta: Float) { self.theta = theta }

    func select(_ step: SparseStep, attention: CacheAttention, log: StepReadLog, ledger: inout IOLedger) -> Int {
        let store = attention.store, base = step.index * store.capacity
        if step.scoring { attention.maskScores(visible: step.visible) }
        var n = 0
        for i in 0..<step.visible where store.stepScores[base + i] >= theta || Int(store.positions[base + i]) == step.position {
            let slot = Int(store.slots[base + i])
            if step.scoring { attention.scoreSlot(index: step.index, queries: step.queries, slot: slot) }
            attention.selectedSlots[n] = Int32(slot)
            n += 1
        }
        return n
    }
}
