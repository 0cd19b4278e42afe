/// A full-precision KV cache in fixed-size pages drawn from a shared pool with a free list, so
/// per-head lengths can differ and evicting returns whole pages. An eviction method decides
/// which entries stay; it can change between any two steps.
///
/// Storage is physical: each (layer, KV head) fills slots 0..<count with no holes (an evicted
/// slot is refilled by the last one, so the tail page frees as soon as it empties). A page
/// stores its 16 keys channel-major (one SIMD16 step scores 16 keys without horizontal sums)
/// and its 16 values token-major (P·V adds whole value vectors). The policy sees the entries in
/// position order through per-head arrays that map each entry to its slot.
public final class PagedKVCache: KVCache {
    public let layout: KVLayout
    /// Token slots per page (one SIMD16 lane per slot).
    public static let pageSize = 16
    private var pageSize: Int { Self.pageSize }
    private let pool: PagePool
    private let headCount: Int
    private let pagesPerHead: Int
    private let capacity: Int
    /// Per (layer, head): entries kept, page ids in slot order, each slot's position.
    private let counts: UnsafeMutablePointer<Int>
    private let pageTables: UnsafeMutablePointer<Int32>
    private let slotPositions: UnsafeMutablePointer<Int32>
    /// Per (layer, head), in position order: what `HeadEntries` shows a policy.
    private let positions: UnsafeMutablePointer<Int32>
    private let policyScores: UnsafeMutablePointer<Float>
    private let history: UnsafeMutablePointer<UInt64>
    private let keyNorms: UnsafeMutablePointer<Float>
    private let stepScores: UnsafeMutablePointer<Float>
    private let slots: UnsafeMutablePointer<Int32>
    /// Entries merged into each kept entry, itself included (the `merge` modifier).
    private let mergeCounts: UnsafeMutablePointer<Float>
    private let released: UnsafeMutablePointer<Int32>
    private let heads: UnsafeMutableBufferPointer<HeadEntries>
    /// Attention probabilities of one KV head's query group: groupSize rows of `scoreStride`
    /// (capacity rounded up to whole pages, so a page's 16 lanes always fit).
    private let probabilities: UnsafeMutablePointer<Float>
    private let scoreStride: Int
    private let scale: Float

    /// Per (layer, head, page): channel-wise key min and max (Quest's page summaries).
    private let pageMin: UnsafeMutablePointer<Float>
    private let pageMax: UnsafeMutablePointer<Float>
    /// Scratch of sparse modes: chosen slots, marks, sorted scores.
    private let selectedSlots: UnsafeMutablePointer<Int32>
    private let selectedMarks: UnsafeMutablePointer<Bool>
    private let sortScratch: UnsafeMutablePointer<Float>

    public private(set) var eviction: EvictionMethod
    public private(set) var sparse: SparseMethod
    private var policy: any EvictionPolicy
    /// End of the prompt while a batched prefill runs.
    private var promptEnd: Int?

    /// Keep each step's `s_t` per entry (the ghost run does, so others can compare with it).
    public var recordsAttention = false
    /// The ghost cache whose attention `massKept` is measured against.
    public weak var attentionReference: PagedKVCache?
    /// Share of the reference's attention at the last step that fell on entries this cache
    /// attended (mean over layers and query heads); nil without a reference.
    public private(set) var massKept: Double?
    private var massSum = 0.0

