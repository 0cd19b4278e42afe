import Foundation
import Testing
import KVLabMethods
@testable import KVLabHardware

/// Sliding-window, MLA, MoE and hybrid targets from their Hugging Face configs, checked against
/// closed forms for KV bytes per token and decode bytes (fp16, h100-sxm unless said).
@Suite struct ModernShapeTests {
    static func project(_ target: String, context: Int, batch: Int = 1, devices: Int = 1, policy: String = "full", kv: String = "fp32",
                        kernel: AttentionKernel = .tiled(sramBytes: 228 * 1024), device: String = "h100-sxm") throws -> Projection {
        Projection(ProjectionSetup(device: try HardwareCatalog.device(device), target: try HardwareCatalog.target(target), context: context,
                                   batch: batch, devices: devices, eviction: try EvictionMethod(parsing: policy),
                                   quant: try KVQuantMethod(parsing: kv), kernel: kernel))
    }

    /// kvpress's README: "a Llama 3.1-70B model in float16 requires about 330GB to store a KV
    /// cache for 1M tokens" — 80 layers × 8 KV heads × 128 × (K + V) × 2 bytes = 327,680 bytes
    /// per token, 327.7 GB at 10⁶ tokens.
    @Test func kvpressLlama70BAtOneMillionTokens() throws {
        let target = try HardwareCatalog.target("llama-3.1-70b")
        #expect(target.kvBytesPerToken(elementBytes: 2) == 327_680)
        let p = try Self.project("llama-3.1-70b", context: 1_000_000)
        #expect(p.kv.fullPrecision == 327_680 * 1_000_000)
        #expect(abs(p.kv.fullPrecision / 330e9 - 1) < 0.01)
        #expect(p.warnings.contains { $0.hasPrefix("does not fit") })
        #expect(p.warnings.contains { $0.hasPrefix("beyond the target's context: 1000000 tokens, Llama-3.1-70B is trained for 131072") })
    }

    /// Local layers hold at most their window: Mistral-7B-v0.1 (all 32 layers, window 4096),
    /// Gemma-3-27B (5 local of every 6, window 1024: 52 local, 10 global), gpt-oss-120b
    /// (alternating, window 128).
    @Test func slidingWindowLayersHoldTheirWindow() throws {
        let n = 32768.0
        let mistral = try Self.project("mistral-7b-v0.1", context: 32768)
        #expect(mistral.kv.fullPrecision == 32 * 8 * 4096 * 2 * 128 * 2)
        #expect(try Self.project("mistral-7b-v0.1", context: 2000).kv.fullPrecision == 32 * 8 * 2000 * 2 * 128 * 2)
        let gemma = try HardwareCatalog.target("gemma-3-27b")
        #expect(gemma.attentionSpans.filter { $0 == .global }.count == 10 && gemma.headDim == 128 && gemma.tiedEmbeddings)
        let g = try Self.project("gemma-3-27b", context: 32768)
        let gemmaKV = (10 * n + 52 * 1024) * 16 * 2 * 128 * 2
        #expect(g.kv.fullPrecision == gemmaKV)
        // Decode reads each kept key and value once, plus the queries and the head outputs.
        #expect(g.decode.op("attention")!.bytes == gemmaKV + 2 * 62 * 32 * 128 * 2)
        let oss = try Self.project("gpt-oss-120b", context: 32768)
        #expect(oss.kv.fullPrecision == (18 * n + 18 * 128) * 8 * 2 * 64 * 2)
        // Eviction budgets act on the global layers; the local ones keep their window.
        let evicted = try Self.project("gemma-3-27b", context: 32768, policy: "h2o:heavy=64,recent=64")
        #expect(evicted.kv.entries == (10 * 128 + 52 * 1024) * 16)
    }

