import KVLabMethods

/// Shared prefixes, preemption and the pool queries a scheduler asks before it admits.
extension BatchedEngine {
    // MARK: - Shared prefixes

    /// Prefills `tokens` (a system prompt) once as a shared prefix, in chunks of up to `chunk`
    /// tokens. A method that acts once at a prompt's end is kept waiting (the prompt goes on in
    /// each fork, so a fork equals a sequence that prefilled prefix and suffix itself); one that
    /// acts after every token has acted on each. Its pages count once however many forks hold them.
    @discardableResult
    public func makePrefix(_ tokens: [Int], chunk: Int = 512) throws(BatchError) -> PrefixID {
        let id = addSequence()
        let state = sequences[id]!
        do {
            try setPrompt(id, tokens: tokens)
            // The prompt end lies past the prefix: its end-of-prompt work waits for each fork's suffix.
            state.promptEnd = Int.max
            while !state.pending.isEmpty { try step([.prefill(id, tokens: chunk)]) }
        } catch {
            discard(state)
            sequences[id] = nil
            throw error
        }
        guard state.cache.shareable else {
            discard(state)
            sequences[id] = nil
            throw .methods(MethodSpecError("a shared prefix needs fp32 pages: \(methods.quant) quantizes during a prompt run token by token"))
        }
        sequences[id] = nil
        let prefix = PrefixID(nextPrefix)
        nextPrefix += 1
        prefixes[prefix] = state
        return prefix
    }

    /// A new sequence starting from a prefix's state (position after it, its pages shared);
    /// give it its own prompt (`setPrompt`) to go on.
    public func fork(from prefix: PrefixID) throws(BatchError) -> SequenceID {
        guard let source = prefixes[prefix] else { throw .unknownPrefix(prefix) }
        guard source.cache.shareable else {
            throw .methods(MethodSpecError("\(prefix) now stores quantized records (\(methods.quant)); forks share fp32 pages only"))
        }
        let id = addSequence()
        let state = sequences[id]!
        state.cache.share(from: source.cache)
        state.position = source.position
        state.history = source.history
        state.logits = source.logits
        state.inPrompt = source.inPrompt
        state.prefix = prefix
        return id
    }

    /// Ends a prefix: its pages go back to the pool once no fork holds them.
    public func removePrefix(_ id: PrefixID) throws(BatchError) {
        guard let state = prefixes[id] else { throw .unknownPrefix(id) }
        discard(state)
        prefixes[id] = nil
    }

    /// Tokens of a prefix.
    public func prefixTokens(_ id: PrefixID) throws(BatchError) -> [Int] {
        guard let state = prefixes[id] else { throw .unknownPrefix(id) }
        return state.history
    }

    /// Bytes of a prefix's pages (held once for all its forks).
    public func residentBytes(ofPrefix id: PrefixID) throws(BatchError) -> Int {
        guard let state = prefixes[id] else { throw .unknownPrefix(id) }
        let bytes = state.cache.pageBytes
        return bytes.private + bytes.shared
    }

    /// A sequence's resident pages: those it alone holds, and those it shares (a prefix's).
    public func residentBytes(of id: SequenceID) throws(BatchError) -> SequenceBytes {
        let state = try state(id)
        guard state.swapped == nil else { return SequenceBytes(privateBytes: 0, sharedBytes: state.cache.pageBytes.shared) }
        let bytes = state.cache.pageBytes
        return SequenceBytes(privateBytes: bytes.private, sharedBytes: bytes.shared)
    }

    /// The prefix a sequence was forked from, if any.
    public func prefix(of id: SequenceID) throws(BatchError) -> PrefixID? { try state(id).prefix }

    // MARK: - Admission

    /// Bytes of pages a prompt of `tokens` tokens takes at most at its peak (at full precision,
    /// before its method acts at its end), after `prefix` when given: fp32 pages per (layer, KV
    /// head) for the tokens past the prefix, plus a copy of the prefix's partly filled last page.
    public func bytesToAdmit(promptTokens tokens: Int, prefix: PrefixID? = nil) throws(BatchError) -> Int {
        let layout = KVLayout(config: config, capacity: capacity)
        let heads = layout.layerCount * layout.kvHeadCount, pageSize = PagedKVCache.pageSize
        let start: Int
        if let prefix {
            guard let state = prefixes[prefix] else { throw .unknownPrefix(prefix) }
            start = state.position
        } else {
            start = 0
        }
        let pages = (start + tokens + pageSize - 1) / pageSize - start / pageSize
        return heads * pages * PagedKVCache.pageBytes(headDim: layout.headDim)
    }

