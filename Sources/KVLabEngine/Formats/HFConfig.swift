import Foundation
import KVLabFoundation
import KVLabMethods

/// A Hugging Face `config.json` of a family kvlab runs (llama, mistral, qwen2, qwen3, phi3, gemma2,
/// gemma3_text), read as transformers 5.25 reads it: both RoPE spellings (`rope_parameters`, and
/// the older `rope_theta` + `rope_scaling`; Gemma 3's per layer type), per-layer attention types,
/// head sizes independent of the width, Gemma's scales and caps.
struct HFConfig {
    var config: ModelConfig
    var tiedEmbeddings: Bool
    var shownMetadata: [(String, String)]

    /// What kvlab does with each attribute of the transformers config classes of the families it
    /// runs. A key that changes the math is implemented or refused (in one line naming it) when set
    /// to what kvlab does not implement; the rest only matter to training or to transformers' API.
    /// HFFamilyTests checks this table against every attribute of each config class.
    enum KeyRole: Equatable {
        case implemented
        /// Implemented for the values that `condition` describes; other values are refused.
        case refusedUnless(_ condition: String)
        case irrelevant(_ why: String)
    }

    static let keyRoles: [String: KeyRole] = [
        "model_type": .implemented, "architectures": .implemented, "_name_or_path": .implemented,
        "hidden_size": .implemented, "intermediate_size": .implemented, "num_hidden_layers": .implemented,
        "num_attention_heads": .implemented, "num_key_value_heads": .implemented, "head_dim": .implemented,
        "vocab_size": .implemented, "max_position_embeddings": .implemented, "rms_norm_eps": .implemented,
        "rope_parameters": .implemented, "rope_theta": .implemented, "rope_scaling": .implemented,
        "tie_word_embeddings": .implemented, "layer_types": .implemented,
        "sliding_window": .implemented, "use_sliding_window": .implemented, "max_window_layers": .implemented,
        "bos_token_id": .implemented, "eos_token_id": .implemented,
        "hidden_act": .refusedUnless("silu (gelu_pytorch_tanh for gemma)"),
        "hidden_activation": .refusedUnless("gelu_pytorch_tanh (gemma)"),
        "query_pre_attn_scalar": .implemented, "attn_logit_softcapping": .implemented,
        "final_logit_softcapping": .implemented, "rope_local_base_freq": .implemented,
        "sliding_window_pattern": .implemented, "_sliding_window_pattern": .implemented,
        "original_max_position_embeddings": .implemented,
        "use_bidirectional_attention": .refusedUnless("false"),
        "resid_pdrop": .irrelevant("dropout is off at inference"), "embd_pdrop": .irrelevant("dropout is off at inference"),
        "attention_bias": .refusedUnless("false (qwen2: its q/k/v biases are always present)"),
        "mlp_bias": .refusedUnless("false"),
        "partial_rotary_factor": .refusedUnless("1"),
        "attention_dropout": .irrelevant("dropout is off at inference"),
        "initializer_range": .irrelevant("weight initialization"),
        "pretraining_tp": .irrelevant("transformers 5 no longer reads it"),
        "use_cache": .irrelevant("transformers' generation API"),
        "pad_token_id": .irrelevant("padding of batches"),
        "output_attentions": .irrelevant("transformers' API"), "output_hidden_states": .irrelevant("transformers' API"),
        "return_dict": .irrelevant("transformers' API"), "dtype": .irrelevant("kvlab keeps each tensor's stored type"),
        "torch_dtype": .irrelevant("kvlab keeps each tensor's stored type"),
        "transformers_version": .irrelevant("provenance"), "id2label": .irrelevant("classification heads"),
        "label2id": .irrelevant("classification heads"), "problem_type": .irrelevant("classification heads"),
        "is_encoder_decoder": .irrelevant("decoder-only families"),
        "chunk_size_feed_forward": .irrelevant("memory chunking, same result"),
    ]

    /// Keys a rope parameter dictionary may hold; anything else is refused.
    private static let ropeKeys: Set<String> = [
        "rope_type", "type", "rope_theta", "factor", "low_freq_factor", "high_freq_factor",
        "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim",
        "truncate", "partial_rotary_factor", "short_factor", "long_factor",
    ]

