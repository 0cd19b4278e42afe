import KVLabMethods

/// Where every kept entry of every (layer, KV head) lives, and how attention reads it back: the
/// storage half of `PagedKVCache`, which owns all of its buffers (one `BufferArena`).
///
/// Each (layer, KV head) numbers its entries with slots 0..<count with no holes (an evicted slot
/// is refilled by the last one); a slot is the entry's column in a step's scores, and policies
/// see the entries in position order through per-head arrays that map each entry to its slot
/// (`headEntries`). A slot's key and its value each live either in an fp32 page slot or as a
/// member of a quantized record (`QuantizedKVStore`), a location stored as the page slot (≥ 0)
/// or as `−1 − code` for record member `code` (record `code / tokens`, member `code % tokens`).
/// fp32 page slots are kept without holes too, so the tail page frees as soon as it empties; a
/// page stores its 16 keys channel-major (one SIMD16 step scores 16 keys without horizontal sums)
/// and its 16 values token-major (P·V adds whole value vectors). A tensor kept at fp32 keeps every
/// entry in a page slot, and page slot = slot.
///
/// Key frames (the KVQuant / RotateKV options): `key(index:slot:)` gives a key as it is scored.
/// With `prerope` keys are stored before RoPE and each read rotates the key to its position; with
/// `rotate` they are stored Hadamard-transformed and the queries are transformed alike before
/// scoring (when keys are also pre-RoPE, a read undoes the transform before applying RoPE). While
/// `think` has keys pruned (`ThinKStore` switches `pool`, `keyWidth` and `keyStore`), pages hold
/// the `keyWidth` kept channels of each key beside full values, and a key reads back with zeros
/// in the pruned channels.
final class PageStore {
    /// Token slots per page (one SIMD16 lane per slot).
    static let pageSize = 16
    let layout: KVLayout
    let headCount: Int
    let capacity: Int
    let pagesPerHead: Int
    private let arena = BufferArena()

    /// Per (layer, head): entries kept (= slots in use), fp32 page slots in use, page ids in order.
    let counts: UnsafeMutablePointer<Int>
    let pageCounts: UnsafeMutablePointer<Int>
    let pageTables: UnsafeMutablePointer<Int32>
    /// Per (layer, head, page slot): the slot it holds.
    let pageOwners: UnsafeMutablePointer<Int32>
    /// Per (layer, head, slot): its position, and where its key and value live.
    let slotPositions: UnsafeMutablePointer<Int32>
    /// Per (layer, head, slot): the position RoPE gives its key, below `capacity`. It is the
    /// position until the cache renumbers past the context (`renumber`, PageStore+Rotary.swift).
    let slotRotary: UnsafeMutablePointer<Int32>
    let keyLocations: UnsafeMutablePointer<Int32>
    let valueLocations: UnsafeMutablePointer<Int32>
    /// Entries merged into each slot's entry, itself included (the `merge` modifier).
    let mergeCounts: UnsafeMutablePointer<Float>
    /// `mixed`: the attention `Σ s_t` each slot's entry has received while the method was mixed.
    let receivedScores: UnsafeMutablePointer<Float>
    /// Per (layer, head), in position order: what `HeadEntries` shows a policy.
    let positions: UnsafeMutablePointer<Int32>
    let policyScores: UnsafeMutablePointer<Float>
    let history: UnsafeMutablePointer<UInt64>
    let keyNorms: UnsafeMutablePointer<Float>
    let stepScores: UnsafeMutablePointer<Float>
    let slots: UnsafeMutablePointer<Int32>
    /// Per KV head of a layer: the slots a policy released (one layer acts at a time).
    let released: UnsafeMutablePointer<Int32>
    /// Per slot of the head being reclaimed: the kept entry it holds (`reclaim`'s scratch).
    let entryOfSlot: UnsafeMutablePointer<Int32>
    let heads: UnsafeMutableBufferPointer<HeadEntries>
    /// Per (layer, head), `headDim` slots: the first `keyWidth` are its kept channels, ascending,
    /// while `keysPruned`.
    let keptChannels: UnsafeMutablePointer<Int32>
    /// Quest's page summaries, kept current through every change of a key.
    let summaries: PageSummaries

