import KVLabMethods

/// Pages shared between caches, and pages leaving for host memory: the page store's side of a
/// `BatchedEngine`'s shared prefixes (copy-on-write) and preemption (swap out and in).
///
/// A cache forked from a prefix (`share(from:)`) takes the prefix's per-slot state and holds the
/// same pages (`PagePool.retain`). The first private change to a shared page (an append into its
/// free lanes, a slot refilled by eviction or quantization, a rewritten key or value: merges,
/// re-rotation) copies the page first (`makePrivate`), counted as the page read and written and in
/// `PagePools.copiedBytes`. Re-storing a head (`rebuildPages`: quantization or `think` switches)
/// writes fresh pages and only lets go of the shared ones.
extension PageStore {
    /// Copies page `p` of head `index` before a private change when another cache holds it too.
    @inline(__always)
    func makePrivate(index: Int, page p: Int, ledger: inout IOLedger) {
        let entry = pageTables + index * pagesPerHead + p
        guard pool.isShared(entry.pointee) else { return }
        let copy = pool.acquire()
        pool.pointer(copy).update(from: pool.pointer(entry.pointee), count: pool.elementsPerPage)
        pool.release(entry.pointee)
        entry.pointee = copy
        let keyBytes = Self.pageSize * keyWidth * 4, valueBytes = Self.pageSize * layout.headDim * 4
        ledger.read(.keys, keyBytes)
        ledger.write(.keys, keyBytes)
        ledger.read(.values, valueBytes)
        ledger.write(.values, valueBytes)
        pools?.copiedPages += 1
        pools?.copiedBytes += pool.pageBytes
    }

    /// Makes head `index`'s partly filled last page private before an append writes into it.
    @inline(__always)
    func makeTailPrivate(index: Int, ledger: inout IOLedger) {
        let slots = pageCounts[index]
        if slots % Self.pageSize != 0 { makePrivate(index: index, page: slots / Self.pageSize, ledger: &ledger) }
    }

    /// Whether any quantized record is stored (records are never shared).
    var holdsRecords: Bool {
        [keyStore, valueStore].contains { store in store.map { s in (0..<headCount).contains { s.quantizedCounts[$0] > 0 } } ?? false }
    }

    /// Takes `other`'s entries (same layout and method, on the same pools, no records, keys not
    /// pruned): its per-slot state copied, its pages held together with it.
    func share(from other: PageStore) {
        precondition(other.pools != nil && other.pools === pools, "sharing pages needs caches on one set of pools")
        precondition(!other.holdsRecords && !other.keysPruned && !keysPruned && quant == other.quant,
                     "a shared prefix has fp32 pages only, in the sharer's method")
        reset()
        let entries = headCount * capacity
        counts.update(from: other.counts, count: headCount)
        pageCounts.update(from: other.pageCounts, count: headCount)
        pageTables.update(from: other.pageTables, count: headCount * pagesPerHead)
        for (mine, theirs) in [(pageOwners, other.pageOwners), (slotPositions, other.slotPositions), (slotRotary, other.slotRotary),
                               (keyLocations, other.keyLocations), (valueLocations, other.valueLocations), (positions, other.positions),
                               (slots, other.slots)] {
            mine.update(from: theirs, count: entries)
        }
        for (mine, theirs) in [(mergeCounts, other.mergeCounts), (receivedScores, other.receivedScores), (policyScores, other.policyScores),
                               (keyNorms, other.keyNorms), (stepScores, other.stepScores)] {
            mine.update(from: theirs, count: entries)
        }
        history.update(from: other.history, count: entries)
        if other.ropeAngles != nil { prepareAngles() }
        for index in 0..<headCount {
            for p in 0..<heldPages(index: index) { pool.retain(pageTables[index * pagesPerHead + p]) }
            summarizeAll(index: index)
        }
    }

    /// fp32 pages head `index` holds.
    @inline(__always)
    func heldPages(index: Int) -> Int { (pageCounts[index] + Self.pageSize - 1) / Self.pageSize }

    /// The record stores holding pages now (the key store once when keys and values share it).
    private var recordStores: [QuantizedKVStore] {
        var stores: [QuantizedKVStore] = []
        for store in [keyStore, valueStore] { if let store, !stores.contains(where: { $0 === store }) { stores.append(store) } }
        return stores
    }

    /// Bytes of the pages this store holds: those it alone holds, and those shared with other caches.
    var pageBytes: (private: Int, shared: Int) {
        var own = 0, shared = 0
        for index in 0..<headCount {
            for p in 0..<heldPages(index: index) {
                let page = pageTables[index * pagesPerHead + p]
                guard page >= 0 else { continue }
                if pool.isShared(page) { shared += pool.pageBytes } else { own += pool.pageBytes }
            }
        }
        for store in recordStores {
            for lane in store.lanes {
                for index in 0..<headCount { own += lane.heldPages(index: index) * lane.pageBytes }
            }
        }
        return (own, shared)
    }

