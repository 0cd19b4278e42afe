import KVLabFoundation

/// Byte-level BPE as Hugging Face `tokenizers` and llama.cpp run it for GPT-2, Llama-3, Qwen2 and
/// SmolLM: special tokens are cut out verbatim, the rest is pre-tokenized by the flavour's regex,
/// each piece's UTF-8 bytes become GPT-2's printable byte characters, and adjacent symbols are
/// merged by rank (lowest first, leftmost on ties) until no pair has a merge rule.
public struct ByteLevelBPETokenizer: Tokenizer {
    /// The spec this tokenizer was built from.
    public let spec: TokenizerSpec
    private let preTokenizer: PreTokenizer
    /// Token id of each byte's character, -1 for a byte the vocabulary lacks (some real ones do,
    /// e.g. StarCoder's and GPT-NeoX's); such a byte is dropped from the output, as llama.cpp
    /// and Hugging Face's BPE without an unknown token both do.
    private let byteIDs: [Int32]
    private let merges: RankedMerges
    /// Ids by token string (first occurrence), for `ignoresMerges` whole-piece lookups.
    private let ids: TokenIndex
    private let specials: SpecialTokens
    /// Decoded bytes of every token.
    private let tokenBytes: [[UInt8]]

    /// Builds the tables, checking that every merge's parts and result exist.
    public init(spec: TokenizerSpec) throws {
        try spec.validate()
        self.spec = spec
        preTokenizer = try PreTokenizer(name: spec.preTokenizer)

        let ids = TokenIndex(spec.tokens)
        self.ids = ids

        byteIDs = (0..<256).map { byte in ids[String(Self.byteCharacters[byte])].map(Int32.init) ?? -1 }
        merges = try RankedMerges(spec, ids: ids)
        specials = SpecialTokens(spec: spec)

        tokenBytes = spec.tokens.enumerated().map { id, token in
            if id == spec.bosID || id == spec.eosID { return [] }
            switch spec.types[id] {
            case .control, .userDefined: return Array(token.utf8)
            case .unknown: return []
            default: return Self.bytes(ofByteLevel: token)
            }
        }
    }

    /// Token ids for `text` (BOS first when the spec says so); special tokens are never split.
    public func encode(_ text: String) -> [Int] {
        var out: [Int] = []
        if spec.addBOS, let bos = spec.bosID { out.append(bos) }
        let utf8 = Array(text.utf8)
        // Pieces repeat a lot in real text; remembering them within one call keeps the type immutable.
        var cache: [ArraySlice<UInt8>: [Int]] = [:]
        for fragment in specials.split(utf8) {
            switch fragment {
            case .text(let range): encodeOrdinary(utf8[range], into: &out, cache: &cache)
            case .token(let id): out.append(id)
            }
        }
        return out
    }

    /// The token's bytes: control and user-defined tokens give their text, BOS and EOS nothing.
    public func decode(_ token: Int, after previous: Int?) -> [UInt8] {
        guard token >= 0, token < tokenBytes.count else { return [] }
        return tokenBytes[token]
    }

    /// Encodes text that holds no special token.
    private func encodeOrdinary(_ utf8: ArraySlice<UInt8>, into out: inout [Int], cache: inout [ArraySlice<UInt8>: [Int]]) {
        guard !utf8.isEmpty else { return }
        for range in preTokenizer.split(utf8) {
            let piece = utf8[range]
            if let cached = cache[piece] {
                out += cached
            } else {
                let ids = encodePiece(piece)
                cache[piece] = ids
                out += ids
            }
        }
    }

    /// BPE over one pre-token, from its bytes' characters.
    private func encodePiece(_ piece: ArraySlice<UInt8>) -> [Int] {
        if preTokenizer.ignoresMerges, piece.count > 1 {
            var scalars = String.UnicodeScalarView()
            for byte in piece { scalars.append(Self.byteCharacters[Int(byte)]) }
            if let id = ids[String(scalars)] { return [id] }
        }
        return merges.apply(piece.map { byteIDs[Int($0)] }.filter { $0 >= 0 })
    }

    /// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68
    /// bytes (controls, space, DEL, NBSP, soft hyphen) for U+0100 onwards, in byte order.
    static let byteCharacters: [Unicode.Scalar] = {
        var next: UInt32 = 0x100
        return (0..<256).map { (byte: UInt32) -> Unicode.Scalar in
            if (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte) {
                return Unicode.Scalar(byte)!
            }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()

    /// Byte of each scalar value in `byteCharacters` (indexed by value), -1 elsewhere.
    private static let characterBytes: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in byteCharacters.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// A byte-level token string's bytes; a token with characters outside the table (not made by
    /// byte-level BPE) stands for its own UTF-8, as Hugging Face's ByteLevel decoder has it.
    private static func bytes(ofByteLevel token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        for scalar in token.unicodeScalars {
            let value = Int(scalar.value)
            guard value < characterBytes.count, characterBytes[value] >= 0 else { return Array(token.utf8) }
            bytes.append(UInt8(characterBytes[value]))
        }
        return bytes
    }
}