    /// fp32 pages: `pageSize × keyWidth` key floats (channel-major), then `pageSize × headDim` value floats.
    let fullPool: PagePool<Float>
    /// The pool pages come from now: `ThinKStore`'s thin pool while keys are pruned.
    var pool: PagePool<Float>
    /// Channels stored per key: the head size, or `think`'s kept count while keys are pruned.
    var keyWidth: Int
    var keysPruned = false
    /// The quantization method: key frames, residual window, protected sinks, `mixed` lanes.
    var quant: KVQuantMethod
    /// Quantized keys and values; nil for a tensor kept at fp32. `keyStore` is `fullKeyStore`, or
    /// `ThinKStore`'s thin store while keys are pruned.
    var keyStore: QuantizedKVStore?
    var fullKeyStore: QuantizedKVStore?
    var valueStore: QuantizedKVStore?
    /// RoPE angles of every position, one table per layer (shared by layers with the same RoPE),
    /// built when a method first stores keys before RoPE or the cache first renumbers keys stored after it.
    private(set) var ropeAngles: [RoPEAngles]?

    /// One key and one value gathered from a page or decoded from a record; a merge's operands.
    let keyScratch: UnsafeMutablePointer<Float>
    let valueScratch: UnsafeMutablePointer<Float>
    let mergeKey: UnsafeMutablePointer<Float>
    let mergeValue: UnsafeMutablePointer<Float>
    /// A key in its storage frame (Hadamard-transformed, before RoPE, pruned) on its way into a page or record.
    let storedKey: UnsafeMutablePointer<Float>
    /// One head's entries in position order while they are stored again (`rebuildPages`): keys
    /// as scored, fp32 values, value locations (≥ 0: in `restoreValues`, else a record member),
    /// merge counts and received scores.
    let restoreKeys: UnsafeMutablePointer<Float>
    let restoreValues: UnsafeMutablePointer<Float>
    let restoreValueLocations: UnsafeMutablePointer<Int32>
    let restoreMerged: UnsafeMutablePointer<Float>
    let restoreReceived: UnsafeMutablePointer<Float>
    let restoreRotary: UnsafeMutablePointer<Int32>
    /// Pages of slots whose keys were just quantized (their summaries are recomputed).
    let pageMarks: UnsafeMutablePointer<Bool>
    let touchedPages: UnsafeMutablePointer<Int32>

    /// The pools shared with other caches (a `BatchedEngine`'s), or nil for pools of its own.
    let pools: PagePools?

