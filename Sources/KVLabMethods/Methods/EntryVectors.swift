/// One layer's stored keys and values, for a policy that scores entries by them at the end of a
/// prompt (`EvictionPolicy.finishPrefill(layer:heads:promptEnd:vectors:)`). Entries are named by
/// their physical slot (`HeadEntries.slots`); keys come back as attention scores them (after RoPE).
package protocol EntryVectors: AnyObject {
    var headDim: Int { get }
    func key(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>)
    func value(head: Int, slot: Int32, into out: UnsafeMutablePointer<Float>)
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
}
