/// SentencePiece-style tokenizer as llama2.c and llama.cpp's SPM run it: special tokens cut out
/// verbatim, then each stretch of text gets the dummy-prefix space (unless the spec turns it off,
/// as Gemma's does), code points are looked up as pieces or else split into `<0xAB>` byte
/// tokens, and the adjacent pair whose concatenation is the highest-scoring piece is merged
/// repeatedly (leftmost on ties).
public struct SentencePieceTokenizer: Tokenizer {
    public let spec: TokenizerSpec
    private let ids: TokenIndex
    private let byteTokens: [Int]
    private let specials: SpecialTokens
    /// Decoded bytes of every token, with "▁" already turned into a space.
    private let tokenBytes: [[UInt8]]

    public init(spec: TokenizerSpec) throws {
        self.spec = spec
        let ids = TokenIndex(spec.tokens)
        self.ids = ids
        var byteTokens = [Int](repeating: -1, count: 256)
        var tokenBytes: [[UInt8]] = []
        tokenBytes.reserveCapacity(spec.tokens.count)
        for (id, token) in spec.tokens.enumerated() {
            if let byte = Self.byteValue(token) {
                if byteTokens[Int(byte)] < 0 { byteTokens[Int(byte)] = id }
                tokenBytes.append([byte])
            } else if spec.types[id] == .control || spec.types[id] == .unknown {
                tokenBytes.append([])
            } else {
                tokenBytes.append(Array(token.replacingOccurrences(of: "▁", with: " ").utf8))
            }
        }
        self.byteTokens = byteTokens
        self.tokenBytes = tokenBytes
        specials = SpecialTokens(spec: spec)
    }

    /// `<0xAB>` → 0xAB.
    static func byteValue(_ token: String) -> UInt8? {
        let u = Array(token.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
              u[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }

    public func encode(_ text: String) -> [Int] {
        var out: [Int] = []
        if spec.addBOS, let bos = spec.bosID { out.append(bos) }
        let utf8 = Array(text.utf8)
        for fragment in specials.split(utf8) {
            switch fragment {
            case .text(let range):
                // llama.cpp prefixes every stretch of text, which starts the input or follows a
                // special token; Hugging Face's Llama normalizer does the same per split.
                let piece = String(decoding: utf8[range], as: UTF8.self)
                out += encodeOrdinary((spec.addSpacePrefix ? " " : "") + piece)
            case .token(let id):
                out.append(id)
            }
        }
        return out
    }

    /// Encodes text that holds no special token.
    private func encodeOrdinary(_ text: String) -> [Int] {
        var pieces: [Int] = []
        for scalar in text.replacingOccurrences(of: " ", with: "▁").unicodeScalars {
            if let id = ids[String(scalar)] {
                pieces.append(id)
            } else {
                for byte in String(scalar).utf8 {
                    let id = byteTokens[Int(byte)]
                    pieces.append(id >= 0 ? id : (spec.unknownID ?? 0))
                }
            }
        }
        return merged(pieces)
    }

    /// Repeatedly merges the adjacent pair whose concatenation is the highest-scoring piece,
    /// leftmost on ties (llama2.c's and SentencePiece's BPE rule). A heap of candidate pairs over
    /// a linked list of symbols makes this O(n log n), so long evaluation texts encode quickly.
    private func merged(_ initial: [Int]) -> [Int] {
        var pieces = initial
        let n = pieces.count
        guard n > 1 else { return pieces }
        var next = Array(1...n)
        var previous = Array(-1..<(n - 1))
        var candidates = MergeHeap<Pair>()
        func consider(_ left: Int) {
            let right = next[left]
            guard left >= 0, right < n,
                  let id = ids[spec.tokens[pieces[left]] + spec.tokens[pieces[right]]] else { return }
            candidates.push(.init(score: spec.scores[id], left: left, leftID: pieces[left], rightID: pieces[right], merged: id))
        }
        for i in 0..<(n - 1) { consider(i) }
        while let pair = candidates.pop() {
            let right = next[pair.left]
            // Skip pairs made stale by an earlier merge of either symbol.
            guard right < n, pieces[pair.left] == pair.leftID, pieces[right] == pair.rightID else { continue }
            pieces[pair.left] = pair.merged
            pieces[right] = -1
            next[pair.left] = next[right]
            if next[right] < n { previous[next[right]] = pair.left }
            if previous[pair.left] >= 0 { consider(previous[pair.left]) }
            consider(pair.left)
        }
        return pieces.filter { $0 >= 0 }
    }

    public func decode(_ token: Int, after previous: Int?) -> [UInt8] {
        guard token >= 0, token < tokenBytes.count else { return [] }
        let bytes = tokenBytes[token]
        // The dummy-prefix space of the first piece after BOS (or at the start) is not text.
        if spec.addSpacePrefix, previous == nil || previous == spec.bosID, bytes.first == UInt8(ascii: " "),
           Self.byteValue(spec.tokens[token]) == nil {
            return Array(bytes.dropFirst())
        }
        return bytes
    }
}

/// A possible merge of the symbol at `left` with the next one, as they were when it was found:
/// higher score first, then the leftmost pair.
private struct Pair: MergeCandidate {
    var score: Float
    var left: Int
    var leftID: Int
    var rightID: Int
    var merged: Int

    func precedes(_ other: Pair) -> Bool {
        score != other.score ? score > other.score : left < other.left
    }
}