    public init(layout: KVLayout, eviction: EvictionMethod = .full, sparse: SparseMethod = .dense) {
        self.layout = layout
        let pageSize = Self.pageSize
        headCount = layout.layerCount * layout.kvHeadCount
        capacity = layout.capacity
        pagesPerHead = (layout.capacity + pageSize - 1) / pageSize
        pool = PagePool(floatsPerPage: 2 * pageSize * layout.headDim, pagesPerSlab: max(16, headCount))
        counts = .allocate(capacity: headCount)
        counts.initialize(repeating: 0, count: headCount)
        pageTables = .allocate(capacity: headCount * pagesPerHead)
        let entries = headCount * capacity
        slotPositions = .allocate(capacity: entries)
        positions = .allocate(capacity: entries)
        policyScores = .allocate(capacity: entries)
        history = .allocate(capacity: entries)
        keyNorms = .allocate(capacity: entries)
        stepScores = .allocate(capacity: entries)
        stepScores.initialize(repeating: 0, count: entries)
        slots = .allocate(capacity: entries)
        mergeCounts = .allocate(capacity: entries)
        released = .allocate(capacity: layout.kvHeadCount * capacity)
        heads = .allocate(capacity: layout.kvHeadCount)
        scoreStride = pagesPerHead * pageSize
        probabilities = .allocate(capacity: layout.groupSize * scoreStride)
        scale = 1 / Float(layout.headDim).squareRoot()
        pageMin = .allocate(capacity: headCount * pagesPerHead * layout.headDim)
        pageMax = .allocate(capacity: headCount * pagesPerHead * layout.headDim)
        selectedSlots = .allocate(capacity: scoreStride)
        selectedMarks = .allocate(capacity: scoreStride)
        sortScratch = .allocate(capacity: scoreStride)
        self.eviction = eviction
        self.sparse = sparse
        policy = eviction.makePolicy(layout: layout)
    }

    deinit {
        counts.deallocate()
        pageTables.deallocate()
        for buffer in [slotPositions, positions, slots, released] { buffer.deallocate() }
        for buffer in [policyScores, keyNorms, stepScores, mergeCounts, probabilities, pageMin, pageMax, sortScratch] { buffer.deallocate() }
        selectedSlots.deallocate()
        selectedMarks.deallocate()
        history.deallocate()
        heads.deallocate()
    }

    public func entryCount(layer: Int, head: Int) -> Int { counts[layer * layout.kvHeadCount + head] }

    /// Positions kept by one (layer, KV head), oldest first.
    public func keptPositions(layer: Int, head: Int) -> [Int] {
        let index = layer * layout.kvHeadCount + head
        return (0..<counts[index]).map { Int(positions[index * capacity + $0]) }
    }

    /// Token budget of one (layer, KV head) under the current method; nil when unbounded.
    public func budget(layer: Int, head: Int) -> Int? { policy.budget(layer: layer, head: head) }

    /// Pages currently taken from the pool (what the payload physically occupies).
    public var pagesInUse: Int { pool.pagesInUse }

    public static func pageBytes(headDim: Int) -> Int { 2 * pageSize * headDim * 4 }

    public var residency: KVResidency {
        var r = KVResidency()
        let entryBytes = 2 * layout.headDim * 4
        let stateBytes = 4 + policy.stateBytesPerEntry + (eviction.merge ? 4 : 0)
        for index in 0..<headCount {
            let kept = counts[index]
            let pages = (kept + pageSize - 1) / pageSize
            r.fullPrecisionPayload += kept * entryBytes
            r.pageSlack += (pages * pageSize - kept) * entryBytes
            r.policyState += kept * stateBytes
            if case .quest = sparse.kind { r.policyState += pages * 2 * layout.headDim * 4 }
        }
        return r
    }

    public var batchedPrefill: Bool { policy.batchedPrefill }

    public func reset() {
        for index in 0..<headCount {
            let pages = (counts[index] + pageSize - 1) / pageSize
            for p in 0..<pages { pool.release(pageTables[index * pagesPerHead + p]) }
            counts[index] = 0
        }
        policy = eviction.makePolicy(layout: layout)
        promptEnd = nil
        massKept = nil
    }

