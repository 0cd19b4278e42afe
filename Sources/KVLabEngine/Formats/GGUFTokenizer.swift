import Foundation
import KVLabFoundation

/// The tokenizer (with its chat template) stored in a GGUF file's `tokenizer.*` metadata, read the way
/// llama.cpp's `llama_vocab::load` reads them.
enum GGUFTokenizer {
    /// The tokenizer of a GGUF file that may hold no tensors at all (llama.cpp's `ggml-vocab-*.gguf`).
    static func load(path: String) throws -> TokenizerSpec {
        try singleLineErrors {
            let data = try InputFile.read(path)
            return try withFileContext(path) {
                try data.withUnsafeBytes { bytes in
                    try spec(GGUFMetadata(file: try GGUFFile(bytes)))
                }
            }
        }
    }

    static func spec(_ metadata: GGUFMetadata) throws -> TokenizerSpec {
        guard let modelName = try metadata.string("tokenizer.ggml.model") else {
            throw FormatError("has no tokenizer (tokenizer.ggml.model missing)")
        }
        guard let model = TokenizerSpec.Model(rawValue: modelName) else {
            throw FormatError("tokenizer model \(modelName) is not supported (llama, gpt2 or gemma4)")
        }
        guard let tokens = try metadata.strings("tokenizer.ggml.tokens") else {
            throw FormatError("has no tokenizer vocabulary (tokenizer.ggml.tokens missing)")
        }
        var scores: [Float] = []
        if model == .sentencePiece {
            // llama.cpp treats missing scores as 0; kvlab does the same.
            scores = try metadata.floats("tokenizer.ggml.scores") ?? Array(repeating: 0, count: tokens.count)
            guard scores.count == tokens.count else {
                throw FormatError("tokenizer has \(scores.count) scores for \(tokens.count) tokens")
            }
            if let bad = scores.firstIndex(where: { !$0.isFinite }) { throw FormatError("token \(bad) has a non-finite score") }
        }
        var types: [TokenType] = Array(repeating: .normal, count: tokens.count)
        if let raw = try metadata.integers("tokenizer.ggml.token_type") {
            guard raw.count == tokens.count else {
                throw FormatError("tokenizer has \(raw.count) token types for \(tokens.count) tokens")
            }
            types = try raw.enumerated().map { id, value in
                // 0 is llama.cpp's "undefined", which it treats as normal.
                if value == 0 { return .normal }
                guard let type = Int32(exactly: value).flatMap(TokenType.init(rawValue:)) else {
                    throw FormatError("token \(id) has unknown token type \(value)")
                }
                return type
            }
        }
        var merges: [String] = []
        var preTokenizer = "default"
        if model != .sentencePiece {
            guard let list = try metadata.strings("tokenizer.ggml.merges") else {
                throw FormatError("\(modelName) tokenizer has no merges (tokenizer.ggml.merges missing)")
            }
            merges = list
        }
        if model == .byteLevelBPE {
            preTokenizer = try metadata.string("tokenizer.ggml.pre") ?? "default"
            // Checked here too, so that an unknown one is named with the file.
            _ = try PreTokenizer(name: preTokenizer)
        }
        let addSpacePrefix = try metadata.bool("tokenizer.ggml.add_space_prefix")
        // llama.cpp's BPE path never prepends a space; a gemma4 file asking for one is not what it runs.
        if model == .sentencePieceBPE, addSpacePrefix == true {
            throw FormatError("gemma4 tokenizer with tokenizer.ggml.add_space_prefix true is not supported")
        }
        var addBOS = try metadata.bool("tokenizer.ggml.add_bos_token") ?? (model != .byteLevelBPE)
        // llama.cpp adds Gemma 4's BOS whatever the file says (its tokenizer.json does too).
        if model == .sentencePieceBPE { addBOS = true }
        var spec = TokenizerSpec(
            model: model, tokens: tokens, scores: scores, types: types, merges: merges,
            bosID: try metadata.integer("tokenizer.ggml.bos_token_id"),
            eosID: try metadata.integer("tokenizer.ggml.eos_token_id"),
            unknownID: try metadata.integer("tokenizer.ggml.unknown_token_id"),
            addBOS: addBOS,
            preTokenizer: preTokenizer,
            // Only SentencePiece reads the flag; the BPE models keep the (unused) default.
            addSpacePrefix: model == .byteLevelBPE || (model == .sentencePiece && (addSpacePrefix ?? true)))
        spec.stripsRight = try phi3StripsRight(metadata, spec: spec)
        spec.chatTemplate = try metadata.string("tokenizer.chat_template")
        try spec.validate()
        return spec
    }

    /// GGUF has no per-token strip flags; llama.cpp gives Phi-3 models (by `general.name`) the
    /// `rstrip` of their tokenizer.json's special tokens by rule, and kvlab follows the same rule.
    private static func phi3StripsRight(_ metadata: GGUFMetadata, spec: TokenizerSpec) throws -> Set<Int> {
        let name = (try metadata.string("general.name") ?? "").lowercased()
        guard name.contains("phi-3") || name.contains("phi3") else { return [] }
        var strips = Set<Int>()
        for (id, token) in spec.tokens.enumerated() {
            switch spec.types[id] {
            case .control, .userDefined, .unknown:
                if !["<unk>", "<s>", "<|endoftext|>"].contains(token) { strips.insert(id) }
            default:
                if token == "</s>" { strips.insert(id) }
            }
        }
        return strips
    }
}
