import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
import Testing

/// config.json parsing of the families and RoPE scalings, without Python (HFFamilyTests runs them).
@Suite struct ModelFamilyConfigTests {
    static let base = """
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
        "num_key_value_heads": 2, "vocab_size": 300, "max_position_embeddings": 4096, "hidden_act": "silu"
        """

    /// Gemma's shape: the base without its silu.
    static let gemmaBase = base.replacingOccurrences(of: #", "hidden_act": "silu""#, with: "")

    func config(_ extra: String, base: String = Self.base) throws -> ModelConfig {
        try HFConfig(try JSONValue.parse(Data("{\(base)\(extra.isEmpty ? "" : ", " + extra)}".utf8)), defaultName: "t").config
    }

    func problem(_ extra: String, base: String = Self.base) -> String? {
        do {
            _ = try config(extra, base: base)
            return nil
        } catch let error as FormatError {
            return error.problem
        } catch {
            return "\(error)"
        }
    }

    @Test func bothRoPESpellingsGiveTheSameScaling() throws {
        let old = try config(#""rope_theta": 500000, "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}"#)
        let new = try config(#""rope_parameters": {"rope_type": "llama3", "rope_theta": 500000, "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4, "original_max_position_embeddings": 8192}"#)
        #expect(old == new)
        #expect(new.ropeTheta == 500000)
        #expect(new.ropeScaling == .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContext: 8192))
        #expect(try config(#""rope_scaling": {"type": "linear", "factor": 2}"#).ropeScaling == .linear(factor: 2))
    }

    /// llama.cpp's converter stores llama3 scaling as per-frequency divisors (its own formula);
    /// both give the same frequencies.
    @Test func llama3MatchesLlamaCppFrequencyFactors() {
        let headDim = 128, theta = 500000.0
        let scaling = RoPEScaling.llama3(factor: 32, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContext: 8192)
        let base = RoPEScaling.none.inverseFrequencies(headDim: headDim, theta: theta)
        let factors = base.map { frequency -> Double in
            let wavelength = 2 * Double.pi / frequency
            if wavelength < 8192.0 / 4 { return 1 }
            if wavelength > 8192.0 / 1 { return 32 }
            let smooth = (8192 / wavelength - 1) / (4 - 1)
            return 1 / ((1 - smooth) / 32 + smooth)
        }
        let direct = scaling.inverseFrequencies(headDim: headDim, theta: theta)
        let viaFactors = RoPEScaling.frequencyFactors(factors).inverseFrequencies(headDim: headDim, theta: theta)
        for (a, b) in zip(direct, viaFactors) { #expect(abs(a - b) <= 1e-12 * a) }
        #expect(direct.first == base.first && direct.last == base.last! / 32)
    }

    @Test func yarnDefaultsFollowTransformers() throws {
        let c = try config(#""rope_parameters": {"rope_type": "yarn", "rope_theta": 10000, "factor": 4, "original_max_position_embeddings": 1024}"#)
        #expect(c.ropeScaling == .yarn(factor: 4, originalContext: 1024, betaFast: 32, betaSlow: 1,
                                       attentionFactor: 0.1 * log(4.0) + 1, truncate: true))
        // Without a factor, transformers uses max_position_embeddings / original.
        let implicit = try config(#""rope_scaling": {"type": "yarn", "original_max_position_embeddings": 1024}"#)
        if case .yarn(let factor, _, _, _, _, _) = implicit.ropeScaling { #expect(factor == 4) } else { Issue.record("not yarn") }
    }

    @Test func slidingWindowsReachTheSpans() throws {
        let mistral = try config(#""model_type": "mistral", "sliding_window": 512"#)
        #expect(mistral.attentionSpans == Array(repeating: .local(window: 512), count: 4))
        #expect(try config(#""model_type": "mistral", "sliding_window": null"#).attentionSpans == Array(repeating: .global, count: 4))
        let qwen = try config(#""model_type": "qwen2", "sliding_window": 64, "layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"]"#)
        #expect(qwen.attentionSpans == [.global, .local(window: 64), .global, .local(window: 64)])
        let older = try config(#""model_type": "qwen2", "sliding_window": 64, "use_sliding_window": true, "max_window_layers": 2"#)
        #expect(older.attentionSpans == [.global, .global, .local(window: 64), .local(window: 64)])
        #expect(try config(#""model_type": "qwen3", "sliding_window": 64, "use_sliding_window": false"#).attentionSpans.allSatisfy { $0 == .global })
    }

    @Test func qwen3HeadSizeIsItsOwn() throws {
        let c = try config(#""model_type": "qwen3", "head_dim": 32"#)
        #expect(c.headDim == 32 && c.queryDim == 128 && c.kvDim == 64 && c.family == .qwen3)
    }

    @Test(arguments: [
        (#""rope_parameters": {"rope_type": "dynamic", "factor": 2}"#, "rope_parameters (dynamic) is not supported"),
        (#""rope_scaling": {"rope_type": "longrope", "factor": 2}"#, "rope_scaling (longrope) is not supported without short_factor"),
        (#""rope_scaling": {"rope_type": "longrope", "short_factor": [1, 1, 1, 1, 1, 1, 1, 1], "long_factor": [1, 1]}"#,
         "longrope has 2 long factors for 8 frequencies"),
        (#""rope_parameters": {"rope_type": "linear", "factor": 2, "alpha": 1}"#, "rope_parameters key alpha is not supported"),
        (#""rope_scaling": {"rope_type": "linear"}"#, "rope_scaling (linear) is not supported without factor"),
        (#""partial_rotary_factor": 0.5"#, "partial_rotary_factor 0.5 is not supported"),
        (#""model_type": "qwen3", "attention_bias": true"#, "attention_bias is true"),
        (#""model_type": "gemma3""#, "model_type gemma3 is not supported"),
        (#""model_type": "gemma2", "hidden_activation": "gelu""#, "hidden_activation gelu is not supported"),
        (#""model_type": "gemma3_text", "use_bidirectional_attention": true"#, "use_bidirectional_attention is true"),
        (#""mlp_bias": true"#, "mlp_bias is true"),
        (#""sliding_window": 128"#, "sliding_window 128 is not supported for llama"),
        (#""model_type": "qwen2", "layer_types": ["full_attention"]"#, "layer_types must list 4 layer types"),
        (#""model_type": "qwen2", "layer_types": ["full_attention", "chunked_attention", "full_attention", "full_attention"]"#,
         "layer_types entry chunked_attention is not supported"),
    ])
    func refusesWhatItDoesNotImplement(extra: String, expected: String) {
        let message = problem(extra, base: extra.contains("gemma") ? Self.gemmaBase : Self.base)
        #expect(message?.contains(expected) == true, "got: \(message ?? "no error")")
    }

    @Test func gemmaScalesCapsAndLocalLayers() throws {
        let gemma2 = try config(#""model_type": "gemma2", "head_dim": 32, "query_pre_attn_scalar": 64, "sliding_window": 16, "attn_logit_softcapping": 50, "final_logit_softcapping": 30"#,
                                base: Self.gemmaBase)
        #expect(gemma2.attentionSpans == [.local(window: 16), .global, .local(window: 16), .global])
        #expect(gemma2.attentionScale == 0.125 && gemma2.attentionSoftcap == 50 && gemma2.finalSoftcap == 30)
        #expect(gemma2.embeddingScale == 8 && gemma2.activation == .geluTanh && gemma2.localRoPE == nil)
        // Gemma 3's RoPE per layer type (transformers 5), and the older rope_theta + rope_local_base_freq.
        let perType = try config(#""model_type": "gemma3_text", "sliding_window": 16, "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"], "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8, "rope_theta": 1000000}, "sliding_attention": {"rope_type": "default", "rope_theta": 10000}}"#,
                                 base: Self.gemmaBase)
        let older = try config(#""model_type": "gemma3_text", "sliding_window": 16, "sliding_window_pattern": 4, "rope_theta": 1000000, "rope_scaling": {"rope_type": "linear", "factor": 8}, "rope_local_base_freq": 10000"#,
                               base: Self.gemmaBase)
        for c in [perType, older] {
            #expect(c.rope == RoPE(theta: 1_000_000, scaling: .linear(factor: 8)) && c.localRoPE == RoPE(theta: 10000))
            #expect(c.attentionSpans == [.local(window: 16), .local(window: 16), .local(window: 16), .global])
            #expect(c.rope(layer: 0) == RoPE(theta: 10000) && c.rope(layer: 3) == c.rope)
            #expect(c.finalSoftcap == nil && c.attentionSoftcap == nil)
        }
    }

    @Test func phi3SlidesOnEveryLayer() throws {
        #expect(try config(#""model_type": "phi3", "sliding_window": 32"#).attentionSpans == Array(repeating: .local(window: 32), count: 4))
    }

    /// Phi-3.5-mini's layout (rope_scaling, top-level original context) and transformers 5's
    /// (rope_parameters) give the same LongRoPE; the set follows the context, the attention factor
    /// transformers' √(1 + ln(context / original) / ln(original)).
    @Test func phi3LongRoPEInBothSpellings() throws {
        let short = "[1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7]", long = "[1, 2, 4, 8, 16, 32, 64, 128]"
        let old = try config(#""model_type": "phi3", "rope_theta": 10000, "original_max_position_embeddings": 1024, "rope_scaling": {"type": "longrope", "short_factor": \#(short), "long_factor": \#(long)}"#)
        let new = try config(#""model_type": "phi3", "original_max_position_embeddings": 1024, "rope_parameters": {"rope_type": "longrope", "rope_theta": 10000, "original_max_position_embeddings": 1024, "short_factor": \#(short), "long_factor": \#(long)}"#)
        #expect(old == new)
        let attention = (1 + log(4.0) / log(1024.0)).squareRoot()
        let shortFactors = [1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7], longFactors: [Double] = [1, 2, 4, 8, 16, 32, 64, 128]
        #expect(new.ropeScaling == .longrope(shortFactors: shortFactors, longFactors: longFactors, originalContext: 1024,
                                             context: 4096, attentionFactor: attention))
        #expect(abs(new.rope.logitScale - attention * attention) < 1e-15)
        // Context 4096 past the original 1024: the long factors divide the frequencies.
        let base = RoPEScaling.none.inverseFrequencies(headDim: 16, theta: 10000)
        #expect(new.rope.inverseFrequencies(headDim: 16) == zip(base, longFactors).map { $0 / $1 })
        // Phi3Config's original context (default 4096) wins over the dictionary's; at the context, short factors.
        let atOriginal = try config(#""model_type": "phi3", "rope_scaling": {"type": "su", "original_max_position_embeddings": 64, "short_factor": \#(short), "long_factor": \#(long)}"#)
        #expect(atOriginal.ropeScaling == .longrope(shortFactors: shortFactors, longFactors: longFactors, originalContext: 4096,
                                                    context: 4096, attentionFactor: 1))
        #expect(atOriginal.rope.inverseFrequencies(headDim: 16) == zip(base, shortFactors).map { $0 / $1 })
        // Run with a context of at most the original (`--context`): the short factors, the same attention factor.
        let limited = try new.withContext(1024)
        #expect(limited.contextLength == 1024)
        #expect(limited.ropeScaling == .longrope(shortFactors: shortFactors, longFactors: longFactors, originalContext: 1024,
                                                 context: 1024, attentionFactor: attention))
        #expect(limited.rope.inverseFrequencies(headDim: 16) == zip(base, shortFactors).map { $0 / $1 })
        #expect(try new.withContext(1025).rope.inverseFrequencies(headDim: 16) == zip(base, longFactors).map { $0 / $1 })
    }

    /// A context is at least 1 and at most the model's own.
    @Test func contextOutsideTheModelsIsRefused() throws {
        let model = try config("")
        for context in [0, -1, 4097] {
            #expect(throws: (any Error).self) { try model.withContext(context) }
        }
        #expect(try model.withContext(4096) == model)
    }
}
