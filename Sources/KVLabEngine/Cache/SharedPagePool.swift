import KVLabMethods

/// The page pool every sequence and shared prefix of a `BatchedEngine` draws its KV pages from,
/// under a byte budget. A page several caches hold (a shared prefix's) counts once.
public final class SharedPagePool {
    /// Bytes of pages the pool may hold at once; nil: unbounded.
    public let budget: Int?
    let pools = PagePools()
    /// Bytes moved to host memory by swap-outs and back by swap-ins, since the start.
    public internal(set) var swappedOutBytes = 0
    public internal(set) var swappedInBytes = 0
    /// Bytes of sequences' pages now in host memory.
    public internal(set) var hostBytes = 0

    init(budget: Int?) { self.budget = budget }

    /// Bytes of the pages in use now (each page once, however many caches hold it).
    public var usedBytes: Int { pools.bytesInUse }

    /// Bytes left under the budget; nil when unbounded.
    public var availableBytes: Int? { budget.map { max(0, $0 - usedBytes) } }

    /// Whether `bytes` more fit under the budget.
    public func fits(_ bytes: Int) -> Bool { budget.map { usedBytes + bytes <= $0 } ?? true }

    /// Shared pages copied before a sequence's first private change to them, and their bytes.
    public var copiedPages: Int { pools.copiedPages }
    public var copiedBytes: Int { pools.copiedBytes }
}
