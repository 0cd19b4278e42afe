import KVLabFoundation

/// GGUF's token types (`tokenizer.ggml.token_type`), also used for tokenizer.json specials.
public enum TokenType: Int32, Sendable, Codable {
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// Everything that defines a tokenizer, in the form the file formats store it. Loaders produce
/// one, writers consume one, and `makeTokenizer()` turns it into a working tokenizer.
public struct TokenizerSpec: Sendable, Equatable {
    public enum Model: String, Sendable {
        /// SentencePiece-style: pieces use "▁" for spaces, a dummy-prefix space, merges chosen by
        /// piece score, bytes as `<0xAB>` fallback tokens (llama2.c, GGUF `llama`).
        case sentencePiece = "llama"
        /// Byte-level BPE: bytes mapped to printable characters, regex pre-tokenization, merges
        /// by rank (GGUF `gpt2`; Llama-3, Qwen2, SmolLM tokenizer.json).
        case byteLevelBPE = "gpt2"
        /// Gemma 4's: SentencePiece's pieces ("▁" for spaces, `<0xAB>` byte fallback, no dummy
        /// prefix) merged by rank (GGUF `gemma4`).
        case sentencePieceBPE = "gemma4"
    }

    public var model: Model
    /// Token strings as stored in GGUF (`▁` for spaces in SentencePiece pieces).
    public var tokens: [String]
    /// Merge priority per token (higher merges first); SentencePiece only.
    public var scores: [Float]
    public var types: [TokenType]
    /// "left right" merge rules in rank order; byte-level BPE and Gemma 4's only.
    public var merges: [String]
    public var bosID: Int?
    public var eosID: Int?
    public var unknownID: Int?
    /// Whether `encode` starts with BOS.
    public var addBOS: Bool
    /// Pre-tokenizer name for byte-level BPE, as GGUF's `tokenizer.ggml.pre` ("default" = GPT-2's
    /// pattern, "llama-bpe" = Llama-3's, "qwen2", "smollm").
    public var preTokenizer: String
    /// SentencePiece: whether text starts with a space ("▁") at the start and after each special
    /// token (GGUF `tokenizer.ggml.add_space_prefix`; Gemma's tokenizers have it off).
    public var addSpacePrefix: Bool
    /// Special tokens that swallow the whitespace before (`lstrip`) or after (`rstrip`) them, as
    /// tokenizer.json's added tokens say (Phi-3's chat tokens strip what follows them).
    public var stripsLeft: Set<Int>
    public var stripsRight: Set<Int>
    /// The instruct model's Jinja chat template (tokenizer_config.json `chat_template`,
    /// chat_template.jinja, GGUF `tokenizer.chat_template`); nil for base models.
    public var chatTemplate: String?

    public init(model: Model, tokens: [String], scores: [Float] = [], types: [TokenType] = [], merges: [String] = [],
                bosID: Int? = nil, eosID: Int? = nil, unknownID: Int? = nil, addBOS: Bool = true,
                preTokenizer: String = "default", addSpacePrefix: Bool = true,
                stripsLeft: Set<Int> = [], stripsRight: Set<Int> = [], chatTemplate: String? = nil) {
        self.model = model
        self.tokens = tokens
        self.scores = scores
        self.types = types.isEmpty ? Array(repeating: .normal, count: tokens.count) : types
        self.merges = merges
        self.bosID = bosID
        self.eosID = eosID
        self.unknownID = unknownID
        self.addBOS = addBOS
        self.preTokenizer = preTokenizer
        self.addSpacePrefix = addSpacePrefix
        self.stripsLeft = stripsLeft
        self.stripsRight = stripsRight
        self.chatTemplate = chatTemplate
    }

