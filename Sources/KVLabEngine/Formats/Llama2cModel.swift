import Foundation
import KVLabFoundation
import KVLabMethods

/// llama2.c checkpoints: a header of 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size — negative when the classifier is separate — seq_len), then fp32 tensors in a
/// fixed order; and the companion `tokenizer.bin`.
enum Llama2cModel {
    static func load(path: String, data: Data, tokenizerPath: String?) throws -> LoadedModel {
        // The checkpoint is checked before its tokenizer is looked for, so a file that is no
        // checkpoint at all is reported as such rather than as lacking a tokenizer.
        let (weights, tensors) = try withFileContext(path) {
            try data.withUnsafeBytes { try parseWeights(ByteReader($0), name: modelName(path)) }
        }
        let tokenizerFile = try tokenizerPath ?? findTokenizer(near: path)
        let tokenizerData = try InputFile.read(tokenizerFile)
        let spec = try withFileContext(tokenizerFile) {
            try tokenizerData.withUnsafeBytes { try parseTokenizer(ByteReader($0), vocabSize: weights.config.vocabSize) }
        }
        let tokenizer = try withFileContext(tokenizerFile) { try spec.makeTokenizer() }
        return LoadedModel(weights: weights, tokenizer: tokenizer, format: .llama2c, path: path, tensors: tensors,
                           metadata: [("tokenizer", tokenizerFile)])
    }

    static func modelName(_ path: String) -> String {
        URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
    }

