import Foundation

/// Multi-head latent attention (DeepSeek-V2, section 2.1): keys and values are up-projected from
/// a per-token latent of `kvRank` channels, and a decoupled RoPE key of `ropeDim` channels is
/// shared by all heads. Engines (vLLM, SGLang, DeepSeek's own) cache exactly those
/// `kvRank + ropeDim` channels per token and layer, and decode with the up-projections absorbed
/// into the query and the output, so every head reads the one latent (MQA-like).
public struct LatentAttention: Sendable, Equatable {
    /// kv_lora_rank: channels of the compressed latent.
    public var kvRank: Int
    /// q_lora_rank: the query's own low-rank bottleneck; nil for a full query projection (V2-Lite).
    public var queryRank: Int?
    /// qk_rope_head_dim: the decoupled RoPE key (and query) channels.
    public var ropeDim: Int
    /// qk_nope_head_dim: per-head query/key channels without RoPE.
    public var nopeDim: Int
    /// v_head_dim: per-head value channels.
    public var valueDim: Int

    public init(kvRank: Int, queryRank: Int?, ropeDim: Int, nopeDim: Int, valueDim: Int) {
        self.kvRank = kvRank
        self.queryRank = queryRank
        self.ropeDim = ropeDim
        self.nopeDim = nopeDim
        self.valueDim = valueDim
    }
}

/// Mixture-of-experts feed-forward layers: a router picks `active` of `count` experts per token
/// (SwiGLU of width `ffn` each); `sharedFFN` channels of always-active shared experts run beside
/// them (DeepSeek, Qwen3-Next). Layers not marked keep a dense FFN of the target's `ffn`.
public struct ExpertLayers: Sendable, Equatable {
    /// Routed experts per layer.
    public var count: Int
    /// Experts each token is routed to.
    public var active: Int
    /// Intermediate size of one routed expert.
    public var ffn: Int
    /// Intermediate size of the shared experts together (0: none).
    public var sharedFFN: Int
    /// One per layer: whether it is a mixture-of-experts layer.
    public var layers: [Bool]

    public init(count: Int, active: Int, ffn: Int, sharedFFN: Int, layers: [Bool]) {
        self.count = count
        self.active = active
        self.ffn = ffn
        self.sharedFFN = sharedFFN
        self.layers = layers
    }

    /// Expected distinct experts a layer reads in one step of `tokens` tokens routed
    /// independently and uniformly: each expert is missed by a token with probability
    /// 1 − k/E, so it is read with probability 1 − (1 − k/E)^B.
    public func distinct(tokens: Double) -> Double {
        let e = Double(count), k = Double(active)
        return e * (1 - pow(1 - k / e, tokens))
    }
}

/// Layers whose token mixer is a linear attention or a state-space model (Gated DeltaNet in
/// Qwen3-Next, Mamba in Jamba): they keep a fixed-size state per sequence instead of a KV cache.
public struct RecurrentLayers: Sendable, Equatable {
    /// The mixer, in words (`Gated DeltaNet`, `Mamba`).
    public var kind: String
    /// One per layer: whether its mixer is recurrent (no KV there).
    public var layers: [Bool]
    /// State elements per layer and sequence (recurrent state and the convolution's window).
    public var stateElements: Int
    /// Parameters of one layer's mixer (projections, convolution, gates, norms).
    public var parameters: Int
    /// FLOPs per state element per token (decay, read-out and update of the state).
    public var flopsPerStateElement: Int

    public init(kind: String, layers: [Bool], stateElements: Int, parameters: Int, flopsPerStateElement: Int) {
        self.kind = kind
        self.layers = layers
        self.stateElements = stateElements
        self.parameters = parameters
        self.flopsPerStateElement = flopsPerStateElement
    }
}

extension TargetShape {
    // MARK: - What the cache stores

    /// Whether `layer` attends over a KV cache (not a recurrent mixer).
    public func hasKV(layer: Int) -> Bool { !(recurrent?.layers[layer] ?? false) }

    /// Layers with attention (and a KV cache).
    public var attentionLayers: Int { (0..<layers).filter(hasKV(layer:)).count }

