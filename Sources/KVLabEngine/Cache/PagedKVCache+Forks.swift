import KVLabMethods

/// Scoring passes (`ForkScoringPolicy`, kvpress's KVzip): tokens run after a prompt on a fork of
/// the sequence, inside its batched prefill, then leave nothing behind but the policy's scores;
/// and the passes a method acting on the sequence so far asks the engine for (`SequencePass`).
extension PagedKVCache {
    /// The forks the policy runs after a prompt of `tokens` from `first` (none for other
    /// policies); nil when it needs `texts` and there are none or their template is unusable.
    public func scoringForks(prompt tokens: [Int], first: Int, texts: PromptTexts?) -> [[Int]]? {
        guard let policy = policy as? ForkScoringPolicy else { return [] }
        guard let texts, texts.problem == nil else { return nil }
        return policy.forks(prompt: tokens, first: first, texts: texts)
    }

    /// A fork of the positions before `end` runs next: it attends as a prompt (nothing acts at
    /// its end), its queries alone recorded for the policy.
    public func beginFork(end: Int) {
        beforeFork = (promptEnd, tokensSeen)
        for layerVectors in vectors { layerVectors.queries.removeAll() }
        promptEnd = end
    }

    /// Fork `index` (from `start`) ran through every layer: the policy reads each layer, then the
    /// fork's entries are freed and the prompt's state comes back.
    public func endFork(_ index: Int, start: Int, ledger: inout IOLedger) {
        guard let policy = policy as? ForkScoringPolicy, let before = beforeFork else { preconditionFailure("endFork without a fork") }
        for layer in 0..<layout.layerCount {
            let vectors = self.vectors[layer]
            applyPolicy(layer: layer, ledger: &ledger) { _, layer, heads in
                policy.observeFork(index, layer: layer, heads: heads, forkStart: start, vectors: vectors)
                for h in heads.indices {
                    while heads[h].count > 0, Int(heads[h].positions[heads[h].count - 1]) >= start { heads[h].evict(heads[h].count - 1) }
                }
            }
            vectors.moveReads(to: &ledger)
            vectors.queries.removeAll()
        }
        (promptEnd, tokensSeen) = before
        beforeFork = nil
    }

    /// The engine ran the pending pass over the sequence's `end` tokens (its forks, or the
    /// sequence as a prompt in a scratch cache whose per-layer `queries` it hands over): the
    /// method acts now on the entries kept, as at a prompt's end.
    package func finishSequencePass(end: Int, queries: [RecordedQueries]?, ledger: inout IOLedger) {
        pendingSequencePass = nil
        if let queries {
            for (layerVectors, recorded) in zip(vectors, queries) {
                layerVectors.queries.removeAll()
                recorded.values.withUnsafeBufferPointer { values in
                    layerVectors.queries.append(values.baseAddress!, count: recorded.count, firstRotary: recorded.rotary.first ?? 0, scale: 1, limit: .max)
                }
                ledger.read(.activations, recorded.values.count * 4)
            }
        }
        finishOnEntries(end: end, ledger: &ledger)
        for layerVectors in vectors { layerVectors.queries.removeAll() }
    }

    /// The engine could not run the pending pass (no room for it): nothing acts this time.
    public func skipSequencePass() { pendingSequencePass = nil }
}