    /// `tokenizer.bin` beside the checkpoint, or the only `tok*.bin` there.
    private static func findTokenizer(near path: String) throws -> String {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        let standard = directory.appendingPathComponent("tokenizer.bin").path
        if FileManager.default.fileExists(atPath: standard) { return standard }
        let candidates = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasPrefix("tok") && $0.hasSuffix(".bin") }
        if candidates.count == 1 { return directory.appendingPathComponent(candidates[0]).path }
        throw FileError(path: path, problem: "llama2.c checkpoint has no tokenizer: put tokenizer.bin beside it or pass --tokenizer")
    }

    /// The 7-int32 header: the model's shape, and whether the classifier shares the embedding.
    static func parseHeader(_ reader: inout ByteReader, name: String) throws -> (config: ModelConfig, shared: Bool) {
        var header: [Int] = []
        for _ in 0..<7 { header.append(Int(try reader.read(Int32.self))) }
        let config = ModelConfig(name: name, dim: header[0], hiddenDim: header[1], layerCount: header[2],
                                 headCount: header[3], kvHeadCount: header[4], vocabSize: abs(header[5]),
                                 contextLength: header[6])
        try config.validate()
        return (config, header[5] > 0)
    }

    static func parseWeights(_ input: ByteReader, name: String) throws -> (ModelWeights, [TensorInfo]) {
        var reader = input
        let (config, shared) = try parseHeader(&reader, name: name)
        let c = config
        let L = c.layerCount
        var tensors: [TensorInfo] = []
        // The format has no offsets, so the header's shapes must account for the file exactly; checked
        // before reading, so a header inconsistent with the file is one clear error.
        let perLayer = 2 * c.dim + c.dim * c.dim * 2 + c.dim * c.kvDim * 2 + 3 * c.dim * c.hiddenDim
        let ropeTables = c.contextLength * c.headDim / 2 * 2
        let classifier = c.vocabSize * c.dim * 4
        let expected = (c.vocabSize * c.dim + L * perLayer + c.dim + ropeTables) * 4 + (shared ? 0 : classifier)
        let shape = "header (dim \(c.dim), \(L) layers, vocabulary \(c.vocabSize), \(shared ? "shared" : "separate") classifier)"
        if reader.remaining < expected {
            // The sign of vocab_size is the only mark of a separate classifier; name it when it explains the size.
            let hint = !shared && reader.remaining == expected - classifier
                ? "; the size fits a shared classifier, but the negative vocab_size announces a separate one" : ""
            throw FormatError("\(shape) needs \(expected + 28) bytes, the file has \(reader.remaining + 28)\(hint)")
        }
        if reader.remaining > expected {
            let hint = shared && reader.remaining == expected + classifier
                ? "; they fit a separate classifier, which a negative vocab_size would announce" : ""
            throw FormatError("\(reader.remaining - expected) unexpected bytes after the last tensor "
                + "(\(shape) needs \(expected + 28) bytes)\(hint)")
        }
        func matrices(_ name: String, rows: Int, cols: Int) throws -> [WeightMatrix] {
            try (0..<L).map { layer in
                let bytes = try reader.readBytes(rows * cols * 4)
                tensors.append(TensorInfo(name: "blk.\(layer).\(name).weight", shape: [rows, cols], type: .f32, byteCount: bytes.count))
                return try WeightMatrix(rows: rows, cols: cols, type: .f32, encoded: bytes)
            }
        }
        func vectors(_ name: String) throws -> [[Float]] {
            try (0..<L).map { layer in
                tensors.append(TensorInfo(name: "blk.\(layer).\(name).weight", shape: [c.dim], type: .f32, byteCount: c.dim * 4))
                return try reader.readFloats(c.dim)
            }
        }
        let embeddingBytes = try reader.readBytes(c.vocabSize * c.dim * 4)
        tensors.append(TensorInfo(name: "token_embd.weight", shape: [c.vocabSize, c.dim], type: .f32, byteCount: embeddingBytes.count))
        let embedding = try WeightMatrix(rows: c.vocabSize, cols: c.dim, type: .f32, encoded: embeddingBytes)
        let attentionNorms = try vectors("attn_norm")
        let wq = try matrices("attn_q", rows: c.dim, cols: c.dim)
        let wk = try matrices("attn_k", rows: c.kvDim, cols: c.dim)
        let wv = try matrices("attn_v", rows: c.kvDim, cols: c.dim)
        let wo = try matrices("attn_output", rows: c.dim, cols: c.dim)
        let ffnNorms = try vectors("ffn_norm")
        let w1 = try matrices("ffn_gate", rows: c.hiddenDim, cols: c.dim)
        let w2 = try matrices("ffn_down", rows: c.dim, cols: c.hiddenDim)
        let w3 = try matrices("ffn_up", rows: c.hiddenDim, cols: c.dim)
        let finalNorm = try reader.readFloats(c.dim)
        tensors.append(TensorInfo(name: "output_norm.weight", shape: [c.dim], type: .f32, byteCount: c.dim * 4))
        try reader.skip(ropeTables * 4)  // legacy freq_cis_real/imag, recomputed by the engine
        var output = embedding
        if !shared {
            let bytes = try reader.readBytes(c.vocabSize * c.dim * 4)
            tensors.append(TensorInfo(name: "output.weight", shape: [c.vocabSize, c.dim], type: .f32, byteCount: bytes.count))
            output = try WeightMatrix(rows: c.vocabSize, cols: c.dim, type: .f32, encoded: bytes)
        }
        let layers = (0..<L).map { i in
            LayerWeights(attentionNorm: attentionNorms[i], query: wq[i], key: wk[i], value: wv[i], attentionOutput: wo[i],
                         ffnNorm: ffnNorms[i], ffnGate: w1[i], ffnDown: w2[i], ffnUp: w3[i])
        }
        let weights = try ModelWeights(config: config, tokenEmbedding: embedding, layers: layers, outputNorm: finalNorm, output: output)
        return (weights, tensors)
    }

    /// llama2.c `tokenizer.bin`: int32 max_token_length, then per token float score, int32
    /// length, bytes. Pieces use plain spaces there; they become "▁" here as in GGUF.
    static func parseTokenizer(_ input: ByteReader, vocabSize: Int) throws -> TokenizerSpec {
        var reader = input
        let maxLength = Int(try reader.read(Int32.self))
        guard maxLength > 0, maxLength < 1 << 16 else { throw FormatError("tokenizer max token length \(maxLength) is out of range") }
        var tokens: [String] = []
        var scores: [Float] = []
        var types: [TokenType] = []
        for id in 0..<vocabSize {
            let score = try reader.readFloat()
            let length = Int(try reader.read(Int32.self))
            guard length >= 0, length <= maxLength else { throw FormatError("token \(id) has length \(length) (max \(maxLength))") }
            let raw = try reader.readBytes(length)
            guard let piece = String(validating: raw, as: UTF8.self) else { throw FormatError("token \(id) is not valid UTF-8") }
            guard score.isFinite else { throw FormatError("token \(id) has a non-finite score") }
            tokens.append(piece.replacingOccurrences(of: " ", with: "▁"))
            scores.append(score)
            types.append(SentencePieceTokenizer.byteValue(piece) != nil ? .byte : (id == 0 ? .unknown : id <= 2 ? .control : .normal))
        }
        return TokenizerSpec(model: .sentencePiece, tokens: tokens, scores: scores, types: types,
                             bosID: 1, eosID: 2, unknownID: 0, addBOS: true)
    }
}
