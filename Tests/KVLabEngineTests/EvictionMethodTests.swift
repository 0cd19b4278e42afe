@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// One (layer, KV head) driven by hand: each step appends the next position and hands the
/// policy the step scores the test chose, as the cache does after attention.
final class HandHead {
    let capacity = 64
    let positions: UnsafeMutablePointer<Int32>
    let scores: UnsafeMutablePointer<Float>
    let history: UnsafeMutablePointer<UInt64>
    let keyNorms: UnsafeMutablePointer<Float>
    let stepScores: UnsafeMutablePointer<Float>
    let slots: UnsafeMutablePointer<Int32>
    let released: UnsafeMutablePointer<Int32>
    var count = 0
    var next = 0
    let groupSize: Int

    init(groupSize: Int = 1) {
        self.groupSize = groupSize
        positions = .allocate(capacity: capacity)
        scores = .allocate(capacity: capacity)
        history = .allocate(capacity: capacity)
        keyNorms = .allocate(capacity: capacity)
        stepScores = .allocate(capacity: capacity)
        slots = .allocate(capacity: capacity)
        released = .allocate(capacity: capacity)
    }

    deinit {
        positions.deallocate(); scores.deallocate(); history.deallocate(); keyNorms.deallocate()
        stepScores.deallocate(); slots.deallocate(); released.deallocate()
    }

    var entries: HeadEntries {
        HeadEntries(count: count, groupSize: groupSize, positions: positions, scores: scores, history: history,
                    keyNorms: keyNorms, stepScores: stepScores, slots: slots, released: released)
    }

    var kept: [Int] { (0..<count).map { Int(positions[$0]) } }

    /// Appends one entry (key norm `norm`) without running the policy.
    func append(norm: Float = 1) {
        positions[count] = Int32(next)
        scores[count] = 0
        history[count] = 0
        keyNorms[count] = norm
        slots[count] = Int32(count)
        count += 1
        next += 1
    }

    /// Appends one entry, then runs the policy with `s_t` = `step` (one value per entry, oldest first).
    @discardableResult
    func step(_ policy: any EvictionPolicy, _ step: [Float] = [], norm: Float = 1, layer: Int = 0) -> [Int] {
        append(norm: norm)
        for i in 0..<count { stepScores[i] = i < step.count ? step[i] : 0 }
        run { policy.afterAttention(layer: layer, heads: $0) }
        return kept
    }

    func run(_ body: (UnsafeMutableBufferPointer<HeadEntries>) -> Void) {
        let heads = UnsafeMutableBufferPointer<HeadEntries>.allocate(capacity: 1)
        defer { heads.deallocate() }
        heads.initialize(repeating: entries)
        body(heads)
        count = heads[0].count
    }
}

@Suite struct EvictionMethodTests {
    // MARK: - Syntax

    @Test func methodStringsParseAndPrintCanonically() throws {
        #expect(try EvictionMethod(parsing: "h2o").description == "h2o:heavy=64,recent=64")
        #expect(try EvictionMethod(parsing: " H2O:recent=8 , heavy=4 ").description == "h2o:heavy=4,recent=8")
        #expect(try EvictionMethod(parsing: "a2sf:alpha=0.50").description == "a2sf:heavy=64,recent=64,alpha=0.5")
        #expect(try EvictionMethod(parsing: "pyramidkv:budget=64").description == "pyramidkv:budget=64,observation=16,pool=7,min=16")
        #expect(try EvictionMethod(parsing: "window:window=32+merge").description == "window:window=32+merge")
        let method = try EvictionMethod(parsing: "streaming:sinks=2,window=30")
        #expect(method.kind == .streaming(sinks: 2, window: 30))
        #expect(try EvictionMethod(parsing: method.description) == method)
    }

    @Test(arguments: [
        ("h2o:heavy=4,heavy=5", "h2o: heavy is given twice"),
        ("h2o:heavyy=4", "h2o: unknown parameter 'heavyy' (known: heavy, recent, ratio, budget, bytes)"),
        ("h2o:heavy=x", "h2o: heavy=x is not a whole number"),
        ("window:window=0", "window: window=0 is outside 1...1048576"),
        ("random:seed=18446744073709551615", "random: seed=18446744073709551615 is outside 0...2147483647"),
        ("window:window=-99999999999999999999", "window: window=-99999999999999999999 is outside 1...1048576"),
        ("a2sf:alpha=1e999", "a2sf: alpha=1e999 is outside 0...1"),
        ("a2sf:alpha=2", "a2sf: alpha=2 is outside 0...1"),
        ("lru", "unknown eviction method 'lru' (full, window, streaming, h2o, a2sf, tova, scissorhands, snapkv, pyramidkv, adakv, cam, headkv, knorm, random, duo)"),
        ("h2o:", "h2o: nothing after ':'"),
        ("h2o:heavy", "h2o: 'heavy' is not key=value"),
        ("full+merge", "merge needs an eviction method (full evicts nothing)"),
        ("window+sink", "unknown modifier 'sink' for window (merge, think, rebase, every)"),
        ("snapkv:budget=8,observation=8", "snapkv: observation must be below budget"),
        ("snapkv:pool=4", "snapkv: pool must be odd (same padding)"),
        ("", "'' is not a method (expected name:key=value,...)"),
    ])
    func badMethodStringsSayWhat(text: String, message: String) {
        #expect(throws: MethodSpecError(message)) { try EvictionMethod(parsing: text) }
    }

