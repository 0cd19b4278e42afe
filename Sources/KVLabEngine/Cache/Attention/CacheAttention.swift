import Foundation
import KVLabMethods

/// Decode attention over one (layer, KV head)'s stored entries for its query group: scoring keys
/// in place from their pages (or decoded), softmax rows, P·V, and the step's `s_t`. Sparse
/// selectors score and list the entries a step reads through it; the tiled kernel and batched
/// prefill run through it too (`CacheAttention+Tiled`, `PrefillAttention`).
final class CacheAttention {
    let store: PageStore
    private let arena = BufferArena()
    /// Attention probabilities of one KV head's query group: groupSize rows of `scoreStride`
    /// (capacity rounded up to whole pages, so a page's 16 lanes always fit).
    let probabilities: UnsafeMutablePointer<Float>
    let scoreStride: Int
    let scale: Float
    /// Scores become cap·tanh(score/cap) as they are computed (Gemma 2); nil: none.
    let softcap: Float?
    /// What a sparse step reads: chosen slots (`selectedSlots[0..<n]`), and a selector's marks
    /// and sort keys.
    let selectedSlots: UnsafeMutablePointer<Int32>
    let selectedMarks: UnsafeMutablePointer<Bool>
    let sortScratch: UnsafeMutablePointer<Float>
    /// One query group Hadamard-transformed for `rotate`.
    private let rotatedQueries: UnsafeMutablePointer<Float>
    /// One query group's kept channels while `think` has keys pruned.
    private let prunedQueries: UnsafeMutablePointer<Float>
    /// The tiled kernel's scratch; nil for the naive kernel.
    var tiled: TiledAttention?

    /// Score that softmax turns into 0.
    static let masked = -Float.greatestFiniteMagnitude

    init(store: PageStore) {
        self.store = store
        let layout = store.layout
        scoreStride = store.pagesPerHead * PageStore.pageSize
        scale = 1 / Float(layout.headDim).squareRoot()
        softcap = layout.attentionSoftcap
        probabilities = arena.allocate(Float.self, count: layout.groupSize * scoreStride)
        selectedSlots = arena.allocate(Int32.self, count: scoreStride)
        selectedMarks = arena.allocate(count: scoreStride, repeating: false)
        sortScratch = arena.allocate(Float.self, count: scoreStride)
        rotatedQueries = arena.allocate(Float.self, count: layout.groupSize * layout.headDim)
        prunedQueries = arena.allocate(Float.self, count: layout.groupSize * layout.headDim)
    }

    /// The tiled kernel's scratch for `kernel` (tiles of at most a head's `entries`); nil for naive.
    static func tiledAttention(for kernel: AttentionKernel, layout: KVLayout, entries: Int) -> TiledAttention? {
        guard case .tiled(let bytes) = kernel else { return nil }
        return TiledAttention(sramBytes: bytes, headDim: layout.headDim, maxEntries: entries, rows: layout.groupSize)
    }

    /// Readies one head's query group `q` for scoring: gathers its kept channels while keys are
    /// pruned (`scorePages` reads them), and returns the queries in the scoring frame (Hadamard-
    /// transformed for `rotate`).
    func prepare(queries q: UnsafePointer<Float>, index: Int) -> UnsafePointer<Float> {
        let hd = store.layout.headDim, group = store.layout.groupSize
        if store.keysPruned {
            let kept = store.keptChannels + index * hd, width = store.keyWidth
            for g in 0..<group {
                for j in 0..<width { prunedQueries[g * width + j] = q[g * hd + Int(kept[j])] }
            }
        }
        guard store.scoresRotated else { return q }
        rotatedQueries.update(from: q, count: group * hd)
        for g in 0..<group { Hadamard.transform(rotatedQueries + g * hd, count: hd) }
        return UnsafePointer(rotatedQueries)
    }

