@testable import KVLabEngine
import KVLabFoundation
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// One pre-tokenizer expectation from ByteLevelBPEExpectations.swift.
struct SplitCase: Sendable, CustomTestStringConvertible {
    var flavor: String
    var input: String
    var expected: [String]
    init(_ flavor: String, _ input: String, _ expected: [String]) {
        self.flavor = flavor
        self.input = input
        self.expected = expected
    }
    var testDescription: String { "\(flavor) \(input.debugDescription)" }
}

/// One encoding expectation from ByteLevelBPEExpectations.swift.
struct EncodingCase: Sendable, CustomTestStringConvertible {
    var flavor: String
    var input: String
    var ids: [Int]
    init(_ flavor: String, _ input: String, _ ids: [Int]) {
        self.flavor = flavor
        self.input = input
        self.ids = ids
    }
    var testDescription: String { "\(flavor) \(input.debugDescription)" }
}

@Suite struct ByteLevelBPETests {
    static let flavors = ["default", "llama-bpe", "qwen2", "smollm"]

    /// The tokenizer trained by scripts/bpe_expectations.py, with "<|endoftext|>" as BOS and EOS.
    static func trained(_ flavor: String, addBOS: Bool = false) throws -> ByteLevelBPETokenizer {
        let tokens = BPEExpectations.tokens
        let types: [TokenType] = tokens.map { token in
            BPEExpectations.controlTokens.contains(token) ? .control
                : BPEExpectations.userDefinedTokens.contains(token) ? .userDefined : .normal
        }
        let endOfText = tokens.firstIndex(of: "<|endoftext|>")
        return try ByteLevelBPETokenizer(spec: TokenizerSpec(
            model: .byteLevelBPE, tokens: tokens, types: types, merges: BPEExpectations.merges,
            bosID: endOfText, eosID: endOfText, addBOS: addBOS, preTokenizer: flavor))
    }

    /// Every byte's character, in code point order as Hugging Face's `ByteLevel.alphabet()`.
    static let byteTokens = ByteLevelBPETokenizer.byteCharacters.sorted { $0.value < $1.value }.map { String($0) }

    /// A vocabulary of the bytes plus `extra`, with `types` for the extra tokens.
    static func spec(extra: [String] = [], types extraTypes: [TokenType]? = nil, merges: [String] = [],
                     preTokenizer: String = "default") -> TokenizerSpec {
        TokenizerSpec(model: .byteLevelBPE, tokens: byteTokens + extra,
                      types: Array(repeating: .normal, count: 256) + (extraTypes ?? extra.map { _ in .normal }),
                      merges: merges, addBOS: false, preTokenizer: preTokenizer)
    }

    @Test(arguments: BPEExpectations.splits)
    func preTokenizerMatchesRegex(_ c: SplitCase) throws {
        #expect(try PreTokenizer(name: c.flavor).split(c.input) == c.expected)
    }

    @Test(arguments: BPEExpectations.encodings)
    func encodingMatchesHuggingFace(_ c: EncodingCase) throws {
        #expect(try Self.trained(c.flavor).encode(c.input) == c.ids)
    }

    @Test func bosIsPrependedWhenTheSpecSaysSo() throws {
        let tokenizer = try Self.trained("default", addBOS: true)
        let ids = tokenizer.encode("Speak, speak.")
        #expect(ids.first == 0)
        #expect(Array(ids.dropFirst()) == (try Self.trained("default")).encode("Speak, speak."))
        #expect(tokenizer.decode(ids) == "Speak, speak.")
    }

    @Test func byteCharactersAreGPT2s() {
        let characters = ByteLevelBPETokenizer.byteCharacters
        #expect(characters[0x00] == "\u{100}")
        #expect(characters[0x0A] == "Ċ")
        #expect(characters[0x20] == "Ġ")
        #expect(characters[0x41] == "A")
        #expect(characters[0x7F] == "ġ")
        #expect(characters[0xA0] == "ł")
        #expect(characters[0xAD] == "Ń")
        #expect(characters[0xE9] == "é")
        #expect(Set(characters).count == 256)
    }

