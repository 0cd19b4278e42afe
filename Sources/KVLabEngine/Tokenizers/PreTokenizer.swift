import KVLabFoundation

/// Byte-level BPE pre-tokenization: splits text into the pieces that BPE merges never cross,
/// exactly as the flavour's regex does, by a hand-written scanner over Unicode scalars (a regex
/// engine would be much slower, and Swift Regex's classes differ from PCRE/Oniguruma's).
struct PreTokenizer: Sendable {
    /// The pre-tokenization rules of one model family.
    enum Flavor: Sendable {
        /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
        case gpt2
        /// Llama-3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
        /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
        case llama3
        /// Qwen2: Llama-3's pattern with `\p{N}` (one digit per piece) for `\p{N}{1,3}`. Its
        /// tokenizer.json also NFC-normalizes; like llama.cpp, kvlab keeps the text as given.
        case qwen2
        /// Qwen3.5: Qwen2's pattern with combining marks (`\p{M}`) inside letter runs:
        /// `[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+` and ` ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*`.
        case qwen35
        /// SmolLM, StarCoder, Refact: every `\p{N}` is its own piece; GPT-2's pattern splits the
        /// text between them.
        case smolLM
    }

    /// What the patterns distinguish about a scalar.
    enum CharClass: UInt8 {
        /// `\p{L}`.
        case letter
        /// `\p{N}`.
        case number
        /// `\p{M}`, for Qwen3.5 only (the other flavours count marks as `other`).
        case mark
        /// `\s` other than `\r` and `\n`.
        case space
        /// `\r` or `\n`.
        case newline
        /// Anything else (`[^\s\p{L}\p{N}]`).
        case other
    }

    let flavor: Flavor

    /// The flavour GGUF's `tokenizer.ggml.pre` names: "default" or "gpt-2", "llama-bpe", "qwen2",
    /// "qwen35", "smollm" (or "starcoder", "refact", which llama.cpp gives the same regexes).
    init(name: String) throws {
        switch name {
        case "default", "gpt-2": flavor = .gpt2
        case "llama-bpe": flavor = .llama3
        case "qwen2": flavor = .qwen2
        case "qwen35": flavor = .qwen35
        case "smollm", "starcoder", "refact": flavor = .smolLM
        default:
            throw FormatError("unknown byte-level BPE pre-tokenizer \"\(name)\" (expected default, gpt-2, llama-bpe, qwen2, qwen35, smollm, starcoder or refact)")
        }
    }

    /// Whether a piece that is a whole vocabulary token skips the merges (Hugging Face's
    /// `ignore_merges`, which Llama-3's tokenizer sets).
    var ignoresMerges: Bool { flavor == .llama3 }

    /// The byte ranges (indices into `utf8`'s base) of the pieces of valid UTF-8 `utf8`, in order.
    func split(_ utf8: ArraySlice<UInt8>) -> [Range<Int>] {
        let scanner = Scanner(utf8, marks: flavor == .qwen35)
        var pieces: [Range<Int>] = []
        var start = 0
        let count = scanner.classes.count
        // SmolLM: where the digit-free stretch containing `start` ends.
        var segmentEnd = 0
        while start < count {
            let end: Int
            switch flavor {
            case .gpt2: end = scanner.gpt2(start, count)
            case .llama3: end = scanner.llama3(start, count, maxDigits: 3)
            case .qwen2, .qwen35: end = scanner.llama3(start, count, maxDigits: 1)
            case .smolLM:
                if scanner.classes[start] == .number {
                    end = start + 1
                } else {
                    if segmentEnd <= start {
                        segmentEnd = start + 1
                        while segmentEnd < count, scanner.classes[segmentEnd] != .number { segmentEnd += 1 }
                    }
                    end = scanner.gpt2(start, segmentEnd)
                }
            }
            pieces.append(scanner.offsets[start]..<scanner.offsets[end])
            start = end
        }
        return pieces
    }

    /// The scalars of a text with their classes, and the regex alternatives as functions that
    /// return where the match starting at a scalar index ends.
    private struct Scanner {
        var scalars: [UInt32] = []
        var classes: [CharClass] = []
        /// Byte offset of each scalar, plus the end offset.
        var offsets: [Int] = []

        /// `marks`: tell combining marks (`.mark`) from other scalars.
        init(_ utf8: ArraySlice<UInt8>, marks: Bool) {
            scalars.reserveCapacity(utf8.count)
            classes.reserveCapacity(utf8.count)
            offsets.reserveCapacity(utf8.count + 1)
            var i = utf8.startIndex
            while i < utf8.endIndex {
                let lead = UInt32(utf8[i])
                var value: UInt32
                var length: Int
                switch lead {
                case ..<0x80: value = lead; length = 1
                case ..<0xE0: value = lead & 0x1F; length = 2
                case ..<0xF0: value = lead & 0x0F; length = 3
                default: value = lead & 0x07; length = 4
                }
                for k in 1..<length { value = value << 6 | UInt32(utf8[i + k] & 0x3F) }
                scalars.append(value)
                let kind = Self.classify(value)
                classes.append(marks && kind == .other && Self.isMark(value) ? .mark : kind)
                offsets.append(i)
                i += length
            }
            offsets.append(i)
        }

