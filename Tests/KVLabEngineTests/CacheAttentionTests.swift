import Foundation
@testable import KVLabEngine
import KVLabMethods
import Testing

/// Batched prefill attention alone, naive (BLAS) and tiled, against plain causal softmax attention.
@Suite struct CacheAttentionTests {
    static let layout = KVLayout(layerCount: 1, kvHeadCount: 1, headDim: 8, groupSize: 2, capacity: 64)

    @Test(arguments: [false, true])
    func prefillIsCausalSoftmaxAttention(tiled: Bool) {
        var generator = Xoshiro256(seed: 9)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &generator) } }
        let n = 20, group = 2, hd = 8
        let store = PageStore(layout: Self.layout, quant: .fp32)
        var keys: [[Float]] = [], values: [[Float]] = []
        for p in 0..<n {
            keys.append(random(hd))
            values.append(random(hd))
            store.append(index: 0, position: p, key: keys[p], value: values[p])
        }
        let attention = CacheAttention(store: store)
        let queries = random(n * group * hd)
        var output = [Float](repeating: 0, count: n * group * hd)
        var finished: [Int] = []
        var ledger = IOLedger()
        let causal = CausalRows(group: group, firstVisible: 1)
        queries.withUnsafeBufferPointer { q in
            output.withUnsafeMutableBufferPointer { out in
                if tiled {
                    // 512 B of SRAM: tiles of 4 entries, so the prompt spans several.
                    let kernel = CacheAttention.tiledAttention(for: .tiled(sramBytes: 512), layout: Self.layout, entries: attention.scoreStride)!
                    attention.prefillTiled(kernel, index: 0, rows: n * group, queries: q.baseAddress!, output: out.baseAddress!, causal: causal,
                                           needed: { $0 % 7 == 0 }, finish: { t, _ in finished.append(t) }, ledger: &ledger)
                } else {
                    let scratch = CacheAttention.NaiveScratch(tokens: n, group: group, headDim: hd, entries: n)
                    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: scratch.floats)
                    defer { buffer.deallocate() }
                    attention.prefillNaive(index: 0, tokens: n, queries: q.baseAddress!, output: out.baseAddress!, causal: causal,
                                           scratch: scratch, at: buffer, needed: { $0 % 7 == 0 }, finish: { t, _ in finished.append(t) },
                                           ledger: &ledger)
                }
            }
        }
        #expect(finished == [0, 7, 14])
        for t in 0..<n {
            for g in 0..<group {
                let query = Array(queries[((t * group + g) * hd)..<((t * group + g + 1) * hd)])
                let scores = (0...t).map { j in zip(query, keys[j]).reduce(Float(0)) { $0 + $1.0 * $1.1 } / Float(hd).squareRoot() }
                let top = scores.max()!, weights = scores.map { expf($0 - top) }, total = weights.reduce(0, +)
                for c in 0..<hd {
                    let expected = (0...t).reduce(Float(0)) { $0 + weights[$1] / total * values[$1][c] }
                    #expect(abs(output[(t * group + g) * hd + c] - expected) < 1e-4)
                }
            }
        }
        // The last finished query's probabilities sum to 1 per query head, over its visible entries.
        for g in 0..<group {
            #expect(abs((0..<15).reduce(Float(0)) { $0 + attention.probabilities[g * attention.scoreStride + $1] } - 1) < 1e-4)
        }
    }
}
