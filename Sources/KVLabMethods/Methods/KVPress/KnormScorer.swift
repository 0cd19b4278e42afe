/// kvpress's `KnormPress`: the smallest key L2 norms stay (keys after RoPE, as cached). kvlab's
/// own `knorm` also keeps the newest entry and acts after every token.
struct KnormScorer: KVPressScorer {
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        heads.map { e in (0..<e.count).map { -e.keyNorms[$0] } }
    }
}
