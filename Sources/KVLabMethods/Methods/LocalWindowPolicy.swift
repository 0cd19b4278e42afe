/// The sliding window of a model's local layers (`AttentionSpan.local`) under any eviction method:
/// after each step a local layer's heads drop the entries the next position cannot see, keeping
/// the `window − 1` newest positions so that the next token attends exactly `window` (its own
/// entry included). The method's policy then acts on what is left, so it never spends its
/// budget on entries the window already dropped; its budgets are capped at `window − 1` there.
/// Global layers pass straight through.
package final class LocalWindowPolicy: EvictionPolicy {
    package let inner: any EvictionPolicy
    /// Per layer: its window, nil for a global layer.
    package let windows: [Int?]

    package init(inner: any EvictionPolicy, spans: [AttentionSpan]) {
        self.inner = inner
        windows = spans.map(\.window)
    }

    package var needsScores: Bool { inner.needsScores }
    package var batchedPrefill: Bool { inner.batchedPrefill }
    package var prefillObservation: Int { inner.prefillObservation }
    package var stateBytesPerEntry: Int { inner.stateBytesPerEntry }
    package var recordedQueries: Int { inner.recordedQueries }
    package var sequencePass: SequencePass? { inner.sequencePass }

    package func budget(layer: Int, head: Int) -> Int? {
        guard let window = windows[layer] else { return inner.budget(layer: layer, head: head) }
        return min(inner.budget(layer: layer, head: head) ?? Int.max, window - 1)
    }

    /// After a decode step the newest entry is the step's own (nothing evicted it yet), so the
    /// next position is one past it.
    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        trimAfterStep(layer: layer, heads: heads)
        inner.afterAttention(layer: layer, heads: heads)
    }

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, vectors: any EntryVectors) {
        trimAfterStep(layer: layer, heads: heads)
        inner.afterAttention(layer: layer, heads: heads, vectors: vectors)
    }

    private func trimAfterStep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {
        guard let window = windows[layer] else { return }
        for h in heads.indices where heads[h].count > 0 {
            Self.trim(&heads[h], window: window, next: Int(heads[h].positions[heads[h].count - 1]) + 1)
        }
    }

    package func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {
        inner.observePrefill(layer: layer, head: head, entries: entries, queryPosition: queryPosition, promptEnd: promptEnd)
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {
        if let window = windows[layer] {
            for h in heads.indices { Self.trim(&heads[h], window: window, next: promptEnd) }
        }
        inner.finishPrefill(layer: layer, heads: heads, promptEnd: promptEnd)
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: any EntryVectors) {
        if let window = windows[layer] {
            for h in heads.indices { Self.trim(&heads[h], window: window, next: promptEnd) }
        }
        inner.finishPrefill(layer: layer, heads: heads, promptEnd: promptEnd, vectors: vectors)
    }

    /// Evicts the entries position `next` does not see (positions ≤ next − window), oldest first.
    package static func trim(_ entries: inout HeadEntries, window: Int, next: Int) {
        let oldest = Int32(clamping: next - window)
        var k = 0
        while k < entries.count, entries.positions[k] <= oldest { k += 1 }
        entries.evictOldest(k)
    }
}

extension EvictionMethod {
    /// The method's policy for a cache of `layout`, inside the sliding window of its local layers;
    /// a `ratio=` budget takes its share of `promptLength` tokens (the context when nil).
    package func makePolicy(layout: KVLayout, promptLength: Int? = nil) -> any EvictionPolicy {
        let policy = makeMethodPolicy(layout: layout, promptLength: promptLength)
        guard layout.attentionSpans.contains(where: { $0.window != nil }) else { return policy }
        return LocalWindowPolicy(inner: policy, spans: layout.attentionSpans)
    }
}
