import KVLabMethods

/// Past the context: the rotary positions the engine gives each token, and the renumbering that
/// keeps them inside the context for a method that bounds the cache (PageStore+Rotary.swift).
extension PagedKVCache {
    public func rotaryPosition(_ position: Int) -> Int { position - rotaryOffset }

    /// Entries of the fullest (layer, KV head).
    private var mostEntries: Int { (0..<store.headCount).reduce(0) { max($0, store.counts[$1]) } }

    public func hasRoom(position: Int, count: Int) -> Bool {
        mostEntries + count <= layout.capacity && (rotaryPosition(position) + count <= layout.capacity || canRenumber)
    }

    /// Whether entries can take new rotary positions: `think`'s pruned keys lack the channels a
    /// re-rotation mixes in.
    private var canRenumber: Bool { !store.keysPruned }

    /// Renumbers when the next `count` rotary positions would pass the context (llama.cpp's
    /// context shift), or at every step with `rebase` (StreamingLLM): every head's entries end just
    /// below the fullest head's count, which the next token then takes, so each head keeps its
    /// distances to the query as if it were numbered from 0 (PageStore+Rotary.swift). No head holds
    /// more entries than the next rotary position, so renumbering never moves that past the context.
    public func makeRoom(position: Int, count: Int, ledger: inout IOLedger) throws(EngineError) {
        guard hasRoom(position: position, count: count) else { throw .contextFull(limit: layout.capacity) }
        guard eviction.rebase || rotaryPosition(position) + count > layout.capacity else { return }
        let most = mostEntries
        for index in 0..<store.headCount { store.renumber(index: index, end: most, ledger: &ledger) }
        rotaryOffset = position - most
    }

    /// kvpress's KeyRerotationPress (and Finch's `rerotate_keys`): after the prompt's compression
    /// each head's kept entries take the rotary positions 0…n−1 (keys after RoPE re-rotated in
    /// place), while the next token keeps its own position (kvpress feeds decode steps their token
    /// positions), so the kept context sits at a distance from the query that grows with what was
    /// dropped.
    func rerotateKept(ledger: inout IOLedger) {
        for index in 0..<store.headCount { store.renumber(index: index, end: store.counts[index], ledger: &ledger) }
    }
}
