import KVLabMethods

/// The ops of a decode step and of a prefill: per layer kind (attention or recurrent mixer, dense
/// or mixture-of-experts FFN), each summed over the layers of that kind.
extension ProjectionModel {
    // MARK: - Dense ops shared by decode and prefill

    /// A linear layer in `layers` layers over `tokens` rows: its weights once, inputs and outputs per row.
    private func addLinear(_ ops: inout OpTable, _ name: String, rows: Int, cols: Int, tokens: Double, layers: Int) {
        let layers = Double(layers)
        ops.add(name, bytes: layers * (matrixBytes(rows: rows, cols: cols) + tokens * Double(rows + cols) * f),
                flops: layers * 2 * Double(rows * cols) * tokens)
    }

    /// An element-wise op in `layers` layers (every layer when nil) over `tokens` rows (`read`,
    /// `write` elements per row).
    private func addElementwise(_ ops: inout OpTable, _ name: String, read: Double, write: Double, flops: Double,
                                weights: Double = 0, tokens: Double, layers: Int? = nil, scope: OpScope = .replicated) {
        let layers = Double(layers ?? target.layers)
        ops.add(name, bytes: layers * (weights + tokens * (read + write) * f), flops: layers * tokens * flops, scope: scope)
    }

    /// Embedding lookup, then each layer's input norm, its attention projections (and biases)
    /// and RoPE, or its recurrent mixer's input projections.
    private func addInputOps(_ ops: inout OpTable, tokens: Double) {
        let t = target, h = Double(t.hidden), a = t.attentionLayers
        ops.add("embedding", bytes: tokens * (embeddingBytes / Double(t.vocab) + h * f))
        addElementwise(&ops, "attn_norm", read: h, write: h, flops: 4 * h, weights: h * f, tokens: tokens)
        if a > 0, let m = t.latent {
            // Absorbed MLA: the query (through its low-rank bottleneck), the latent and RoPE key
            // (the cache entry), then W_UK folded into the query so it scores the latent directly.
            if let rank = m.queryRank {
                addLinear(&ops, "q_a_proj", rows: rank, cols: t.hidden, tokens: tokens, layers: a)
                addLinear(&ops, "q_b_proj", rows: t.queryDim, cols: rank, tokens: tokens, layers: a)
            } else {
                addLinear(&ops, "q_proj", rows: t.queryDim, cols: t.hidden, tokens: tokens, layers: a)
            }
            addLinear(&ops, "kv_a_proj", rows: m.kvRank + m.ropeDim, cols: t.hidden, tokens: tokens, layers: a)
            let absorb = Double(t.heads * m.nopeDim * m.kvRank)
            ops.add("q_absorb", bytes: Double(a) * (matrixBytes(rows: t.heads * m.kvRank, cols: m.nopeDim) + tokens * Double(t.heads * (m.nopeDim + m.kvRank)) * f),
                    flops: Double(a) * 2 * absorb * tokens)
            let roped = Double(t.heads * m.ropeDim + m.ropeDim)
            addElementwise(&ops, "rope", read: roped, write: roped, flops: 3 * roped, tokens: tokens, layers: a, scope: .sharded)
        } else if a > 0 {
            let q = Double(t.queryDim), kv = Double(t.kvDim)
            addLinear(&ops, "q_proj", rows: t.queryDim, cols: t.hidden, tokens: tokens, layers: a)
            addLinear(&ops, "k_proj", rows: t.kvDim, cols: t.hidden, tokens: tokens, layers: a)
            addLinear(&ops, "v_proj", rows: t.kvDim, cols: t.hidden, tokens: tokens, layers: a)
            if t.qkvBias {
                addElementwise(&ops, "qkv_bias", read: q + 2 * kv, write: q + 2 * kv, flops: q + 2 * kv, weights: (q + 2 * kv) * f,
                               tokens: tokens, layers: a, scope: .sharded)
            }
            addElementwise(&ops, "rope", read: q + kv, write: q + kv, flops: 3 * (q + kv), tokens: tokens, layers: a, scope: .sharded)
        }
        if let r = t.recurrent {
            let s = Double(t.recurrentLayers)
            ops.add("mixer_proj", bytes: s * (recurrentWeightBytes + tokens * 2 * h * f), flops: s * 2 * Double(r.parameters) * tokens)
        }
    }

    /// The recurrent layers' state: read, updated and written once per step and sequence.
    private func addStateOps(_ ops: inout OpTable, sequences: Double, tokens: Double) {
        guard let r = target.recurrent else { return }
        let s = Double(target.recurrentLayers), elements = Double(r.stateElements)
        ops.add("state_update", bytes: sequences * s * 2 * elements * f, flops: tokens * s * Double(r.flopsPerStateElement) * elements)
    }