    /// Scaled q·k of the query group for every slot of `pages`, each key read once for the whole
    /// group since GQA shares it. fp32 keys: 16 keys per SIMD step, channel by channel (page slot
    /// = slot). Quantized or pre-RoPE keys: slot by slot, each decoded or rotated once.
    func scorePages(index: Int, queries q: UnsafePointer<Float>, pages: Range<Int>) {
        let store = self.store, hd = store.layout.headDim, pageSize = PageStore.pageSize
        guard store.keyStore == nil && !store.quant.preRoPE else {
            for page in pages {
                for slot in (page * pageSize)..<min(store.counts[index], (page + 1) * pageSize) {
                    scoreSlot(index: index, queries: q, slot: slot)
                }
            }
            return
        }
        // Locals: the store's variables are read once, not at every page.
        let table = store.pageTables + index * store.pagesPerHead, pool = store.pool, width = store.keyWidth
        let probabilities = self.probabilities, scoreStride = self.scoreStride, scale = self.scale
        // While keys are pruned, the queries' kept channels (gathered by `prepare`).
        let queries = store.keysPruned ? UnsafePointer(prunedQueries) : q, queryStride = store.keysPruned ? width : hd
        for page in pages {
            let keys = UnsafeRawPointer(pool.pointer(table[page]))
            for g in 0..<store.layout.groupSize {
                let query = queries + g * queryStride
                var acc = SIMD16<Float>()
                for c in 0..<width {
                    acc += query[c] * keys.loadUnaligned(fromByteOffset: c * pageSize * 4, as: SIMD16<Float>.self)
                }
                var scores = acc * scale
                if let cap = softcap { for lane in 0..<pageSize { scores[lane] = cap * tanhf(scores[lane] / cap) } }
                UnsafeMutableRawPointer(probabilities + g * scoreStride + page * pageSize).storeBytes(of: scores, as: SIMD16<Float>.self)
            }
        }
    }

    /// Scaled q·k of each query head of the group for one slot (read or decoded once).
    func scoreSlot(index: Int, queries q: UnsafePointer<Float>, slot: Int) {
        let hd = store.layout.headDim
        let key = store.key(index: index, slot: slot)
        for g in 0..<store.layout.groupSize {
            let query = q + g * hd
            var dot: Float = 0
            for c in 0..<hd { dot += query[c] * key[c] }
            probabilities[g * scoreStride + slot] = capped(dot * scale)
        }
    }

    /// A score soft-capped when the model caps attention logits.
    @inline(__always)
    func capped(_ score: Float) -> Float {
        guard let cap = softcap else { return score }
        return cap * tanhf(score / cap)
    }

    /// Sets every visible score of the group to a value softmax turns into 0.
    func maskScores(visible: Int) {
        for g in 0..<store.layout.groupSize { (probabilities + g * scoreStride).update(repeating: Self.masked, count: visible) }
    }

    /// Masks the scores of the visible slots at positions ≤ `oldest` (before a local layer's window).
    func maskBefore(position oldest: Int, index: Int, visible: Int) {
        let positions = store.slotPositions + index * store.capacity
        for slot in 0..<visible where Int(positions[slot]) <= oldest {
            for g in 0..<store.layout.groupSize { probabilities[g * scoreStride + slot] = Self.masked }
        }
    }

    /// Softmax of each query head's row over the first `visible` slots.
    func softmax(visible: Int) {
        for g in 0..<store.layout.groupSize { Vector.softmax(probabilities + g * scoreStride, count: visible) }
    }

