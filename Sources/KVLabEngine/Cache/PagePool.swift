/// Fixed-size pages of `Element` allocated in slabs and recycled through a free list, so
/// steady-state appends and evictions do not touch the heap: fp32 pages of keys and values, and
/// byte pages of quantized records.
final class PagePool<Element> {
    let elementsPerPage: Int
    let pagesPerSlab: Int
    private var slabs: [UnsafeMutablePointer<Element>] = []
    private var free: [Int32] = []
    private let zero: Element

    init(elementsPerPage: Int, pagesPerSlab: Int, zero: Element) {
        self.elementsPerPage = elementsPerPage
        self.pagesPerSlab = pagesPerSlab
        self.zero = zero
    }

    deinit { for slab in slabs { slab.deallocate() } }

    /// Pages allocated so far (in use or free).
    var allocatedPages: Int { slabs.count * pagesPerSlab }
    /// Pages acquired and not released.
    private(set) var pagesInUse = 0

    func acquire() -> Int32 {
        if free.isEmpty {
            let slab = UnsafeMutablePointer<Element>.allocate(capacity: elementsPerPage * pagesPerSlab)
            slab.initialize(repeating: zero, count: elementsPerPage * pagesPerSlab)
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
    func pointer(_ page: Int32) -> UnsafeMutablePointer<Element> {
        let p = Int(page)
        return slabs[p / pagesPerSlab] + (p % pagesPerSlab) * elementsPerPage
    }
}
