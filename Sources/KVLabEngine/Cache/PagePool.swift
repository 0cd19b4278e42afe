/// Fixed-size pages of `Element` allocated in slabs and recycled through a free list, so
/// steady-state appends and evictions do not touch the heap: fp32 pages of keys and values, and
/// byte pages of quantized records. A page is reference-counted: caches forked from a shared
/// prefix hold its pages together (`retain`), and a cache copies a shared page before its first
/// private change to it (`PageStore+Sharing.swift`).
final class PagePool<Element> {
    let elementsPerPage: Int
    let pagesPerSlab: Int
    private var slabs: [UnsafeMutablePointer<Element>] = []
    private var free: [Int32] = []
    /// Holders of each page (0 while free).
    private var holders: [Int32] = []
    private let zero: Element

    init(elementsPerPage: Int, pagesPerSlab: Int, zero: Element) {
        self.elementsPerPage = elementsPerPage
        self.pagesPerSlab = pagesPerSlab
        self.zero = zero
    }

    deinit { for slab in slabs { slab.deallocate() } }

    /// Pages allocated so far (in use or free).
    var allocatedPages: Int { slabs.count * pagesPerSlab }
    /// Pages acquired and not released by every holder (a shared page counts once).
    private(set) var pagesInUse = 0
    /// Bytes of one page.
    var pageBytes: Int { elementsPerPage * MemoryLayout<Element>.stride }

    func acquire() -> Int32 {
        if free.isEmpty {
            let slab = UnsafeMutablePointer<Element>.allocate(capacity: elementsPerPage * pagesPerSlab)
            slab.initialize(repeating: zero, count: elementsPerPage * pagesPerSlab)
            let first = slabs.count * pagesPerSlab
            slabs.append(slab)
            free.reserveCapacity(allocatedPages)
            holders.append(contentsOf: repeatElement(0, count: pagesPerSlab))
            for page in (first..<(first + pagesPerSlab)).reversed() { free.append(Int32(page)) }
        }
        pagesInUse += 1
        let page = free.removeLast()
        holders[Int(page)] = 1
        return page
    }

    /// One more holder of a page in use.
    func retain(_ page: Int32) {
        precondition(holders[Int(page)] > 0, "retaining a free page")
        holders[Int(page)] += 1
    }

    /// One holder fewer; the page is free once none is left.
    func release(_ page: Int32) {
        holders[Int(page)] -= 1
        guard holders[Int(page)] == 0 else { return }
        pagesInUse -= 1
        free.append(page)
    }

    /// Whether more than one cache holds the page.
    @inline(__always)
    func isShared(_ page: Int32) -> Bool { holders[Int(page)] > 1 }

    @inline(__always)
    func pointer(_ page: Int32) -> UnsafeMutablePointer<Element> {
        let p = Int(page)
        return slabs[p / pagesPerSlab] + (p % pagesPerSlab) * elementsPerPage
    }
}

/// Page pools by page size, shared by every cache made with them (the sequences and prefixes of
/// one `BatchedEngine`), so a forked cache's pages and its prefix's are one set of pages.
final class PagePools {
    private var floatPools: [Int: PagePool<Float>] = [:]
    private var bytePools: [Int: PagePool<UInt8>] = [:]
    /// Shared pages copied before a private change, and their bytes.
    var copiedPages = 0
    var copiedBytes = 0

    func floats(elementsPerPage: Int, pagesPerSlab: Int) -> PagePool<Float> {
        if let pool = floatPools[elementsPerPage] { return pool }
        let pool = PagePool<Float>(elementsPerPage: elementsPerPage, pagesPerSlab: pagesPerSlab, zero: 0)
        floatPools[elementsPerPage] = pool
        return pool
    }

    func bytes(elementsPerPage: Int, pagesPerSlab: Int) -> PagePool<UInt8> {
        if let pool = bytePools[elementsPerPage] { return pool }
        let pool = PagePool<UInt8>(elementsPerPage: elementsPerPage, pagesPerSlab: pagesPerSlab, zero: 0)
        bytePools[elementsPerPage] = pool
        return pool
    }

    /// Bytes of every page in use, a shared page once.
    var bytesInUse: Int {
        floatPools.values.reduce(0) { $0 + $1.pagesInUse * $1.pageBytes } + bytePools.values.reduce(0) { $0 + $1.pagesInUse * $1.pageBytes }
    }
}
