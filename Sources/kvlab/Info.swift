import Foundation
import ArgumentParser
import KVLabEngine
import KVLabFoundation
import KVLabMethods

/// `kvlab info [MODEL]`: configuration, tensor table, sizes.
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's configuration, tensors, sizes and parameter count.")

    @Argument(help: "Model file: llama2.c .bin, .gguf, or a safetensors directory (default: the embedded model).")
    var model: String?

    @Option(name: .long, help: "tokenizer.bin for a llama2.c checkpoint (default: beside the model).")
    var tokenizer: String?

    @Option(name: .long, help: "Describe the model run with an N-token context (as run, generate and eval take it): the context and, for LongRoPE, the factor set.")
    var context: Int?

    func validate() throws { try ModelOptions.check(context: context) }

    private var options: ModelOptions { ModelOptions(model: model, tokenizer: tokenizer, context: context) }

    func run() throws {
        let stored = try options.loadAsStored()
        let loaded = try options.limitContext(stored)
        let c = loaded.config
        let w = loaded.weights
        print("model        \(c.name)")
        print("file         \(loaded.path) (\(loaded.format.rawValue))")
        print("architecture \(c.family.rawValue): dim \(c.dim), hidden \(c.hiddenDim), layers \(c.layerCount), heads \(c.headCount), KV heads \(c.kvHeadCount) (head size \(c.headDim), GQA \(c.groupSize):1)")
        let limited = context == nil ? "" : " (--context; the model's own is \(stored.config.contextLength))"
        print("context      \(c.contextLength) tokens\(limited), RoPE θ \(c.ropeTheta) (\(c.ropeStyle.rawValue)), RMSNorm ε \(c.rmsEps)")
        print("RoPE scaling \(c.ropeScaling.summary)")
        if let local = c.localRoPE { print("local RoPE   \(local.summary) (sliding-window layers)") }
        print("attention    \(Self.spans(c.attentionSpans))")
        let extras = w.layers.first.map { layer in
            [layer.queryBias.map { _ in "q/k/v biases" }, layer.queryNorm.map { _ in "per-head q/k RMSNorm" },
             layer.postAttentionNorm.map { _ in "post-attention and post-feed-forward RMSNorm" }].compactMap { $0 }
        } ?? []
        let scales = [c.activation == .silu ? nil : "GELU (tanh) gate",
                      c.embeddingScale == 1 ? nil : "embeddings × \(c.embeddingScale)",
                      c.attentionScale.map { "q·k × \(String(format: "%g", $0))" },
                      c.attentionSoftcap.map { "attention soft-cap \(String(format: "%g", $0))" },
                      c.finalSoftcap.map { "final logit soft-cap \(String(format: "%g", $0))" }].compactMap { $0 }
        if !scales.isEmpty { print("scales       \(scales.joined(separator: ", "))") }
        if !extras.isEmpty { print("layers       \(extras.joined(separator: ", "))") }
        print("classifier   \(w.tiedClassifier ? "tied to the token embedding" : "separate")")
        print("parameters   \(c.parameterCount(tiedClassifier: w.tiedClassifier).formatted())")
        print("weights      \(formatBytes(w.residentBytes)) resident at most, \(formatBytes(w.mappedBytes)) of them the file's mapped bytes used in place "
              + "(resident once read; an untied token embedding only while a row is looked up)")
        // The stored type mix, most bytes first (a llama-quantize Q4_K_M file is mostly q4_K with some q6_K).
        let byType = Dictionary(grouping: loaded.tensors, by: \.type).map { ($0.key, $0.value.count, $0.value.reduce(0) { $0 + $1.byteCount }) }
        print("types        " + byType.sorted { ($0.2, $0.0.rawValue) > ($1.2, $1.0.rawValue) }
            .map { "\($0.0.rawValue) ×\($0.1) (\(formatBytes($0.2)))" }.joined(separator: ", "))
        let spec = loaded.tokenizer.spec
        print("tokenizer    \(spec.model.rawValue), \(spec.tokens.count) tokens, BOS \(spec.bosID.map(String.init) ?? "none"), EOS \(spec.eosID.map(String.init) ?? "none")")
        let kvPerToken = 2 * c.layerCount * c.kvDim * 4
        print("KV cache     \(formatBytes(kvPerToken)) per token at fp32, \(formatBytes(kvPerToken * c.contextLength)) at full context")
        // Past this context a decode step reads more KV bytes than weight bytes.
        print("crossover    KV = weights at \(w.residentBytes / kvPerToken) tokens (fp32 KV, weights as stored)")
        for (key, value) in loaded.metadata { print("meta         \(key) = \(value)") }
        print("")
        let nameWidth = max(4, loaded.tensors.map(\.name.count).max() ?? 0)
        print("name".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  shape          type    bytes")
        for tensor in loaded.tensors {
            let shape = tensor.shape.map(String.init).joined(separator: " × ")
            print(tensor.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "  "
                  + shape.padding(toLength: 13, withPad: " ", startingAt: 0) + "  "
                  + tensor.type.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0) + "  " + formatBytes(tensor.byteCount))
        }
        print("\(loaded.tensors.count) tensors, \(formatBytes(loaded.tensors.reduce(0) { $0 + $1.byteCount })) in the file")
    }

    /// Per-layer attention spans, runs of equal layers grouped: "layers 0-23 global" or
    /// "layers 0-4 local (window 512), layer 5 global, ...".
    static func spans(_ spans: [AttentionSpan]) -> String {
        var runs: [(first: Int, last: Int, span: AttentionSpan)] = []
        for (layer, span) in spans.enumerated() {
            if let last = runs.last, last.span == span, last.last == layer - 1 {
                runs[runs.count - 1].last = layer
            } else {
                runs.append((layer, layer, span))
            }
        }
        return runs.map { run in
            let layers = run.first == run.last ? "layer \(run.first)" : "layers \(run.first)-\(run.last)"
            return layers + (run.span.window.map { " local (window \($0))" } ?? " global")
        }.joined(separator: ", ")
    }
}