    init(layout: KVLayout, quant: KVQuantMethod, pools: PagePools? = nil) {
        self.layout = layout
        self.pools = pools
        let pageSize = Self.pageSize, hd = layout.headDim
        headCount = layout.layerCount * layout.kvHeadCount
        capacity = layout.capacity
        pagesPerHead = (layout.capacity + pageSize - 1) / pageSize
        let entries = headCount * capacity
        counts = arena.allocate(count: headCount, repeating: 0)
        pageCounts = arena.allocate(count: headCount, repeating: 0)
        pageTables = arena.allocate(Int32.self, count: headCount * pagesPerHead)
        pageOwners = arena.allocate(Int32.self, count: entries)
        slotPositions = arena.allocate(Int32.self, count: entries)
        slotRotary = arena.allocate(Int32.self, count: entries)
        keyLocations = arena.allocate(Int32.self, count: entries)
        valueLocations = arena.allocate(Int32.self, count: entries)
        mergeCounts = arena.allocate(Float.self, count: entries)
        receivedScores = arena.allocate(Float.self, count: entries)
        positions = arena.allocate(Int32.self, count: entries)
        policyScores = arena.allocate(Float.self, count: entries)
        history = arena.allocate(UInt64.self, count: entries)
        keyNorms = arena.allocate(Float.self, count: entries)
        stepScores = arena.allocate(count: entries, repeating: 0)
        slots = arena.allocate(Int32.self, count: entries)
        released = arena.allocate(Int32.self, count: layout.kvHeadCount * capacity)
        entryOfSlot = arena.allocate(Int32.self, count: capacity)
        heads = UnsafeMutableBufferPointer(start: arena.allocate(HeadEntries.self, count: layout.kvHeadCount), count: layout.kvHeadCount)
        keptChannels = arena.allocate(Int32.self, count: headCount * hd)
        summaries = PageSummaries(layout: layout)
        fullPool = Self.makePool(layout: layout, keyWidth: hd, pools: pools)
        pool = fullPool
        keyWidth = hd
        keyScratch = arena.allocate(Float.self, count: hd)
        valueScratch = arena.allocate(Float.self, count: hd)
        mergeKey = arena.allocate(Float.self, count: hd)
        mergeValue = arena.allocate(Float.self, count: hd)
        storedKey = arena.allocate(Float.self, count: hd)
        restoreKeys = arena.allocate(Float.self, count: capacity * hd)
        restoreValues = arena.allocate(Float.self, count: capacity * hd)
        restoreValueLocations = arena.allocate(Int32.self, count: capacity)
        restoreMerged = arena.allocate(Float.self, count: capacity)
        restoreReceived = arena.allocate(Float.self, count: capacity)
        restoreRotary = arena.allocate(Int32.self, count: capacity)
        pageMarks = arena.allocate(count: pagesPerHead, repeating: false)
        touchedPages = arena.allocate(Int32.self, count: pagesPerHead)
        self.quant = quant
        prepareAngles(for: quant)
        fullKeyStore = Self.makeStore(quant.key, .keys, width: hd, quant: quant, layout: layout, pools: pools)
        valueStore = Self.makeStore(quant.value, .values, width: hd, quant: quant, layout: layout, pools: pools)
        keyStore = fullKeyStore
    }

    /// A pool of fp32 pages holding keys of `keyWidth` channels beside full values: from `pools`
    /// when shared, else a new one.
    static func makePool(layout: KVLayout, keyWidth: Int, pools: PagePools?) -> PagePool<Float> {
        let elements = pageSize * (keyWidth + layout.headDim), slab = max(16, layout.layerCount * layout.kvHeadCount)
        return pools?.floats(elementsPerPage: elements, pagesPerSlab: slab) ?? PagePool(elementsPerPage: elements, pagesPerSlab: slab, zero: 0)
    }

    /// Checks that a method fits the heads (callers check first: `KVQuantMethod.check(headDim:)`)
    /// and builds the RoPE angles once a method stores keys before RoPE (they stay for later switches).
    func prepareAngles(for method: KVQuantMethod) {
        do { try method.check(headDim: layout.headDim) } catch { preconditionFailure("\(method): \(error)") }
        if method.preRoPE { prepareAngles() }
    }

    /// Builds each layer's RoPE angles of every position below the capacity once.
    func prepareAngles() {
        guard ropeAngles == nil else { return }
        var tables: [RoPE: RoPEAngles] = [:]
        ropeAngles = layout.ropes.map { rope in
            if let table = tables[rope] { return table }
            let table = RoPEAngles(rope, headDim: layout.headDim, style: layout.ropeStyle, positions: capacity)
            tables[rope] = table
            return table
        }
    }

    /// The RoPE angles of head `index`'s layer (a method storing keys before RoPE is set).
    @inline(__always)
    func angles(index: Int) -> RoPEAngles { ropeAngles![index / layout.kvHeadCount] }

    /// Whether the method scores in the Hadamard frame (queries transformed): `rotate` without `prerope`.
    var scoresRotated: Bool { quant.rotate && !quant.preRoPE }

    /// Moves a key in the model's frame (after RoPE at `rotary`) into `method`'s storage frame, in place.
    func toStorageFrame(_ key: UnsafeMutablePointer<Float>, index: Int, rotary: Int, method: KVQuantMethod) {
        if method.preRoPE { angles(index: index).rotate(key, position: rotary, inverse: true) }
        if method.rotate { Hadamard.transform(key, count: layout.headDim) }
    }

