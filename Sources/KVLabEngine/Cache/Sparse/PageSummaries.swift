import KVLabMethods

/// Quest's page summaries: per (layer, KV head, page of 16 slots), the channel-wise min and max
/// of its keys as scored. The page store keeps them current through every change of a key
/// (appends, quantization, merges, tail refills) whatever the sparse mode, so quest can start at
/// any step.
final class PageSummaries {
    private let headDim: Int
    private let pagesPerHead: Int
    private let arena = BufferArena()
    private let pageMin: UnsafeMutablePointer<Float>
    private let pageMax: UnsafeMutablePointer<Float>

    init(layout: KVLayout) {
        headDim = layout.headDim
        pagesPerHead = (layout.capacity + PageStore.pageSize - 1) / PageStore.pageSize
        let floats = layout.layerCount * layout.kvHeadCount * pagesPerHead * layout.headDim
        pageMin = arena.allocate(Float.self, count: floats)
        pageMax = arena.allocate(Float.self, count: floats)
    }

    /// The channel-wise min and max of one page's keys.
    @inline(__always)
    func bounds(index: Int, page: Int) -> (min: UnsafePointer<Float>, max: UnsafePointer<Float>) {
        let offset = (index * pagesPerHead + page) * headDim
        return (UnsafePointer(pageMin + offset), UnsafePointer(pageMax + offset))
    }

    /// Widens the summary of `slot`'s page by a new key (scored); the page's first slot starts it.
    func include(_ key: UnsafePointer<Float>, index: Int, slot: Int) {
        let offset = (index * pagesPerHead + slot / PageStore.pageSize) * headDim
        let first = slot % PageStore.pageSize == 0
        for c in 0..<headDim {
            pageMin[offset + c] = first ? key[c] : min(pageMin[offset + c], key[c])
            pageMax[offset + c] = first ? key[c] : max(pageMax[offset + c], key[c])
        }
    }

    /// Recomputes one page's summary over its live slots (of `count` in use).
    func summarize(index: Int, page: Int, count: Int, keys store: PageStore) {
        let hd = headDim, pageSize = PageStore.pageSize
        let lanes = min(pageSize, count - page * pageSize)
        guard lanes > 0 else { return }
        let lo = pageMin + (index * pagesPerHead + page) * hd, hi = pageMax + (index * pagesPerHead + page) * hd
        let first = store.key(index: index, slot: page * pageSize)
        lo.update(from: first, count: hd)
        hi.update(from: first, count: hd)
        for lane in 1..<lanes {
            let key = store.key(index: index, slot: page * pageSize + lane)
            for c in 0..<hd {
                lo[c] = min(lo[c], key[c])
                hi[c] = max(hi[c], key[c])
            }
        }
    }
}
