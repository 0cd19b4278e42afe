/// Cuts the special tokens (control, user-defined and unknown tokens, such as `<|im_start|>` or
/// `<s>`) out of a text before the ordinary tokenizer sees the rest, as Hugging Face's added-token
/// splitting and llama.cpp's `tokenizer_st_partition` do: the leftmost match wins, the longest
/// one at a position, and a token marked to strip whitespace eats it on that side.
struct SpecialTokens: Sendable {
    /// A piece of the text: ordinary bytes, or one special token.
    enum Fragment: Equatable {
        case text(Range<Int>)
        case token(Int)
    }

    private struct Special {
        var bytes: [UInt8]
        var id: Int
    }

    /// Specials by their first UTF-8 byte, longest first.
    private let byFirstByte: [[Special]]
    private let stripLeft: Set<Int>
    private let stripRight: Set<Int>

    init(spec: TokenizerSpec) {
        var table = [[Special]](repeating: [], count: 256)
        for (id, token) in spec.tokens.enumerated() where !token.isEmpty {
            switch spec.types[id] {
            case .control, .userDefined, .unknown:
                let bytes = Array(token.utf8)
                table[Int(bytes[0])].append(Special(bytes: bytes, id: id))
            default: break
            }
        }
        // Equal strings keep the lower id.
        byFirstByte = table.map { $0.sorted { ($0.bytes.count, -$0.id) > ($1.bytes.count, -$1.id) } }
        stripLeft = spec.stripsLeft
        stripRight = spec.stripsRight
    }

    /// The fragments of `utf8` in order; text fragments are never empty.
    func split(_ utf8: [UInt8]) -> [Fragment] {
        var fragments: [Fragment] = []
        var start = 0
        var i = 0
        while i < utf8.count {
            guard let special = byFirstByte[Int(utf8[i])].first(where: { utf8[i...].starts(with: $0.bytes) }) else {
                i += 1
                continue
            }
            var end = i
            if stripLeft.contains(special.id) {
                while end > start, Self.isSpace(utf8[end - 1]) { end -= 1 }
            }
            if end > start { fragments.append(.text(start..<end)) }
            fragments.append(.token(special.id))
            i += special.bytes.count
            if stripRight.contains(special.id) {
                while i < utf8.count, Self.isSpace(utf8[i]) { i += 1 }
            }
            start = i
        }
        if start < utf8.count { fragments.append(.text(start..<utf8.count)) }
        return fragments
    }

    /// C's `isspace`, which llama.cpp strips with (Hugging Face strips Unicode whitespace; the
    /// chat templates only put ASCII whitespace next to special tokens).
    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (0x09...0x0D).contains(byte)
    }
}