    /// Drops every entry: pages go back to their pool, records to theirs (a new sequence).
    func reset() {
        let pageSize = Self.pageSize
        for index in 0..<headCount {
            let pages = (pageCounts[index] + pageSize - 1) / pageSize
            for p in 0..<pages { pool.release(pageTables[index * pagesPerHead + p]) }
            counts[index] = 0
            pageCounts[index] = 0
        }
        keyStore?.reset()
        valueStore?.reset()
    }

    /// The arrays `HeadEntries` shows a policy for the first `count` entries of head `index`.
    func headEntries(index: Int, count: Int) -> HeadEntries {
        let base = index * capacity
        return HeadEntries(count: count, groupSize: layout.groupSize, positions: positions + base, scores: policyScores + base,
                           history: history + base, keyNorms: keyNorms + base, stepScores: stepScores + base,
                           slots: slots + base, released: released + (index % layout.kvHeadCount) * capacity)
    }

    /// Appends one entry to head `index` in a new page slot: `key` as the cache receives it (after
    /// RoPE at `rotary` unless the method keeps keys before it), stored in the method's frame with
    /// the kept channels only while pruned; its norm and page summary are of the key as scored.
    /// `rotary` defaults to the position (nothing renumbered yet).
    func append(index: Int, position: Int, rotary: Int? = nil, key received: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let rotary = rotary ?? position
        let hd = layout.headDim, pageSize = Self.pageSize
        let count = counts[index]
        precondition(count < capacity, "KV cache capacity exceeded; the engine checks the context length first")
        let pageSlot = pageCounts[index]
        if pageSlot % pageSize == 0 { pageTables[index * pagesPerHead + pageSlot / pageSize] = pool.acquire() }
        let page = pool.pointer(pageTables[index * pagesPerHead + pageSlot / pageSize])
        let lane = pageSlot % pageSize
        // The key as stored (Hadamard-transformed for `rotate`) and as scored (after RoPE).
        var key = received, scored = key
        if quant.rotate {
            storedKey.update(from: key, count: hd)
            Hadamard.transform(storedKey, count: hd)
            key = UnsafePointer(storedKey)
        }
        if quant.preRoPE {
            keyScratch.update(from: scored, count: hd)
            angles(index: index).rotate(keyScratch, position: rotary)
            scored = UnsafePointer(keyScratch)
        } else {
            scored = key
        }
        if keysPruned {
            // Only the kept channels are stored; the key is scored with zeros in the others
            // (`think` excludes `rotate` and `prerope`, so `key` is as scored).
            let kept = keptChannels + index * hd
            keyScratch.update(repeating: 0, count: hd)
            for j in 0..<keyWidth {
                let c = Int(kept[j])
                page[j * pageSize + lane] = key[c]
                keyScratch[c] = key[c]
            }
            scored = UnsafePointer(keyScratch)
        } else {
            for c in 0..<hd { page[c * pageSize + lane] = key[c] }
        }
        var norm: Float = 0
        for c in 0..<hd { norm += scored[c] * scored[c] }
        summaries.include(scored, index: index, slot: count)
        (page + pageSize * keyWidth + lane * hd).update(from: value, count: hd)
        pageCounts[index] = pageSlot + 1
        let e = index * capacity + count
        pageOwners[index * capacity + pageSlot] = Int32(count)
        keyLocations[e] = Int32(pageSlot)
        valueLocations[e] = Int32(pageSlot)
        slotPositions[e] = Int32(position)
        slotRotary[e] = Int32(rotary)
        mergeCounts[e] = 1
        receivedScores[e] = 0
        positions[e] = Int32(position)
        policyScores[e] = 0
        history[e] = 0
        keyNorms[e] = norm.squareRoot()
        stepScores[e] = 0
        slots[e] = Int32(count)
        counts[index] = count + 1
    }

