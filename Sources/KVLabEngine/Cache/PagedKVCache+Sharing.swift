import KVLabMethods

/// A cache's side of a `BatchedEngine`'s shared prefixes and preemption (PageStore+Sharing.swift).
extension PagedKVCache {
    /// Whether a cache forked from this one can take its state: its pages are fp32 (no records,
    /// keys not pruned). A prompt in progress qualifies, as does a method that acts after every
    /// token once its prefix ran, without quantization.
    var shareable: Bool { !store.holdsRecords && !store.keysPruned }

    /// Starts this (empty) cache from `prefix`'s entries, holding its pages copy-on-write: the
    /// per-slot state, the queries `think` and mid-stream switches keep, and the rotary offset.
    /// The policy and sparse selector start fresh, as at a prompt's start.
    func share(from prefix: PagedKVCache) {
        precondition(prefix.shareable && eviction == prefix.eviction && quant == prefix.quant, "forking needs the prefix's methods and fp32 pages")
        store.share(from: prefix.store)
        recent.copy(from: prefix.recent)
        think.copyQueries(from: prefix.think)
        rotaryOffset = prefix.rotaryOffset
        tokensSeen = prefix.tokensSeen
    }

    /// Bytes of the pages the cache holds alone, and of those it shares.
    var pageBytes: (private: Int, shared: Int) { store.pageBytes }

    /// At most the bytes of new pages the next `count` tokens take (`PageStore.growthBound`).
    func growthBound(appending count: Int, endingPrompt: Bool) -> Int { store.growthBound(appending: count, endingPrompt: endingPrompt) }

    /// Moves the pages only this cache holds to host memory (PageStore+Sharing.swift).
    func swapOut(ledger: inout IOLedger) -> SwappedPages { store.swapOut(ledger: &ledger) }

    /// Brings back what `swapOut` took.
    func swapIn(_ pages: SwappedPages, ledger: inout IOLedger) { store.swapIn(pages, ledger: &ledger) }

    /// Drops every entry of a cache whose pages are in host memory.
    func resetSwapped() {
        store.forgetSwappedPages()
        reset()
    }
}