    // MARK: - Definitions on hand-built score sequences

    @Test func windowKeepsTheLastEntries() {
        let head = HandHead(), policy = StreamingPolicy(sinks: 0, window: 3)
        for _ in 0..<5 { head.step(policy) }
        #expect(head.kept == [2, 3, 4])
    }

    @Test func streamingKeepsSinksAndWindow() {
        let head = HandHead(), policy = StreamingPolicy(sinks: 2, window: 2)
        for _ in 0..<7 { head.step(policy) }
        #expect(head.kept == [0, 1, 5, 6])
    }

    @Test func h2oEvictsTheLowestAccumulatedScoreOutsideTheRecentWindow() {
        let head = HandHead(), policy = HeavyHitterPolicy(heavy: 2, recent: 1, alpha: 1)
        head.step(policy, [1])                       // scores [1]
        head.step(policy, [0.5, 0.5])                // [1.5, 0.5]
        head.step(policy, [0.1, 0.8, 0.1])           // [1.6, 1.3, 0.1]: 3 entries = budget
        // Step 3: [1.6, 1.4, 0.1, 0.9]; candidates exclude the newest; position 2 (0.1) goes.
        #expect(head.step(policy, [0, 0.1, 0, 0.9]) == [0, 1, 3])
        // Step 4: [1.6, 1.4, 0.9, 1]; position 3 (recent last step) is now a candidate and goes.
        #expect(head.step(policy, [0, 0, 0, 1]) == [0, 1, 4])
    }

    @Test func h2oTiesEvictTheOlderEntry() {
        let head = HandHead(), policy = HeavyHitterPolicy(heavy: 2, recent: 1, alpha: 1)
        for _ in 0..<4 { head.step(policy) }
        #expect(head.kept == [1, 2, 3])
    }

    @Test func a2sfForgetsOldAttention() {
        // Position 0 was heavy long ago; with α = 0.5 its score decays below position 1's.
        let h2o = HandHead(), a2sf = HandHead()
        let p1 = HeavyHitterPolicy(heavy: 2, recent: 1, alpha: 1), p2 = HeavyHitterPolicy(heavy: 2, recent: 1, alpha: 0.5)
        let steps: [[Float]] = [[1], [1, 0], [0, 0.6, 0.4], [0, 0.3, 0.4, 0.3]]
        for s in steps {
            h2o.step(p1, s)
            a2sf.step(p2, s)
        }
        // h2o: [2, 0.9, 0.8, 0.3] → evict position 2; a2sf: [0.375, 0.6, 0.6, 0.3] → evict position 0.
        #expect(h2o.kept == [0, 1, 3])
        #expect(a2sf.kept == [1, 2, 3])
    }

    @Test func tovaUsesOnlyThisStepAndMayDropTheNewEntry() {
        let head = HandHead(), policy = TOVAPolicy(budget: 2)
        head.step(policy, [1])
        head.step(policy, [0.9, 0.1])
        #expect(head.step(policy, [0.5, 0.3, 0.2]) == [0, 1])
        #expect(head.step(policy, [0.1, 0.4, 0.5]) == [1, 3])
    }

    @Test func scissorhandsDropsTheMostOftenBelowUniformEntriesWhenFull() {
        let head = HandHead(), policy = ScissorhandsPolicy(budget: 4, history: 8, recent: 1, drop: 2)
        // Uniform is 1/n; position 1 is always below it, position 2 twice, the rest never.
        head.step(policy, [1])
        head.step(policy, [0.9, 0.1])
        head.step(policy, [0.6, 0.1, 0.3])
        let kept = head.step(policy, [0.5, 0.1, 0.1, 0.3])
        #expect(kept == [0, 3])
        // The sawtooth: nothing goes until the head reaches the budget again.
        #expect(head.step(policy, [0.5, 0.3, 0.2]) == [0, 3, 4])
    }