    /// Switches the eviction method between steps. The new method starts with fresh state and
    /// evicts down to its budget at once; entries already evicted do not come back.
    public func setEviction(_ method: EvictionMethod, ledger: inout IOLedger) {
        eviction = method
        policy = method.makePolicy(layout: layout)
        let entries = headCount * capacity
        policyScores.update(repeating: 0, count: entries)
        history.update(repeating: 0, count: entries)
        stepScores.update(repeating: 0, count: entries)
        for layer in 0..<layout.layerCount {
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in policy.afterAttention(layer: layer, heads: heads) }
        }
    }

    /// Switches the sparse-attention mode from the next step on (memory is unchanged).
    public func setSparse(_ method: SparseMethod) { sparse = method }

    public func beginPrefill(end: Int) { promptEnd = end }

    public func endPrefill(ledger: inout IOLedger) {
        guard let end = promptEnd else { return }
        promptEnd = nil
        for layer in 0..<layout.layerCount {
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in
                policy.finishPrefill(layer: layer, heads: heads, promptEnd: end)
            }
        }
    }

    public func append(layer: Int, position: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            let count = counts[index]
            precondition(count < capacity, "KV cache capacity exceeded; the engine checks the context length first")
            if count % pageSize == 0 { pageTables[index * pagesPerHead + count / pageSize] = pool.acquire() }
            let page = pool.pointer(pageTables[index * pagesPerHead + count / pageSize])
            let slot = count % pageSize
            let key = keys + head * hd
            let summary = (index * pagesPerHead + count / pageSize) * hd
            var norm: Float = 0
            for c in 0..<hd {
                page[c * pageSize + slot] = key[c]
                norm += key[c] * key[c]
                pageMin[summary + c] = slot == 0 ? key[c] : min(pageMin[summary + c], key[c])
                pageMax[summary + c] = slot == 0 ? key[c] : max(pageMax[summary + c], key[c])
            }
            (page + (pageSize + slot) * hd).update(from: values + head * hd, count: hd)
            let e = index * capacity + count
            slotPositions[e] = Int32(position)
            positions[e] = Int32(position)
            policyScores[e] = 0
            history[e] = 0
            keyNorms[e] = norm.squareRoot()
            stepScores[e] = 0
            slots[e] = Int32(count)
            mergeCounts[e] = 1
            counts[index] = count + 1
        }
        ledger.write(.keys, layout.kvHeadCount * hd * 4)
        ledger.write(.values, layout.kvHeadCount * hd * 4)
        ledger.write(.policyState, layout.kvHeadCount * (4 + policy.stateBytesPerEntry))
    }

    public func attend(layer: Int, position: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim, group = layout.groupSize
        let observing = promptEnd.map { position >= $0 - policy.prefillObservation } ?? false
        let wantsScores = recordsAttention || attentionReference != nil || observing || (promptEnd == nil && policy.needsScores)
        // A prompt runs dense; sparse modes choose what each decode step reads.
        let mode = promptEnd == nil ? sparse.kind : .dense
        if layer == 0 { massSum = 0 }
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            // Slots are in position order until something is evicted, and nothing is during a
            // batched prefill: entries after `position` (later prompt tokens) are not visible.
            var visible = counts[index]
            while visible > 0, Int(slotPositions[index * capacity + visible - 1]) > position { visible -= 1 }
            let q = queries + head * group * hd
            var read = visible
            switch mode {
            case .dense:
                scorePages(index: index, queries: q, pages: 0..<((visible + pageSize - 1) / pageSize))
            case .topK(let k):
                scorePages(index: index, queries: q, pages: 0..<((visible + pageSize - 1) / pageSize))
                read = keepTopK(k, visible: visible)
            case .quest(let page, let budget):
                read = scoreQuestPages(index: index, queries: q, visible: visible, pagesPerQuestPage: page / pageSize,
                                       questPages: budget / page, ledger: &ledger)
            case .threshold(let theta):
                read = scoreAboveThreshold(index: index, queries: q, visible: visible, theta: Float(theta), position: position)
            }
            for g in 0..<group { Vector.softmax(probabilities + g * scoreStride, count: visible) }
            if mode == .dense {
                weightValues(index: index, visible: visible, output: output + head * group * hd)
            } else {
                weightSelectedValues(index: index, count: read, output: output + head * group * hd)
            }
            ledger.read(.keys, (mode == .dense || isTopK(mode) ? visible : read) * hd * 4)
            ledger.read(.values, read * hd * 4)
            // Naive attention materializes scores: written, re-read by softmax, re-read by P·V.
            ledger.write(.scores, 2 * group * visible * 4)
            ledger.read(.scores, 2 * group * visible * 4)
            if wantsScores {
                gatherStepScores(index: index, visible: visible)
                ledger.read(.scores, group * visible * 4)
            }
            if let reference = attentionReference { massSum += reference.attentionMass(layer: layer, head: head, on: self, index: index, visible: visible) }
            if observing {
                let entries = headEntries(index: index, count: visible)
                policy.observePrefill(layer: layer, head: head, entries: entries, queryPosition: position, promptEnd: promptEnd!)
                ledger.read(.policyState, visible * policy.stateBytesPerEntry)
                ledger.write(.policyState, visible * policy.stateBytesPerEntry)
            }
        }
        ledger.read(.activations, layout.kvHeadCount * group * hd * 4)
        ledger.write(.activations, layout.kvHeadCount * group * hd * 4)
        if attentionReference != nil, layer == layout.layerCount - 1 {
            massKept = massSum / Double(layout.layerCount * layout.kvHeadCount * group)
        }
        if promptEnd == nil {
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in policy.afterAttention(layer: layer, heads: heads) }
        }
    }

    private func isTopK(_ mode: SparseMethod.Kind) -> Bool {
        if case .topK = mode { return true }
        return false
    }

    /// Scaled q·k of the query group for every slot of `pages` (16 keys per SIMD step, channel by
    /// channel, each key read once for the whole group since GQA shares it).
    private func scorePages(index: Int, queries q: UnsafePointer<Float>, pages: some Sequence<Int>) {
        let hd = layout.headDim
        let table = pageTables + index * pagesPerHead
        for page in pages {
            let keys = UnsafeRawPointer(pool.pointer(table[page]))
            for g in 0..<layout.groupSize {
                let query = q + g * hd
                var acc = SIMD16<Float>()
                for c in 0..<hd {
                    acc += query[c] * keys.loadUnaligned(fromByteOffset: c * pageSize * 4, as: SIMD16<Float>.self)
                }
                UnsafeMutableRawPointer(probabilities + g * scoreStride + page * pageSize).storeBytes(of: acc * scale, as: SIMD16<Float>.self)
            }
        }
    }

    /// Sets every visible score of the group to a value softmax turns into 0.
    private func maskScores(visible: Int) {
        for g in 0..<layout.groupSize { (probabilities + g * scoreStride).update(repeating: Self.masked, count: visible) }
    }

    private static let masked = -Float.greatestFiniteMagnitude

    /// topk: each query head keeps its `k` best scores; returns how many slots any head kept
    /// (listed in `selectedSlots`, the values P·V then reads).
    private func keepTopK(_ k: Int, visible: Int) -> Int {
        guard k < visible else {
            for i in 0..<visible { selectedSlots[i] = Int32(i) }
            return visible
        }
        for i in 0..<visible { selectedMarks[i] = false }
        for g in 0..<layout.groupSize {
            let row = probabilities + g * scoreStride
            sortScratch.update(from: row, count: visible)
            let kth = Self.kthLargest(sortScratch, count: visible, k: k)
            var above = 0
            for i in 0..<visible where row[i] > kth { above += 1 }
            // Ties at the k-th score keep the older slots, so exactly k survive.
            var ties = k - above
            for i in 0..<visible {
                if row[i] > kth || (row[i] == kth && ties > 0) {
                    if row[i] == kth { ties -= 1 }
                    selectedMarks[i] = true
                } else {
                    row[i] = Self.masked
                }
            }
        }
        var n = 0
        for i in 0..<visible where selectedMarks[i] {
            selectedSlots[n] = Int32(i)
            n += 1
        }
        return n
    }

    /// The k-th largest of `count` values (1-based), by in-place quickselect: the standard
    /// library's sort allocates, and decode steps must not.
    static func kthLargest(_ values: UnsafeMutablePointer<Float>, count: Int, k: Int) -> Float {
        var low = 0, high = count - 1
        let target = k - 1
        while low < high {
            let pivot = values[(low + high) / 2]
            var i = low, j = high
            while i <= j {
                while values[i] > pivot { i += 1 }
                while values[j] < pivot { j -= 1 }
                if i <= j {
                    (values[i], values[j]) = (values[j], values[i])
                    i += 1
                    j -= 1
                }
            }
            if target <= j { high = j } else if target >= i { low = i } else { break }
        }
        return values[target]
    }

    /// Insertion sort, largest first (a handful of slots per step; no allocation).
    static func sortDescending(_ slots: UnsafeMutableBufferPointer<Int32>) {
        guard slots.count > 1 else { return }
        for i in 1..<slots.count {
            let value = slots[i]
            var j = i
            while j > 0, slots[j - 1] < value {
                slots[j] = slots[j - 1]
                j -= 1
            }
            slots[j] = value
        }
    }

    /// Quest: bound each page's best score by its keys' channel-wise min and max, score only the
    /// top pages (and the newest one); returns the slots read, listed in `selectedSlots`.
    private func scoreQuestPages(index: Int, queries q: UnsafePointer<Float>, visible: Int, pagesPerQuestPage: Int,
                                 questPages: Int, ledger: inout IOLedger) -> Int {
        let hd = layout.headDim
        let physicalPages = (visible + pageSize - 1) / pageSize
        let groups = (physicalPages + pagesPerQuestPage - 1) / pagesPerQuestPage
        maskScores(visible: visible)
        guard groups > 0 else { return 0 }
        for quest in 0..<groups {
            var bound = -Float.infinity
            for page in (quest * pagesPerQuestPage)..<min(physicalPages, (quest + 1) * pagesPerQuestPage) {
                let lo = pageMin + (index * pagesPerHead + page) * hd, hi = pageMax + (index * pagesPerHead + page) * hd
                var sum: Float = 0
                for g in 0..<layout.groupSize {
                    let query = q + g * hd
                    for c in 0..<hd { sum += max(query[c] * lo[c], query[c] * hi[c]) }
                }
                bound = max(bound, sum)
            }
            sortScratch[quest] = bound
        }
        ledger.read(.policyState, physicalPages * 2 * hd * 4)
        // The newest page always; then the best bounds (ties: the older page).
        let newest = groups - 1
        for quest in 0..<groups { selectedMarks[quest] = quest == newest }
        var chosen = 1
        while chosen < min(questPages + 1, groups) {
            var best = -1
            for quest in 0..<groups where !selectedMarks[quest] && (best < 0 || sortScratch[quest] > sortScratch[best]) { best = quest }
            selectedMarks[best] = true
            chosen += 1
        }
        var n = 0
        for quest in 0..<groups where selectedMarks[quest] {
            let pages = (quest * pagesPerQuestPage)..<min(physicalPages, (quest + 1) * pagesPerQuestPage)
            scorePages(index: index, queries: q, pages: pages)
            for slot in (pages.lowerBound * pageSize)..<min(visible, pages.upperBound * pageSize) {
                selectedSlots[n] = Int32(slot)
                n += 1
            }
        }
        // Lanes past the last visible slot of the newest page are not entries.
        for g in 0..<layout.groupSize {
            for slot in visible..<(physicalPages * pageSize) { probabilities[g * scoreStride + slot] = Self.masked }
        }
        return n
    }

    /// threshold: score only entries whose `s_t` last step reached `theta` (and the new entry).
    private func scoreAboveThreshold(index: Int, queries q: UnsafePointer<Float>, visible: Int, theta: Float, position: Int) -> Int {
        let hd = layout.headDim, base = index * capacity
        let table = pageTables + index * pagesPerHead
        maskScores(visible: visible)
        var n = 0
        for i in 0..<visible where stepScores[base + i] >= theta || Int(positions[base + i]) == position {
            let slot = Int(slots[base + i])
            let page = pool.pointer(table[slot / pageSize]), lane = slot % pageSize
            for g in 0..<layout.groupSize {
                let query = q + g * hd
                var dot: Float = 0
                for c in 0..<hd { dot += query[c] * page[c * pageSize + lane] }
                probabilities[g * scoreStride + slot] = dot * scale
            }
            selectedSlots[n] = Int32(slot)
            n += 1
        }
        return n
    }

    /// P·V over every visible slot, each 8-channel slice of the output kept in a register.
    private func weightValues(index: Int, visible: Int, output: UnsafeMutablePointer<Float>) {
        let hd = layout.headDim
        let table = pageTables + index * pagesPerHead
        for g in 0..<layout.groupSize {
            let p = probabilities + g * scoreStride
            let out = output + g * hd
            for slice in stride(from: 0, to: hd, by: 8) {
                let width = min(8, hd - slice)
                var acc = SIMD8<Float>()
                var first = 0, page = 0
                while first < visible {
                    let values = UnsafeRawPointer(pool.pointer(table[page]) + pageSize * hd + slice)
                    for slot in 0..<min(pageSize, visible - first) {
                        let weight = p[first + slot]
                        if width == 8 {
                            acc += weight * values.loadUnaligned(fromByteOffset: slot * hd * 4, as: SIMD8<Float>.self)
                        } else {
                            for c in 0..<width { acc[c] += weight * values.load(fromByteOffset: (slot * hd + c) * 4, as: Float.self) }
                        }
                    }
                    first += pageSize
                    page += 1
                }
                for c in 0..<width { out[slice + c] = acc[c] }
            }
        }
    }

    /// P·V over the slots in `selectedSlots` only (what a sparse mode reads).
    private func weightSelectedValues(index: Int, count: Int, output: UnsafeMutablePointer<Float>) {
        let hd = layout.headDim
        let table = pageTables + index * pagesPerHead
        for g in 0..<layout.groupSize {
            let p = probabilities + g * scoreStride
            let out = output + g * hd
            for c in 0..<hd { out[c] = 0 }
            for n in 0..<count {
                let slot = Int(selectedSlots[n])
                let weight = p[slot]
                let value = pool.pointer(table[slot / pageSize]) + (pageSize + slot % pageSize) * hd
                for c in 0..<hd { out[c] += weight * value[c] }
            }
        }
    }

    /// `s_t(j) = Σ_h p_h(j)` over the query group, in position order.
    private func gatherStepScores(index: Int, visible: Int) {
        let out = stepScores + index * capacity
        let slotOf = slots + index * capacity
        for i in 0..<visible {
            let slot = Int(slotOf[i])
            var sum: Float = 0
            for g in 0..<layout.groupSize { sum += probabilities[g * scoreStride + slot] }
            out[i] = sum
        }
    }

    /// Share of the last step's attention in `layer` that went to position 0 (the first token,
    /// where attention sinks form), averaged over query heads; needs `recordsAttention`.
    public func attentionOnFirstToken(layer: Int) -> Double {
        var sum: Float = 0
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            if counts[index] > 0, positions[index * capacity] == 0 { sum += stepScores[index * capacity] }
        }
        return Double(sum) / Double(layout.kvHeadCount * layout.groupSize)
    }

    /// The reference's last `s_t` summed over the positions `other` attended in one head.
    private func attentionMass(layer: Int, head: Int, on other: PagedKVCache, index otherIndex: Int, visible: Int) -> Double {
        let index = layer * layout.kvHeadCount + head
        let count = counts[index]
        let mine = positions + index * capacity
        let theirs = other.positions + otherIndex * other.capacity
        // Both lists are in position order: one merge pass.
        var i = 0, sum: Float = 0
        for j in 0..<visible {
            let p = theirs[j]
            while i < count, mine[i] < p { i += 1 }
            if i < count, mine[i] == p { sum += stepScores[index * capacity + i] }
        }
        return Double(sum)
    }

    private func headEntries(index: Int, count: Int) -> HeadEntries {
        let base = index * capacity
        return HeadEntries(count: count, groupSize: layout.groupSize, positions: positions + base, scores: policyScores + base,
                           history: history + base, keyNorms: keyNorms + base, stepScores: stepScores + base,
                           slots: slots + base, released: released + (index % layout.kvHeadCount) * capacity)
    }

    /// Runs a policy hook on one layer's heads, then frees what it evicted.
    private func applyPolicy(layer: Int, ledger: inout IOLedger,
                             _ hook: (any EvictionPolicy, Int, UnsafeMutableBufferPointer<HeadEntries>) -> Void) {
        var total = 0
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            heads[head] = headEntries(index: index, count: counts[index])
            total += counts[index]
        }
        hook(policy, layer, heads)
        ledger.read(.policyState, total * policy.stateBytesPerEntry)
        ledger.write(.policyState, total * policy.stateBytesPerEntry)
        for head in 0..<layout.kvHeadCount {
            reclaim(index: layer * layout.kvHeadCount + head, entries: heads[head], ledger: &ledger)
        }
    }

    /// Refills the slots a policy released with the last slots, merging first when asked, and
    /// returns emptied tail pages to the pool.
    private func reclaim(index: Int, entries: HeadEntries, ledger: inout IOLedger) {
        guard entries.releasedCount > 0 else { return }
        let hd = layout.headDim
        let base = index * capacity
        let table = pageTables + index * pagesPerHead
        // Highest slot first: each freed slot is then refilled from a tail slot that is live.
        let freed = UnsafeMutableBufferPointer(start: entries.released, count: entries.releasedCount)
        Self.sortDescending(freed)
        if eviction.merge { for slot in freed { merge(slot: Int(slot), index: index, entries: entries, ledger: &ledger) } }
        var count = counts[index]
        for freedSlot in freed {
            let slot = Int(freedSlot), last = count - 1
            if slot != last {
                let from = pool.pointer(table[last / pageSize]), to = pool.pointer(table[slot / pageSize])
                let a = last % pageSize, b = slot % pageSize
                for c in 0..<hd { to[c * pageSize + b] = from[c * pageSize + a] }
                (to + (pageSize + b) * hd).update(from: from + (pageSize + a) * hd, count: hd)
                slotPositions[base + slot] = slotPositions[base + last]
                for i in 0..<entries.count where slots[base + i] == Int32(last) {
                    slots[base + i] = Int32(slot)
                    break
                }
                ledger.read(.keys, hd * 4)
                ledger.read(.values, hd * 4)
                ledger.write(.keys, hd * 4)
                ledger.write(.values, hd * 4)
            }
            count -= 1
            if count % pageSize == 0 {
                pool.release(table[count / pageSize])
            } else {
                summarize(index: index, page: last / pageSize, count: count)
            }
            if slot < count { summarize(index: index, page: slot / pageSize, count: count) }
        }
        counts[index] = count
    }

    /// Recomputes one page's key min/max over its live slots.
    private func summarize(index: Int, page: Int, count: Int) {
        let hd = layout.headDim
        let keys = pool.pointer(pageTables[index * pagesPerHead + page])
        let lo = pageMin + (index * pagesPerHead + page) * hd, hi = pageMax + (index * pagesPerHead + page) * hd
        let lanes = min(pageSize, count - page * pageSize)
        for c in 0..<hd {
            var a = keys[c * pageSize], b = a
            for lane in 1..<max(lanes, 1) {
                a = min(a, keys[c * pageSize + lane])
                b = max(b, keys[c * pageSize + lane])
            }
            lo[c] = a
            hi[c] = b
        }
    }

    /// CaM/D2O merge: the evicted entry in `slot` is averaged into the kept entry whose key is
    /// most cosine-similar, weighted by how many entries that one already holds.
    private func merge(slot: Int, index: Int, entries: HeadEntries, ledger: inout IOLedger) {
        guard entries.count > 0 else { return }
        let hd = layout.headDim, base = index * capacity
        let table = pageTables + index * pagesPerHead
        let evictedPage = pool.pointer(table[slot / pageSize]), e = slot % pageSize
        var evictedNorm: Float = 0
        for c in 0..<hd { evictedNorm += evictedPage[c * pageSize + e] * evictedPage[c * pageSize + e] }
        evictedNorm = evictedNorm.squareRoot()
        var best = 0, bestSimilarity = -Float.infinity
        for i in 0..<entries.count {
            let s = Int(slots[base + i])
            let page = pool.pointer(table[s / pageSize]), k = s % pageSize
            var dot: Float = 0
            for c in 0..<hd { dot += page[c * pageSize + k] * evictedPage[c * pageSize + e] }
            let similarity = dot / max(keyNorms[base + i] * evictedNorm, .leastNormalMagnitude)
            if similarity > bestSimilarity {
                best = i
                bestSimilarity = similarity
            }
        }
        let target = Int(slots[base + best])
        let page = pool.pointer(table[target / pageSize]), t = target % pageSize
        let n = mergeCounts[base + best]
        var norm: Float = 0
        for c in 0..<hd {
            let k = (n * page[c * pageSize + t] + evictedPage[c * pageSize + e]) / (n + 1)
            page[c * pageSize + t] = k
            norm += k * k
        }
        for c in 0..<hd {
            let v = page + (pageSize + t) * hd + c
            v.pointee = (n * v.pointee + evictedPage[(pageSize + e) * hd + c]) / (n + 1)
        }
        keyNorms[base + best] = norm.squareRoot()
        mergeCounts[base + best] = n + 1
        summarize(index: index, page: target / pageSize, count: counts[index])
        ledger.read(.keys, (entries.count + 1) * hd * 4)
        ledger.read(.values, 2 * hd * 4)
        ledger.write(.keys, hd * 4)
        ledger.write(.values, hd * 4)
    }
}

