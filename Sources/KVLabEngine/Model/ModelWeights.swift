import KVLabFoundation
import KVLabMethods

/// One transformer block's weights. Matrices are `out × in`, as in GGUF and PyTorch.
public struct LayerWeights: Sendable {
    public var attentionNorm: [Float]
    public var query: WeightMatrix
    public var key: WeightMatrix
    public var value: WeightMatrix
    public var attentionOutput: WeightMatrix
    public var ffnNorm: [Float]
    /// SwiGLU: down(silu(gate(x)) * up(x)).
    public var ffnGate: WeightMatrix
    public var ffnDown: WeightMatrix
    public var ffnUp: WeightMatrix
    /// Biases added to the q, k and v projections (Qwen2), or nil.
    public var queryBias: [Float]?
    public var keyBias: [Float]?
    public var valueBias: [Float]?
    /// Per-head RMSNorm weights (headDim each) applied to queries and keys before RoPE (Qwen3,
    /// Gemma 3), or nil.
    public var queryNorm: [Float]?
    public var keyNorm: [Float]?
    /// RMSNorm weights applied to the attention output and to the feed-forward output before each
    /// joins the residual (Gemma 2 and 3), or nil.
    public var postAttentionNorm: [Float]?
    public var postFFNNorm: [Float]?

    public init(attentionNorm: [Float], query: WeightMatrix, key: WeightMatrix, value: WeightMatrix,
                attentionOutput: WeightMatrix, ffnNorm: [Float], ffnGate: WeightMatrix, ffnDown: WeightMatrix,
                ffnUp: WeightMatrix, queryBias: [Float]? = nil, keyBias: [Float]? = nil, valueBias: [Float]? = nil,
                queryNorm: [Float]? = nil, keyNorm: [Float]? = nil, postAttentionNorm: [Float]? = nil,
                postFFNNorm: [Float]? = nil) {
        self.attentionNorm = attentionNorm
        self.query = query
        self.key = key
        self.value = value
        self.attentionOutput = attentionOutput
        self.ffnNorm = ffnNorm
        self.ffnGate = ffnGate
        self.ffnDown = ffnDown
        self.ffnUp = ffnUp
        self.queryBias = queryBias
        self.keyBias = keyBias
        self.valueBias = valueBias
        self.queryNorm = queryNorm
        self.keyNorm = keyNorm
        self.postAttentionNorm = postAttentionNorm
        self.postFFNNorm = postFFNNorm
    }

    /// The optional vectors with their GGUF tensor names (suffixes after `blk.N.`) and lengths.
    func optionalVectors(_ c: ModelConfig) -> [(name: String, values: [Float]?, count: Int)] {
        [("attn_q.bias", queryBias, c.queryDim), ("attn_k.bias", keyBias, c.kvDim), ("attn_v.bias", valueBias, c.kvDim),
         ("attn_q_norm.weight", queryNorm, c.headDim), ("attn_k_norm.weight", keyNorm, c.headDim),
         ("post_attention_norm.weight", postAttentionNorm, c.dim), ("post_ffw_norm.weight", postFFNNorm, c.dim)]
    }

    var matrices: [WeightMatrix] { [query, key, value, attentionOutput, ffnGate, ffnDown, ffnUp] }
}

/// All weights of a llama-family model, validated against its config.
public struct ModelWeights: Sendable {
    public var config: ModelConfig
    public var tokenEmbedding: WeightMatrix
    public var layers: [LayerWeights]
    public var outputNorm: [Float]
    /// The classifier; the same object as `tokenEmbedding` when tied.
    public var output: WeightMatrix

    public var tiedClassifier: Bool { output === tokenEmbedding }

    public init(config: ModelConfig, tokenEmbedding: WeightMatrix, layers: [LayerWeights], outputNorm: [Float],
                output: WeightMatrix) throws {
        self.config = config
        self.tokenEmbedding = tokenEmbedding
        self.layers = layers
        self.outputNorm = outputNorm
        self.output = output
        try validate()
    }

