import KVLabMethods

/// A method that acts once at the end of a prompt (snapkv, pyramidkv, adakv, duo) chosen between
/// decode steps: it acts at once, treating the sequence so far as its prompt. Its observation
/// window is each layer's most recent queries (its `observation`, at most
/// `RecentQueries.capacity`; duo calibrates on all of those), whose attention is recomputed over
/// the entries kept now, each query seeing the positions up to its own. A press that scores the
/// entries by their keys alone (kvpress's knorm, keydiff) acts on them as they are. One that needs
/// the model run again (kvpress's KVzip, NonCausalAttn, Compactor: `SequencePass`) waits for the engine.
extension PagedKVCache {
    /// Runs the policy's prompt hooks on the recent queries; false when it observes none (its
    /// prompt-end hook then ran on the entries alone), a prompt is running, or nothing was
    /// recorded since the reset.
    func actOnRecentQueries(ledger: inout IOLedger) -> Bool {
        guard promptEnd == nil, recent.available(layer: 0, limit: 1) > 0 else { return false }
        // The sequence so far is the prompt: it ends after the last query.
        let end = recent.query(layer: 0, last: 1, 0).position + 1
        if let pass = policy.sequencePass {
            // The engine runs the pass, then `finishSequencePass` acts.
            pendingSequencePass = pass
            return true
        }
        guard policy.prefillObservation > 0 else {
            finishOnEntries(end: end, ledger: &ledger)
            return false
        }
        let counts = (0..<layout.layerCount).map { recent.available(layer: $0, limit: policy.prefillObservation) }
        guard counts.allSatisfy({ $0 > 0 }) else { return false }
        let hd = layout.headDim, group = layout.groupSize, capacity = store.capacity
        for layer in 0..<layout.layerCount {
            for head in 0..<layout.kvHeadCount {
                let index = layer * layout.kvHeadCount + head, count = store.counts[index]
                for i in 0..<counts[layer] {
                    let (queries, position) = recent.query(layer: layer, last: counts[layer], i)
                    let q = attention.prepare(queries: queries + head * group * hd, index: index)
                    store.beginReads()
                    for slot in 0..<count {
                        if Int(store.slotPositions[index * capacity + slot]) <= position {
                            attention.scoreSlot(index: index, queries: q, slot: slot)
                        } else {
                            for g in 0..<group { attention.probabilities[g * attention.scoreStride + slot] = CacheAttention.masked }
                        }
                    }
                    attention.softmax(visible: count)
                    attention.gatherStepScores(index: index, visible: count, accumulate: false)
                    store.countDenseRead(key: true, index: index, visible: count, ledger: &ledger)
                    policy.observePrefill(layer: layer, head: head, entries: store.headEntries(index: index, count: count),
                                          queryPosition: position, promptEnd: end)
                }
                ledger.read(.activations, counts[layer] * group * hd * 4)
            }
        }
        finishOnEntries(end: end, ledger: &ledger)
        return true
    }

    /// The policy's prompt-end hook on every layer, with the entries' keys and values.
    func finishOnEntries(end: Int, ledger: inout IOLedger) {
        for layer in 0..<layout.layerCount {
            let vectors = self.vectors[layer]
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in
                policy.finishPrefill(layer: layer, heads: heads, promptEnd: end, vectors: vectors)
            }
            vectors.moveReads(to: &ledger)
        }
        if eviction.rerotatesAtPromptEnd { rerotateKept(ledger: &ledger) }
    }
}
