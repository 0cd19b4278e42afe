import KVLabFoundation

/// BPE merge rules by rank, as Hugging Face's BPE model and llama.cpp's BPE tokenizer apply them:
/// the adjacent pair with the lowest rank merges first, the leftmost on ties, until no pair has a
/// rule. Shared by byte-level BPE and Gemma 4's SentencePiece-style BPE, which differ only in what
/// the starting symbols are.
struct RankedMerges: Sendable {
    private struct Merge {
        var rank: Int32
        var result: Int32
    }

    /// Merge rules by `pairKey(left, right)`.
    private let merges: [UInt64: Merge]

    /// The rules of `spec.merges` ("left right", in rank order), checking that every rule's parts
    /// and result are tokens of the vocabulary.
    init(_ spec: TokenizerSpec, ids: TokenIndex) throws {
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(spec.merges.count)
        for (rank, rule) in spec.merges.enumerated() {
            guard let (left, right) = Self.parts(of: rule) else {
                throw FormatError("merge \(rank) \"\(rule)\" is not two tokens separated by a space")
            }
            for token in [left, right, left + right] where ids[token] == nil {
                throw FormatError("merge \(rank) \"\(rule)\" uses \"\(token)\", which is not in the vocabulary")
            }
            // A repeated rule keeps its first (highest-priority) rank.
            let key = Self.pairKey(Int32(ids[left]!), Int32(ids[right]!))
            if merges[key] == nil { merges[key] = Merge(rank: Int32(rank), result: Int32(ids[left + right]!)) }
        }
        self.merges = merges
    }

    /// The two tokens of a "left right" rule, or nil unless it has exactly two non-empty ones. Split
    /// by scalars: a space followed by a combining mark (Gemma 4's "▁ह ै") is one Character.
    static func parts(of rule: String) -> (left: String, right: String)? {
        let parts = rule.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        return (String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1])))
    }

    /// The token ids `symbols` (a piece's starting tokens) merge into. A linked list of symbols and
    /// a heap of candidate merges ordered by (rank, position) keep long pieces O(n log n); entries
    /// made stale by an earlier merge are recognised on the way out by their pair no longer being there.
    func apply(_ initial: [Int32]) -> [Int] {
        var symbols = initial
        let count = symbols.count
        guard count > 1 else { return symbols.map(Int.init) }
        // next[i] == count and previous[i] == -1 mark the ends; merged-away symbols hold -1.
        var next = Array(1...count)
        var previous = Array(-1..<(count - 1))
        var heap = MergeHeap<Candidate>()
        func consider(_ i: Int) {
            let j = next[i]
            guard j < count, let merge = merges[Self.pairKey(symbols[i], symbols[j])] else { return }
            heap.push(Candidate(rank: merge.rank, position: Int32(i), left: symbols[i], right: symbols[j], result: merge.result))
        }
        for i in 0..<(count - 1) { consider(i) }
        while let candidate = heap.pop() {
            let i = Int(candidate.position)
            let j = next[i]
            guard symbols[i] == candidate.left, j < count, symbols[j] == candidate.right else { continue }
            symbols[i] = candidate.result
            symbols[j] = -1
            next[i] = next[j]
            if next[j] < count { previous[next[j]] = i }
            if previous[i] >= 0 { consider(previous[i]) }
            consider(i)
        }
        var ids: [Int] = []
        var i = 0
        while i < count {
            ids.append(Int(symbols[i]))
            i = next[i]
        }
        return ids
    }

    private static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }
}

/// A possible merge of the symbols at `position` and after it, as they were when it was found.
private struct Candidate: MergeCandidate {
    var rank: Int32
    var position: Int32
    var left: Int32
    var right: Int32
    var result: Int32

    func precedes(_ other: Candidate) -> Bool {
        rank != other.rank ? rank < other.rank : position < other.position
    }
}