    @Test(arguments: ["default", "llama-bpe"])
    func ignoreMergesIsLlama3Only(_ flavor: String) throws {
        let tokenizer = try ByteLevelBPETokenizer(spec: Self.spec(
            extra: ["ab", "bc", "abc"], merges: ["a b", "b c", "a bc"], preTokenizer: flavor))
        let strings = { (text: String) in tokenizer.encode(text).map { tokenizer.spec.tokens[$0] } }
        #expect([strings("abc"), strings("xabc")] == BPEExpectations.handmade[flavor])
    }

    @Test func mergesApplyLowestRankFirstAndLeftmostOnTies() throws {
        let tokenizer = try ByteLevelBPETokenizer(spec: Self.spec(
            extra: ["aa", "ab", "aaa"], merges: ["a b", "a a", "aa a"]))
        let strings = { (text: String) in tokenizer.encode(text).map { tokenizer.spec.tokens[$0] } }
        #expect(strings("aab") == ["a", "ab"])
        #expect(strings("aaa") == ["aaa"])
        #expect(strings("aaaa") == ["aa", "aa"])
        #expect(strings("aaaaab") == ["aa", "aa", "ab"])
    }

    @Test func longPiecesEncodeQuickly() throws {
        let tokenizer = try Self.trained("default")
        let text = String(repeating: "thereupon", count: 12_000)
        let start = ContinuousClock.now
        let ids = tokenizer.encode(text)
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(tokenizer.decode(ids) == text)
    }

    @Test(arguments: flavors)
    func englishTextEncodesQuickly(_ flavor: String) throws {
        let tokenizer = try Self.trained(flavor)
        var text = ""
        var random = Xoshiro256(seed: 7)
        let words = ["the", "citizens", "speak", "Marcius", "we'll", "know't", "1599", "away!", "--", "O,"]
        while text.utf8.count < 100_000 {
            text += words[Int(random.next() % UInt64(words.count))] + (random.next() % 9 == 0 ? ".\n" : " ")
            text += String(random.next() % 1000)
        }
        let start = ContinuousClock.now
        let ids = tokenizer.encode(text)
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(tokenizer.decode(ids) == text)
    }

    static let roundTripStrings = [
        "", " ", "  ", "\n", "\r\n", "\r\n\r\n\t ", "Hello, world!", "DON'T 'Re 'ſx",
        "emoji 👋🏽 family 👨‍👩‍👧 flags 🇫🇷🇯🇵 ok😀",
        "\u{0}\u{1}\u{7}\u{1B}[0m\u{7F}\u{80}\u{9F}\u{AD}",
        "\u{FFFD}\u{FEFF}\u{200B}\u{200D}\u{2028}\u{2029}\u{3000}\u{A0}",
        "\u{301}leading combining, e\u{301}, Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇",
        "\u{D7FF}\u{E000}\u{F8FF}\u{FFFF}\u{10000}\u{10FFFF}",
        "עברית مرحبا \u{200F}rtl\u{200E} हिन्दी 한국어 각",
        "<|im_start|>user\nhi [[name]]<|im_end|>",
        "<|im_sta <|im_end| [[name]s",
        "12345 3.14159 x²³ ½ Ⅻ ٣٤٥",
    ]

    @Test(arguments: flavors)
    func decodeInvertsEncode(_ flavor: String) throws {
        let tokenizer = try Self.trained(flavor, addBOS: true)
        for text in Self.roundTripStrings {
            #expect(tokenizer.decode(tokenizer.encode(text)) == text)
        }
    }

    @Test(arguments: flavors)
    func decodeInvertsEncodeOnRandomScalars(_ flavor: String) throws {
        let tokenizer = try Self.trained(flavor)
        // Scalars from every class the pre-tokenizers tell apart, mostly ASCII, then anything.
        let pool = Array(" \t\n\r\u{B}\u{C}\u{85}\u{A0}\u{3000}'sStTreREvlLdDmM09٣²ſaZé日😀!.,-\u{0}\u{301}".unicodeScalars)
        var random = Xoshiro256(seed: 42)
        for _ in 0..<300 {
            var scalars = String.UnicodeScalarView()
            for _ in 0..<Int(random.next() % 40) {
                if random.next() % 8 == 0 {
                    scalars.append(Unicode.Scalar(UInt32(random.next() % 0x10FFFF)) ?? "\u{FFFD}")
                } else {
                    scalars.append(pool[Int(random.next() % UInt64(pool.count))])
                }
            }
            let text = String(scalars)
            let pieces = try PreTokenizer(name: flavor).split(text)
            #expect(pieces.joined() == text && !pieces.contains(""), "\(text.debugDescription)")
            #expect(tokenizer.decode(tokenizer.encode(text)) == text, "\(text.debugDescription)")
        }
    }

