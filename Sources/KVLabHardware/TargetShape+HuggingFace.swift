import Foundation
import KVLabFoundation
import KVLabMethods

/// A target's shape from a Hugging Face `config.json`, as `transformers` reads it: any model
/// type, only the figures a projection needs. Gemma-3's multimodal configs nest the decoder under
/// `text_config`. Bundled catalog targets in this format copy the architecture keys of the cited
/// config.json verbatim and add `source` (the config's address).
struct HuggingFaceConfig {
    let path: String
    /// The decoder's keys (`text_config` when present).
    let json: JSONValue
    let modelType: String
    /// A bundled target's citation (the config's address); nil in a checkpoint's own config.json.
    let source: String?
    /// `_name_or_path`, when the config names the model.
    let name: String?

    init(path: String, data: Data) throws {
        self.path = path
        let root: JSONValue
        do { root = try JSONValue.parse(data) } catch { throw FileError(path: path, problem: "\(error)") }
        guard root.members != nil else { throw FileError(path: path, problem: "is \(root.kind), expected a JSON object") }
        json = root["text_config"].flatMap { $0.members != nil ? $0 : nil } ?? root
        modelType = json["model_type"]?.string ?? root["model_type"]?.string ?? ""
        name = root["_name_or_path"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        if let cited = root["source"] {
            // A catalog entry: only the keys kvlab reads, so a typo cannot fall back to a default
            // unnoticed (a checkpoint's own config.json has many more, and is read leniently).
            guard let text = cited.string, !text.isEmpty else { throw FileError(path: path, problem: "source: is \(cited.kind), expected the config's address") }
            source = text
            for member in root.members! where !Self.catalogKeys.contains(member.key) {
                throw FileError(path: path, problem: "\(member.key): unknown key (a catalog target copies only the config keys kvlab reads)")
            }
            for key in ["_name_or_path", "model_type"] where root[key].map({ $0.string == nil }) ?? false {
                throw FileError(path: path, problem: "\(key): is \(root[key]!.kind), expected a string")
            }
        } else {
            source = nil
        }
    }

    /// The keys a catalog target may copy from its config.json.
    static let catalogKeys: Set<String> = [
        "source", "_name_or_path", "model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "intermediate_size", "vocab_size", "max_position_embeddings", "tie_word_embeddings", "attention_bias",
        "sliding_window", "sliding_window_pattern", "use_sliding_window", "max_window_layers", "layer_types", "attn_layer_period",
        "attn_layer_offset", "full_attention_interval", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
        "v_head_dim", "n_routed_experts", "num_local_experts", "num_experts", "num_experts_per_tok", "experts_per_token",
        "moe_intermediate_size", "n_shared_experts", "shared_expert_intermediate_size", "expert_layer_period", "expert_layer_offset",
        "first_k_dense_replace", "moe_layer_freq", "decoder_sparse_step", "mlp_only_layers", "linear_num_key_heads",
        "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim", "mamba_d_state",
        "mamba_d_conv", "mamba_expand", "mamba_dt_rank",
    ]

    func error(_ key: String, _ problem: String) -> FileError { FileError(path: path, problem: "\(key): \(problem)") }

    func integer(_ key: String) throws -> Int? {
        guard let value = json[key], !value.isNull else { return nil }
        guard let number = value.integer else { throw error(key, "is \(value.kind), expected a whole number") }
        guard number >= 0, number <= 1 << 24 else { throw error(key, "\(number) is outside 0...\(1 << 24)") }
        return number
    }

    func positive(_ key: String) throws -> Int? {
        guard let number = try integer(key) else { return nil }
        guard number > 0 else { throw error(key, "must be positive") }
        return number
    }

    func required(_ key: String) throws -> Int {
        guard let number = try positive(key) else { throw error(key, "missing (a config.json needs it)") }
        return number
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = json[key], !value.isNull else { return nil }
        guard let flag = value.bool else { throw error(key, "is \(value.kind), expected true or false") }
        return flag
    }

    func first(_ keys: String...) throws -> Int? {
        for key in keys { if let value = try positive(key) { return value } }
        return nil
    }
}

extension TargetShape {
    /// Reads a Hugging Face `config.json` (or a bundled target in that format).
    init(huggingFace c: HuggingFaceConfig, id: String) throws {
        let hidden = try c.required("hidden_size"), layers = try c.required("num_hidden_layers")
        let heads = try c.required("num_attention_heads")
        guard layers <= 1024 else { throw c.error("num_hidden_layers", "\(layers) is outside 1...1024") }
        var kvHeads = try c.positive("num_key_value_heads") ?? heads
        let latent = try Self.latent(c)
        var headDim: Int
        if let latent {
            headDim = latent.nopeDim + latent.ropeDim
            kvHeads = heads
        } else if let given = try c.positive("head_dim") {
            headDim = given
        } else {
            guard hidden % heads == 0 else { throw c.error("head_dim", "missing, and hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)") }
            headDim = hidden / heads
        }
        guard heads % kvHeads == 0 else { throw c.error("num_key_value_heads", "\(kvHeads) does not divide num_attention_heads \(heads)") }
        let maxContext = try c.positive("max_position_embeddings") ?? 2048
        let spans = try Self.layerKinds(c, layers: layers)
        let recurrentFlags = spans.map { $0 == nil }
        let recurrent = recurrentFlags.contains(true) ? try Self.recurrent(c, hidden: hidden, layers: recurrentFlags) : nil
        self.init(id: id, name: c.name ?? id, source: c.source ?? "\(c.path) (Hugging Face config.json)", layers: layers,
                  hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim, ffn: try c.required("intermediate_size"),
                  vocab: try c.required("vocab_size"),
                  tiedEmbeddings: try c.bool("tie_word_embeddings") ?? c.modelType.hasPrefix("gemma"),
                  maxContext: maxContext, qkvBias: try c.bool("attention_bias") ?? (c.modelType == "qwen2"),
                  attentionSpans: spans.map { $0 ?? .global }, latent: latent,
                  experts: try Self.experts(c, layers: layers), recurrent: recurrent)
    }

