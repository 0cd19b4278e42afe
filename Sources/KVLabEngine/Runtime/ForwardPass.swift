import KVLabMethods

/// The per-row steps of a forward pass that do not depend on how rows are batched, shared by the
/// single-sequence `InferenceEngine` and the many-sequence `BatchedEngine` so both compute a row
/// the same way.
extension ModelWeights {
    /// The embedding row of `token`, times the model's embedding scale (Gemma's √dim).
    @inline(__always)
    func embed(_ token: Int, into x: UnsafeMutablePointer<Float>) {
        tokenEmbedding.decodeRow(token, into: x)
        // A mapped table is resident only while a row is read (a classifier tied to it reads all of it).
        if !tiedClassifier { tokenEmbedding.releaseMappedPages(aroundRow: token) }
        let scale = config.embeddingScale
        if scale != 1 { Ops.scale(x, by: scale, count: config.dim) }
    }

    /// RMSNorm in place of `rows` rows of a sublayer's output before it joins the residual (Gemma's
    /// post-norms); nothing for models without them.
    @inline(__always)
    func postNorm(_ weight: [Float]?, _ rows: UnsafeMutablePointer<Float>, rows n: Int) {
        guard let weight else { return }
        normRows(rows, weight, into: rows, rows: n)
    }

    /// Final logit soft-capping (Gemma 2) on `rows` rows of logits.
    @inline(__always)
    func capLogits(_ logits: UnsafeMutablePointer<Float>, rows: Int) {
        guard let cap = config.finalSoftcap else { return }
        Ops.softcap(logits, cap: Float(cap), count: rows * config.vocabSize)
    }

    /// One token's q, k, v after their projections in `layer`: biases (Qwen2), per-head q/k
    /// RMSNorm (Qwen3, Gemma 3), RoPE (keys only when the cache does not rotate them itself), and
    /// the layer's query scale (attention scale, YaRN's factor).
    @inline(__always)
    func finishProjections(_ layer: LayerWeights, queryScale: Float, keysBeforeRoPE: Bool, q: UnsafeMutablePointer<Float>,
                           k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let c = config
        if let bias = layer.queryBias { Ops.add(q, bias, count: c.queryDim) }
        if let bias = layer.keyBias { Ops.add(k, bias, count: c.kvDim) }
        if let bias = layer.valueBias { Ops.add(v, bias, count: c.kvDim) }
        if let norm = layer.queryNorm { Ops.rmsNormHeads(q, heads: c.headCount, headDim: c.headDim, weight: norm, eps: c.rmsEps) }
        if let norm = layer.keyNorm { Ops.rmsNormHeads(k, heads: c.kvHeadCount, headDim: c.headDim, weight: norm, eps: c.rmsEps) }
        Ops.rotate(q, heads: c.headCount, headDim: c.headDim, style: c.ropeStyle, cos: cos, sin: sin)
        if !keysBeforeRoPE { Ops.rotate(k, heads: c.kvHeadCount, headDim: c.headDim, style: c.ropeStyle, cos: cos, sin: sin) }
        if queryScale != 1 { Ops.scale(q, by: queryScale, count: c.queryDim) }
    }

    /// RMSNorm of `rows` rows of `x` (`dim` each) into `out`.
    func normRows(_ x: UnsafeMutablePointer<Float>, _ weight: [Float], into out: UnsafeMutablePointer<Float>, rows: Int) {
        let c = config
        weight.withUnsafeBufferPointer { w in
            for t in 0..<rows { Ops.rmsNorm(x + t * c.dim, w.baseAddress!, out + t * c.dim, count: c.dim, eps: c.rmsEps) }
        }
    }
}