    /// Each layer's output projection (attention layers), residuals, FFN (dense, or the router,
    /// the experts `tokens` rows reach and the shared experts), the final norm, and the
    /// classifier over `logitRows` rows.
    private func addOutputOps(_ ops: inout OpTable, tokens: Double, logitRows: Double) {
        let t = target, h = Double(t.hidden), a = t.attentionLayers
        if a > 0, let m = t.latent {
            let absorb = Double(t.heads * m.kvRank * m.valueDim)
            ops.add("v_absorb", bytes: Double(a) * (matrixBytes(rows: t.heads * m.valueDim, cols: m.kvRank) + tokens * Double(t.heads * (m.kvRank + m.valueDim)) * f),
                    flops: Double(a) * 2 * absorb * tokens)
        }
        if a > 0 { addLinear(&ops, "o_proj", rows: t.hidden, cols: t.heads * t.valueHeadDim, tokens: tokens, layers: a) }
        addElementwise(&ops, "attn_add", read: 2 * h, write: h, flops: h, tokens: tokens)
        addElementwise(&ops, "ffn_norm", read: h, write: h, flops: 4 * h, weights: h * f, tokens: tokens)
        let dense = t.denseFFNLayers
        if dense > 0 {
            let ffn = Double(t.ffn)
            addLinear(&ops, "gate_proj", rows: t.ffn, cols: t.hidden, tokens: tokens, layers: dense)
            addLinear(&ops, "up_proj", rows: t.ffn, cols: t.hidden, tokens: tokens, layers: dense)
            addElementwise(&ops, "swiglu", read: 2 * ffn, write: ffn, flops: 5 * ffn, tokens: tokens, layers: dense, scope: .sharded)
            addLinear(&ops, "down_proj", rows: t.hidden, cols: t.ffn, tokens: tokens, layers: dense)
        }
        if let e = t.experts, t.expertLayers > 0 {
            let layers = t.expertLayers
            addLinear(&ops, "router", rows: e.count, cols: t.hidden, tokens: tokens, layers: layers)
            // Weights: the distinct experts the step's tokens reach; work: each token's k experts.
            let width = Double(e.ffn), routed = tokens * Double(e.active)
            ops.add("experts", bytes: Double(layers) * (e.distinct(tokens: tokens) * swigluBytes(e.ffn) + routed * (3 * h + 6 * width) * f),
                    flops: Double(layers) * routed * (6 * h * width + 5 * width))
            if e.sharedFFN > 0 {
                let shared = Double(e.sharedFFN)
                ops.add("shared_experts", bytes: Double(layers) * (swigluBytes(e.sharedFFN) + tokens * (3 * h + 6 * shared) * f),
                        flops: Double(layers) * tokens * (6 * h * shared + 5 * shared))
            }
        }
        addElementwise(&ops, "ffn_add", read: 2 * h, write: h, flops: h, tokens: tokens)
        ops.add("final_norm", bytes: h * f + tokens * 2 * h * f, flops: tokens * 4 * h, scope: .replicated)
        ops.add("classifier", bytes: embeddingBytes + logitRows * (h + Double(t.vocab)) * f, flops: logitRows * 2 * h * Double(t.vocab))
        if devices > 1 {
            // Ring all-reduce of the hidden state after each layer's mixer and FFN: each device
            // sends 2(G − 1)/G of it.
            let payload = 2 * Double(t.layers) * tokens * h * f
            ops.add("all_reduce", bytes: 2 * payload, link: payload * 2 * (devices - 1) / devices, scope: .replicated)
        }
    }

    // MARK: - Decode