    @Test func specialTokensAreMatchedVerbatimLeftmostLongest() throws {
        let tokenizer = try ByteLevelBPETokenizer(spec: Self.spec(
            extra: ["<s>", "<s>x", "<|eot|>"], types: [.control, .userDefined, .control]))
        let s = 256, sx = 257, eot = 258
        let bytes = { (text: String) in text.utf8.map { tokenizer.spec.tokens.firstIndex(of: String(ByteLevelBPETokenizer.byteCharacters[Int($0)]))! } }
        #expect(tokenizer.encode("<s>") == [s])
        #expect(tokenizer.encode("<s>x<s>") == [sx, s])
        #expect(tokenizer.encode("a<s><|eot|>b") == bytes("a") + [s, eot] + bytes("b"))
        #expect(tokenizer.encode("<|eot|") == bytes("<|eot|"))
        #expect(tokenizer.encode("<<s>>") == bytes("<") + [s] + bytes(">"))
    }

    @Test func specialTokensDecodeToTheirTextExceptBOSAndEOS() throws {
        let tokenizer = try Self.trained("default")
        let ids = { (token: String) in BPEExpectations.tokens.firstIndex(of: token)! }
        #expect(tokenizer.decode(ids("<|endoftext|>"), after: nil) == [])
        #expect(tokenizer.decode(ids("<|im_start|>"), after: nil) == Array("<|im_start|>".utf8))
        #expect(tokenizer.decode(ids("[[name]]"), after: 5) == Array("[[name]]".utf8))
        #expect(tokenizer.decode(ids("Ġ"), after: nil) == [0x20])
        #expect(tokenizer.decode(-1, after: nil) == [])
        #expect(tokenizer.decode(BPEExpectations.tokens.count, after: nil) == [])
    }

    @Test func makeTokenizerBuildsByteLevelBPE() throws {
        let tokenizer = try Self.spec(preTokenizer: "qwen2").makeTokenizer()
        #expect(tokenizer is ByteLevelBPETokenizer)
        #expect(tokenizer.decode(tokenizer.encode("héllo 123")) == "héllo 123")
    }

    /// A byte without a token is dropped, as llama.cpp and Hugging Face do (real vocabularies
    /// such as StarCoder's lack the bytes that never occur in UTF-8).
    @Test func aByteWithoutATokenIsDropped() throws {
        let tokenizer = try ByteLevelBPETokenizer(spec: TokenizerSpec(model: .byteLevelBPE, tokens: Self.byteTokens.filter { $0 != "\u{100}" }))
        #expect(tokenizer.encode("a\u{0}b") == tokenizer.encode("ab"))
    }

    struct BadSpec: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var spec: TokenizerSpec
        var message: String
    }

    static let badSpecs = [
        BadSpec(testDescription: "one-token merge", spec: spec(extra: ["ab"], merges: ["ab"]), message: "not two tokens"),
        BadSpec(testDescription: "three-token merge", spec: spec(extra: ["ab"], merges: ["a b c"]), message: "not two tokens"),
        BadSpec(testDescription: "empty merge part", spec: spec(extra: ["ab"], merges: ["a "]), message: "not two tokens"),
        BadSpec(testDescription: "unknown merge part", spec: spec(extra: ["ab"], merges: ["a xy"]), message: "\"xy\""),
        BadSpec(testDescription: "unknown merge result", spec: spec(merges: ["a b"]), message: "\"ab\""),
        BadSpec(testDescription: "unknown pre-tokenizer", spec: spec(preTokenizer: "klingon"), message: "klingon"),
    ]

    @Test(arguments: badSpecs)
    func badSpecsThrow(_ bad: BadSpec) {
        let error = #expect(throws: FormatError.self) { try ByteLevelBPETokenizer(spec: bad.spec) }
        #expect(error?.problem.contains(bad.message) == true, "\(error?.problem ?? "")")
    }
}

extension PreTokenizer {
    /// The pieces of `text` as strings.
    func split(_ text: String) -> [String] {
        let utf8 = Array(text.utf8)
        return split(utf8[...]).map { String(decoding: utf8[$0], as: UTF8.self) }
    }
}
