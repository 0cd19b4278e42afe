import KVLabMethods

/// Rotary positions past the context: a cache that bounds its entries keeps generating after the
/// token positions outgrow the RoPE table by giving its entries new, contiguous rotary positions.
///
/// Attention scores depend only on the difference of the query's and a key's rotary positions,
/// so renumbering a head's entries to run without gaps up to the next token closes the gaps that
/// eviction left, as both StreamingLLM (positions re-based inside the cache at every step) and
/// llama.cpp's context shift (once the context is full) do. Keys stored before RoPE (`prerope`)
/// just take the new numbers: each read rotates them to it, the StreamingLLM paper's
/// implementation. Keys stored after RoPE are re-rotated in place by the shift, `R(new − old)`,
/// from the same angle table the reads use (llama.cpp's K-shift); a quantized key is decoded,
/// rotated and re-encoded.
extension PageStore {
    /// Renumbers head `index`'s entries, in position order, to the rotary positions
    /// `end − count ..< end`; entries already there are not touched.
    func renumber(index: Int, end: Int, ledger: inout IOLedger) {
        let base = index * capacity, count = counts[index], hd = layout.headDim
        guard count > 0 else { return }
        precondition(count <= end && end <= capacity, "renumbering \(count) entries below \(end) of \(capacity) rotary positions")
        // Rotary positions ascend in position order, so the ends tell whether there is a gap.
        if Int(slotRotary[base + Int(slots[base])]) == end - count,
           Int(slotRotary[base + Int(slots[base + count - 1])]) == end - 1 { return }
        prepareAngles()
        let angles = angles(index: index)
        var moved = false
        beginReads()
        for i in 0..<count {
            let slot = Int(slots[base + i])
            let old = Int(slotRotary[base + slot]), new = end - count + i
            guard old != new else { continue }
            moved = true
            if !quant.preRoPE {
                // The key as scored, rotated by the shift in the model's frame, then written back.
                mergeKey.update(from: key(index: index, slot: slot), count: hd)
                countRead(key: true, index: index, slot: slot, ledger: &ledger)
                if scoresRotated { Hadamard.transform(mergeKey, count: hd) }
                angles.rotate(mergeKey, position: abs(new - old), inverse: new < old)
                if scoresRotated { Hadamard.transform(mergeKey, count: hd) }
                write(mergeKey, key: true, index: index, slot: slot, ledger: &ledger)
            }
            slotRotary[base + slot] = Int32(new)
        }
        // Quest's page bounds are of keys as scored, which moved with their positions.
        if moved { summarizeAll(index: index) }
    }
}