    func decode(kept: [Double], ideal: Bool) -> PhaseCost {
        let t = target, b = Double(setup.batch)
        let g = Double(t.cacheGroup)
        let attention = Double(t.attentionLayers), d = Double(t.cacheKeyDim), dv = Double(t.valueReadDim)
        var ops = OpTable()
        addInputOps(&ops, tokens: b)

        // Per (layer, cache head): the new entry, the entry leaving the residual window, the reads.
        var append = 0.0, scoresBytes = 0.0, keyBytes = 0.0, valueBytes = 0.0, selectionBytes = 0.0, hostBytes = 0.0
        var qkFLOPs = 0.0, softmaxFLOPs = 0.0, pvFLOPs = 0.0, selectionFLOPs = 0.0, policyBytes = 0.0
        for (i, n) in kept.enumerated() where t.hasKV(layer: i / t.cacheHeads) {
            let r = read(n, ideal: ideal)
            keyBytes += r.keyBytes
            valueBytes += r.valueBytes
            selectionBytes += r.selectionBytes
            selectionFLOPs += r.selectionFLOPs
            hostBytes += r.hostBytes
            qkFLOPs += 2 * d * g * r.scored + 2 * r.decodedKeys
            softmaxFLOPs += 5 * g * r.scored
            pvFLOPs += 2 * dv * g * r.valuesRead + 2 * r.decodedValues
            // naive: q·K writes the group's scores, softmax reads and rewrites them, P·V reads them.
            if setup.kernel == .naive { scoresBytes += 4 * g * r.scored * f }
            if ideal {
                append += storage.idealKeyBytes + storage.idealValueBytes
            } else {
                append += storage.appendVectors * storage.vectorBytes + 4 + stateBytes
                if n > Double(storage.residual) {
                    for record in [storage.keyRecordBytesPerEntry, storage.valueRecordBytesPerEntry] {
                        if let record { append += storage.vectorBytes + record }
                    }
                }
                policyBytes += 2 * n * stateBytes
                if needsScores { policyBytes += setup.kernel == .naive ? g * n * f : 2 * n * 4 }
            }
        }
        if attention > 0 { ops.add("kv_append", bytes: b * append, scope: .attention) }
        if selectionBytes > 0 || selectionFLOPs > 0 { ops.add("sparse_select", bytes: b * selectionBytes, flops: b * selectionFLOPs, scope: .attention) }
        // Queries as scored (MLA: in the latent's space) and head outputs as weighted.
        let queries = attention * Double(t.heads) * d * f, outputs = attention * Double(t.heads) * dv * f
        if attention > 0 {
            switch setup.kernel {
            case .naive:
                ops.add("qk", bytes: b * (keyBytes + queries + scoresBytes / 4), host: b * hostBytes, flops: b * qkFLOPs, scope: .attention)
                ops.add("softmax", bytes: b * scoresBytes / 2, flops: b * softmaxFLOPs, scope: .attention)
                ops.add("pv", bytes: b * (valueBytes + scoresBytes / 4 + outputs), flops: b * pvFLOPs, scope: .attention)
            case .tiled:
                ops.add("attention", bytes: b * (keyBytes + valueBytes + queries + outputs), host: b * hostBytes,
                        flops: b * (qkFLOPs + softmaxFLOPs + pvFLOPs), scope: .attention)
            }
        }
        if policyBytes > 0 { ops.add("policy_state", bytes: b * policyBytes, scope: .attention) }
        addStateOps(&ops, sequences: b, tokens: b)
        addOutputOps(&ops, tokens: b, logitRows: b)
        return ops.costs(device: setup.device, precision: precision, devices: devices, kvShare: kvShare)
    }

    // MARK: - Prefill

    /// A batched prefill of `context` tokens per sequence, attending over the whole prompt (eviction
    /// acts after it), writing every entry in its stored form; logits for the last token only.
    func prefill() -> PhaseCost {
        let t = target, b = Double(setup.batch), n = Double(setup.context)
        let attention = Double(t.attentionLayers), heads = Double(t.heads), cacheHeads = Double(t.cacheHeads)
        let d = Double(t.cacheKeyDim), dv = Double(t.valueReadDim)
        let tokens = b * n
        var ops = OpTable()
        addInputOps(&ops, tokens: tokens)
        if attention > 0 {
            let stored = storage.keys(n).total + storage.values(n).total + n * (4 + stateBytes)
            ops.add("kv_append", bytes: b * attention * cacheHeads * stored, scope: .attention)
            // Causal attention: query i sees i + 1 entries, at most the window on a local layer
            // (summed over layers: `layers × pairs` for a model without local layers).
            let pairs = n * (n + 1) / 2
            let layerPairs = t.attentionSpans.enumerated().reduce(0.0) { sum, layer in
                guard t.hasKV(layer: layer.offset) else { return sum }
                guard let window = layer.element.window.map(Double.init), window < n else { return sum + pairs }
                return sum + window * (window + 1) / 2 + (n - window) * window
            }
            let attentionFLOPs = b * heads * layerPairs * (2 * d + 2 * dv + 5)
            switch setup.kernel {
            case .naive:
                // K and V read once per cache head; the score matrix written, read and rewritten, read.
                let keys = b * attention * cacheHeads * n * d * f
                let values = t.storesValues ? b * attention * cacheHeads * n * dv * f : 0
                let scores = b * heads * layerPairs * f
                let queries = b * attention * heads * n * d * f, outputs = b * attention * heads * n * dv * f
                ops.add("qk", bytes: keys + scores + queries, flops: b * heads * layerPairs * 2 * d, scope: .attention)
                ops.add("softmax", bytes: 2 * scores, flops: b * heads * layerPairs * 5, scope: .attention)
                ops.add("pv", bytes: values + scores + outputs, flops: b * heads * layerPairs * 2 * dv, scope: .attention)
            case .tiled:
                // FlashAttention-2: each query head's blocks of B_r rows stream the K/V tiles up to the
                // diagonal (on local layers only the window's tiles, in proportion to the pairs seen).
                let rows = Double(min(tileEntries, t.cacheKeyDim))
                let full = (n / rows).rounded(.down)
                let streamed = rows * full * (full + 1) / 2 + (n > full * rows ? n : 0)
                let tile = (d + (t.storesValues ? dv : 0)) * f
                ops.add("attention", bytes: b * heads * (streamed * tile * layerPairs / pairs + attention * n * (d + dv) * f),
                        flops: attentionFLOPs, scope: .attention)
            }
        }
        // A chunked scan reads and writes each sequence's state once.
        addStateOps(&ops, sequences: b, tokens: tokens)
        // Logits for the last token of each sequence only.
        addOutputOps(&ops, tokens: tokens, logitRows: b)
        return ops.costs(device: setup.device, precision: precision, devices: devices, kvShare: kvShare)
    }
}
