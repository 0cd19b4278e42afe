import Foundation
@testable import KVLabEngine
@testable import KVLabMethods
import KVLabRun
import Testing

/// Many sequences on one page pool (`BatchedEngine`) on the embedded model: a batch of one
/// against `InferenceEngine`, a batch against separate engines, chunked prefill, shared
/// prefixes copy-on-write, swap out and in, recomputation, and the pool's budget.
///
/// Tolerance rule: where the same kernels run (a batch of one decoding: the decode kernels; one
/// prefill chunk: prefill's products) logits are bit-identical. Where rows are batched
/// differently (several sequences' rows in one product, a prompt split in chunks) the f16
/// products sum in another order, so logits agree within `tolerance` of the largest logit
/// magnitude and greedy continuations are identical.
@Suite struct BatchedEngineTests {
    static let tolerance: Float = 1e-4

    static func weights() throws -> ModelWeights { try EmbeddedModelTests.loaded().weights }

    static func tokens(_ count: Int, seed: Int) -> [Int] { (0..<count).map { 1 + ($0 * 37 + seed * 101) % 2000 } }

    static func argmax(_ logits: [Float]) -> Int { logits.indices.max { logits[$0] < logits[$1] }! }

    static func close(_ a: [Float], _ b: [Float]) -> Bool {
        guard a.count == b.count, !a.isEmpty else { return false }
        let scale = max(a.map(abs).max()!, 1)
        return zip(a, b).allSatisfy { abs($0 - $1) <= tolerance * scale }
    }

    @Test func batchOfOneMatchesInferenceEngine() throws {
        let weights = try Self.weights()
        let single = InferenceEngine(weights: weights)
        let batched = try BatchedEngine(weights: weights)
        let id = batched.addSequence()
        let prompt = Self.tokens(21, seed: 1)
        try single.prefill(prompt)
        try batched.setPrompt(id, tokens: prompt)
        try batched.step([.prefill(id, tokens: prompt.count)])
        #expect(try batched.logits(id) == Array(single.logits))
        var token = Self.argmax(Array(single.logits))
        for _ in 0..<6 {
            let expected = try single.decode(token)
            let report = try batched.step([.decode(id, token: token)])
            #expect(try batched.logits(id) == Array(single.logits))
            #expect(report.ledger == expected.ledger)
            #expect(report.sequences[0].report.cache == expected.cache)
            token = Self.argmax(Array(single.logits))
        }
        #expect(try batched.position(id) == single.position)
    }

