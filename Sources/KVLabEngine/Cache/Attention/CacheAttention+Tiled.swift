import KVLabMethods

/// The tiled kernel (`TiledAttention`) over the page store: tiles load keys and values in place
/// from fp32 pages when they can, else gathered or decoded, and count what they read as stored.
extension CacheAttention {
    /// One pass of the tiled kernel for one head: `rows` query rows against its first `entries`
    /// slots (or the listed ones when not `dense`), the tiles' loads counted with the kernel's traffic.
    func tiledPass(_ kernel: TiledAttention, index: Int, queries: UnsafePointer<Float>, rows: Int, entries: Int,
                   causal: CausalRows, dense: Bool, masked: Bool, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        var tiles = IOLedger()
        store.beginReads()
        kernel.attend(rows: rows, output: output, entries: entries, causal: causal,
                      load: { self.loadTile(kernel, index: index, entries: $0, dense: dense, values: true, ledger: &tiles) },
                      score: { self.scoreTile(kernel, index: index, queries: queries, rows: $0, entries: $1, dense: dense, masked: masked,
                                              into: $2, stride: $3) },
                      accumulate: { self.accumulateTile(kernel, index: index, rows: $0.count, entries: $1, dense: dense, weights: $2,
                                                        stride: $3, into: $4) },
                      ledger: &ledger)
        ledger.add(tiles)
    }

    /// One decode query group through the tiled kernel over the first `visible` slots, or the
    /// `listed` slots of `selectedSlots` (top-k's dropped entries masked per query head); with
    /// `probabilities`, a second pass leaves each query head's probabilities in `probabilities`.
    func attendTiled(_ kernel: TiledAttention, index: Int, queries q: UnsafePointer<Float>, visible: Int, listed: Int?,
                     masked: Bool, output: UnsafeMutablePointer<Float>, probabilities wanted: Bool, ledger: inout IOLedger) {
        let group = store.layout.groupSize, entries = listed ?? visible, dense = listed == nil
        tiledPass(kernel, index: index, queries: q, rows: group, entries: entries, causal: CausalRows(group: group, firstVisible: entries),
                  dense: dense, masked: masked, output: output, ledger: &ledger)
        if wanted {
            writeProbabilities(kernel, index: index, rows: 0..<group, queries: q, visible: visible, listed: listed, masked: masked,
                               ledger: &ledger)
        }
    }

    /// The kernel's second pass for one token's query group (`rows` of the last `attend`): its
    /// probabilities over the listed entries into `probabilities` (0 for visible entries not
    /// read, or outside the window of a local layer's `causal` rows), counted as re-reading the
    /// keys and writing the group sums s_t per entry.
    func writeProbabilities(_ kernel: TiledAttention, index: Int, rows: Range<Int>, queries: UnsafePointer<Float>,
                            visible: Int, listed: Int?, masked: Bool = false, causal: CausalRows? = nil, ledger: inout IOLedger) {
        let entries = listed ?? visible, dense = listed == nil, group = store.layout.groupSize
        // Top-k's masks live in `probabilities` until the pass has read them.
        if !masked { for g in 0..<group { (probabilities + g * scoreStride).update(repeating: 0, count: visible) } }
        var tiles = IOLedger()
        store.keyStore?.beginReads()
        kernel.probabilities(rows: rows, entries: entries, causal: causal,
                             loadKeys: { self.loadTile(kernel, index: index, entries: $0, dense: dense, values: false, ledger: &tiles) },
                             score: { self.scoreTile(kernel, index: index, queries: queries, rows: $0, entries: $1, dense: dense,
                                                     masked: masked, into: $2, stride: $3) },
                             emit: { group, tile, p, stride in
                                 for g in group {
                                     for (n, e) in tile.enumerated() {
                                         let slot = dense ? e : Int(self.selectedSlots[e])
                                         self.probabilities[g * self.scoreStride + slot] = p[(g - group.lowerBound) * stride + n]
                                     }
                                 }
                             },
                             ledger: &ledger)
        if masked {
            for g in 0..<group {
                for i in 0..<visible where probabilities[g * scoreStride + i] == Self.masked { probabilities[g * scoreStride + i] = 0 }
            }
        }
        ledger.add(tiles)
        ledger.write(.policyState, entries * 4)
    }

    /// Whether tiles of a dense list can score keys in place: fp32 keys in pages, as scored.
    private var keysInPlace: Bool { store.keyStore == nil && !store.quant.preRoPE }

