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

    /// A local layer's prefill: each query sees only the entries of its window, among earlier
    /// context stored in any slot order and the prompt's own entries, with either kernel and
    /// windows smaller and larger than a kernel tile.
    @Test(arguments: [false, true], [1, 3, 9])
    func prefillSeesOnlyTheWindow(tiled: Bool, window: Int) {
        var generator = Xoshiro256(seed: 11)
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &generator) } }
        let prior = [3, 0, 5, 1, 4, 2], n = 30, group = 2, hd = 8
        let store = PageStore(layout: Self.layout, quant: .fp32)
        var keys: [Int: [Float]] = [:], values: [Int: [Float]] = [:]
        for p in prior + Array(6..<(6 + n)) {
            keys[p] = random(hd)
            values[p] = random(hd)
            store.append(index: 0, position: p, key: keys[p]!, value: values[p]!)
        }
        let attention = CacheAttention(store: store)
        let queries = random(n * group * hd)
        var output = [Float](repeating: 0, count: n * group * hd)
        var probabilities: [Int: [Float]] = [:]
        var ledger = IOLedger()
        let causal = CausalRows(group: group, firstVisible: prior.count + 1, window: window, firstPosition: 6,
                                slotPositions: UnsafePointer(store.slotPositions))
        let finish: (Int, inout IOLedger) -> Void = { t, _ in
            probabilities[t] = Array(UnsafeBufferPointer(start: attention.probabilities, count: prior.count + t + 1))
        }
        queries.withUnsafeBufferPointer { q in
            output.withUnsafeMutableBufferPointer { out in
                if tiled {
                    let kernel = CacheAttention.tiledAttention(for: .tiled(sramBytes: 512), layout: Self.layout, entries: attention.scoreStride)!
                    attention.prefillTiled(kernel, index: 0, rows: n * group, queries: q.baseAddress!, output: out.baseAddress!, causal: causal,
                                           needed: { $0 % 4 == 1 }, finish: finish, ledger: &ledger)
                } else {
                    let scratch = CacheAttention.NaiveScratch(tokens: n, group: group, headDim: hd, entries: prior.count + n)
                    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: scratch.floats)
                    defer { buffer.deallocate() }
                    attention.prefillNaive(index: 0, tokens: n, queries: q.baseAddress!, output: out.baseAddress!, causal: causal,
                                           scratch: scratch, at: buffer, needed: { $0 % 4 == 1 }, finish: finish, ledger: &ledger)
                }
            }
        }
        let slots = prior + Array(6..<(6 + n))
        for t in 0..<n {
            let position = 6 + t, seen = ((position - window + 1)...position).filter { $0 >= 0 }
            for g in 0..<group {
                let query = Array(queries[((t * group + g) * hd)..<((t * group + g + 1) * hd)])
                let scores = seen.map { j in zip(query, keys[j]!).reduce(Float(0)) { $0 + $1.0 * $1.1 } / Float(hd).squareRoot() }
                let top = scores.max()!, weights = scores.map { expf($0 - top) }, total = weights.reduce(0, +)
                for c in 0..<hd {
                    let expected = seen.indices.reduce(Float(0)) { $0 + weights[$1] / total * values[seen[$1]]![c] }
                    #expect(abs(output[(t * group + g) * hd + c] - expected) < 1e-4, "t \(t) g \(g)")
                }
            }
            // The probabilities a method reads are 0 outside the window (query head 0 shown).
            if let p = probabilities[t] {
                for (slot, position) in slots.prefix(p.count).enumerated() where !seen.contains(position) { #expect(p[slot] == 0) }
                #expect(abs(seen.reduce(Float(0)) { $0 + p[slots.firstIndex(of: $1)!] } - 1) < 1e-4)
            }
        }
    }
}