    @Test func snapKVKeepsThePooledTopPlusTheObservationWindow() {
        let head = HandHead(), policy = SnapKVPolicy(budgets: [4], observation: 2, pool: 3, pooledAcrossHeads: false)
        for _ in 0..<8 { head.append() }
        // Observation scores of the six prompt entries before the window (positions 0–5).
        let observed: [Float] = [0.1, 0.0, 0.0, 0.05, 0.0, 0.9]
        for i in 0..<6 { head.scores[i] = observed[i] }
        head.run { policy.finishPrefill(layer: 0, heads: $0, promptEnd: 8) }
        // Pooled (kernel 3): [0.1, 0.1, 0.05, 0.05, 0.9, 0.9]: top 2 = positions 4 and 5.
        #expect(head.kept == [4, 5, 6, 7])
        // No eviction during decode.
        #expect(head.step(policy) == [4, 5, 6, 7, 8])
    }

    @Test func pyramidBudgetsFallLinearlyWithTheRightMean() {
        let budgets = SnapKVPolicy.pyramid(mean: 8, minimum: 2, layers: 4)
        #expect(budgets == [14, 10, 6, 2])
        #expect(budgets.reduce(0, +) == 8 * 4)
    }

    @Test func adaKVPoolsScoresAcrossHeads() {
        let a = HandHead(), b = HandHead()
        let policy = SnapKVPolicy(budgets: [3], observation: 1, pool: 1, pooledAcrossHeads: true)
        for _ in 0..<5 {
            a.append()
            b.append()
        }
        let scoresA: [Float] = [0.9, 0.8, 0.7, 0.6], scoresB: [Float] = [0.1, 0.0, 0.2, 0.0]
        for i in 0..<4 {
            a.scores[i] = scoresA[i]
            b.scores[i] = scoresB[i]
        }
        let heads = UnsafeMutableBufferPointer<HeadEntries>.allocate(capacity: 2)
        defer { heads.deallocate() }
        heads[0] = a.entries
        heads[1] = b.entries
        policy.finishPrefill(layer: 0, heads: heads, promptEnd: 5)
        // 2 × (3 − 1) = 4 prompt entries kept over both heads: all go to the head that attends.
        #expect(heads[0].count == 5)
        #expect(heads[1].count == 1)
    }

    @Test func knormKeepsSmallNormsAndTheNewest() {
        let head = HandHead(), policy = KeyNormPolicy(budget: 2)
        head.step(policy, norm: 3)
        head.step(policy, norm: 1)
        head.step(policy, norm: 2)
        #expect(head.step(policy, norm: 9) == [1, 2, 3])
        #expect(head.step(policy, norm: 0.5) == [1, 2, 4])
    }

    @Test func randomIsSeededAndKeepsTheBudget() {
        func run(seed: UInt64) -> [Int] {
            let head = HandHead(), policy = RandomPolicy(budget: 5, seed: seed)
            for _ in 0..<20 { head.step(policy) }
            return head.kept
        }
        #expect(run(seed: 1) == run(seed: 1))
        #expect(run(seed: 1).count == 5)
        #expect(run(seed: 1) != run(seed: 2))
    }

    @Test func duoMakesTheHeadsThatLookFarRetrievalHeads() {
        let layout = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 4, groupSize: 1, capacity: 64)
        let policy = DuoPolicy(sinks: 1, window: 2, ratio: 0.5, layout: layout)
        let near = HandHead(), far = HandHead()
        for q in 0..<8 {
            near.append()
            far.append()
            // Head 0 attends its newest entry, head 1 the oldest non-sink entry.
            for i in 0..<near.count {
                near.stepScores[i] = i == near.count - 1 ? 1 : 0
                far.stepScores[i] = i == min(1, far.count - 1) ? 1 : 0
            }
            policy.observePrefill(layer: 0, head: 0, entries: near.entries, queryPosition: q, promptEnd: 8)
            policy.observePrefill(layer: 0, head: 1, entries: far.entries, queryPosition: q, promptEnd: 8)
        }
        let heads = UnsafeMutableBufferPointer<HeadEntries>.allocate(capacity: 2)
        defer { heads.deallocate() }
        heads[0] = near.entries
        heads[1] = far.entries
        policy.finishPrefill(layer: 0, heads: heads, promptEnd: 8)
        #expect(policy.budget(layer: 0, head: 0) == 3)
        #expect(policy.budget(layer: 0, head: 1) == nil)
        #expect(heads[0].count == 3)
        #expect(heads[1].count == 8)
    }
}