    @Test func batchMatchesSeparateEngines() throws {
        let weights = try Self.weights()
        let batched = try BatchedEngine(weights: weights)
        let prompts = (0..<4).map { Self.tokens(9 + 5 * $0, seed: $0) }
        let ids = prompts.map { _ in batched.addSequence() }
        for (id, prompt) in zip(ids, prompts) { try batched.setPrompt(id, tokens: prompt) }
        try batched.step(zip(ids, prompts).map { .prefill($0, tokens: $1.count) })
        let singles = prompts.map { _ in InferenceEngine(weights: weights) }
        for (engine, prompt) in zip(singles, prompts) { try engine.prefill(prompt) }
        var single = singles.map { Self.argmax(Array($0.logits)) }
        var batch = try ids.map { Self.argmax(try batched.logits($0)) }
        #expect(single == batch)
        var weightBytes: [UInt64] = []
        for _ in 0..<8 {
            for (i, id) in ids.enumerated() { #expect(Self.close(try batched.logits(id), Array(singles[i].logits))) }
            let report = try batched.step(zip(ids, batch).map { .decode($0, token: $1) })
            weightBytes.append(report.weightBytes)
            for (engine, token) in zip(singles, single) { try engine.decode(token) }
            single = singles.map { Self.argmax(Array($0.logits)) }
            batch = try ids.map { Self.argmax(try batched.logits($0)) }
            #expect(single == batch)
        }
        // Each weight matrix is read once per step, not once per sequence; only the embedding
        // rows of the four tokens are four.
        let one = InferenceEngine(weights: weights)
        try one.prefill([1])
        let oneStep = try one.decode(2).ledger.bytesRead(.weights)
        #expect(weightBytes.allSatisfy { $0 == oneStep + 3 * UInt64(weights.tokenEmbedding.rowBytes) })
    }

    @Test func chunkedPrefillMatchesOneShot() throws {
        let weights = try Self.weights()
        let engine = try BatchedEngine(weights: weights)
        let prompt = Self.tokens(45, seed: 3)
        let whole = engine.addSequence(), chunked = engine.addSequence(), other = engine.addSequence()
        try engine.setPrompt(whole, tokens: prompt)
        try engine.step([.prefill(whole, tokens: 100)])
        try engine.setPrompt(other, tokens: Self.tokens(5, seed: 4))
        try engine.step([.prefill(other, tokens: 5)])
        try engine.setPrompt(chunked, tokens: prompt)
        var token = Self.argmax(try engine.logits(other))
        // Chunks of 16 interleaved with another sequence's decode steps.
        while try engine.pendingPromptTokens(chunked) > 0 {
            try engine.step([.decode(other, token: token), .prefill(chunked, tokens: 16)])
            token = Self.argmax(try engine.logits(other))
        }
        #expect(try engine.position(chunked) == prompt.count)
        #expect(Self.close(try engine.logits(chunked), try engine.logits(whole)))
        var a = Self.argmax(try engine.logits(whole)), b = Self.argmax(try engine.logits(chunked))
        for _ in 0..<6 {
            #expect(a == b)
            try engine.step([.decode(whole, token: a)])
            try engine.step([.decode(chunked, token: b)])
            a = Self.argmax(try engine.logits(whole))
            b = Self.argmax(try engine.logits(chunked))
        }
    }

    @Test func forksSharePrefixPagesCountedOnce() throws {
        let weights = try Self.weights()
        let engine = try BatchedEngine(weights: weights)
        let c = weights.config, heads = c.layerCount * c.kvHeadCount
        let page = PagedKVCache.pageBytes(headDim: c.headDim)
        let system = Self.tokens(40, seed: 5), suffix = Self.tokens(12, seed: 6)
        let prefix = try engine.makePrefix(system, chunk: 16)
        let prefixBytes = heads * 3 * page
        #expect(try engine.residentBytes(ofPrefix: prefix) == prefixBytes)
        #expect(engine.pool.usedBytes == prefixBytes)
        let forks = try (0..<3).map { _ in try engine.fork(from: prefix) }
        // Three more sequences on the prefix: not one byte more in the pool.
        #expect(engine.pool.usedBytes == prefixBytes)
        for id in forks { #expect(try engine.residentBytes(of: id) == SequenceBytes(privateBytes: 0, sharedBytes: prefixBytes)) }
        #expect(try engine.bytesToAdmit(promptTokens: suffix.count, prefix: prefix) == heads * 2 * page)

        // The first fork's suffix writes into the prefix's partly filled last page of every head:
        // exactly that page is copied (and one new page taken), the rest stays shared.
        try engine.setPrompt(forks[0], tokens: suffix)
        try engine.step([.prefill(forks[0], tokens: suffix.count)])
        #expect(engine.pool.copiedPages == heads)
        #expect(engine.pool.copiedBytes == heads * page)
        #expect(try engine.residentBytes(of: forks[0]) == SequenceBytes(privateBytes: heads * 2 * page, sharedBytes: heads * 2 * page))
        #expect(engine.pool.usedBytes == prefixBytes + heads * 2 * page)

        // A fork equals a sequence that prefilled prefix and suffix itself (in the same chunks, so
        // the same products run: bit-identical).
        let own = engine.addSequence()
        try engine.setPrompt(own, tokens: system + suffix)
        for chunk in [16, 16, 8, suffix.count] { try engine.step([.prefill(own, tokens: chunk)]) }
        #expect(try engine.logits(own) == engine.logits(forks[0]))
        var a = Self.argmax(try engine.logits(own)), b = a
        for _ in 0..<5 {
            try engine.step([.decode(own, token: a)])
            try engine.step([.decode(forks[0], token: b)])
            #expect(try engine.logits(own) == engine.logits(forks[0]))
            a = Self.argmax(try engine.logits(own))
            b = Self.argmax(try engine.logits(forks[0]))
        }
        // A fork decoding at once ends the prefix's prompt itself.
        try engine.step([.decode(forks[1], token: 7)])
        #expect(try engine.position(forks[1]) == system.count + 1)
        // Ending everything frees every page, the shared ones once the last holder lets go.
        for id in engine.sequenceIDs { try engine.removeSequence(id) }
        #expect(engine.pool.usedBytes == prefixBytes)
        try engine.removePrefix(prefix)
        #expect(engine.pool.usedBytes == 0)
    }

    @Test func copyOnWriteCopiesExactlyTheTouchedPage() throws {
        let layout = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 8, groupSize: 1, capacity: 64)
        let pools = PagePools()
        let prefix = PagedKVCache(layout: layout, eviction: .full, sparse: .dense, quant: .fp32, pools: pools)
        var ledger = IOLedger()
        let keys = (0..<16).map(Float.init), values = (0..<16).map { Float($0) * 2 }
        for position in 0..<40 { prefix.append(layer: 0, position: position, keys: keys, values: values, ledger: &ledger) }
        let fork = PagedKVCache(layout: layout, eviction: .full, sparse: .dense, quant: .fp32, pools: pools)
        fork.share(from: prefix)
        #expect(fork.pageBytes == (private: 0, shared: 6 * PagedKVCache.pageBytes(headDim: 8)))
        // Rewrite entry 20's key in head 1: its page (the second) is copied, nothing else.
        let changed = [Float](repeating: 9, count: 8)
        var copy = IOLedger()
        fork.store.write(changed, key: true, index: 1, slot: 20, ledger: &copy)
        #expect(pools.copiedPages == 1)
        #expect(pools.copiedBytes == PagedKVCache.pageBytes(headDim: 8))
        #expect(copy.bytesRead(.keys) == 16 * 8 * 4 && copy.bytesRead(.values) == 16 * 8 * 4)
        #expect(fork.entry(layer: 0, head: 1, 20).key == changed)
        #expect(prefix.entry(layer: 0, head: 1, 20).key == Array(keys[8..<16]))
        #expect(fork.entry(layer: 0, head: 1, 21).key == Array(keys[8..<16]))
        #expect(fork.pageBytes == (private: PagedKVCache.pageBytes(headDim: 8), shared: 5 * PagedKVCache.pageBytes(headDim: 8)))
        // A second change to the now private page copies nothing.
        fork.store.write(changed, key: false, index: 1, slot: 21, ledger: &copy)
        #expect(pools.copiedPages == 1)
    }

    @Test func swapOutAndInRestoresStateAndCountsBytes() throws {
        let weights = try Self.weights()
        let engine = try BatchedEngine(weights: weights, methods: CacheMethods(quant: try KVQuantMethod(parsing: "kivi:bits=2")))
        let twin = try BatchedEngine(weights: weights, methods: engine.methods)
        let prompt = Self.tokens(70, seed: 8)
        var token = 0
        for e in [engine, twin] {
            let id = e.addSequence()
            try e.setPrompt(id, tokens: prompt)
            try e.step([.prefill(id, tokens: prompt.count)])
            token = Self.argmax(try e.logits(id))
            try e.step([.decode(id, token: token)])
        }
        let id = engine.sequenceIDs[0], other = twin.sequenceIDs[0]
        let used = engine.pool.usedBytes, resident = try engine.residentBytes(of: id).totalBytes
        #expect(used == resident && used > 0)
        let out = try engine.swapOut(id)
        #expect(engine.pool.usedBytes == 0)
        #expect(engine.pool.hostBytes == resident)
        #expect(Int(out.bytesRead(.keys) + out.bytesRead(.values)) == resident)
        #expect(throws: BatchError.swappedOut(id)) { try engine.step([.decode(id, token: 3)]) }
        let back = try engine.swapIn(id)
        #expect(Int(back.bytes(.keys, .dramToHBM) + back.bytes(.values, .dramToHBM)) == resident)
        #expect(engine.pool.usedBytes == used && engine.pool.hostBytes == 0)
        #expect(engine.pool.swappedOutBytes == resident && engine.pool.swappedInBytes == resident)
        for _ in 0..<4 {
            token = Self.argmax(try engine.logits(id))
            try engine.step([.decode(id, token: token)])
            try twin.step([.decode(other, token: token)])
            #expect(try engine.logits(id) == twin.logits(other))
        }
    }

    @Test func dropFreesPagesAndRecomputes() throws {
        let weights = try Self.weights()
        let engine = try BatchedEngine(weights: weights)
        let id = engine.addSequence()
        try engine.setPrompt(id, tokens: Self.tokens(30, seed: 9))
        try engine.step([.prefill(id, tokens: 30)])
        for _ in 0..<3 { try engine.step([.decode(id, token: Self.argmax(try engine.logits(id)))]) }
        let ran = try engine.tokens(id)
        try engine.drop(id)
        #expect(engine.pool.usedBytes == 0)
        #expect(try engine.position(id) == 0 && engine.pendingPromptTokens(id) == ran.count)
        try engine.step([.prefill(id, tokens: ran.count)])
        let fresh = engine.addSequence()
        try engine.setPrompt(fresh, tokens: ran)
        try engine.step([.prefill(fresh, tokens: ran.count)])
        #expect(try engine.logits(id) == engine.logits(fresh))
        #expect(try engine.tokens(id) == ran)
    }

    @Test func poolBudgetRefusesAStepThatWouldExceedIt() throws {
        let weights = try Self.weights()
        let c = weights.config, heads = c.layerCount * c.kvHeadCount
        let page = PagedKVCache.pageBytes(headDim: c.headDim)
        let engine = try BatchedEngine(weights: weights, poolBudget: heads * 2 * page)
        let id = engine.addSequence()
        try engine.setPrompt(id, tokens: Self.tokens(32, seed: 2))
        #expect(try engine.canAdmit(promptTokens: 32))
        #expect(try !engine.canAdmit(promptTokens: 33))
        try engine.step([.prefill(id, tokens: 32)])
        #expect(engine.pool.usedBytes == heads * 2 * page && engine.pool.availableBytes == 0)
        #expect(try !engine.fits([.decode(id, token: 5)]))
        #expect(throws: BatchError.poolFull(needed: heads * page, available: 0)) { try engine.step([.decode(id, token: 5)]) }
        #expect(try engine.position(id) == 32)
        let second = engine.addSequence()
        try engine.setPrompt(second, tokens: [1, 2])
        #expect(throws: BatchError.poolFull(needed: heads * page, available: 0)) { try engine.step([.prefill(second, tokens: 2)]) }
    }

    @Test func methodChangesApplyToEverySequence() throws {
        let weights = try Self.weights()
        let engine = try BatchedEngine(weights: weights)
        let ids = (0..<2).map { _ in engine.addSequence() }
        for id in ids { try engine.setPrompt(id, tokens: Self.tokens(50, seed: id.rawValue)) }
        try engine.step(ids.map { .prefill($0, tokens: 50) })
        let window = try EvictionMethod(parsing: "window:window=32")
        try engine.setMethods(CacheMethods(eviction: window))
        for id in ids {
            #expect(try engine.cache(id).eviction == window)
            #expect(try engine.cache(id).entryCount(layer: 0, head: 0) == 32)
        }
        // Methods a cache would trap on are refused, and nothing changes.
        let rebase = try EvictionMethod(parsing: "window:window=32+rebase")
        #expect(throws: BatchError.self) { try engine.setMethods(CacheMethods(eviction: rebase, quant: try KVQuantMethod(parsing: "kivi:bits=2"))) }
        #expect(engine.methods == CacheMethods(eviction: window))
    }
}