    /// Whether a prompt of `tokens` tokens (after `prefix`) fits the pool now.
    public func canAdmit(promptTokens tokens: Int, prefix: PrefixID? = nil) throws(BatchError) -> Bool {
        pool.fits(try bytesToAdmit(promptTokens: tokens, prefix: prefix))
    }

    /// At most the bytes of new pages `work` would take (what `step` checks against the budget).
    public func bytesNeeded(for work: [BatchWork]) throws(BatchError) -> Int {
        var total = 0
        for item in work {
            let state = try state(item.sequence)
            switch item {
            case .decode: total += state.cache.growthBound(appending: 1, endingPrompt: false)
            case .prefill(_, let count):
                let n = min(count, state.pending.count), batched = state.cache.batchedPrefill
                let taken = batched ? n : 1
                total += state.cache.growthBound(appending: taken, endingPrompt: batched && state.position + taken == state.promptEnd)
            }
        }
        return total
    }

    /// Whether `work` fits the pool's budget now.
    public func fits(_ work: [BatchWork]) throws(BatchError) -> Bool { pool.fits(try bytesNeeded(for: work)) }

    // MARK: - Preemption

    /// Moves a sequence's pages (those it alone holds) to host memory, freeing them in the pool;
    /// returns the traffic (pages read out of device memory). Shared pages stay with their prefix.
    @discardableResult
    public func swapOut(_ id: SequenceID) throws(BatchError) -> IOLedger {
        let state = try state(id)
        guard state.swapped == nil else { throw .swappedOut(id) }
        var ledger = IOLedger()
        let pages = state.cache.swapOut(ledger: &ledger)
        state.swapped = pages
        pool.swappedOutBytes += pages.totalBytes
        pool.hostBytes += pages.totalBytes
        return ledger
    }

    /// Brings a swapped-out sequence's pages back (bit-identical state); returns the traffic,
    /// counted on the DRAM→HBM link, and that of a method change made while it was out (applied
    /// now). Refused when its pages do not fit the budget.
    @discardableResult
    public func swapIn(_ id: SequenceID) throws(BatchError) -> IOLedger {
        let state = try state(id)
        guard let pages = state.swapped else { throw .notSwappedOut(id) }
        let bytes = pages.totalBytes
        guard pool.fits(bytes) else { throw .poolFull(needed: bytes, available: pool.availableBytes ?? 0) }
        var ledger = IOLedger()
        state.cache.swapIn(pages, ledger: &ledger)
        state.swapped = nil
        applyMethods(to: state.cache, ledger: &ledger)
        pool.swappedInBytes += bytes
        pool.hostBytes -= bytes
        return ledger
    }

    /// Frees what a sequence or prefix holds, in the pool or in host memory.
    func discard(_ state: SequenceState) {
        if let pages = state.swapped {
            pool.hostBytes -= pages.totalBytes
            state.swapped = nil
            state.cache.resetSwapped()
        } else {
            state.cache.reset()
        }
    }

    /// Whether a sequence's pages are in host memory.
    public func isSwappedOut(_ id: SequenceID) throws(BatchError) -> Bool { try state(id).swapped != nil }

    /// Bytes of a swapped-out sequence's pages in host memory (0 when resident).
    public func hostBytes(of id: SequenceID) throws(BatchError) -> Int { try state(id).swapped?.totalBytes ?? 0 }

    /// Preempts a sequence for recomputation: frees its pages and rewinds it to position 0 with
    /// every token it ran (prompt and decoded inputs, `tokens(_:)`) as its pending prompt, plus
    /// what was left of its prompt. Prefilling that again rebuilds its state (a forked sequence
    /// recomputes its prefix too).
    public func drop(_ id: SequenceID) throws(BatchError) {
        let state = try state(id)
        discard(state)
        let tokens = state.history + state.pending
        state.history = []
        state.position = 0
        state.inPrompt = false
        state.prefix = nil
        state.pending = tokens
        state.promptEnd = tokens.isEmpty ? nil : tokens.count
    }
}