    /// Frees page slot `pageSlot`, refilled by the last page slot (whose slot is re-pointed).
    func releasePageSlot(index: Int, _ pageSlot: Int, ledger: inout IOLedger) {
        let hd = layout.headDim, pageSize = Self.pageSize
        let table = pageTables + index * pagesPerHead
        let last = pageCounts[index] - 1
        if pageSlot != last {
            makePrivate(index: index, page: pageSlot / pageSize, ledger: &ledger)
            let from = pool.pointer(table[last / pageSize]), to = pool.pointer(table[pageSlot / pageSize])
            let a = last % pageSize, b = pageSlot % pageSize
            for c in 0..<keyWidth { to[c * pageSize + b] = from[c * pageSize + a] }
            (to + pageSize * keyWidth + b * hd).update(from: from + pageSize * keyWidth + a * hd, count: hd)
            let owner = pageOwners[index * capacity + last]
            pageOwners[index * capacity + pageSlot] = owner
            let slot = index * capacity + Int(owner)
            // Only live halves count as traffic; a dead half moves along unread.
            if keyLocations[slot] == Int32(last) {
                keyLocations[slot] = Int32(pageSlot)
                ledger.read(.keys, keyWidth * 4)
                ledger.write(.keys, keyWidth * 4)
            }
            if valueLocations[slot] == Int32(last) {
                valueLocations[slot] = Int32(pageSlot)
                ledger.read(.values, hd * 4)
                ledger.write(.values, hd * 4)
            }
        }
        pageCounts[index] = last
        if last % pageSize == 0 { pool.release(table[last / pageSize]) }
    }

    /// Stores one head's entries again from the restore buffers, in position order: entry i in
    /// slot i and page slot i of pages from `newPool`, its key with `width` channels (the head's
    /// kept channels when `pruned`). The head's old pages go back to `pool` first.
    func rebuildPages(index: Int, pool newPool: PagePool<Float>, width: Int, pruned: Bool, ledger: inout IOLedger) {
        let hd = layout.headDim, pageSize = Self.pageSize, base = index * capacity, count = counts[index]
        let table = pageTables + index * pagesPerHead
        for p in 0..<((pageCounts[index] + pageSize - 1) / pageSize) { pool.release(table[p]) }
        let kept = keptChannels + index * hd
        // Each entry's rotary position moves with it to slot i (gathered first: slots are reused).
        for i in 0..<count { restoreRotary[i] = slotRotary[base + Int(slots[base + i])] }
        var values = 0
        for i in 0..<count {
            if i % pageSize == 0 { table[i / pageSize] = newPool.acquire() }
            let page = newPool.pointer(table[i / pageSize]), lane = i % pageSize
            let key = restoreKeys + i * hd
            for j in 0..<width { page[j * pageSize + lane] = key[pruned ? Int(kept[j]) : j] }
            let value = restoreValueLocations[i]
            if value >= 0 {
                (page + pageSize * width + lane * hd).update(from: restoreValues + i * hd, count: hd)
                values += 1
            }
            slots[base + i] = Int32(i)
            slotPositions[base + i] = positions[base + i]
            slotRotary[base + i] = restoreRotary[i]
            pageOwners[base + i] = Int32(i)
            keyLocations[base + i] = Int32(i)
            valueLocations[base + i] = value >= 0 ? Int32(i) : value
            mergeCounts[base + i] = restoreMerged[i]
            receivedScores[base + i] = restoreReceived[i]
        }
        pageCounts[index] = count
        ledger.write(.keys, count * width * 4)
        ledger.write(.values, values * hd * 4)
    }

    /// Recomputes the summaries of every page of one head.
    func summarizeAll(index: Int) {
        for page in 0..<((counts[index] + Self.pageSize - 1) / Self.pageSize) { summarize(index: index, page: page) }
    }

    /// Recomputes one page's summary over its live slots.
    func summarize(index: Int, page: Int) { summaries.summarize(index: index, page: page, count: counts[index], keys: self) }