    /// P·V over every visible slot. fp32 values: up to 32 channels of the output at a time kept in
    /// registers (four 8-channel slices), so each page's value rows are read once per 32 channels
    /// (page slot = slot); each channel sums its slots in order. Quantized values: slot by slot,
    /// each decoded once.
    func weightValues(index: Int, visible: Int, output: UnsafeMutablePointer<Float>) {
        let store = self.store
        guard store.valueStore == nil else { return accumulateValues(index: index, count: visible, output: output) { $0 } }
        let hd = store.layout.headDim, pageSize = PageStore.pageSize
        let table = store.pageTables + index * store.pagesPerHead, pool = store.pool, valueOffset = pageSize * store.keyWidth
        for g in 0..<store.layout.groupSize {
            let p = probabilities + g * scoreStride
            let out = output + g * hd
            for block in stride(from: 0, to: hd, by: 32) {
                // Whole 8-channel slices of this block, then single channels past the last one.
                let slices = min(32, hd - block) / 8, single = slices < 4 ? min(32, hd - block) - slices * 8 : 0
                var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, rest = a0
                var first = 0, page = 0
                while first < visible {
                    let values = UnsafeRawPointer(pool.pointer(table[page]) + valueOffset + block)
                    for slot in 0..<min(pageSize, visible - first) {
                        let weight = p[first + slot], row = slot * hd * 4
                        if slices == 4 {
                            a0 += weight * values.loadUnaligned(fromByteOffset: row, as: SIMD8<Float>.self)
                            a1 += weight * values.loadUnaligned(fromByteOffset: row + 32, as: SIMD8<Float>.self)
                            a2 += weight * values.loadUnaligned(fromByteOffset: row + 64, as: SIMD8<Float>.self)
                            a3 += weight * values.loadUnaligned(fromByteOffset: row + 96, as: SIMD8<Float>.self)
                        } else {
                            if slices > 0 { a0 += weight * values.loadUnaligned(fromByteOffset: row, as: SIMD8<Float>.self) }
                            if slices > 1 { a1 += weight * values.loadUnaligned(fromByteOffset: row + 32, as: SIMD8<Float>.self) }
                            if slices > 2 { a2 += weight * values.loadUnaligned(fromByteOffset: row + 64, as: SIMD8<Float>.self) }
                            for c in 0..<single { rest[c] += weight * values.load(fromByteOffset: row + (slices * 8 + c) * 4, as: Float.self) }
                        }
                    }
                    first += pageSize
                    page += 1
                }
                let o = UnsafeMutableRawPointer(out + block)
                if slices > 0 { o.storeBytes(of: a0, as: SIMD8<Float>.self) }
                if slices > 1 { o.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self) }
                if slices > 2 { o.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self) }
                if slices > 3 { o.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self) }
                for c in 0..<single { out[block + slices * 8 + c] = rest[c] }
            }
        }
    }

    /// P·V over the slots in `selectedSlots` only (what a sparse mode reads).
    func weightSelectedValues(index: Int, count: Int, output: UnsafeMutablePointer<Float>) {
        let selected = selectedSlots
        accumulateValues(index: index, count: count, output: output) { Int(selected[$0]) }
    }

    /// P·V over the slots `slot(0) … slot(count − 1)`, each value read (or decoded) once for the group.
    @inline(__always)
    private func accumulateValues(index: Int, count: Int, output out: UnsafeMutablePointer<Float>, slot: (Int) -> Int) {
        let hd = store.layout.headDim, group = store.layout.groupSize
        out.update(repeating: 0, count: group * hd)
        for n in 0..<count {
            let s = slot(n)
            let value = store.value(index: index, slot: s)
            for g in 0..<group {
                let weight = probabilities[g * scoreStride + s]
                let o = out + g * hd
                for c in 0..<hd { o[c] += weight * value[c] }
            }
        }
    }

    /// `s_t(j) = Σ_h p_h(j)` over the query group, in position order; `accumulate` also adds it
    /// to each slot's received score (`mixed`).
    func gatherStepScores(index: Int, visible: Int, accumulate: Bool) {
        let capacity = store.capacity
        let out = store.stepScores + index * capacity
        let slotOf = store.slots + index * capacity
        let received = store.receivedScores + index * capacity
        for i in 0..<visible {
            let slot = Int(slotOf[i])
            var sum: Float = 0
            for g in 0..<store.layout.groupSize { sum += probabilities[g * scoreStride + slot] }
            out[i] = sum
            if accumulate { received[slot] += sum }
        }
    }
}
