import KVLabFoundation

/// Hugging Face `tokenizer.json` (BPE models) and `tokenizer_config.json`, read into and written
/// from a `TokenizerSpec`.
///
/// Two flavours of BPE tokenizer.json map onto kvlab's tokenizers:
/// - SentencePiece-style (Llama-2: `byte_fallback`, or a normalizer/pre-tokenizer turning " " into
///   "▁") becomes a `.sentencePiece` spec. Its merges become scores: a token made by merge rank r
///   scores -r (its lowest rank), so best-score-first merging applies merges in rank order; tokens
///   no merge makes score -1e9, below every merge, so they are only formed when nothing else is.
/// - Byte-level BPE (a `ByteLevel` pre-tokenizer, alone or after a `Split` regex or `Digits`)
///   becomes a `.byteLevelBPE` spec whose `preTokenizer` names the regex as llama.cpp does.
enum HFTokenizer {
    /// Score of tokens that no merge produces (see the type's documentation).
    static let unmergedScore: Float = -1e9

    /// The Split regexes kvlab recognizes, by llama.cpp pre-tokenizer name.
    static let splitPatterns: [(name: String, regex: String)] = [
        ("default", #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#),
        ("llama-bpe", #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#),
        ("qwen2", #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#),
        ("qwen35", #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#),
    ]

    // MARK: - Reading

    /// The spec described by `tokenizer.json`, with BOS/EOS and `add_bos_token` taken from
    /// `tokenizer_config.json` when present, else from `config.json`'s token ids.
    /// `chatTemplateFile` is chat_template.jinja's text, which newer transformers save instead of
    /// a `chat_template` in tokenizer_config.json.
    static func spec(tokenizer root: JSONValue, tokenizerConfig: JSONValue?, modelConfig: JSONValue?,
                     chatTemplateFile: String? = nil) throws -> TokenizerSpec {
        guard root.members != nil else { throw FormatError("is \(root.kind), expected a JSON object") }
        guard let model = root["model"], model.members != nil else { throw FormatError("has no model object") }
        switch model["type"]?.string {
        case "BPE": break
        case let other?: throw FormatError("tokenizer model \(other) is not supported (kvlab reads BPE tokenizers)")
        case nil: throw FormatError("model has no type")
        }
        let (tokens, added) = try vocabulary(model: model, addedTokens: root["added_tokens"])
        let ids = TokenIndex(tokens)
        let merges = try mergePairs(model["merges"])

        let sentencePiece = model["byte_fallback"]?.bool == true || replacesSpaceWithMeta(root["normalizer"])
            || isMetaspace(root["pre_tokenizer"])
        var types = tokens.map { sentencePiece && SentencePieceTokenizer.byteValue($0) != nil ? TokenType.byte : .normal }
        for token in added { types[token.id] = token.special ? .control : .userDefined }
        let stripsLeft = Set(added.filter(\.lstrip).map(\.id)), stripsRight = Set(added.filter(\.rstrip).map(\.id))
        var unknownID: Int?
        if let unknown = model["unk_token"], !unknown.isNull {
            guard let text = unknown.string, let id = ids[text] else {
                throw FormatError("model.unk_token is not a token of the vocabulary")
            }
            unknownID = id
            types[id] = .unknown
        }

        func special(_ key: String) throws -> Int? {
            if let value = tokenizerConfig?[key], !value.isNull {
                guard let text = value.string ?? value["content"]?.string else {
                    throw FormatError("tokenizer_config.json \(key) is \(value.kind), expected a string")
                }
                guard let id = ids[text] else {
                    throw FormatError("tokenizer_config.json \(key) \(text) is not in the vocabulary")
                }
                return id
            }
            guard let value = modelConfig?["\(key)_id"], !value.isNull else { return nil }
            // Some configs list several EOS ids; the first is the primary one.
            guard let id = value.integer ?? value.array?.first?.integer else {
                throw FormatError("config.json \(key)_id is \(value.kind), expected an integer")
            }
            return id
        }
        var addBOS = sentencePiece
        if let flag = tokenizerConfig?["add_bos_token"], !flag.isNull {
            guard let value = flag.bool else {
                throw FormatError("tokenizer_config.json add_bos_token is \(flag.kind), expected a boolean")
            }
            addBOS = value
        } else if let template = templateAddsSpecialPrefix(root["post_processor"]) {
            addBOS = template
        }

        var spec: TokenizerSpec
        if sentencePiece {
            var scores = [Float](repeating: unmergedScore, count: tokens.count)
            var scored = [Bool](repeating: false, count: tokens.count)
            for (rank, merge) in merges.enumerated() {
                guard let id = ids[merge.left + merge.right], !scored[id] else { continue }
                scores[id] = Float(-rank)
                scored[id] = true
            }
            spec = TokenizerSpec(model: .sentencePiece, tokens: tokens, scores: scores, types: types,
                                 bosID: try special("bos_token"), eosID: try special("eos_token"), unknownID: unknownID,
                                 addBOS: addBOS, addSpacePrefix: try addsDummyPrefix(root), stripsLeft: stripsLeft,
                                 stripsRight: stripsRight)
        } else {
            let preTokenizer = try byteLevelPreTokenizer(root["pre_tokenizer"])
            let strings = try merges.enumerated().map { rank, merge in
                guard !merge.left.contains(" "), !merge.right.contains(" ") else {
                    throw FormatError("merge \(rank) has a token containing a space, which byte-level BPE never produces")
                }
                return merge.left + " " + merge.right
            }
            spec = TokenizerSpec(model: .byteLevelBPE, tokens: tokens, types: types, merges: strings,
                                 bosID: try special("bos_token"), eosID: try special("eos_token"), unknownID: unknownID,
                                 addBOS: addBOS, preTokenizer: preTokenizer, stripsLeft: stripsLeft, stripsRight: stripsRight)
        }
        spec.chatTemplate = try chatTemplateFile ?? chatTemplate(tokenizerConfig)
        try spec.validate()
        return spec
    }

    /// tokenizer_config.json's `chat_template`: a string, or a list of named templates of which
    /// transformers applies "default".
    private static func chatTemplate(_ config: JSONValue?) throws -> String? {
        guard let value = config?["chat_template"], !value.isNull else { return nil }
        if let text = value.string { return text }
        guard let list = value.array else {
            throw FormatError("tokenizer_config.json chat_template is \(value.kind), expected a string or a list")
        }
        for entry in list where entry["name"]?.string == "default" {
            guard let text = entry["template"]?.string else {
                throw FormatError("tokenizer_config.json chat_template \"default\" has no template string")
            }
            return text
        }
        throw FormatError("tokenizer_config.json chat_template lists no \"default\" template")
    }

    private struct AddedToken {
        var id: Int
        var content: String
        var special: Bool
        var lstrip: Bool
        var rstrip: Bool
    }

    /// Tokens by id from `model.vocab` and `added_tokens`; the ids must be exactly 0..<count.
    private static func vocabulary(model: JSONValue, addedTokens: JSONValue?) throws -> ([String], [AddedToken]) {
        guard let vocab = model["vocab"]?.members else { throw FormatError("model.vocab is missing or not an object") }
        var byID: [Int: String] = [:]
        byID.reserveCapacity(vocab.count)
        for (token, value) in vocab {
            guard let id = value.integer, id >= 0 else {
                throw FormatError("vocabulary entry \(token) has an id that is not a non-negative integer")
            }
            if let other = byID[id] { throw FormatError("tokens \(other) and \(token) both have id \(id)") }
            byID[id] = token
        }
        var added: [AddedToken] = []
        if let list = addedTokens, !list.isNull {
            guard let entries = list.array else { throw FormatError("added_tokens is \(list.kind), expected an array") }
            for (index, entry) in entries.enumerated() {
                guard let id = entry["id"]?.integer, id >= 0, let content = entry["content"]?.string else {
                    throw FormatError("added_tokens[\(index)] needs a non-negative integer id and a string content")
                }
                if let existing = byID[id], !existing.utf8.elementsEqual(content.utf8) {
                    throw FormatError("added token \(content) has id \(id), which the vocabulary gives to \(existing)")
                }
                byID[id] = content
                added.append(AddedToken(id: id, content: content, special: entry["special"]?.bool ?? false,
                                        lstrip: entry["lstrip"]?.bool ?? false, rstrip: entry["rstrip"]?.bool ?? false))
            }
        }
        guard !byID.isEmpty else { throw FormatError("has an empty vocabulary") }
        // Ids are distinct, so they are exactly 0..<count when none reaches count.
        if let largest = byID.keys.max(), largest >= byID.count {
            throw FormatError("token ids are not contiguous: id \(largest) in a vocabulary of \(byID.count) tokens")
        }
        var tokens = [String](repeating: "", count: byID.count)
        for (id, token) in byID { tokens[id] = token }
        return (tokens, added)
    }

    /// Merges as (left, right) pairs, from "left right" strings or [left, right] arrays.
    private static func mergePairs(_ value: JSONValue?) throws -> [(left: String, right: String)] {
        guard let value, !value.isNull else { return [] }
        guard let list = value.array else { throw FormatError("model.merges is \(value.kind), expected an array") }
        return try list.enumerated().map { rank, merge in
            if let text = merge.string {
                guard let parts = RankedMerges.parts(of: text) else {
                    throw FormatError("merge \(rank) \"\(text.prefix(60))\" is not two tokens separated by a space")
                }
                return parts
            }
            guard let pair = merge.array, pair.count == 2, let left = pair[0].string, let right = pair[1].string else {
                throw FormatError("merge \(rank) is neither \"left right\" nor [left, right]")
            }
            return (left, right)
        }
    }

    /// Whether a normalizer (possibly inside a Sequence) replaces " " with "▁", as Llama-2's does.
    private static func replacesSpaceWithMeta(_ value: JSONValue?) -> Bool {
        guard let value else { return false }
        switch value["type"]?.string {
        case "Replace": return value["pattern"]?["String"]?.string == " " && value["content"]?.string == "▁"
        case "Sequence": return value["normalizers"]?.array?.contains(where: replacesSpaceWithMeta) ?? false
        default: return false
        }
    }

    /// Whether a SentencePiece-style tokenizer.json starts text with "▁": a `Prepend` normalizer
    /// (Llama-2, Phi-3) or a Metaspace pre-tokenizer whose `prepend_scheme` is not "never";
    /// Gemma's has neither.
    private static func addsDummyPrefix(_ root: JSONValue) throws -> Bool {
        func prepends(_ value: JSONValue?) -> Bool {
            guard let value else { return false }
            switch value["type"]?.string {
            case "Prepend": return value["prepend"]?.string == "▁"
            case "Metaspace": return value["prepend_scheme"]?.string != "never" && value["add_prefix_space"]?.bool != false
            case "Sequence":
                let steps = value["normalizers"]?.array ?? value["pretokenizers"]?.array ?? []
                return steps.contains(where: prepends)
            default: return false
            }
        }
        return prepends(root["normalizer"]) || prepends(root["pre_tokenizer"])
    }

    /// Whether a pre-tokenizer (possibly inside a Sequence) is Metaspace, SentencePiece's space handling.
    private static func isMetaspace(_ value: JSONValue?) -> Bool {
        guard let value else { return false }
        switch value["type"]?.string {
        case "Metaspace": return true
        case "Sequence": return value["pretokenizers"]?.array?.contains(where: isMetaspace) ?? false
        default: return false
        }
    }

    /// Whether a TemplateProcessing post-processor (possibly inside a Sequence) starts a single
    /// sequence with a special token (BOS); nil when there is no template.
    private static func templateAddsSpecialPrefix(_ value: JSONValue?) -> Bool? {
        guard let value else { return nil }
        switch value["type"]?.string {
        case "TemplateProcessing": return value["single"]?.array?.first?["SpecialToken"] != nil
        case "Sequence": return value["processors"]?.array?.lazy.compactMap(templateAddsSpecialPrefix).first
        default: return nil
        }
    }

    /// llama.cpp's pre-tokenizer name for a byte-level pre-tokenizer.
    private static func byteLevelPreTokenizer(_ value: JSONValue?) throws -> String {
        guard let value, !value.isNull else {
            throw FormatError("has neither byte fallback nor a ByteLevel pre-tokenizer; kvlab reads SentencePiece-style and byte-level BPE")
        }
        let type = value["type"]?.string ?? "(untyped)"
        if type == "ByteLevel" {
            guard value["use_regex"]?.bool != false else {
                throw FormatError("a ByteLevel pre-tokenizer without its regex splits nothing; not supported")
            }
            return "default"
        }
        guard type == "Sequence", let steps = value["pretokenizers"]?.array else {
            throw FormatError("pre-tokenizer \(type) is not supported (expected ByteLevel, possibly after a Split regex)")
        }
        let kinds = steps.map { $0["type"]?.string ?? "(untyped)" }
        switch kinds {
        case ["ByteLevel"]:
            return try byteLevelPreTokenizer(steps[0])
        case ["Split", "ByteLevel"]:
            guard let regex = steps[0]["pattern"]?["Regex"]?.string else {
                throw FormatError("the Split pre-tokenizer has no Regex pattern")
            }
            guard let known = splitPatterns.first(where: { $0.regex == regex }) else {
                throw FormatError("pre-tokenizer regex \(regex) is not supported (kvlab knows GPT-2's, Llama-3's, Qwen2's and Qwen3.5's)")
            }
            return known.name
        case ["Digits", "ByteLevel"] where steps[0]["individual_digits"]?.bool == true:
            return "smollm"
        default:
            throw FormatError("pre-tokenizer sequence [\(kinds.joined(separator: ", "))] is not supported")
        }
    }

    // MARK: - Writing

    /// A tokenizer.json that Hugging Face's `tokenizers` reads and that loads back into `spec`.
    static func tokenizerJSON(_ spec: TokenizerSpec) throws -> JSONValue {
        var firstID = TokenIndex([])
        for (id, token) in spec.tokens.enumerated() {
            if let other = firstID.insert(token, id: id) {
                throw FormatError("token \(token) appears twice (ids \(other) and \(id)); tokenizer.json cannot hold duplicates")
            }
        }
        let addedTokens: [JSONValue] = spec.types.enumerated().compactMap { id, type in
            guard type == .control || type == .unknown || type == .userDefined else { return nil }
            let special = type != .userDefined
            return .object([("id", .integer(id)), ("content", .string(spec.tokens[id])), ("single_word", .bool(false)),
                            ("lstrip", .bool(spec.stripsLeft.contains(id))), ("rstrip", .bool(spec.stripsRight.contains(id))),
                            ("normalized", .bool(!special)),
                            ("special", .bool(special))])
        }
        let pairs = spec.model == .sentencePiece
            ? sentencePieceMerges(spec, ids: firstID)
            : try spec.merges.map { merge in
                guard let parts = RankedMerges.parts(of: merge) else {
                    throw FormatError("merge \"\(merge)\" is not two tokens separated by a space")
                }
                return parts
            }
        // "left right" strings are read by every tokenizers version; [left, right] pairs only
        // when a token itself contains a space.
        let mergeList: [JSONValue] = pairs.contains { $0.0.contains(" ") || $0.1.contains(" ") }
            ? pairs.map { .array([.string($0.0), .string($0.1)]) }
            : pairs.map { .string($0.0 + " " + $0.1) }
        let vocab = JSONValue.object(spec.tokens.enumerated().map { ($1, .integer($0)) })
        let unknown: JSONValue = spec.unknownID.map { .string(spec.tokens[$0]) } ?? .null
        let bosTemplate = spec.addBOS ? spec.bosID.map { template(bos: spec.tokens[$0], id: $0) } : nil

        var members: [(key: String, value: JSONValue)] = [
            ("version", .string("1.0")), ("truncation", .null), ("padding", .null), ("added_tokens", .array(addedTokens)),
        ]
        switch spec.model {
        case .sentencePiece:
            // The decoder drops the dummy-prefix space only where the encoder adds one.
            let decoders: [JSONValue] = [
                .object([("type", .string("Replace")), ("pattern", .object([("String", .string("▁"))])), ("content", .string(" "))]),
                .object([("type", .string("ByteFallback"))]),
                .object([("type", .string("Fuse"))]),
            ] + (spec.addSpacePrefix
                ? [.object([("type", .string("Strip")), ("content", .string(" ")), ("start", .integer(1)), ("stop", .integer(0))])]
                : [])
            members += [
                ("normalizer", .object([("type", .string("Sequence")), ("normalizers", .array(
                    (spec.addSpacePrefix ? [.object([("type", .string("Prepend")), ("prepend", .string("▁"))])] : []) + [
                    .object([("type", .string("Replace")), ("pattern", .object([("String", .string(" "))])), ("content", .string("▁"))]),
                ]))])),
                ("pre_tokenizer", .null),
                ("post_processor", bosTemplate ?? .null),
                ("decoder", .object([("type", .string("Sequence")), ("decoders", .array(decoders))])),
            ]
        case .sentencePieceBPE:
            throw FormatError("a gemma4 tokenizer is not written as tokenizer.json (kvlab writes it to GGUF only)")
        case .byteLevelBPE:
            let byteLevel = { (useRegex: Bool) -> JSONValue in
                .object([("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)), ("trim_offsets", .bool(true)),
                         ("use_regex", .bool(useRegex))])
            }
            let preTokenizer: JSONValue
            switch spec.preTokenizer {
            case "default":
                preTokenizer = byteLevel(true)
            case "smollm", "starcoder", "refact":
                preTokenizer = .object([("type", .string("Sequence")), ("pretokenizers", .array([
                    .object([("type", .string("Digits")), ("individual_digits", .bool(true))]), byteLevel(true),
                ]))])
            default:
                guard let pattern = splitPatterns.first(where: { $0.name == spec.preTokenizer }) else {
                    throw FormatError("pre-tokenizer \(spec.preTokenizer) has no tokenizer.json equivalent kvlab knows")
                }
                preTokenizer = .object([("type", .string("Sequence")), ("pretokenizers", .array([
                    .object([("type", .string("Split")), ("pattern", .object([("Regex", .string(pattern.regex))])),
                             ("behavior", .string("Isolated")), ("invert", .bool(false))]),
                    byteLevel(false),
                ]))])
            }
            members += [
                ("normalizer", .null),
                ("pre_tokenizer", preTokenizer),
                ("post_processor", bosTemplate ?? byteLevel(true)),
                ("decoder", byteLevel(true)),
            ]
        }
        members.append(("model", .object([
            ("type", .string("BPE")), ("dropout", .null), ("unk_token", unknown), ("continuing_subword_prefix", .null),
            ("end_of_word_suffix", .null), ("fuse_unk", .bool(spec.model == .sentencePiece)),
            ("byte_fallback", .bool(spec.model == .sentencePiece)),
            // llama.cpp's llama-bpe tokenizer looks whole words up before merging, as Llama-3's tokenizer.json asks.
            ("ignore_merges", .bool(spec.model == .byteLevelBPE && spec.preTokenizer == "llama-bpe")),
            ("vocab", vocab), ("merges", .array(mergeList)),
        ])))
        return .object(members)
    }

    /// Merges from SentencePiece scores, as `transformers`' SentencePieceExtractor builds them:
    /// every split of a token into two vocabulary tokens is a merge; merges are ordered by the
    /// merged token's score, highest first (ties: lower id first), and within one token by the
    /// ids of its left and right parts.
    static func sentencePieceMerges(_ spec: TokenizerSpec, ids: TokenIndex) -> [(String, String)] {
        var merges: [(left: Int, right: Int, merged: Int)] = []
        for (id, token) in spec.tokens.enumerated() {
            // Split by code points, as Python slices strings.
            let scalars = Array(token.unicodeScalars)
            guard scalars.count > 1 else { continue }
            func text(_ part: ArraySlice<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(part)) }
            var local: [(left: Int, right: Int, merged: Int)] = []
            for split in 1..<scalars.count {
                if let left = ids[text(scalars[..<split])], let right = ids[text(scalars[split...])] {
                    local.append((left, right, id))
                }
            }
            merges += local.sorted { ($0.left, $0.right) < ($1.left, $1.right) }
        }
        let order = merges.indices.sorted { a, b in
            let sa = spec.scores[merges[a].merged], sb = spec.scores[merges[b].merged]
            return sa != sb ? sa > sb : a < b
        }
        return order.map { (spec.tokens[merges[$0].left], spec.tokens[merges[$0].right]) }
    }

    /// A TemplateProcessing post-processor that starts every sequence with `bos`.
    private static func template(bos: String, id: Int) -> JSONValue {
        func special(_ typeID: Int) -> JSONValue {
            .object([("SpecialToken", .object([("id", .string(bos)), ("type_id", .integer(typeID))]))])
        }
        func sequence(_ name: String, _ typeID: Int) -> JSONValue {
            .object([("Sequence", .object([("id", .string(name)), ("type_id", .integer(typeID))]))])
        }
        return .object([
            ("type", .string("TemplateProcessing")),
            ("single", .array([special(0), sequence("A", 0)])),
            ("pair", .array([special(0), sequence("A", 0), special(1), sequence("B", 1)])),
            ("special_tokens", .object([(bos, .object([("id", .string(bos)), ("ids", .array([.integer(id)])),
                                                      ("tokens", .array([.string(bos)]))]))])),
        ])
    }

    /// tokenizer_config.json: BOS/EOS/UNK by content and whether BOS is added.
    static func tokenizerConfig(_ spec: TokenizerSpec, contextLength: Int) -> JSONValue {
        func token(_ id: Int?) -> JSONValue { id.map { .string(spec.tokens[$0]) } ?? .null }
        return .object([
            ("add_bos_token", .bool(spec.addBOS)),
            ("add_eos_token", .bool(false)),
            ("bos_token", token(spec.bosID)),
            ("eos_token", token(spec.eosID)),
            ("unk_token", token(spec.unknownID)),
            ("clean_up_tokenization_spaces", .bool(false)),
            ("model_max_length", .integer(contextLength)),
            ("tokenizer_class", .string(spec.model == .sentencePiece ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast")),
        ] + (spec.chatTemplate.map { [("chat_template", JSONValue.string($0))] } ?? []))
    }
}