    /// MLA caches the 512-channel latent and the 64-channel RoPE key per token and layer (DeepSeek-V3:
    /// 61 × 576 × 2 = 70,272 bytes per token, not 61 × 128 heads × (192 + 128) × 2 = 4,997,120);
    /// absorbed decode reads it once per layer for all 128 heads.
    @Test func latentAttentionCachesTheLatent() throws {
        let target = try HardwareCatalog.target("deepseek-v3")
        #expect(target.kvBytesPerToken(elementBytes: 2) == 70_272)
        let n = 32768.0
        let p = try Self.project("deepseek-v3", context: 32768, devices: 8)
        #expect(p.kv.fullPrecision == 61 * 576 * 2 * n)
        let attention = p.decode.op("attention")!
        // Replicated on every device (one latent cannot be split by heads); queries and outputs
        // in the latent's space.
        #expect(attention.bytes == 61 * 576 * 2 * n + 61 * 128 * 576 * 2 + 61 * 128 * 512 * 2)
        #expect(attention.flops == 61 * 128 * n * (2 * 576 + 5 + 2 * 512) / 8)
        #expect(p.decode.op("q_absorb")!.flops == 61 * 2 * 128 * 128 * 512 / 8)
        // Quantizing the latent: q8_0 stores 34 bytes per 32 channels.
        let q8 = try Self.project("deepseek-v3", context: 32768, devices: 8, kv: "q8_0")
        #expect(q8.kv.quantizedPayload + q8.kv.metadata == 61 * (576 / 32 * 34) * n)
        #expect(q8.kv.fullPrecision == 0)
        #expect(p.notes.contains { $0.hasPrefix("MLA:") })
    }

    /// MoE: a decode step reads the router, the experts its tokens reach and the shared experts;
    /// at batch B each of E experts is reached with probability 1 − (1 − k/E)^B. Capacity holds
    /// every expert.
    @Test func expertsReadPerStep() throws {
        let expert = 3.0 * 4096 * 14336 * 2  // Mixtral: one SwiGLU expert in fp16
        let io = { (tokens: Double) in tokens * 2 * (3 * 4096 + 6 * 14336) * 2 }
        let one = try Self.project("mixtral-8x7b", context: 4096)
        #expect(one.decode.op("experts")!.bytes == 32 * (2 * expert + io(1)))
        let four = try Self.project("mixtral-8x7b", context: 4096, batch: 4)
        let distinct = 8 * (1 - pow(0.75, 4.0))
        #expect(abs(four.decode.op("experts")!.bytes - 32 * (distinct * expert + io(4))) < 1)
        // Work follows the tokens, k experts each, whether or not they share experts.
        #expect(four.decode.op("experts")!.flops == 4 * one.decode.op("experts")!.flops)
        // DeepSeek-V3: three dense layers, 58 MoE layers of 8 of 256 experts and one shared.
        let v3 = try HardwareCatalog.target("deepseek-v3")
        #expect(v3.expertLayers == 58 && v3.experts!.sharedFFN == 2048)
        #expect(abs(Double(v3.parameterCount) / 671e9 - 1) < 0.01, "\(v3.parameterCount)")
        #expect(abs(Double(v3.activeParameterCount) / 37e9 - 1) < 0.03, "\(v3.activeParameterCount)")
        let mixtral = try HardwareCatalog.target("mixtral-8x7b")
        #expect(one.capacity.weights == Double(mixtral.parameterCount) * 2)
        #expect(abs(Double(mixtral.parameterCount) / 46.7e9 - 1) < 0.01 && abs(Double(mixtral.activeParameterCount) / 12.9e9 - 1) < 0.01)
    }

    /// Hybrids keep KV on their attention layers only and a fixed state per sequence:
    /// Qwen3-Next (12 of 48 layers attention, 2 KV heads × 256; 36 Gated DeltaNet layers of
    /// 32 × 128 × 128 state plus a 3-step convolution window over 8,192 channels).
    @Test func hybridStateIsCountedOncePerSequence() throws {
        let target = try HardwareCatalog.target("qwen3-next-80b-a3b")
        #expect(target.attentionLayers == 12 && target.kvBytesPerToken(elementBytes: 2) == 12 * 2 * 2 * 256 * 2)
        let state = 36.0 * (32 * 128 * 128 + 8192 * 3) * 2
        let short = try Self.project("qwen3-next-80b-a3b", context: 1000)
        let long = try Self.project("qwen3-next-80b-a3b", context: 100_000, batch: 2)
        #expect(short.kv.recurrentState == state && long.kv.recurrentState == state)
        #expect(long.kv.fullPrecision == 12 * 2 * 2 * 256 * 2 * 100_000)
        #expect(long.decode.op("state_update")!.bytes == 2 * 2 * state)
        // A KV method leaves the state alone.
        let quantized = try Self.project("qwen3-next-80b-a3b", context: 100_000, kv: "q4_0")
        #expect(quantized.kv.recurrentState == state)
        // Jamba: one attention layer in 8.
        let jamba = try HardwareCatalog.target("jamba-v0.1")
        #expect(jamba.attentionLayers == 4 && jamba.expertLayers == 16 && jamba.recurrent!.kind == "Mamba")
        #expect(abs(Double(jamba.parameterCount) / 52e9 - 1) < 0.02, "\(jamba.parameterCount)")
    }

