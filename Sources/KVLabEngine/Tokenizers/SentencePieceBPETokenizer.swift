/// Gemma 4's tokenizer (GGUF `gemma4`), as llama.cpp runs it and Hugging Face's tokenizer.json
/// defines it: SentencePiece's pieces ("▁" for a space, `<0xAB>` byte tokens, no dummy prefix)
/// merged by rank like byte-level BPE rather than by score. Special tokens are cut out first;
/// spaces become "▁"; the text splits into runs of line breaks and runs of anything else (a run of
/// line breaks that is itself a token stays whole); each run starts as one symbol per code point
/// and merges by rank; a code point the vocabulary lacks becomes its UTF-8 bytes' tokens.
public struct SentencePieceBPETokenizer: Tokenizer {
    public let spec: TokenizerSpec
    private let ids: TokenIndex
    private let merges: RankedMerges
    /// Token id of each `<0xAB>` byte token, -1 where the vocabulary has none (the byte is dropped).
    private let byteTokens: [Int32]
    private let specials: SpecialTokens
    /// Decoded bytes of every token, "▁" turned into a space.
    private let tokenBytes: [[UInt8]]

    public init(spec: TokenizerSpec) throws {
        try spec.validate()
        self.spec = spec
        let ids = TokenIndex(spec.tokens)
        self.ids = ids
        merges = try RankedMerges(spec, ids: ids)
        var byteTokens = [Int32](repeating: -1, count: 256)
        tokenBytes = spec.tokens.enumerated().map { id, token in
            if let byte = SentencePieceTokenizer.byteValue(token) {
                if byteTokens[Int(byte)] < 0 { byteTokens[Int(byte)] = Int32(id) }
                return [byte]
            }
            // llama.cpp's detokenizer: control and unknown tokens are not text, user-defined ones are verbatim.
            switch spec.types[id] {
            case .control, .unknown: return []
            case .userDefined: return Array(token.utf8)
            default: return Array(token.replacingOccurrences(of: "▁", with: " ").utf8)
            }
        }
        self.byteTokens = byteTokens
        specials = SpecialTokens(spec: spec)
    }

    public func encode(_ text: String) -> [Int] {
        var out: [Int] = []
        if spec.addBOS, let bos = spec.bosID { out.append(bos) }
        let utf8 = Array(text.utf8)
        for fragment in specials.split(utf8) {
            switch fragment {
            case .text(let range): encodeOrdinary(utf8[range], into: &out)
            case .token(let id): out.append(id)
            }
        }
        return out
    }

    public func decode(_ token: Int, after previous: Int?) -> [UInt8] {
        guard token >= 0, token < tokenBytes.count else { return [] }
        return tokenBytes[token]
    }

    /// Encodes text that holds no special token, one run of line breaks or of other text at a time.
    private func encodeOrdinary(_ utf8: ArraySlice<UInt8>, into out: inout [Int]) {
        let text = String(decoding: utf8, as: UTF8.self).replacingOccurrences(of: " ", with: "▁")
        var scalars = Array(text.unicodeScalars)[...]
        while let first = scalars.first {
            let breaks = first == "\n"
            let run = scalars.prefix { ($0 == "\n") == breaks }
            scalars = scalars.dropFirst(run.count)
            if breaks, let id = ids[String(repeating: "\n", count: run.count)] {
                out.append(id)
                continue
            }
            // A code point the vocabulary lacks takes part in no merge (every rule's parts are
            // tokens), so the symbols on either side of it merge separately, as in llama.cpp.
            var symbols: [Int32] = []
            for scalar in run {
                if let id = ids[String(scalar)] {
                    symbols.append(Int32(id))
                } else {
                    out += merges.apply(symbols)
                    symbols = []
                    out += String(scalar).utf8.compactMap { byteTokens[Int($0)] >= 0 ? Int(byteTokens[Int($0)]) : nil }
                }
            }
            out += merges.apply(symbols)
        }
    }
}