    private func validate() throws {
        let c = config
        func shape(_ m: WeightMatrix, _ rows: Int, _ cols: Int, _ name: String) throws {
            guard m.rows == rows, m.cols == cols else {
                throw FormatError("tensor \(name) is \(m.rows)×\(m.cols), expected \(rows)×\(cols)")
            }
        }
        func vector(_ v: [Float], _ name: String, count: Int? = nil) throws {
            let expected = count ?? c.dim
            guard v.count == expected else { throw FormatError("tensor \(name) has \(v.count) values, expected \(expected)") }
            guard v.allSatisfy(\.isFinite) else { throw FormatError("tensor \(name) contains NaN or infinite values") }
        }
        guard layers.count == c.layerCount else {
            throw FormatError("found \(layers.count) blocks, the header says \(c.layerCount)")
        }
        try shape(tokenEmbedding, c.vocabSize, c.dim, "token_embd")
        try shape(output, c.vocabSize, c.dim, "output")
        try vector(outputNorm, "output_norm")
        for (i, layer) in layers.enumerated() {
            try vector(layer.attentionNorm, "blk.\(i).attn_norm")
            try vector(layer.ffnNorm, "blk.\(i).ffn_norm")
            try shape(layer.query, c.queryDim, c.dim, "blk.\(i).attn_q")
            try shape(layer.key, c.kvDim, c.dim, "blk.\(i).attn_k")
            try shape(layer.value, c.kvDim, c.dim, "blk.\(i).attn_v")
            try shape(layer.attentionOutput, c.dim, c.queryDim, "blk.\(i).attn_output")
            for (name, values, count) in layer.optionalVectors(c) {
                if let values { try vector(values, "blk.\(i).\(name)", count: count) }
            }
            if (layer.queryNorm == nil) != (layer.keyNorm == nil) {
                throw FormatError("blk.\(i) has only one of attn_q_norm and attn_k_norm")
            }
            if (layer.postAttentionNorm == nil) != (layer.postFFNNorm == nil) {
                throw FormatError("blk.\(i) has only one of post_attention_norm and post_ffw_norm")
            }
            try shape(layer.ffnGate, c.hiddenDim, c.dim, "blk.\(i).ffn_gate")
            try shape(layer.ffnUp, c.hiddenDim, c.dim, "blk.\(i).ffn_up")
            try shape(layer.ffnDown, c.dim, c.hiddenDim, "blk.\(i).ffn_down")
        }
        for (name, matrix) in namedMatrices {
            guard matrix.allFinite() else { throw FormatError("tensor \(name) contains NaN or infinite values") }
            // The check read every page of a mapped matrix: given back (they stay in the page
            // cache), so what stays resident is what the products read, not the token embedding's
            // whole table (see `embed`).
            matrix.releaseMappedPages()
        }
    }

    /// Refuses what kvlab's writers cannot represent: they write plain llama models (GGUF `llama`,
    /// config.json LlamaForCausalLM), so a converted file never silently loses a bias, a norm, a
    /// sliding window or a RoPE scaling.
    func checkWritable() throws {
        let c = config
        var features: [String] = []
        if c.family != .llama { features.append("model family \(c.family.rawValue)") }
        if c.ropeScaling != .none { features.append("RoPE scaling \(c.ropeScaling.summary)") }
        if c.localRoPE != nil { features.append("a RoPE of its own on local layers") }
        if c.attentionScale != nil || c.attentionSoftcap != nil || c.finalSoftcap != nil || c.embeddingScale != 1 || c.activation != .silu {
            features.append("Gemma's scales, caps and activation")
        }
        if c.attentionSpans.contains(where: { $0 != .global }) { features.append("sliding-window layers") }
        if layers.contains(where: { $0.optionalVectors(c).contains { $0.values != nil } }) { features.append("attention biases, q/k norms or post-norms") }
        if let first = features.first {
            throw FormatError("kvlab writes plain llama models only; this one has \(first)")
        }
    }

    /// Every matrix with its GGUF tensor name, in file order (classifier omitted when tied).
    public var namedMatrices: [(String, WeightMatrix)] {
        var list: [(String, WeightMatrix)] = [("token_embd.weight", tokenEmbedding)]
        for (i, layer) in layers.enumerated() {
            list += [
                ("blk.\(i).attn_q.weight", layer.query), ("blk.\(i).attn_k.weight", layer.key),
                ("blk.\(i).attn_v.weight", layer.value), ("blk.\(i).attn_output.weight", layer.attentionOutput),
                ("blk.\(i).ffn_gate.weight", layer.ffnGate), ("blk.\(i).ffn_down.weight", layer.ffnDown),
                ("blk.\(i).ffn_up.weight", layer.ffnUp),
            ]
        }
        if !tiedClassifier { list.append(("output.weight", output)) }
        return list
    }