    private static func latent(_ c: HuggingFaceConfig) throws -> LatentAttention? {
        guard let rank = try c.positive("kv_lora_rank") else { return nil }
        return LatentAttention(kvRank: rank, queryRank: try c.positive("q_lora_rank"), ropeDim: try c.required("qk_rope_head_dim"),
                               nopeDim: try c.required("qk_nope_head_dim"), valueDim: try c.required("v_head_dim"))
    }

    /// Per layer: its attention span, or nil for a recurrent (linear-attention or SSM) mixer.
    /// `layer_types` when the config lists them (gpt-oss, Qwen3-Next, newer Gemma); otherwise the
    /// patterns each model type's configuration class derives.
    private static func layerKinds(_ c: HuggingFaceConfig, layers: Int) throws -> [AttentionSpan?] {
        let window = try c.positive("sliding_window")
        func local() throws -> AttentionSpan {
            guard let window else { throw c.error("sliding_window", "missing, but the config has sliding-window layers") }
            return .local(window: window)
        }
        if let types = c.json["layer_types"], !types.isNull {
            guard let list = types.array, list.count == layers else {
                throw c.error("layer_types", "expected an array of \(layers) layer types (num_hidden_layers)")
            }
            return try list.map { item in
                switch item.string {
                case "full_attention": return .global
                case "sliding_attention", "chunked_attention": return try local()
                case "linear_attention", "mamba": return nil
                default: throw c.error("layer_types", "unknown layer type \(item.string.map { "\"\($0)\"" } ?? item.kind)")
                }
            }
        }
        let indices = 0..<layers
        if let period = try c.positive("attn_layer_period") {
            // Jamba: one attention layer per period, at the offset; Mamba elsewhere.
            let offset = try c.integer("attn_layer_offset") ?? 0
            return indices.map { $0 % period == offset ? .global : nil }
        }
        if let interval = try c.positive("full_attention_interval") {
            // Qwen3-Next: every interval-th layer is full attention, the rest Gated DeltaNet.
            return indices.map { ($0 + 1) % interval == 0 ? .global : nil }
        }
        if c.modelType == "gemma2" { return try indices.map { $0 % 2 == 0 ? try local() : .global } }
        if c.modelType.hasPrefix("gemma3") {
            let pattern = try c.positive("sliding_window_pattern") ?? 6
            return try indices.map { ($0 + 1) % pattern != 0 ? try local() : .global }
        }
        guard window != nil else { return Array(repeating: .global, count: layers) }
        if c.modelType.hasPrefix("qwen") || c.json["use_sliding_window"] != nil {
            // Qwen2/Qwen3: sliding windows only when use_sliding_window says so (default off), and
            // then from max_window_layers on.
            guard try c.bool("use_sliding_window") ?? false else { return Array(repeating: .global, count: layers) }
            let from = try c.integer("max_window_layers") ?? 0
            return try indices.map { $0 >= from ? try local() : .global }
        }
        return try indices.map { _ in try local() }
    }

