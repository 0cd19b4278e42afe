import KVLabFoundation
import KVLabMethods

/// The tensors of one layer of each family, by Hugging Face name (after `model.layers.N.`) and
/// llama.cpp's GGUF name (after `blk.N.`), and how they become `LayerWeights`: the one place both
/// loaders learn a family's layout.
enum FamilyTensors {
    /// Every tensor a layer of `family` must have.
    static func names(_ family: ModelFamily) -> [(hf: String, gguf: String)] {
        let attention = [("self_attn.q_proj.weight", "attn_q.weight"), ("self_attn.k_proj.weight", "attn_k.weight"),
                         ("self_attn.v_proj.weight", "attn_v.weight"), ("self_attn.o_proj.weight", "attn_output.weight")]
        let feedForward = [("mlp.gate_proj.weight", "ffn_gate.weight"), ("mlp.down_proj.weight", "ffn_down.weight"),
                           ("mlp.up_proj.weight", "ffn_up.weight")]
        let input = ("input_layernorm.weight", "attn_norm.weight")
        let llama = [input] + attention + [("post_attention_layernorm.weight", "ffn_norm.weight")] + feedForward
        // Gemma's post_attention_layernorm normalizes the attention output; its feed-forward input
        // norm is pre_feedforward_layernorm (llama.cpp: post_attention_norm and ffn_norm).
        let gemma = [input] + attention + feedForward + [
            ("post_attention_layernorm.weight", "post_attention_norm.weight"),
            ("pre_feedforward_layernorm.weight", "ffn_norm.weight"),
            ("post_feedforward_layernorm.weight", "post_ffw_norm.weight"),
        ]
        let qkNorms = [("self_attn.q_norm.weight", "attn_q_norm.weight"), ("self_attn.k_norm.weight", "attn_k_norm.weight")]
        return switch family {
        case .llama, .mistral: llama
        case .qwen2: llama + [("self_attn.q_proj.bias", "attn_q.bias"), ("self_attn.k_proj.bias", "attn_k.bias"),
                              ("self_attn.v_proj.bias", "attn_v.bias")]
        case .qwen3: llama + qkNorms
        // Phi-3 fuses q, k, v into one projection, and gate and up into another (gate first).
        case .phi3: [input, ("self_attn.qkv_proj.weight", "attn_qkv.weight"), ("self_attn.o_proj.weight", "attn_output.weight"),
                     ("post_attention_layernorm.weight", "ffn_norm.weight"), ("mlp.gate_up_proj.weight", "ffn_up.weight"),
                     ("mlp.down_proj.weight", "ffn_down.weight")]
        case .gemma2: gemma
        case .gemma3: gemma + qkNorms
        }
    }

    /// A layer's weights from its tensors, looked up by GGUF name (`matrix(name, rows, cols)` and
    /// `vector(name, count)` check the shape); fused projections are split.
    static func layer(_ c: ModelConfig, matrix: (String, Int, Int) throws -> WeightMatrix,
                      vector: (String, Int) throws -> [Float]) throws -> LayerWeights {
        let present = Set(names(c.family).map(\.gguf))
        func optional(_ name: String, _ count: Int) throws -> [Float]? {
            present.contains(name) ? try vector(name, count) : nil
        }
        let query, key, value, gate, up: WeightMatrix
        if c.family == .phi3 {
            let qkv = try matrix("attn_qkv.weight", c.queryDim + 2 * c.kvDim, c.dim)
            query = qkv.slicingRows(0..<c.queryDim)
            key = qkv.slicingRows(c.queryDim..<(c.queryDim + c.kvDim))
            value = qkv.slicingRows((c.queryDim + c.kvDim)..<(c.queryDim + 2 * c.kvDim))
            let gateUp = try matrix("ffn_up.weight", 2 * c.hiddenDim, c.dim)
            gate = gateUp.slicingRows(0..<c.hiddenDim)
            up = gateUp.slicingRows(c.hiddenDim..<(2 * c.hiddenDim))
        } else {
            query = try matrix("attn_q.weight", c.queryDim, c.dim)
            key = try matrix("attn_k.weight", c.kvDim, c.dim)
            value = try matrix("attn_v.weight", c.kvDim, c.dim)
            gate = try matrix("ffn_gate.weight", c.hiddenDim, c.dim)
            up = try matrix("ffn_up.weight", c.hiddenDim, c.dim)
        }
        return LayerWeights(
            attentionNorm: try vector("attn_norm.weight", c.dim), query: query, key: key, value: value,
            attentionOutput: try matrix("attn_output.weight", c.dim, c.queryDim), ffnNorm: try vector("ffn_norm.weight", c.dim),
            ffnGate: gate, ffnDown: try matrix("ffn_down.weight", c.dim, c.hiddenDim), ffnUp: up,
            queryBias: try optional("attn_q.bias", c.queryDim), keyBias: try optional("attn_k.bias", c.kvDim),
            valueBias: try optional("attn_v.bias", c.kvDim),
            queryNorm: try optional("attn_q_norm.weight", c.headDim), keyNorm: try optional("attn_k_norm.weight", c.headDim),
            postAttentionNorm: try optional("post_attention_norm.weight", c.dim), postFFNNorm: try optional("post_ffw_norm.weight", c.dim))
    }

    /// Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter stores 1 + w, and kvlab does
    /// the same with Hugging Face weights, so one RMSNorm serves every family.
    static func storesNormOffset(_ family: ModelFamily) -> Bool { family == .gemma2 || family == .gemma3 }
}
