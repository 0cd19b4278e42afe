import Foundation
import KVLabMethods

/// Argmax, its log-probability and the entropy of softmax(logits), in one pass pair.
package struct LogitStatistics {
    package var argmax = 0
    package var maxLogProbability: Float = 0
    package var entropy: Float = 0
    /// log Σ exp(logits).
    package var logSumExp: Float = 0

    package init(_ logits: UnsafePointer<Float>, count: Int) {
        var maximum = logits[0]
        for i in 1..<max(count, 1) where logits[i] > maximum {
            maximum = logits[i]
            argmax = i
        }
        var sum: Float = 0, weighted: Float = 0
        for i in 0..<count {
            let e = expf(logits[i] - maximum)
            sum += e
            weighted += e * (logits[i] - maximum)
        }
        logSumExp = maximum + logf(sum)
        maxLogProbability = maximum - logSumExp
        entropy = logf(sum) - weighted / sum
    }
}

/// The engine's RoPE: one table per distinct RoPE of the model (Gemma 3 has one for local and one
/// for global layers), which table each layer reads, and each layer's query scale.
struct EngineRoPE {
    private let tables: [RoPETable]
    private let tableOfLayer: [Int]
    private let half: Int
    /// Per layer: the logit scale (attention scale, YaRN's factor) times √headDim, folded into
    /// the queries (`ModelConfig.queryScale`).
    let queryScales: [Float]

    init(config c: ModelConfig) {
        let ropes = (0..<c.layerCount).map(c.rope(layer:))
        var distinct: [RoPE] = []
        for rope in ropes where !distinct.contains(rope) { distinct.append(rope) }
        tables = distinct.map { RoPETable($0, headDim: c.headDim) }
        tableOfLayer = ropes.map { distinct.firstIndex(of: $0)! }
        half = c.headDim / 2
        queryScales = (0..<c.layerCount).map(c.queryScale(layer:))
    }

    /// Floats of cos (and of sin) per position: one half-head per table.
    var anglesPerPosition: Int { tables.count * half }

    /// Fills `cos` and `sin` (`anglesPerPosition` each) for `position`.
    func fill(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        for (i, table) in tables.enumerated() { table.fill(position: position, cos: cos + i * half, sin: sin + i * half) }
    }

    /// Where layer `layer`'s angles start within one position's `fill`.
    @inline(__always)
    func offset(layer: Int) -> Int { tableOfLayer[layer] * half }
}

/// Scratch of the decode loop, allocated once per engine.
final class DecodeBuffers {
    let x, xb, q, k, v, attention, hidden, hidden2, logits, cos, sin: UnsafeMutablePointer<Float>
    /// The input of the products, quantized for the kernels of quantized weights.
    let quantized: QuantizedActivation

    init(config c: ModelConfig, angles: Int) {
        let make = zeroedFloats
        x = make(c.dim); xb = make(max(c.dim, c.hiddenDim)); q = make(c.queryDim); k = make(c.kvDim); v = make(c.kvDim)
        attention = make(c.queryDim); hidden = make(c.hiddenDim); hidden2 = make(c.hiddenDim); logits = make(c.vocabSize)
        cos = make(angles); sin = make(angles)
        quantized = QuantizedActivation(capacity: max(c.dim, c.hiddenDim))
    }

    deinit { for p in [x, xb, q, k, v, attention, hidden, hidden2, logits, cos, sin] { p.deallocate() } }
}

/// Scratch of one prefill call (sized by its token count).
struct PrefillBuffers {
    let x, xb, q, k, v, attention, hidden, hidden2, weightScratch, cos, sin: UnsafeMutablePointer<Float>

    init(config c: ModelConfig, tokens n: Int, angles: Int) {
        let make = zeroedFloats
        x = make(n * c.dim); xb = make(n * max(c.dim, c.hiddenDim)); q = make(n * c.queryDim); k = make(n * c.kvDim)
        v = make(n * c.kvDim); attention = make(n * c.queryDim); hidden = make(n * c.hiddenDim); hidden2 = make(n * c.hiddenDim)
        weightScratch = make(MatMul.scratchFloats(config: c))
        cos = make(n * angles); sin = make(n * angles)
    }

    func deallocate() { for p in [x, xb, q, k, v, attention, hidden, hidden2, weightScratch, cos, sin] { p.deallocate() } }
}

/// A zero-filled float buffer owned by the caller.
private func zeroedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
    p.initialize(repeating: 0, count: count)
    return p
}