    private static func experts(_ c: HuggingFaceConfig, layers: Int) throws -> ExpertLayers? {
        guard let count = try c.first("n_routed_experts", "num_local_experts", "num_experts"), count > 1 else { return nil }
        guard let active = try c.first("num_experts_per_tok", "experts_per_token"), active <= count else {
            throw c.error("num_experts_per_tok", "missing or more than the \(count) experts")
        }
        let ffn = try c.positive("moe_intermediate_size") ?? c.required("intermediate_size")
        let shared = (try c.integer("n_shared_experts") ?? 0) * ffn + (try c.integer("shared_expert_intermediate_size") ?? 0)
        let indices = 0..<layers
        let flags: [Bool]
        if let period = try c.positive("expert_layer_period") {
            // Jamba: MoE every period-th layer from the offset.
            let offset = try c.integer("expert_layer_offset") ?? 0
            flags = indices.map { $0 % period == offset }
        } else if c.json["first_k_dense_replace"] != nil || c.json["moe_layer_freq"] != nil {
            // DeepSeek: the first k layers dense, then MoE every moe_layer_freq-th layer.
            let dense = try c.integer("first_k_dense_replace") ?? 0, frequency = try c.positive("moe_layer_freq") ?? 1
            flags = indices.map { $0 >= dense && $0 % frequency == 0 }
        } else {
            // Qwen-MoE: every decoder_sparse_step-th layer, except mlp_only_layers.
            let step = try c.positive("decoder_sparse_step") ?? 1
            var only: Set<Int> = []
            if let list = c.json["mlp_only_layers"], !list.isNull {
                guard let layers = list.array?.compactMap(\.integer), layers.count == list.array?.count else {
                    throw c.error("mlp_only_layers", "is \(list.kind), expected an array of layer indices")
                }
                only = Set(layers)
            }
            flags = indices.map { !only.contains($0) && ($0 + 1) % step == 0 }
        }
        return ExpertLayers(count: count, active: active, ffn: ffn, sharedFFN: shared, layers: flags)
    }

    private static func recurrent(_ c: HuggingFaceConfig, hidden: Int, layers: [Bool]) throws -> RecurrentLayers {
        if let valueHeads = try c.positive("linear_num_value_heads") {
            // Gated DeltaNet (Qwen3-Next): per value head a key × value state matrix, plus the
            // causal convolution's last kernel − 1 inputs over q, k and v.
            let keyHeads = try c.required("linear_num_key_heads"), keyDim = try c.required("linear_key_head_dim")
            let valueDim = try c.required("linear_value_head_dim"), kernel = try c.required("linear_conv_kernel_dim")
            let keys = keyHeads * keyDim, values = valueHeads * valueDim, channels = 2 * keys + values
            let parameters = hidden * (2 * keys + 2 * values) + hidden * 2 * valueHeads + channels * kernel + 2 * valueHeads + valueDim
                + values * hidden
            // Decay the state, read k·S, add the delta's outer product, read q·S: about 7 FLOPs per element.
            return RecurrentLayers(kind: "Gated DeltaNet", layers: layers, stateElements: valueHeads * keyDim * valueDim + channels * (kernel - 1),
                                   parameters: parameters, flopsPerStateElement: 7)
        }
        if let state = try c.positive("mamba_d_state") {
            // Mamba (Jamba): d_inner × d_state SSM state and the convolution's last d_conv − 1 inputs.
            let expand = try c.positive("mamba_expand") ?? 2, conv = try c.positive("mamba_d_conv") ?? 4
            let inner = expand * hidden
            let rank = try c.positive("mamba_dt_rank") ?? (hidden + 15) / 16
            let parameters = hidden * 2 * inner + inner * conv + inner + inner * (rank + 2 * state) + rank * inner + inner
                + inner * state + inner + inner * hidden + rank + 2 * state
            // Discretize (exp and multiplies), update and read out the state: about 6 FLOPs per element.
            return RecurrentLayers(kind: "Mamba", layers: layers, stateElements: inner * state + inner * (conv - 1),
                                   parameters: parameters, flopsPerStateElement: 6)
        }
        throw c.error("layer_types", "has linear or state-space layers, but no linear_num_value_heads or mamba_d_state to size them")
    }
}