    /// Tensor parallelism: weights and KV heads split over G devices, two all-reduces of the
    /// hidden state per layer, each device sending 2(G − 1)/G of it; past 8 devices Llama-3.1-70B's
    /// 8 KV heads are copied, one per device.
    @Test func tensorParallelShardsWeightsAndKV() throws {
        let one = try Self.project("llama-3.1-70b", context: 32768, kernel: .naive)
        let two = try Self.project("llama-3.1-70b", context: 32768, devices: 2, kernel: .naive)
        #expect(abs(two.capacity.weights * 2 - one.capacity.weights) < 1)
        #expect(abs(two.capacity.kvPerSequence * 2 - one.capacity.kvPerSequence) < 1)
        #expect(two.decode.op("all_reduce")!.linkBytes == 2 * 80 * 8192 * 2 * 2 * 1 / 2)
        #expect(two.decode.seconds < one.decode.seconds)
        let sixteen = try Self.project("llama-3.1-70b", context: 32768, devices: 16, kernel: .naive)
        #expect(abs(sixteen.capacity.kvPerSequence * 8 - one.capacity.kvPerSequence) < 1)
        #expect(one.warnings.contains { $0.hasPrefix("does not fit") } && two.warnings.isEmpty)
        #expect(try Self.project("llama-3.1-70b", context: 32768, devices: 2, device: "h100-pcie").decode.op("all_reduce")!.seconds
                > two.decode.op("all_reduce")!.seconds)
    }

    /// A config.json of each family reads as its catalog entry does; a Gemma-3 multimodal config
    /// nests the decoder under text_config; problems are one line naming the file.
    @Test func huggingFaceConfigs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-hf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let nested = directory.appendingPathComponent("config.json")
        try Data("""
            {"model_type": "gemma3", "text_config": {"model_type": "gemma3_text", "hidden_size": 5376, "intermediate_size": 21504,
             "num_hidden_layers": 62, "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 128, "vocab_size": 262208,
             "max_position_embeddings": 131072, "sliding_window": 1024}}
            """.utf8).write(to: nested)
        let shape = try HardwareCatalog.target(directory.path)
        let catalog = try HardwareCatalog.target("gemma-3-27b")
        #expect(shape.attentionSpans == catalog.attentionSpans && shape.parameterCount == catalog.parameterCount)
        // Qwen2 lists a sliding_window it only uses with use_sliding_window (off by default).
        let qwen = directory.appendingPathComponent("qwen.json")
        let qwenConfig = #"{"model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 10, "sliding_window": 32"#
        try Data((qwenConfig + "}").utf8).write(to: qwen)
        #expect(try HardwareCatalog.target(qwen.path).attentionSpans == Array(repeating: .global, count: 4))
        try Data((qwenConfig + #", "use_sliding_window": true, "max_window_layers": 2}"#).utf8).write(to: qwen)
        #expect(try HardwareCatalog.target(qwen.path).attentionSpans == [.global, .global, .local(window: 32), .local(window: 32)])
        let bad = directory.appendingPathComponent("bad.json")
        try Data(#"{"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 10, "layer_types": ["full_attention", "banana"]}"#.utf8).write(to: bad)
        #expect {
            try HardwareCatalog.target(bad.path)
        } throws: { error in
            "\(error)" == "\(bad.path): layer_types: unknown layer type \"banana\"" && !"\(error)".contains("\n")
        }
    }
}