    /// Reads the shape; `runnable` also refuses what the engine cannot run (other model types,
    /// other RoPE scalings, activations, biases), which a shape-only reader (a projection target)
    /// does not need.
    init(_ json: JSONValue, defaultName: String, runnable: Bool = true) throws {
        guard json.members != nil else { throw FormatError("is \(json.kind), expected a JSON object") }
        let reader = ConfigReader(json: json)
        let modelType = json["model_type"]?.string ?? "llama"
        let family = Self.modelTypes[modelType]
        if runnable && family == nil {
            throw FormatError("model_type \(modelType) is not supported (kvlab runs "
                + Self.modelTypes.keys.sorted().joined(separator: ", ") + ")")
        }
        let gemma = family == .gemma2 || family == .gemma3
        if runnable { try Self.checkActivation(json, gemma: gemma) }
        if runnable, json["use_bidirectional_attention"]?.bool == true {
            throw FormatError("use_bidirectional_attention is true; kvlab runs causal decoders only")
        }
        if runnable { try Self.checkBiases(json, family: family ?? .llama) }
        if runnable, let partial = try reader.number("partial_rotary_factor"), partial != 1 {
            throw FormatError("partial_rotary_factor \(partial) is not supported; kvlab rotates whole heads")
        }
        let heads = try reader.required("num_attention_heads")
        let contextLength = try reader.integer("max_position_embeddings") ?? 2048
        let layerCount = try reader.required("num_hidden_layers")
        let (rope, localRoPE) = try Self.ropes(json, reader: reader, family: family ?? .llama, contextLength: contextLength,
                                               runnable: runnable)
        let spans = try Self.attentionSpans(json, reader: reader, family: family ?? .llama, layerCount: layerCount,
                                            contextLength: contextLength, runnable: runnable)
        config = ModelConfig(
            name: json["_name_or_path"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? defaultName,
            dim: try reader.required("hidden_size"), hiddenDim: try reader.required("intermediate_size"),
            layerCount: layerCount, headCount: heads,
            kvHeadCount: try reader.integer("num_key_value_heads") ?? heads, vocabSize: try reader.required("vocab_size"),
            contextLength: contextLength, ropeTheta: rope.theta,
            rmsEps: Float(try reader.number("rms_norm_eps") ?? 1e-6), ropeStyle: .halfRotation,
            headDim: try reader.integer("head_dim"), attentionSpans: spans, ropeScaling: rope.scaling, family: family ?? .llama)
        config.localRoPE = localRoPE
        if gemma {
            // Gemma scales q·k by query_pre_attn_scalar^-½, embeddings by √hidden, and gates with GELU.
            config.attentionScale = 1 / (try reader.number("query_pre_attn_scalar") ?? 256).squareRoot()
            config.attentionSoftcap = try reader.number("attn_logit_softcapping")
            config.finalSoftcap = try reader.number("final_logit_softcapping")
            config.embeddingScale = Float(Double(config.dim).squareRoot())
            config.activation = .geluTanh
        }
        try config.validate()
        if let tied = json["tie_word_embeddings"], !tied.isNull {
            guard let flag = tied.bool else { throw FormatError("tie_word_embeddings is \(tied.kind), expected a boolean") }
            tiedEmbeddings = flag
        } else {
            tiedEmbeddings = false
        }
        shownMetadata = [
            ("architecture", json["architectures"]?.array?.first?.string ?? "LlamaForCausalLM"),
            ("model_type", modelType),
            ("hidden_size", "\(config.dim)"), ("intermediate_size", "\(config.hiddenDim)"),
            ("num_hidden_layers", "\(config.layerCount)"), ("num_attention_heads", "\(config.headCount)"),
            ("num_key_value_heads", "\(config.kvHeadCount)"), ("head_dim", "\(config.headDim)"),
            ("max_position_embeddings", "\(config.contextLength)"),
            ("rope_theta", "\(config.ropeTheta)"), ("rope scaling", config.ropeScaling.summary),
        ] + (config.localRoPE.map { [("local layers' RoPE", $0.summary)] } ?? []) + [
            ("rms_norm_eps", "\(config.rmsEps)"), ("tie_word_embeddings", "\(tiedEmbeddings)"),
        ]
    }

    /// transformers' model_type of each family kvlab runs.
    static let modelTypes: [String: ModelFamily] = [
        "llama": .llama, "mistral": .mistral, "qwen2": .qwen2, "qwen3": .qwen3, "phi3": .phi3,
        "gemma2": .gemma2, "gemma3_text": .gemma3,
    ]

    /// Gemma gates with GELU (tanh approximation), the other families with silu.
    private static func checkActivation(_ json: JSONValue, gemma: Bool) throws {
        let expected = gemma ? "gelu_pytorch_tanh" : "silu"
        for key in ["hidden_act", "hidden_activation"] {
            guard let value = json[key], !value.isNull else { continue }
            if value.string != expected {
                throw FormatError("\(key) \(value.string ?? value.kind) is not supported (this family runs with \(expected))")
            }
        }
    }

    /// Qwen2 always has q/k/v biases (and none elsewhere); the other families none.
    private static func checkBiases(_ json: JSONValue, family: ModelFamily) throws {
        if json["mlp_bias"]?.bool == true { throw FormatError("mlp_bias is true; kvlab's families have no MLP biases") }
        switch family {
        case .qwen2:
            if json["attention_bias"]?.bool == false {
                throw FormatError("model_type qwen2 is not supported with attention_bias false (Qwen2 always has q, k and v biases)")
            }
        case .llama, .qwen3, .gemma2, .gemma3, .phi3:
            if json["attention_bias"]?.bool == true {
                throw FormatError("attention_bias is true; kvlab runs \(family.rawValue) models without biases only")
            }
        case .mistral:
            break  // MistralConfig has no attention_bias: transformers builds it without biases whatever the key says.
        }
    }

    /// The RoPE of global layers and, for Gemma 3, of local ones: from `rope_parameters`
    /// (transformers 5; Gemma 3's holds one per layer type) or `rope_theta` + `rope_scaling`
    /// (Gemma 3: + `rope_local_base_freq`).
    private static func ropes(_ json: JSONValue, reader: ConfigReader, family: ModelFamily, contextLength: Int,
                              runnable: Bool) throws -> (RoPE, RoPE?) {
        let topTheta = try reader.number("rope_theta")
        guard family == .gemma3 else {
            let key = (json["rope_parameters"].map { !$0.isNull } ?? false) ? "rope_parameters" : "rope_scaling"
            // Phi3Config's own original_max_position_embeddings (default 4096) overrides its RoPE's.
            let phi3Original = family == .phi3 ? try reader.integer("original_max_position_embeddings") ?? 4096 : nil
            return (try rope(json[key], key: key, defaultTheta: topTheta ?? 10000, contextLength: contextLength,
                             runnable: runnable, phi3Original: phi3Original), nil)
        }
        if let perType = json["rope_parameters"], perType["full_attention"] != nil || perType["sliding_attention"] != nil {
            if runnable, let other = perType.members?.first(where: { !["full_attention", "sliding_attention"].contains($0.key) }) {
                throw FormatError("rope_parameters key \(other.key) is not supported (full_attention and sliding_attention only)")
            }
            return (try rope(perType["full_attention"], key: "rope_parameters.full_attention", defaultTheta: 1_000_000,
                             contextLength: contextLength, runnable: runnable),
                    try rope(perType["sliding_attention"], key: "rope_parameters.sliding_attention", defaultTheta: 10000,
                             contextLength: contextLength, runnable: runnable))
        }
        let key = (json["rope_parameters"].map { !$0.isNull } ?? false) ? "rope_parameters" : "rope_scaling"
        return (try rope(json[key], key: key, defaultTheta: topTheta ?? 1_000_000, contextLength: contextLength, runnable: runnable),
                RoPE(theta: try reader.number("rope_local_base_freq") ?? 10000))
    }

    /// One RoPE parameter dictionary (`key` names it in errors); absent: plain RoPE of `defaultTheta`.
    /// `phi3Original`: a Phi-3 model's original context, which Phi3Config reads outside the
    /// dictionary, and whose config class runs `su` and `yarn` as `longrope`.
    private static func rope(_ value: JSONValue?, key: String, defaultTheta: Double, contextLength: Int,
                             runnable: Bool, phi3Original: Int? = nil) throws -> RoPE {
        guard let parameters = value, !parameters.isNull else { return RoPE(theta: defaultTheta) }
        guard let members = parameters.members else {
            if !runnable { return RoPE(theta: defaultTheta) }
            throw FormatError("\(key) is \(parameters.kind), expected an object")
        }
        let inner = ConfigReader(json: parameters, prefix: key + ".")
        let theta = try inner.number("rope_theta") ?? defaultTheta
        var type = parameters["rope_type"]?.string ?? parameters["type"]?.string ?? "default"
        if phi3Original != nil, type == "su" || type == "yarn" { type = "longrope" }
        guard runnable else { return RoPE(theta: theta) }
        // An unknown type is named before its keys.
        guard ["default", "linear", "llama3", "yarn", "longrope"].contains(type) else {
            throw FormatError("\(key) (\(type)) is not supported; kvlab implements default, linear, llama3, yarn and longrope RoPE")
        }
        if let unknown = members.map(\.key).first(where: { !ropeKeys.contains($0) }) {
            throw FormatError("\(key) key \(unknown) is not supported"
                + (members.allSatisfy({ $0.value.members != nil }) ? " (RoPE parameters per layer type)" : ""))
        }
        if let partial = try inner.number("partial_rotary_factor"), partial != 1 {
            throw FormatError("\(key) partial_rotary_factor \(partial) is not supported; kvlab rotates whole heads")
        }
        func required(_ name: String) throws -> Double {
            guard let value = try inner.number(name) else { throw FormatError("\(key) (\(type)) is not supported without \(name)") }
            return value
        }
        let original = try phi3Original ?? inner.integer("original_max_position_embeddings") ?? contextLength
        func factors(_ name: String) throws -> [Double] {
            guard let list = parameters[name], !list.isNull else { throw FormatError("\(key) (\(type)) is not supported without \(name)") }
            guard let values = list.array?.compactMap(\.double), values.count == list.array?.count else {
                throw FormatError("\(key) \(name) is \(list.kind), expected a list of numbers")
            }
            return values
        }
        switch type {
        case "default":
            return RoPE(theta: theta)
        case "linear":
            return RoPE(theta: theta, scaling: .linear(factor: try required("factor")))
        case "llama3":
            return RoPE(theta: theta, scaling: .llama3(factor: try required("factor"), lowFrequencyFactor: try required("low_freq_factor"),
                                   highFrequencyFactor: try required("high_freq_factor"), originalContext: original))
        case "yarn":
            let factor = try inner.number("factor") ?? Double(contextLength) / Double(original)
            let attention: Double
            if let given = try inner.number("attention_factor") {
                attention = given
            } else if let mscale = try inner.number("mscale"), let all = try inner.number("mscale_all_dim"), mscale != 0, all != 0 {
                // transformers' yarn_get_mscale is 1 for factors up to 1, whatever mscale says.
                attention = factor <= 1 ? 1 : (0.1 * mscale * log(factor) + 1) / (0.1 * all * log(factor) + 1)
            } else {
                attention = RoPEScaling.yarnAttentionFactor(factor)
            }
            guard parameters["truncate"].map({ $0.isNull || $0.bool != nil }) ?? true else {
                throw FormatError("\(key) truncate is \(parameters["truncate"]?.kind ?? "null"), expected a boolean")
            }
            return RoPE(theta: theta, scaling: .yarn(factor: factor, originalContext: original, betaFast: try inner.number("beta_fast") ?? 32,
                                                     betaSlow: try inner.number("beta_slow") ?? 1, attentionFactor: attention,
                                                     truncate: parameters["truncate"]?.bool ?? true))
        case "longrope":
            // transformers: the factor defaults to max_position_embeddings / original, and the
            // attention factor to √(1 + ln(factor) / ln(original)).
            let factor = try inner.number("factor") ?? Double(contextLength) / Double(original)
            let attention = try inner.number("attention_factor")
                ?? RoPEScaling.longropeAttentionFactor(factor, originalContext: original)
            return RoPE(theta: theta, scaling: .longrope(shortFactors: try factors("short_factor"), longFactors: try factors("long_factor"),
                                                         originalContext: original, context: contextLength, attentionFactor: attention))
        default:
            preconditionFailure("RoPE type \(type) passed the check above")
        }
    }

    /// One span per layer: Mistral's and Phi-3's `sliding_window` applies to every layer; Qwen2/3
    /// slide on the layers `layer_types` (or `use_sliding_window` from `max_window_layers` on)
    /// marks; Gemma on those `layer_types` marks (or every `sliding_window_pattern`-th layer is
    /// global: 2 for Gemma 2, 6 for Gemma 3); llama never.
    private static func attentionSpans(_ json: JSONValue, reader: ConfigReader, family: ModelFamily, layerCount: Int,
                                       contextLength: Int, runnable: Bool) throws -> [AttentionSpan]? {
        guard (1...ModelConfig.maxLayers).contains(layerCount) else { return nil }
        let window = try reader.integer("sliding_window")
        switch family {
        case .llama:
            if runnable, let window, window < contextLength {
                throw FormatError("sliding_window \(window) is not supported for llama (use model_type mistral)")
            }
            return nil
        case .mistral, .phi3:
            return window.map { Array(repeating: .local(window: $0), count: layerCount) }
        case .qwen2, .qwen3, .gemma2, .gemma3:
            var sliding: [Bool]
            let gemma = family == .gemma2 || family == .gemma3
            if let types = json["layer_types"], !types.isNull {
                guard let list = types.array, list.count == layerCount else {
                    throw FormatError("layer_types must list \(layerCount) layer types")
                }
                sliding = try list.map { value in
                    switch value.string {
                    case "full_attention": return false
                    case "sliding_attention": return true
                    default: throw FormatError("layer_types entry \(value.string ?? value.kind) is not supported")
                    }
                }
            } else if gemma {
                let pattern = try reader.integer("sliding_window_pattern") ?? reader.integer("_sliding_window_pattern")
                    ?? (family == .gemma2 ? 2 : 6)
                guard pattern > 0 else { throw FormatError("sliding_window_pattern \(pattern) is not positive") }
                sliding = (0..<layerCount).map { ($0 + 1) % pattern != 0 }
            } else {
                let on = json["use_sliding_window"]?.bool ?? false
                let first = try reader.integer("max_window_layers") ?? 28
                sliding = (0..<layerCount).map { on && window != nil && $0 >= first }
            }
            guard sliding.contains(true) else { return nil }
            guard let window else { throw FormatError("layer_types has sliding layers but sliding_window is null") }
            return sliding.map { $0 ? .local(window: window) : .global }
        }
    }

    /// config.json for a llama model as `transformers` writes it.
    static func json(_ c: ModelConfig, tied: Bool, spec: TokenizerSpec, dtype: String) -> JSONValue {
        // The shortest decimal that reads back as the same Float, so 1e-05 is written as 1e-05.
        let shortEps = Double("\(c.rmsEps)") ?? Double(c.rmsEps)
        let eps = Float(shortEps) == c.rmsEps ? shortEps : Double(c.rmsEps)
        return .object([
            ("_name_or_path", .string(c.name)),
            ("architectures", .array([.string("LlamaForCausalLM")])),
            ("model_type", .string("llama")),
            ("hidden_size", .integer(c.dim)),
            ("intermediate_size", .integer(c.hiddenDim)),
            ("num_hidden_layers", .integer(c.layerCount)),
            ("num_attention_heads", .integer(c.headCount)),
            ("num_key_value_heads", .integer(c.kvHeadCount)),
            ("head_dim", .integer(c.headDim)),
            ("vocab_size", .integer(c.vocabSize)),
            ("max_position_embeddings", .integer(c.contextLength)),
            ("rope_theta", .number(c.ropeTheta)),
            ("rope_scaling", .null),
            ("rms_norm_eps", .number(eps)),
            ("hidden_act", .string("silu")),
            ("attention_bias", .bool(false)),
            ("mlp_bias", .bool(false)),
            ("tie_word_embeddings", .bool(tied)),
            ("bos_token_id", spec.bosID.map { .integer($0) } ?? .null),
            ("eos_token_id", spec.eosID.map { .integer($0) } ?? .null),
            ("torch_dtype", .string(dtype)),
        ])
    }
}

/// Typed reads of a JSON object's keys: absent or null is nil, a wrong type an error naming the key.
private struct ConfigReader {
    var json: JSONValue
    var prefix = ""

    func integer(_ key: String) throws -> Int? {
        guard let value = json[key], !value.isNull else { return nil }
        guard let number = value.integer else { throw FormatError("\(prefix)\(key) is \(value.kind), expected an integer") }
        return number
    }

    func required(_ key: String) throws -> Int {
        guard let number = try integer(key) else { throw FormatError("missing \(prefix)\(key)") }
        return number
    }

    func number(_ key: String) throws -> Double? {
        guard let value = json[key], !value.isNull else { return nil }
        guard let number = value.double else { throw FormatError("\(prefix)\(key) is \(value.kind), expected a number") }
        return number
    }
}