    /// Brings a tile of listed entries on chip: fp32 keys and values of a dense list are read in
    /// place from their pages, others gathered or decoded into the kernel's tiles; counts their
    /// stored bytes (a quantized record once per pass).
    private func loadTile(_ kernel: TiledAttention, index: Int, entries tile: Range<Int>, dense: Bool, values: Bool,
                          ledger: inout IOLedger) {
        let hd = store.layout.headDim
        if dense && keysInPlace {
            ledger.read(.keys, tile.count * hd * 4)
        } else {
            for (n, e) in tile.enumerated() {
                let slot = dense ? e : Int(selectedSlots[e])
                (kernel.keyTile + n * hd).update(from: store.key(index: index, slot: slot), count: hd)
                store.countRead(key: true, index: index, slot: slot, ledger: &ledger)
            }
        }
        guard values else { return }
        if dense && store.valueStore == nil {
            ledger.read(.values, tile.count * hd * 4)
        } else {
            for (n, e) in tile.enumerated() {
                let slot = dense ? e : Int(selectedSlots[e])
                (kernel.valueTile + n * hd).update(from: store.value(index: index, slot: slot), count: hd)
                store.countRead(key: false, index: index, slot: slot, ledger: &ledger)
            }
        }
    }

    /// Scaled q·k of query rows `rows` for a tile's entries (row `b` of the block at `s + b·stride`):
    /// 16 keys per SIMD step from their pages when in place, else from the kernel's key tile.
    /// `masked`: entries top-k dropped for a query head (its row of `probabilities`) are masked.
    private func scoreTile(_ kernel: TiledAttention, index: Int, queries q: UnsafePointer<Float>, rows: Range<Int>, entries tile: Range<Int>,
                           dense: Bool, masked: Bool, into s: UnsafeMutablePointer<Float>, stride: Int) {
        let hd = store.layout.headDim, pageSize = PageStore.pageSize
        if dense && keysInPlace {
            let table = store.pageTables + index * store.pagesPerHead, pool = store.pool
            for page in (tile.lowerBound / pageSize)...((tile.upperBound - 1) / pageSize) {
                let keys = UnsafeRawPointer(pool.pointer(table[page]))
                let first = max(tile.lowerBound, page * pageSize), last = min(tile.upperBound, (page + 1) * pageSize)
                for (b, r) in rows.enumerated() {
                    let query = q + r * hd
                    var acc = SIMD16<Float>()
                    for c in 0..<hd { acc += query[c] * keys.loadUnaligned(fromByteOffset: c * pageSize * 4, as: SIMD16<Float>.self) }
                    acc *= scale
                    let row = s + b * stride + (first - tile.lowerBound)
                    if last - first == pageSize {
                        UnsafeMutableRawPointer(row).storeBytes(of: acc, as: SIMD16<Float>.self)
                    } else {
                        for slot in first..<last { row[slot - first] = acc[slot - page * pageSize] }
                    }
                }
            }
        } else {
            TiledAttention.score(keys: kernel.keyTile, count: tile.count, queries: q + rows.lowerBound * hd, rows: rows.count, headDim: hd,
                                 scale: scale, into: s, stride: stride)
        }
        if softcap != nil {
            for b in 0..<rows.count {
                for n in 0..<tile.count { s[b * stride + n] = capped(s[b * stride + n]) }
            }
        }
        guard masked else { return }
        for (b, r) in rows.enumerated() {
            for (n, e) in tile.enumerated() where probabilities[r * scoreStride + Int(selectedSlots[e])] == Self.masked {
                s[b * stride + n] = TiledAttention.masked
            }
        }
    }

    /// Σ weight · value over a tile's entries for `rows` rows (row `b`'s weights at `w + b·stride`),
    /// values read in place from their pages for a dense fp32 list, else from the kernel's value tile.
    private func accumulateTile(_ kernel: TiledAttention, index: Int, rows: Int, entries tile: Range<Int>, dense: Bool,
                                weights w: UnsafePointer<Float>, stride: Int, into out: UnsafeMutablePointer<Float>) {
        let hd = store.layout.headDim, pageSize = PageStore.pageSize
        out.update(repeating: 0, count: rows * hd)
        guard dense && store.valueStore == nil else {
            TiledAttention.weigh(values: kernel.valueTile, count: tile.count, weights: w, rows: rows, stride: stride, headDim: hd, into: out)
            return
        }
        // A page holds its values token-major: each page's share of the tile is contiguous.
        let table = store.pageTables + index * store.pagesPerHead
        var e = tile.lowerBound
        while e < tile.upperBound {
            let lane = e % pageSize, count = min(pageSize - lane, tile.upperBound - e)
            TiledAttention.weigh(values: store.pool.pointer(table[e / pageSize]) + (pageSize + lane) * hd, count: count,
                                 weights: w + (e - tile.lowerBound), rows: rows, stride: stride, headDim: hd, into: out)
            e += count
        }
    }
}
