import Foundation
import KVLabEngine
@testable import KVLabHardware
import KVLabMethods
import KVLabRun
import Testing

/// The projection's batch term against a live batched decode step on the embedded model.
///
/// Comparison rule: the projection (target = the embedded model's shape, its f16 weights, fp32
/// activations and KV as the engine keeps them, naive kernel, context = entries a step attends)
/// counts every op a GPU runs as its own kernel; the engine's ledger counts its matrix products,
/// attention and cache, and does its norms, RoPE, residual adds and SwiGLU in place. So the
/// projection's decode bytes less those element-wise ops (and less the embedding's output row,
/// which the engine writes straight into the residual) must equal the live ledger's HBM bytes
/// (read + written) of the step exactly, at every batch: the weights once, everything else per
/// sequence.
@Suite struct BatchProjectionTests {
    static let elementwise: Set = ["attn_norm", "rope", "attn_add", "ffn_norm", "swiglu", "ffn_add", "final_norm"]

    @Test(arguments: [1, 4, 16]) func batchTermMatchesTheLiveLedger(batch: Int) throws {
        let model = try EmbeddedModel.load()
        let c = model.config, prompt = 40
        let engine = try BatchedEngine(weights: model.weights)
        let ids = (0..<batch).map { _ in engine.addSequence() }
        for id in ids { try engine.setPrompt(id, tokens: (0..<prompt).map { 1 + ($0 * 7 + id.rawValue) % 1000 }) }
        try engine.step(ids.map { .prefill($0, tokens: prompt) })
        let ledger = try engine.step(ids.map { .decode($0, token: 5) }).ledger
        let target = TargetShape(config: c, tiedEmbeddings: model.weights.tiedClassifier, id: "live", source: "embedded model")
        let projection = Projection(ProjectionSetup(device: try HardwareCatalog.device("h100-sxm"), target: target, weights: .f16,
                                                    context: prompt + 1, batch: batch, float: .f32))
        let fused = projection.decode.ops.filter { Self.elementwise.contains($0.name) }.reduce(0) { $0 + $1.bytes }
        let embeddingOutput = Double(batch * c.dim * 4)
        #expect(projection.decode.bytes - fused - embeddingOutput == Double(ledger.totalRead + ledger.totalWritten))
        // Weights once per step: the matrices' bytes do not grow with the batch (only the rows'
        // embedding lookups do).
        let matrices = ledger.bytesRead(.weights) - UInt64(batch * model.weights.tokenEmbedding.rowBytes)
        #expect(Double(matrices) == projection.decode.ops.filter { $0.name.hasSuffix("_proj") || $0.name == "classifier" }
            .reduce(0) { $0 + $1.bytes } - Double(batch) * Self.linearActivations(c))
    }

    /// Activation bytes per row of every linear layer (q, o; k, v; gate, up, down: input and output, fp32) and the classifier.
    static func linearActivations(_ c: ModelConfig) -> Double {
        let perLayer = 2 * (c.dim + c.queryDim) + 2 * (c.dim + c.kvDim) + 3 * (c.dim + c.hiddenDim)
        return Double((c.layerCount * perLayer + c.dim + c.vocabSize) * 4)
    }
}