    /// Every norm (and bias) vector with its GGUF tensor name.
    public var namedNorms: [(String, [Float])] {
        var list: [(String, [Float])] = []
        for (i, layer) in layers.enumerated() {
            list += [("blk.\(i).attn_norm.weight", layer.attentionNorm), ("blk.\(i).ffn_norm.weight", layer.ffnNorm)]
            for (name, values, _) in layer.optionalVectors(config) {
                if let values { list.append(("blk.\(i).\(name)", values)) }
            }
        }
        list.append(("output_norm.weight", outputNorm))
        return list
    }

    /// Resident bytes of all weights (norms as f32; a tied classifier counted once).
    public var residentBytes: Int {
        namedMatrices.reduce(0) { $0 + $1.1.byteCount } + namedNorms.reduce(0) { $0 + $1.1.count * 4 }
    }

    /// Bytes of `residentBytes` that are the model file's mapped pages, used in place (resident as
    /// the file's pages, shared with the page cache); the rest is memory of kvlab's own.
    public var mappedBytes: Int {
        namedMatrices.reduce(0) { $0 + ($1.1.isMapped ? $1.1.byteCount : 0) }
    }

    /// The same weights with every matrix stored as `type` (see `WeightMatrix.converted(to:)`).
    public func converted(to type: WeightType) -> ModelWeights {
        var copy = self
        copy.tokenEmbedding = tokenEmbedding.converted(to: type)
        copy.output = tiedClassifier ? copy.tokenEmbedding : output.converted(to: type)
        copy.layers = layers.map { layer in
            var l = layer
            l.query = layer.query.converted(to: type)
            l.key = layer.key.converted(to: type)
            l.value = layer.value.converted(to: type)
            l.attentionOutput = layer.attentionOutput.converted(to: type)
            l.ffnGate = layer.ffnGate.converted(to: type)
            l.ffnDown = layer.ffnDown.converted(to: type)
            l.ffnUp = layer.ffnUp.converted(to: type)
            return l
        }
        return copy
    }

    /// The same model with q/k rows permuted for `style` (HF's checkpoint permutation), so that
    /// running it with that RoPE convention gives identical results.
    public func withRoPEStyle(_ style: RoPEStyle) -> ModelWeights {
        guard style != config.ropeStyle else { return self }
        var copy = self
        copy.config.ropeStyle = style
        let toHalf = style == .halfRotation
        let hd = config.headDim
        func order(heads: Int) -> [Int] {
            (0..<(heads * hd)).map { row in
                let head = row / hd, within = row % hd
                if toHalf {
                    // half-rotation row (half, i) comes from interleaved row 2i + half
                    let half = within / (hd / 2), i = within % (hd / 2)
                    return head * hd + 2 * i + half
                } else {
                    // interleaved row (2i + half) comes from half-rotation row half·d/2 + i
                    let i = within / 2, half = within % 2
                    return head * hd + half * (hd / 2) + i
                }
            }
        }
        let qOrder = order(heads: config.headCount), kOrder = order(heads: config.kvHeadCount), headOrder = order(heads: 1)
        // Biases follow their rows; per-head norm weights follow the channels within a head.
        func permuted(_ values: [Float]?, _ order: [Int]) -> [Float]? { values.map { v in order.map { v[$0] } } }
        copy.layers = layers.map { layer in
            var l = layer
            l.query = layer.query.permutingRows(qOrder)
            l.key = layer.key.permutingRows(kOrder)
            l.queryBias = permuted(layer.queryBias, qOrder)
            l.keyBias = permuted(layer.keyBias, kOrder)
            l.queryNorm = permuted(layer.queryNorm, headOrder)
            l.keyNorm = permuted(layer.keyNorm, headOrder)
            return l
        }
        return copy
    }
}