/// Fixed-size float pages allocated in slabs and recycled through a free list, so steady-state
/// appends and evictions do not touch the heap.
final class PagePool {
    let floatsPerPage: Int
    let pagesPerSlab: Int
    private var slabs: [UnsafeMutablePointer<Float>] = []
    private var free: [Int32] = []

    init(floatsPerPage: Int, pagesPerSlab: Int) {
        self.floatsPerPage = floatsPerPage
        self.pagesPerSlab = pagesPerSlab
    }

    deinit { for slab in slabs { slab.deallocate() } }

    /// Pages allocated so far (in use or free).
    var allocatedPages: Int { slabs.count * pagesPerSlab }
    /// Pages acquired and not released.
    private(set) var pagesInUse = 0

    func acquire() -> Int32 {
        if free.isEmpty {
            let slab = UnsafeMutablePointer<Float>.allocate(capacity: floatsPerPage * pagesPerSlab)
            slab.initialize(repeating: 0, count: floatsPerPage * pagesPerSlab)
            let first = slabs.count * pagesPerSlab
            slabs.append(slab)
            free.reserveCapacity(allocatedPages)
            for page in (first..<(first + pagesPerSlab)).reversed() { free.append(Int32(page)) }
        }
        pagesInUse += 1
        return free.removeLast()
    }

    func release(_ page: Int32) {
        pagesInUse -= 1
        free.append(page)
    }

    @inline(__always)
    func pointer(_ page: Int32) -> UnsafeMutablePointer<Float> {
        let p = Int(page)
        return slabs[p / pagesPerSlab] + (p % pagesPerSlab) * floatsPerPage
    }
}