        private static let asciiClasses: [CharClass] = (0..<128).map { (value: UInt32) -> CharClass in
            switch value {
            case 0x0A, 0x0D: .newline
            case 0x09, 0x0B, 0x0C, 0x20: .space
            case 0x30...0x39: .number
            case 0x41...0x5A, 0x61...0x7A: .letter
            default: .other
            }
        }

        static func classify(_ value: UInt32) -> CharClass {
            if value < 0x80 { return asciiClasses[Int(value)] }
            let properties = Unicode.Scalar(value)!.properties
            // `\s` is Unicode White_Space in Oniguruma (Hugging Face) and PCRE2 (llama.cpp).
            if properties.isWhitespace { return .space }
            switch properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
            case .decimalNumber, .letterNumber, .otherNumber: return .number
            default: return .other
            }
        }

        /// `\p{M}`: nonspacing, spacing and enclosing marks (none below U+0300).
        static func isMark(_ value: UInt32) -> Bool {
            guard value >= 0x300 else { return false }
            switch Unicode.Scalar(value)!.properties.generalCategory {
            case .nonspacingMark, .spacingMark, .enclosingMark: return true
            default: return false
            }
        }

        /// The end of the run of `wanted` scalars from `i`, at most `end`.
        func run(_ i: Int, _ end: Int, _ wanted: CharClass) -> Int {
            var j = i
            while j < end, classes[j] == wanted { j += 1 }
            return j
        }

        func isWhitespace(_ i: Int) -> Bool { classes[i] == .space || classes[i] == .newline }

        /// `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitively for Llama-3 and Qwen2, whose `(?i:…)`
        /// also lets the long s "ſ" (which case-folds to "s") stand for "s".
        func contraction(_ i: Int, _ end: Int, ignoringCase: Bool) -> Int? {
            guard scalars[i] == 0x27, i + 1 < end else { return nil }
            func letter(_ k: Int) -> UInt32 {
                let value = scalars[k]
                guard ignoringCase else { return value }
                if value == 0x17F { return 0x73 }
                return (0x41...0x5A).contains(value) ? value + 0x20 : value
            }
            switch letter(i + 1) {
            case 0x73, 0x74, 0x6D, 0x64: return i + 2  // s t m d
            case 0x72, 0x76: return i + 2 < end && letter(i + 2) == 0x65 ? i + 3 : nil  // re ve
            case 0x6C: return i + 2 < end && letter(i + 2) == 0x6C ? i + 3 : nil  // ll
            default: return nil
            }
        }

        /// `\s+(?!\S)|\s+` from whitespace at `i`: the run without its last scalar when a
        /// non-space follows it (that scalar then starts the next piece), unless it is one scalar.
        func trailingWhitespace(_ i: Int, _ end: Int) -> Int {
            var j = i
            while j < end, isWhitespace(j) { j += 1 }
            return j < end && j - i > 1 ? j - 1 : j
        }

        /// The end of GPT-2's match at `i`, within `i..<end`.
        func gpt2(_ i: Int, _ end: Int) -> Int {
            if let e = contraction(i, end, ignoringCase: false) { return e }
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a leading space joins the run after it.
            let k = scalars[i] == 0x20 ? i + 1 : i
            if k < end, classes[k] != .space, classes[k] != .newline { return run(k, end, classes[k]) }
            return trailingWhitespace(i, end)
        }

        /// The end of the run of letters and marks from `i` (`[\p{L}\p{M}]+`; marks only appear for Qwen3.5).
        func word(_ i: Int, _ end: Int) -> Int {
            var j = i
            while j < end, classes[j] == .letter || classes[j] == .mark { j += 1 }
            return j
        }

        /// The end of Llama-3's (or, with `maxDigits` 1, Qwen2's and Qwen3.5's) match at `i`, within `i..<end`.
        func llama3(_ i: Int, _ end: Int, maxDigits: Int) -> Int {
            if let e = contraction(i, end, ignoringCase: true) { return e }
            let c = classes[i]
            // `[^\r\n\p{L}\p{N}]?\p{L}+` (Qwen3.5: `[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+`)
            if c == .letter || c == .mark { return word(i, end) }
            if c == .space || c == .other, i + 1 < end, classes[i + 1] == .letter || classes[i + 1] == .mark { return word(i + 1, end) }
            // `\p{N}{1,3}`
            if c == .number { return min(run(i, end, .number), i + maxDigits) }
            // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
            let k = scalars[i] == 0x20 ? i + 1 : i
            if k < end, classes[k] == .other { return run(run(k, end, .other), end, .newline) }
            // `\s*[\r\n]+`: the whitespace run up to its last line break.
            var j = i
            var lastNewline: Int?
            while j < end, isWhitespace(j) {
                if classes[j] == .newline { lastNewline = j }
                j += 1
            }
            if let lastNewline { return lastNewline + 1 }
            return trailingWhitespace(i, end)
        }
    }
}
