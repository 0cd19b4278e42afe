import Foundation
@testable import KVLabEngine
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// Methods that act once at the end of a prompt (snapkv, pyramidkv, adakv, duo), chosen between
/// decode steps, act at once on the sequence so far, its last queries as the observation window.
@Suite struct MidStreamSwitchTests {
    static func tokens(_ count: Int) -> [Int] {
        var generator = Xoshiro256(seed: 5)
        return [1] + (1..<count).map { _ in Int.random(in: 3..<512, using: &generator) }
    }

    /// A full cache run one step at a time, then switched to snapkv, keeps what snapkv keeps when
    /// the same tokens are its prompt: the last queries see the same keys either way.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func snapKVChosenMidStreamActsLikeAtTheEndOfAPrompt() throws {
        let weights = Fixtures.stories!.weights, tokens = Self.tokens(100)
        let snap = try EvictionMethod(parsing: "snapkv:budget=32,observation=8")
        let prompt = PagedKVCache(layout: KVLayout(config: weights.config), eviction: snap)
        try InferenceEngine(weights: weights, cache: prompt).prefill(tokens)
        let switched = PagedKVCache(layout: KVLayout(config: weights.config))
        let engine = InferenceEngine(weights: weights, cache: switched)
        for token in tokens { try engine.decode(token) }
        var ledger = IOLedger()
        switched.setEviction(snap, ledger: &ledger)
        #expect(ledger.totalRead > 0)
        var same = 0, total = 0
        for layer in 0..<weights.config.layerCount {
            for head in 0..<weights.config.kvHeadCount {
                let kept = switched.keptPositions(layer: layer, head: head)
                #expect(kept.count == 32)
                #expect(Array(kept.suffix(8)) == Array(92..<100))
                same += Set(kept).intersection(prompt.keptPositions(layer: layer, head: head)).count
                total += kept.count
            }
        }
        // Batched and per-query kernels round differently, which may swap a near tie.
        #expect(Double(same) / Double(total) > 0.97, "\(same) of \(total)")
    }

    /// duo chosen mid-stream calibrates its heads at once: the streaming heads trim to sinks + window.
    @Test(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
    func duoChosenMidStreamCalibratesAtOnce() throws {
        let model = Fixtures.stories!
        let run = try LiveRun(model: model, settings: RunSettings(eviction: .full))
        try run.submit(prompt: "Once upon a time, there was a little girl named Lily. She loved to play outside.")
        for _ in 0..<40 { _ = try run.step() }
        try run.set(.policy, to: "duo:sinks=2,window=8,ratio=0.5")
        let layout = run.cache.layout
        let budgets = (0..<layout.layerCount).flatMap { l in (0..<layout.kvHeadCount).map { run.cache.budget(layer: l, head: $0) } }
        #expect(budgets.filter { $0 == 10 }.count == budgets.count / 2)
        for l in 0..<layout.layerCount {
            for h in 0..<layout.kvHeadCount where run.cache.budget(layer: l, head: h) != nil {
                #expect(run.cache.entryCount(layer: l, head: h) == 10)
            }
        }
    }
}
