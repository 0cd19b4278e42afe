/// One layer's stored keys and values, for a policy that scores entries by them at the end of a
/// prompt (`EvictionPolicy.finishPrefill(layer:heads:promptEnd:vectors:)`). Entries are named by
/// their physical slot (`HeadEntries.slots`); keys come back as attention scores them (after RoPE).
package protocol EntryVectors: AnyObject {
    var headDim: Int { get }
    func key(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>)
    func value(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>)
    /// Overwrites a slot's value (CaM's merge writes the kept entries' merged values).
    func setValue(head: Int, slot: Int32, from vector: UnsafePointer<Float>)
    /// The rotary position RoPE gave a slot's key.
    func rotary(head: Int, slot: Int32) -> Int
    /// Rotates `count` consecutive head vectors by the layer's RoPE to `position` (any position,
    /// in the cache's channel order), or back from it (`inverse`).
    func rotate(_ vectors: UnsafeMutablePointer<Float>, count: Int, position: Int, inverse: Bool)
    /// `out[r · columns + c] = a_r · b_c` for `rows` vectors of `a` (`stride` floats apart) and
    /// `columns` contiguous vectors of `b`, `headDim` floats each: the engine's matrix product.
    func products(_ a: UnsafePointer<Float>, rows: Int, stride: Int, _ b: UnsafePointer<Float>, columns: Int, into out: UnsafeMutablePointer<Float>)
    /// The layer's queries recorded for the policy (empty unless it asks: `EvictionPolicy.recordedQueries`).
    var queries: RecordedQueries { get }
    /// The layer's attention output projection, decoded (model dim × query heads·headDim,
    /// row-major), or nil where the cache was not given the model's weights.
    func outputProjection() -> [Float]?
}

extension EntryVectors {
    /// Every entry's key (or value) of one head, entry-major: `entries.count × headDim`.
    package func gather(head: Int, _ entries: HeadEntries, keys: Bool) -> [Float] {
        let d = headDim
        var out = [Float](repeating: 0, count: entries.count * d)
        out.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<entries.count {
                if keys {
                    key(head: head, slot: entries.slots[i], into: buffer.baseAddress! + i * d)
                } else {
                    value(head: head, slot: entries.slots[i], into: buffer.baseAddress! + i * d)
                }
            }
        }
        return out
    }

    /// Every entry's key of one head before RoPE (rotated back from its rotary position), entry-major.
    package func gatherPreRoPE(head: Int, _ entries: HeadEntries) -> [Float] {
        var keys = gather(head: head, entries, keys: true)
        keys.withUnsafeMutableBufferPointer { buffer in
            for i in 0..<entries.count {
                rotate(buffer.baseAddress! + i * headDim, count: 1, position: rotary(head: head, slot: entries.slots[i]), inverse: true)
            }
        }
        return keys
    }
}
