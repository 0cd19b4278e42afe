import Foundation
@testable import KVLabEngine
import Testing

/// Sampling at the edges: temperatures so small that logits/T overflow sample greedily, with or
/// without top-k and top-p, and a nucleus never ends up empty.
@Suite struct SamplerLimitTests {
    @Test func tinyTemperaturesSampleGreedily() {
        let logits: [Float] = [1, 3, 2, 0.5, 2.9]
        logits.withUnsafeBufferPointer { buffer in
            for temperature: Float in [1e-40, 1e-30, 1e-7, SamplerSettings.greedyTemperature / 2] {
                for (topK, topP): (Int, Float) in [(0, 1), (1, 1), (0, 0.5), (2, 0.01)] {
                    let sampler = Sampler(settings: SamplerSettings(temperature: temperature, topK: topK, topP: topP, seed: 3), vocabularySize: 5)
                    #expect((0..<20).allSatisfy { _ in sampler.sample(buffer) == 1 }, "T \(temperature), top-k \(topK), top-p \(topP)")
                }
            }
        }
        // Logits so large that dividing overflows at an ordinary temperature: greedy too, not NaN.
        let huge: [Float] = [1e38, 3e38, -3e38]
        huge.withUnsafeBufferPointer { buffer in
            let sampler = Sampler(settings: SamplerSettings(temperature: 0.5, seed: 3), vocabularySize: 3)
            #expect(sampler.sample(buffer) == 1)
        }
    }

    @Test func aNucleusBelowAUniformDistributionKeepsTheMostLikelyToken() {
        let uniform = [Float](repeating: 0, count: 64)
        uniform.withUnsafeBufferPointer { buffer in
            let sampler = Sampler(settings: SamplerSettings(temperature: 1, topP: 0.001, seed: 3), vocabularySize: 64)
            #expect((0..<20).allSatisfy { _ in (0..<64).contains(sampler.sample(buffer)) })
        }
    }

    @Test func samplerSettingsHaveARange() {
        #expect(throws: (any Error).self) { try SamplerSettings(temperature: 1001).validate() }
        #expect(throws: (any Error).self) { try SamplerSettings(temperature: .infinity).validate() }
        #expect(throws: Never.self) { try SamplerSettings(temperature: 1e-40, topK: 1).validate() }
    }
}
