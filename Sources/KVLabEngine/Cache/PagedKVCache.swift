/// A full-precision KV cache in fixed-size pages drawn from a shared pool with a free list, so
/// per-head lengths can differ and dropping entries returns whole pages. Keeps every entry.
/// A page stores its 16 keys channel-major (so one SIMD16 step scores 16 keys without
/// horizontal sums) and its 16 values token-major (so P·V adds whole value vectors).
public final class PagedKVCache: KVCache {
    public let layout: KVLayout
    /// Token slots per page (one SIMD16 lane per slot).
    public static let pageSize = 16
    private var pageSize: Int { Self.pageSize }
    private let pool: PagePool
    private let headCount: Int
    private let pagesPerHead: Int
    /// Per (layer, head), flat: entries kept, page ids in order, each entry's absolute position.
    private let counts: UnsafeMutablePointer<Int>
    private let pageTables: UnsafeMutablePointer<Int32>
    private let positions: UnsafeMutablePointer<Int32>
    /// Attention probabilities of one KV head's query group: groupSize rows of `scoreStride`
    /// (capacity rounded up to whole pages, so a page's 16 lanes always fit).
    private let scores: UnsafeMutablePointer<Float>
    private let scoreStride: Int
    private let scale: Float

    public init(layout: KVLayout) {
        self.layout = layout
        let pageSize = Self.pageSize
        headCount = layout.layerCount * layout.kvHeadCount
        pagesPerHead = (layout.capacity + pageSize - 1) / pageSize
        pool = PagePool(floatsPerPage: 2 * pageSize * layout.headDim, pagesPerSlab: max(16, headCount))
        counts = .allocate(capacity: headCount)
        counts.initialize(repeating: 0, count: headCount)
        pageTables = .allocate(capacity: headCount * pagesPerHead)
        positions = .allocate(capacity: headCount * layout.capacity)
        scoreStride = pagesPerHead * pageSize
        scores = .allocate(capacity: layout.groupSize * scoreStride)
        scale = 1 / Float(layout.headDim).squareRoot()
    }

    deinit {
        counts.deallocate()
        pageTables.deallocate()
        positions.deallocate()
        scores.deallocate()
    }

    public func entryCount(layer: Int, head: Int) -> Int { counts[layer * layout.kvHeadCount + head] }

    public var residency: KVResidency {
        var r = KVResidency()
        let entryBytes = 2 * layout.headDim * 4
        for index in 0..<headCount {
            let kept = counts[index]
            let pages = (kept + pageSize - 1) / pageSize
            r.fullPrecisionPayload += kept * entryBytes
            r.pageSlack += (pages * pageSize - kept) * entryBytes
            r.policyState += kept * 4
        }
        return r
    }

    public func reset() {
        for index in 0..<headCount {
            let pages = (counts[index] + pageSize - 1) / pageSize
            for p in 0..<pages { pool.release(pageTables[index * pagesPerHead + p]) }
            counts[index] = 0
        }
    }

    public func append(layer: Int, position: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            let count = counts[index]
            precondition(count < layout.capacity, "KV cache capacity exceeded; the engine checks the context length first")
            if count % pageSize == 0 { pageTables[index * pagesPerHead + count / pageSize] = pool.acquire() }
            let page = pool.pointer(pageTables[index * pagesPerHead + count / pageSize])
            let slot = count % pageSize
            let key = keys + head * hd
            for c in 0..<hd { page[c * pageSize + slot] = key[c] }
            (page + (pageSize + slot) * hd).update(from: values + head * hd, count: hd)
            positions[index * layout.capacity + count] = Int32(position)
            counts[index] = count + 1
        }
        ledger.write(.keys, layout.kvHeadCount * hd * 4)
        ledger.write(.values, layout.kvHeadCount * hd * 4)
    }

    public func attend(layer: Int, position: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim, group = layout.groupSize
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            let kept = positions + index * layout.capacity
            let table = pageTables + index * pagesPerHead
            // Entries are in position order; those after `position` (later prompt tokens during
            // prefill) are not visible.
            var visible = counts[index]
            while visible > 0, Int(kept[visible - 1]) > position { visible -= 1 }
            let q = queries + head * group * hd
            // Scores for the whole query group, reading each key once (GQA shares K and V):
            // 16 keys per step, channel by channel.
            var first = 0, page = 0
            while first < visible {
                let keys = UnsafeRawPointer(pool.pointer(table[page]))
                for g in 0..<group {
                    let query = q + g * hd
                    var acc = SIMD16<Float>()
                    for c in 0..<hd {
                        acc += query[c] * keys.loadUnaligned(fromByteOffset: c * pageSize * 4, as: SIMD16<Float>.self)
                    }
                    UnsafeMutableRawPointer(scores + g * scoreStride + first).storeBytes(of: acc * scale, as: SIMD16<Float>.self)
                }
                first += pageSize
                page += 1
            }
            for g in 0..<group { Vector.softmax(scores + g * scoreStride, count: visible) }
            // P·V with each 8-channel slice of the output kept in a register across all entries.
            for g in 0..<group {
                let probabilities = scores + g * scoreStride
                let out = output + (head * group + g) * hd
                for slice in stride(from: 0, to: hd, by: 8) {
                    let width = min(8, hd - slice)
                    var acc = SIMD8<Float>()
                    first = 0
                    page = 0
                    while first < visible {
                        let values = UnsafeRawPointer(pool.pointer(table[page]) + pageSize * hd + slice)
                        for slot in 0..<min(pageSize, visible - first) {
                            let p = probabilities[first + slot]
                            if width == 8 {
                                acc += p * values.loadUnaligned(fromByteOffset: slot * hd * 4, as: SIMD8<Float>.self)
                            } else {
                                for c in 0..<width { acc[c] += p * values.load(fromByteOffset: (slot * hd + c) * 4, as: Float.self) }
                            }
                        }
                        first += pageSize
                        page += 1
                    }
                    for c in 0..<width { out[slice + c] = acc[c] }
                }
            }
            ledger.read(.keys, visible * hd * 4)
            ledger.read(.values, visible * hd * 4)
            // Naive attention materializes scores: written, re-read by softmax, re-read by P·V.
            ledger.write(.scores, 2 * group * visible * 4)
            ledger.read(.scores, 2 * group * visible * 4)
        }
        ledger.read(.activations, layout.kvHeadCount * group * hd * 4)
        ledger.write(.activations, layout.kvHeadCount * group * hd * 4)
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

    func acquire() -> Int32 {
        if free.isEmpty {
            let slab = UnsafeMutablePointer<Float>.allocate(capacity: floatsPerPage * pagesPerSlab)
            slab.initialize(repeating: 0, count: floatsPerPage * pagesPerSlab)
            let first = slabs.count * pagesPerSlab
            slabs.append(slab)
            free.reserveCapacity(allocatedPages)
            for page in (first..<(first + pagesPerSlab)).reversed() { free.append(Int32(page)) }
        }
        return free.removeLast()
    }

    func release(_ page: Int32) { free.append(page) }

    @inline(__always)
    func pointer(_ page: Int32) -> UnsafeMutablePointer<Float> {
        let p = Int(page)
        return slabs[p / pagesPerSlab] + (p % pagesPerSlab) * floatsPerPage
    }
}