    /// Checks internal consistency (array lengths, special ids in range).
    public func validate(vocabSize: Int? = nil) throws {
        guard !tokens.isEmpty else { throw FormatError("tokenizer has no tokens") }
        if let vocabSize, tokens.count != vocabSize {
            throw FormatError("tokenizer has \(tokens.count) tokens, the model's vocabulary is \(vocabSize)")
        }
        guard types.count == tokens.count else { throw FormatError("tokenizer has \(types.count) token types for \(tokens.count) tokens") }
        if model == .sentencePiece, scores.count != tokens.count {
            throw FormatError("tokenizer has \(scores.count) scores for \(tokens.count) tokens")
        }
        for (name, id) in [("BOS", bosID), ("EOS", eosID), ("unknown", unknownID)] {
            if let id, !(0..<tokens.count).contains(id) { throw FormatError("tokenizer \(name) id \(id) is out of range") }
        }
        if let id = stripsLeft.union(stripsRight).first(where: { !(0..<tokens.count).contains($0) }) {
            throw FormatError("tokenizer strips whitespace around token \(id), which is out of range")
        }
    }

    /// Builds the tokenizer this spec describes.
    public func makeTokenizer() throws -> any Tokenizer {
        try validate()
        switch model {
        case .sentencePiece: return try SentencePieceTokenizer(spec: self)
        case .byteLevelBPE: return try ByteLevelBPETokenizer(spec: self)
        case .sentencePieceBPE: return try SentencePieceBPETokenizer(spec: self)
        }
    }
}

/// Text ↔ token ids. Decoding is per token into bytes, because one token may hold part of a
/// UTF-8 character; `TextStream` reassembles characters.
public protocol Tokenizer: Sendable {
    var spec: TokenizerSpec { get }
    /// Token ids for `text`, starting with BOS when the spec says so.
    func encode(_ text: String) -> [Int]
    /// The bytes token `token` stands for when it follows `previous` (nil at the start).
    func decode(_ token: Int, after previous: Int?) -> [UInt8]
}

extension Tokenizer {
    public var vocabularySize: Int { spec.tokens.count }

    /// Decodes a whole sequence to text (invalid UTF-8 replaced), skipping a leading BOS.
    public func decode(_ tokens: [Int]) -> String {
        var bytes: [UInt8] = []
        var previous: Int?
        for token in tokens {
            if previous == nil, token == spec.bosID {
                previous = token
                continue
            }
            bytes += decode(token, after: previous)
            previous = token
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Reassembles streamed token bytes into whole UTF-8 characters, holding back an incomplete
/// trailing sequence until the next token completes it.
public struct TextStream: Sendable {
    private var pending: [UInt8] = []

    public init() {}

    /// Appends bytes and returns the text that is now complete.
    public mutating func push(_ bytes: [UInt8]) -> String {
        pending += bytes
        var end = pending.count
        // Find the start of a possibly incomplete final character (at most 3 bytes back).
        var i = pending.count - 1
        while i >= 0, i >= pending.count - 4 {
            let byte = pending[i]
            if byte & 0xC0 == 0x80 { i -= 1; continue }
            let needed = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            if pending.count - i < needed { end = i }
            break
        }
        let text = String(decoding: pending[..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    /// Whatever is left (an incomplete character comes out as U+FFFD).
    public mutating func flush() -> String {
        defer { pending = [] }
        return String(decoding: pending, as: UTF8.self)
    }
}

/// Token ids by token text, compared code point by code point. Swift's `String` equality is
/// canonical equivalence, under which distinct vocabulary entries such as "ί" (U+1F77) and "ί"
/// (U+03AF), both in Llama-2's vocabulary, would be one key.
struct TokenIndex: Sendable {
    private var ids: [[UInt8]: Int] = [:]

    /// The first id of each distinct token text.
    init(_ tokens: [String]) {
        ids.reserveCapacity(tokens.count)
        for (id, token) in tokens.enumerated() { _ = insert(token, id: id) }
    }

    subscript(_ text: String) -> Int? { ids[Array(text.utf8)] }

    /// Records `id` for `text` unless it already has one; returns the id `text` had before.
    mutating func insert(_ text: String, id: Int) -> Int? {
        let key = Array(text.utf8)
        if let existing = ids[key] { return existing }
        ids[key] = id
        return nil
    }
}