    /// At most the bytes of new pages that `count` more entries per head take (each head's pages
    /// past its last one, a copy of a shared last page), and when a prompt ends, the records its
    /// quantization may add before it frees page slots.
    func growthBound(appending count: Int, endingPrompt: Bool) -> Int {
        var pages = 0
        for index in 0..<headCount {
            let slots = pageCounts[index]
            pages += (slots + count + Self.pageSize - 1) / Self.pageSize - heldPages(index: index)
            if slots % Self.pageSize != 0, pool.isShared(pageTables[index * pagesPerHead + slots / Self.pageSize]) { pages += 1 }
        }
        var bytes = pages * pool.pageBytes
        for store in recordStores {
            for lane in store.lanes {
                // A decode step adds at most one record per head and lane; a prompt's end its entries' worth.
                for index in 0..<headCount {
                    let records = endingPrompt ? (counts[index] + count + store.tokens - 1) / store.tokens : 1
                    bytes += ((lane.recordCounts[index] + records + lane.recordsPerPage - 1) / lane.recordsPerPage - lane.heldPages(index: index))
                        * lane.pageBytes
                }
            }
        }
        return bytes
    }

    // MARK: - Swapping

    /// Moves every page this store alone holds to host memory (shared pages stay, held by their
    /// prefix): their contents in table order, their table entries marked absent (−1). Counts
    /// the pages read out of device memory.
    func swapOut(ledger: inout IOLedger) -> SwappedPages {
        var swapped = SwappedPages()
        let keyBytes = Self.pageSize * keyWidth * 4, valueBytes = Self.pageSize * layout.headDim * 4
        for index in 0..<headCount {
            for p in 0..<heldPages(index: index) {
                let entry = pageTables + index * pagesPerHead + p
                guard !pool.isShared(entry.pointee) else { continue }
                swapped.floats.append(contentsOf: UnsafeBufferPointer(start: pool.pointer(entry.pointee), count: pool.elementsPerPage))
                pool.release(entry.pointee)
                entry.pointee = -1
                ledger.read(.keys, keyBytes)
                ledger.read(.values, valueBytes)
                swapped.keyBytes += keyBytes
                swapped.valueBytes += valueBytes
            }
        }
        for store in recordStores {
            for lane in store.lanes {
                for index in 0..<headCount {
                    for p in 0..<lane.heldPages(index: index) {
                        let entry = lane.pageTables + index * lane.pagesPerHead + p
                        swapped.bytes.append(contentsOf: UnsafeBufferPointer(start: lane.pool.pointer(entry.pointee), count: lane.pageBytes))
                        lane.pool.release(entry.pointee)
                        entry.pointee = -1
                        ledger.read(store.buffer, lane.pageBytes)
                        if store.buffer == .keys { swapped.keyBytes += lane.pageBytes } else { swapped.valueBytes += lane.pageBytes }
                    }
                }
            }
        }
        return swapped
    }

    /// Brings swapped pages back into new pages of the same pools, in the order `swapOut` took
    /// them: the same bytes, so the cache reads exactly what it read before. Counted as fetched
    /// from host into device memory.
    func swapIn(_ swapped: SwappedPages, ledger: inout IOLedger) {
        var floats = 0, bytes = 0
        let keyBytes = Self.pageSize * keyWidth * 4, valueBytes = Self.pageSize * layout.headDim * 4
        for index in 0..<headCount {
            for p in 0..<heldPages(index: index) {
                let entry = pageTables + index * pagesPerHead + p
                guard entry.pointee < 0 else { continue }
                entry.pointee = pool.acquire()
                swapped.floats.withUnsafeBufferPointer { pool.pointer(entry.pointee).update(from: $0.baseAddress! + floats, count: pool.elementsPerPage) }
                floats += pool.elementsPerPage
                ledger.fetch(.keys, keyBytes)
                ledger.fetch(.values, valueBytes)
            }
        }
        for store in recordStores {
            for lane in store.lanes {
                for index in 0..<headCount {
                    for p in 0..<lane.heldPages(index: index) {
                        let entry = lane.pageTables + index * lane.pagesPerHead + p
                        entry.pointee = lane.pool.acquire()
                        swapped.bytes.withUnsafeBufferPointer { lane.pool.pointer(entry.pointee).update(from: $0.baseAddress! + bytes, count: lane.pageBytes) }
                        bytes += lane.pageBytes
                        ledger.fetch(store.buffer, lane.pageBytes)
                    }
                }
            }
        }
        precondition(floats == swapped.floats.count && bytes == swapped.bytes.count, "swap-in of pages another store swapped out")
    }

    /// Forgets the pages of a swapped-out store before a reset: those in host memory are not
    /// the pool's, and shared ones are let go of.
    func forgetSwappedPages() {
        for index in 0..<headCount {
            for p in 0..<heldPages(index: index) {
                let page = pageTables[index * pagesPerHead + p]
                if page >= 0 { pool.release(page) }
            }
            counts[index] = 0
            pageCounts[index] = 0
        }
        for store in recordStores {
            for lane in store.lanes { lane.recordCounts.update(repeating: 0, count: headCount) }
            store.quantizedCounts.update(repeating: 0, count: headCount)
        }
    }
}

/// A cache's pages while in host memory: fp32 page contents, then record pages, in the order
/// `PageStore.swapOut` visited them.
struct SwappedPages {
    var floats: [Float] = []
    var bytes: [UInt8] = []
    /// Bytes of keys and of values moved (payload pages and records alike).
    var keyBytes = 0
    var valueBytes = 0
    var totalBytes: Int { keyBytes + valueBytes }
}

extension QuantizedKVStore.Lane {
    /// Record pages head `index` holds.
    @inline(__always)
    func heldPages(index: Int) -> Int { (recordCounts[index] + recordsPerPage - 1) / recordsPerPage }
}