    /// The fp32 key (its `keyWidth` stored channels, gathered into `keyScratch`) or value (in its
    /// page) of a slot held in a page.
    @inline(__always)
    func pageVector(index: Int, slot: Int, key: Bool) -> UnsafePointer<Float> {
        let pageSize = Self.pageSize
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        let page = pool.pointer(pageTables[index * pagesPerHead + location / pageSize]), lane = location % pageSize
        guard key else { return UnsafePointer(page + pageSize * keyWidth + lane * layout.headDim) }
        for c in 0..<keyWidth { keyScratch[c] = page[c * pageSize + lane] }
        return UnsafePointer(keyScratch)
    }

    /// A slot's key as attention scores it: gathered from its page or decoded into `keyScratch`,
    /// spread over every channel (zero in the pruned ones) while keys are pruned, then, when
    /// stored before RoPE, brought back from the Hadamard frame and rotated to its rotary position.
    @inline(__always)
    func key(index: Int, slot: Int) -> UnsafePointer<Float> {
        let location = Int(keyLocations[index * capacity + slot])
        if location < 0 {
            keyStore!.decode(index: index, code: -1 - location, into: keyScratch)
        } else {
            _ = pageVector(index: index, slot: slot, key: true)
        }
        if keysPruned {
            // Kept channels ascend, so channel j's value moves up to kept[j] ≥ j: from the top down
            // nothing is overwritten before it is read.
            let kept = keptChannels + index * layout.headDim
            var j = keyWidth - 1
            for c in stride(from: layout.headDim - 1, through: 0, by: -1) {
                if j >= 0, Int(kept[j]) == c {
                    keyScratch[c] = keyScratch[j]
                    j -= 1
                } else {
                    keyScratch[c] = 0
                }
            }
        }
        if quant.preRoPE {
            if quant.rotate { Hadamard.transform(keyScratch, count: layout.headDim) }
            angles(index: index).rotate(keyScratch, position: Int(slotRotary[index * capacity + slot]))
        }
        return UnsafePointer(keyScratch)
    }

    /// A slot's value as attention reads it: in its page, or decoded into `valueScratch`.
    @inline(__always)
    func value(index: Int, slot: Int) -> UnsafePointer<Float> {
        let location = Int(valueLocations[index * capacity + slot])
        guard location < 0 else { return pageVector(index: index, slot: slot, key: false) }
        valueStore!.decode(index: index, code: -1 - location, into: valueScratch)
        return UnsafePointer(valueScratch)
    }

    /// Stores a new key (as scored) or value for a slot: into its page, or by re-encoding its record.
    func write(_ vector: UnsafePointer<Float>, key: Bool, index: Int, slot: Int, ledger: inout IOLedger) {
        let hd = layout.headDim, pageSize = Self.pageSize
        var vector = vector
        if key && keysPruned {
            let kept = keptChannels + index * hd
            for j in 0..<keyWidth { storedKey[j] = vector[Int(kept[j])] }
            vector = UnsafePointer(storedKey)
        }
        if key && quant.preRoPE {
            storedKey.update(from: vector, count: hd)
            angles(index: index).rotate(storedKey, position: Int(slotRotary[index * capacity + slot]), inverse: true)
            if quant.rotate { Hadamard.transform(storedKey, count: hd) }
            vector = UnsafePointer(storedKey)
        }
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        guard location >= 0 else {
            (key ? keyStore : valueStore)!.rewrite(index: index, code: -1 - location, with: vector, ledger: &ledger)
            return
        }
        makePrivate(index: index, page: location / pageSize, ledger: &ledger)
        let page = pool.pointer(pageTables[index * pagesPerHead + location / pageSize]), lane = location % pageSize
        if key {
            for c in 0..<keyWidth { page[c * pageSize + lane] = vector[c] }
        } else {
            (page + pageSize * keyWidth + lane * hd).update(from: vector, count: hd)
        }
        ledger.write(key ? .keys : .values, (key ? keyWidth : hd) * 4)
    }
}
