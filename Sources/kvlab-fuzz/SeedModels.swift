import Foundation
import KVLabEngine
import KVLabMethods

/// Valid model files built in memory (kvlab's own writers, llama2.c's layout by hand), so the
/// fuzzer needs no downloaded model and each input loads in well under a millisecond.
enum SeedModels {
    static let config = ModelConfig(name: "fuzz", dim: 32, hiddenDim: 64, layerCount: 2, headCount: 4, kvHeadCount: 2,
                                    vocabSize: 300, contextLength: 64, ropeTheta: 10000, rmsEps: 1e-5)

    /// A random model with a SentencePiece vocabulary of 300 (3 specials, 256 bytes, 41 pieces).
    static func model(type: WeightType, tied: Bool, seed: UInt64) throws -> LoadedModel {
        var rng = Xoshiro256(seed: seed)
        let c = config
        func matrix(_ rows: Int, _ cols: Int) -> WeightMatrix {
            WeightMatrix(rows: rows, cols: cols, values: (0..<(rows * cols)).map { _ in Float.random(in: -0.1...0.1, using: &rng) }, type: type)
        }
        func norm() -> [Float] { (0..<c.dim).map { _ in Float.random(in: 0.8...1.2, using: &rng) } }
        let embedding = matrix(c.vocabSize, c.dim)
        let layers = (0..<c.layerCount).map { _ in
            LayerWeights(attentionNorm: norm(), query: matrix(c.dim, c.dim), key: matrix(c.kvDim, c.dim),
                         value: matrix(c.kvDim, c.dim), attentionOutput: matrix(c.dim, c.dim), ffnNorm: norm(),
                         ffnGate: matrix(c.hiddenDim, c.dim), ffnDown: matrix(c.dim, c.hiddenDim), ffnUp: matrix(c.hiddenDim, c.dim))
        }
        let weights = try ModelWeights(config: c, tokenEmbedding: embedding, layers: layers, outputNorm: norm(),
                                       output: tied ? embedding : matrix(c.vocabSize, c.dim))
        return LoadedModel(weights: weights, tokenizer: try tokenizerSpec().makeTokenizer(), format: .gguf, path: "fuzz", tensors: [])
    }

    static let pieces = ["▁t", "he", "▁the", "in", "er", "an", "▁a", "on", "re", "▁s", "at", "en", "nd", "▁w", "ed",
                         "▁o", "it", "ou", "is", "▁and", "ing", "▁h", "or", "▁b", "es", "▁f", "▁c", "ar", "▁to", "as",
                         "▁e", "▁", "e", "t", "a", "o", "h", "n", "s", "i", "r"]

    static func tokenizerSpec() -> TokenizerSpec {
        let tokens = ["<unk>", "<s>", "</s>"] + (0..<256).map { String(format: "<0x%02X>", $0) } + pieces
        let types = [TokenType.unknown, .control, .control] + Array(repeating: .byte, count: 256) + Array(repeating: .normal, count: pieces.count)
        let scores = Array(repeating: Float(0), count: 259) + pieces.indices.map { -Float($0) }
        return TokenizerSpec(model: .sentencePiece, tokens: tokens, scores: scores, types: types, bosID: 1, eosID: 2, unknownID: 0)
    }

    /// `model` written by kvlab as `format`, read back: the GGUF file, or the safetensors directory's files by name.
    static func written(_ model: LoadedModel, as format: ModelFormat) throws -> [String: [UInt8]] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-fuzz-seed-\(getpid())-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let target = (directory as NSString).appendingPathComponent(format == .gguf ? "model.gguf" : "model")
        try ModelLoader.write(model, to: target, as: format)
        if format == .gguf { return ["model.gguf": [UInt8](try Data(contentsOf: URL(fileURLWithPath: target)))] }
        var files: [String: [UInt8]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: target) {
            files[name] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: (target as NSString).appendingPathComponent(name))))
        }
        return files
    }

    /// A llama2.c checkpoint: the 7-int32 header (vocabulary negative for a separate classifier),
    /// then fp32 tensors in llama2.c's order, with the legacy RoPE tables it still carries.
    static func llama2c(_ model: LoadedModel, tied: Bool) -> [UInt8] {
        let c = model.config, w = model.weights
        var bytes: [UInt8] = []
        func int(_ value: Int) { withUnsafeBytes(of: Int32(value).littleEndian) { bytes += $0 } }
        func floats(_ values: [Float]) { for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } } }
        // An f32 model's encoded bytes are llama2.c's fp32 layout.
        func matrix(_ m: WeightMatrix) { bytes += m.encodedBytes }
        for value in [c.dim, c.hiddenDim, c.layerCount, c.headCount, c.kvHeadCount, tied ? c.vocabSize : -c.vocabSize, c.contextLength] { int(value) }
        matrix(w.tokenEmbedding)
        for layer in w.layers { floats(layer.attentionNorm) }
        for layer in w.layers { matrix(layer.query) }
        for layer in w.layers { matrix(layer.key) }
        for layer in w.layers { matrix(layer.value) }
        for layer in w.layers { matrix(layer.attentionOutput) }
        for layer in w.layers { floats(layer.ffnNorm) }
        for layer in w.layers { matrix(layer.ffnGate) }
        for layer in w.layers { matrix(layer.ffnDown) }
        for layer in w.layers { matrix(layer.ffnUp) }
        floats(w.outputNorm)
        floats(Array(repeating: 0, count: c.contextLength * c.headDim))
        if !tied { matrix(w.output) }
        return bytes
    }

    /// llama2.c's `tokenizer.bin`: max token length, then score, length and bytes per token (plain spaces).
    static func llama2cTokenizer() -> [UInt8] {
        let spec = tokenizerSpec()
        let pieces = spec.tokens.map { Array($0.replacingOccurrences(of: "▁", with: " ").utf8) }
        var bytes: [UInt8] = []
        func int(_ value: Int) { withUnsafeBytes(of: Int32(value).littleEndian) { bytes += $0 } }
        int(pieces.map(\.count).max() ?? 1)
        for (piece, score) in zip(pieces, spec.scores) {
            withUnsafeBytes(of: score.bitPattern.littleEndian) { bytes += $0 }
            int(piece.count)
            bytes += piece
        }
        return bytes
    }
}
