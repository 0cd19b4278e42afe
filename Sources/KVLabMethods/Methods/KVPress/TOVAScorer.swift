/// kvpress's `TOVAPress`: the last prompt query's attention, averaged over every query head of
/// the layer (so all KV heads keep the same positions); the last entry always stays. kvlab's own
/// `tova` instead evicts after every token, per KV head.
struct TOVAScorer: KVPressScorer {
    var observation: Int { 1 }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        let count = heads.map(\.count).max() ?? 0
        var total = Array(repeating: Float(0), count: count)
        for e in heads {
            for i in 0..<e.count { total[i] += e.scores[i] }
        }
        return heads.map { e in
            (0..<e.count).map { i in Int(e.positions[i]) == promptEnd - 1 ? .infinity : total[i] }
        }
    }
}