    /// Cache heads per attention layer: the KV heads, or MLA's one shared latent.
    public var cacheHeads: Int { latent == nil ? kvHeads : 1 }
    /// Channels of one cached key: the head size, or MLA's latent plus its RoPE key.
    public var cacheKeyDim: Int { latent.map { $0.kvRank + $0.ropeDim } ?? headDim }
    /// Whether values are cached beside the keys (MLA's values are read from the latent itself).
    public var storesValues: Bool { latent == nil }
    /// Channels a decode step weights per value: the head size, or MLA's latent.
    public var valueReadDim: Int { latent?.kvRank ?? headDim }
    /// Query heads reading each cache head.
    public var cacheGroup: Int { heads / cacheHeads }
    /// Channels of one head's value output (before the output projection).
    public var valueHeadDim: Int { latent?.valueDim ?? headDim }

    /// KV bytes one token adds to one sequence while no window or method bounds it, with
    /// `bytes` per element: every attention layer's keys (and values) in every cache head.
    public func kvBytesPerToken(elementBytes bytes: Int) -> Int {
        attentionLayers * cacheHeads * (cacheKeyDim + (storesValues ? headDim : 0)) * bytes
    }

    // MARK: - Layer kinds

    /// Layers with a mixture-of-experts FFN.
    public var expertLayers: Int { experts?.layers.filter { $0 }.count ?? 0 }
    /// Layers with a dense FFN.
    public var denseFFNLayers: Int { layers - expertLayers }
    /// Layers with a recurrent mixer.
    public var recurrentLayers: Int { layers - attentionLayers }

    /// Parameters of one attention layer's projections (MLA's down- and up-projections and norms).
    var attentionParameters: Int {
        if let m = latent {
            let query = m.queryRank.map { hidden * $0 + $0 + $0 * queryDim } ?? hidden * queryDim
            return query + hidden * (m.kvRank + m.ropeDim) + m.kvRank + m.kvRank * heads * (m.nopeDim + m.valueDim)
                + heads * m.valueDim * hidden
        }
        return hidden * queryDim + 2 * hidden * kvDim + queryDim * hidden + (qkvBias ? queryDim + 2 * kvDim : 0)
    }

    /// Parameters of one layer's FFN: dense, or the router, every expert and the shared ones.
    func ffnParameters(expert: Bool) -> Int {
        guard expert, let e = experts else { return 3 * hidden * ffn }
        return hidden * e.count + e.count * 3 * hidden * e.ffn + 3 * hidden * e.sharedFFN
    }

    /// Parameters, the classifier counted once when tied, every expert counted.
    public var parameterCount: Int {
        var total = vocab * hidden * (tiedEmbeddings ? 1 : 2) + hidden + layers * 2 * hidden
        total += attentionLayers * attentionParameters + recurrentLayers * (recurrent?.parameters ?? 0)
        total += denseFFNLayers * ffnParameters(expert: false) + expertLayers * ffnParameters(expert: true)
        return total
    }

    /// Parameters one token runs through: the routed experts it is sent to instead of all of them.
    public var activeParameterCount: Int {
        guard let e = experts else { return parameterCount }
        return parameterCount - expertLayers * (e.count - e.active) * 3 * hidden * e.ffn
    }

    /// The layer structure in words, for listings and notes (`MLA latent 512+64`, `MoE 8 of 256`).
    public var family: String {
        var parts: [String] = []
        if let m = latent { parts.append("MLA latent \(m.kvRank)+\(m.ropeDim)") }
        let local = attentionSpans.enumerated().filter { hasKV(layer: $0.offset) && $0.element.window != nil }.count
        if local > 0 {
            let windows = Set(attentionSpans.compactMap(\.window)).sorted().map(String.init).joined(separator: ", ")
            parts.append("\(local) of \(attentionLayers) attention layers local (window \(windows))")
        }
        if let r = recurrent { parts.append("\(recurrentLayers) of \(layers) layers \(r.kind)") }
        if let e = experts {
            parts.append("MoE \(e.active) of \(e.count) experts\(e.sharedFFN > 0 ? " + shared" : "") on \(expertLayers) layers")
        }
        return parts.isEmpty ? "dense" : parts.joined(separator: "; ")
    }
}
