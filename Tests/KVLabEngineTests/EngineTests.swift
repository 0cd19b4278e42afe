import Foundation
@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// Engine parts on their own: streaming text, sampling, the IO ledger, the KV cache, errors.
@Suite struct EngineTests {
    @Test func textStreamHoldsBackSplitCharacters() {
        var stream = TextStream()
        let bytes = Array("aé🙂".utf8)  // 1 + 2 + 4 bytes
        #expect(stream.push([bytes[0], bytes[1]]) == "a")
        #expect(stream.push([bytes[2], bytes[3], bytes[4]]) == "é")
        #expect(stream.push([bytes[5], bytes[6]]) == "🙂")
        #expect(stream.push([0xF0, 0x9F]) == "")
        #expect(stream.flush() == "\u{FFFD}")
    }

    @Test func samplerRespectsTopKTopPAndSeed() {
        let logits: [Float] = [1, 3, 2, 0.5, 2.9]
        logits.withUnsafeBufferPointer { buffer in
            let greedy = Sampler(settings: SamplerSettings(temperature: 0), vocabularySize: 5)
            #expect(greedy.sample(buffer) == 1)
            let topTwo = Sampler(settings: SamplerSettings(temperature: 1, topK: 2, seed: 1), vocabularySize: 5)
            let drawn = Set((0..<200).map { _ in topTwo.sample(buffer) })
            #expect(drawn == [1, 4])
            let nucleus = Sampler(settings: SamplerSettings(temperature: 1, topP: 0.01, seed: 1), vocabularySize: 5)
            #expect((0..<50).allSatisfy { _ in nucleus.sample(buffer) == 1 })
            let a = Sampler(settings: SamplerSettings(temperature: 1, seed: 9), vocabularySize: 5)
            let b = Sampler(settings: SamplerSettings(temperature: 1, seed: 9), vocabularySize: 5)
            #expect((0..<100).map { _ in a.sample(buffer) } == (0..<100).map { _ in b.sample(buffer) })
        }
        #expect(throws: (any Error).self) { try SamplerSettings(topP: 0).validate() }
    }

    @Test func ggmlBlocksMatchHandComputedBytes() {
        // One block of 32 values 0, 1, …, 31 (max 31).
        let values = (0..<32).map(Float.init)
        let q8 = WeightMatrix(rows: 1, cols: 32, values: values, type: .q8_0)
        // d = 31/127, codes round(x·127/31): 1 → 4 (4.096), 31 → 127.
        #expect(q8.encodedBytes.load(as: UInt16.self) == Float16(Float(31) / 127).bitPattern)
        #expect(Int8(bitPattern: q8.encodedBytes[3]) == 4 && Int8(bitPattern: q8.encodedBytes[33]) == 127)
        let q4 = WeightMatrix(rows: 1, cols: 32, values: values, type: .q4_0)
        // d = max/-8 = -3.875; x=0 → code 8, x=31 → min(15, trunc(31/-3.875 + 8.5)) = 0.
        #expect(q4.encodedBytes.load(as: UInt16.self) == Float16(-3.875).bitPattern)
        #expect(q4.encodedBytes[2] == 0x08 | (UInt8(Int8(truncatingFloat: 16 / -3.875 + 8.5)) << 4))
        #expect(q4.encodedBytes[17] >> 4 == 0)
        let q41 = WeightMatrix(rows: 1, cols: 32, values: values, type: .q4_1)
        // d = 31/15, m = 0; x=31 → 15, x=1 → trunc(1·15/31 + 0.5) = 0.
        #expect(q41.encodedBytes.load(fromByteOffset: 2, as: UInt16.self) == 0)
        #expect(q41.encodedBytes[19] >> 4 == 15 && q41.encodedBytes[4] & 0x0f == 0)
        #expect(q8.byteCount == 34 && q4.byteCount == 18 && q41.byteCount == 20)
        let decoded = q8.decodedValues()
        #expect(zip(decoded, values).allSatisfy { abs($0 - $1) <= 31 / 127 / 2 + 1e-3 })
    }

    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func ledgerCountsEveryWeightByteAndTheCache() throws {
        let weights = Fixtures.stories!.weights
        let c = weights.config
        let engine = InferenceEngine(weights: weights)
        var report = try engine.decode(1)
        for token in [403, 407, 261] { report = try engine.decode(token) }
        // A decode step reads every matrix once (the tied classifier fully) plus one embedding row.
        let matrices = weights.layers.flatMap(\.matrices).reduce(0) { $0 + $1.byteCount } + weights.output.byteCount
        #expect(report.ledger.bytesRead(.weights) == UInt64(matrices + weights.tokenEmbedding.rowBytes))
        // Attention at position 3 reads 4 keys and 4 values per KV head and layer, once per group.
        #expect(report.ledger.bytesRead(.keys) == UInt64(c.layerCount * c.kvHeadCount * 4 * c.headDim * 4))
        #expect(report.ledger.bytesWritten(.values) == UInt64(c.layerCount * c.kvDim * 4))
        let perEntry = 2 * c.headDim * 4
        #expect(report.cache.fullPrecisionPayload == 4 * c.layerCount * c.kvHeadCount * perEntry)
        #expect(report.cache.pageSlack == (PagedKVCache.pageSize - 4) * c.layerCount * c.kvHeadCount * perEntry)
        #expect(report.cacheEntries == 4 * c.layerCount * c.kvHeadCount)
        engine.reset()
        #expect(engine.cache.residency.total == 0)
    }

    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func engineRejectsBadTokensAndAFullContext() throws {
        let weights = Fixtures.stories!.weights
        let engine = InferenceEngine(weights: weights, cache: PagedKVCache(layout: KVLayout(config: weights.config, capacity: 3)))
        #expect(throws: EngineError.invalidToken(512, vocabularySize: 512)) { try engine.decode(512) }
        #expect(throws: EngineError.emptyInput) { try engine.prefill([]) }
        try engine.prefill([1, 403, 407])
        #expect(throws: EngineError.contextFull(limit: 3)) { try engine.decode(261) }
    }
}
