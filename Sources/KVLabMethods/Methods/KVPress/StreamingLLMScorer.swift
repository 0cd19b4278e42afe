/// kvpress's `StreamingLLMPress`: the first `n_sink` entries and the newest `n_kept − n_sink` stay
/// (kvpress zeroes the scores of the `k − n_kept` entries after the sinks). Here the sinks score
/// `.infinity` and the rest their position, which ranks alike. When `n_kept < n_sink` kvpress's
/// choice among the tied sinks is torch's; kvlab keeps the newer sinks.
struct StreamingLLMScorer: KVPressScorer {
    let nSink: Int

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        heads.map { e in (0..<e.count).map { i in i < nSink ? .infinity : Float(e.positions[i]) } }
    }
}
