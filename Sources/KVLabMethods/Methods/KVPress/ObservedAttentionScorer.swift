/// kvpress's `ObservedAttentionPress` (H2O's prompt-time score): the attention each entry received
/// from every prompt query (summed over the query group; kvpress averages, which ranks alike),
/// divided by the number of queries that see it (`k − i` for the i-th of k entries).
struct ObservedAttentionScorer: KVPressScorer {
    var observation: Int { .max }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        heads.map { e in (0..<e.count).map { i in e.scores[i] / Float(e.count - i) } }
    }
}
