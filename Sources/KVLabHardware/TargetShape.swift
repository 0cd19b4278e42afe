import Foundation
import KVLabMethods

/// The shape of the model a projection is about: a data file (`Resources/targets/*.json`), the
/// live model's `ModelConfig`, or the header of any model file kvlab reads.
public struct TargetShape: Sendable, Equatable {
    /// The file's name without `.json` (`llama-3-8b`), `live`, or the model file's name.
    public var id: String
    /// The model as its makers name it.
    public var name: String
    /// Where the figures come from (the checkpoint's config.json, or the file read).
    public var source: String
    /// Decoder layers.
    public var layers: Int
    /// Width of the residual stream.
    public var hidden: Int
    /// Query heads.
    public var heads: Int
    /// Key/value heads (fewer than query heads under GQA).
    public var kvHeads: Int
    /// Channels per head.
    public var headDim: Int
    /// SwiGLU intermediate size.
    public var ffn: Int
    /// Vocabulary size (rows of the embedding and the classifier).
    public var vocab: Int
    /// Whether the classifier reuses the token embedding (stored once, read every step anyway).
    public var tiedEmbeddings: Bool
    /// The context length the model was trained for.
    public var maxContext: Int
    /// Biases on the q, k and v projections (Qwen2).
    public var qkvBias: Bool
    /// One per layer: global, or local with its sliding window (whose KV holds at most the window).
    public var attentionSpans: [AttentionSpan]
    /// Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): the cache holds a latent per token
    /// instead of per-head keys and values. `headDim` is then the query/key head size (nope + rope).
    public var latent: LatentAttention?
    /// Mixture-of-experts feed-forward layers (Mixtral, Qwen3-MoE, DeepSeek, gpt-oss).
    public var experts: ExpertLayers?
    /// Linear-attention or state-space layers holding a fixed state per sequence (Qwen3-Next, Jamba).
    public var recurrent: RecurrentLayers?

    /// A shape given figure by figure; every layer global unless `attentionSpans` says.
    public init(id: String, name: String, source: String, layers: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int,
                ffn: Int, vocab: Int, tiedEmbeddings: Bool, maxContext: Int, qkvBias: Bool = false, attentionSpans: [AttentionSpan]? = nil,
                latent: LatentAttention? = nil, experts: ExpertLayers? = nil, recurrent: RecurrentLayers? = nil) {
        self.id = id
        self.name = name
        self.source = source
        self.layers = layers
        self.hidden = hidden
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.ffn = ffn
        self.vocab = vocab
        self.tiedEmbeddings = tiedEmbeddings
        self.maxContext = maxContext
        self.qkvBias = qkvBias
        self.attentionSpans = attentionSpans ?? Array(repeating: .global, count: layers)
        self.latent = latent
        self.experts = experts
        self.recurrent = recurrent
    }

    /// A model kvlab runs, from its configuration.
    public init(config c: ModelConfig, tiedEmbeddings: Bool, id: String, source: String) {
        self.init(id: id, name: c.name, source: source, layers: c.layerCount, hidden: c.dim, heads: c.headCount,
                  kvHeads: c.kvHeadCount, headDim: c.headDim, ffn: c.hiddenDim, vocab: c.vocabSize,
                  tiedEmbeddings: tiedEmbeddings, maxContext: c.contextLength, attentionSpans: c.attentionSpans)
    }

    /// Query heads per KV head.
    public var groupSize: Int { heads / kvHeads }
    /// Width of the query projection's output.
    public var queryDim: Int { heads * headDim }
    /// Width of the key (and value) projection's output.
    public var kvDim: Int { kvHeads * headDim }

    static let keys = ["name", "source", "layers", "hidden", "heads", "kv_heads", "head_dim", "ffn", "vocab",
                       "tied_embeddings", "max_context", "qkv_bias"]
}

extension TargetShape: ProfileFile {
    init(document d: ProfileDocument) throws {
        try d.checkKeys(Self.keys)
        let large = 1...(1 << 20)
        self.init(id: URL(fileURLWithPath: d.path).deletingPathExtension().lastPathComponent,
                  name: try d.string("name"), source: try d.string("source"),
                  layers: try d.integer("layers", in: 1...1024), hidden: try d.integer("hidden", in: large),
                  heads: try d.integer("heads", in: 1...4096), kvHeads: try d.integer("kv_heads", in: 1...4096),
                  headDim: try d.integer("head_dim", in: 1...4096), ffn: try d.integer("ffn", in: large),
                  vocab: try d.integer("vocab", in: 1...(1 << 22)), tiedEmbeddings: try d.bool("tied_embeddings", default: false),
                  maxContext: try d.integer("max_context", in: 1...(1 << 24)), qkvBias: try d.bool("qkv_bias", default: false))
        guard heads % kvHeads == 0 else { throw d.error("kv_heads", "\(kvHeads) does not divide heads \(heads)") }
    }
}
