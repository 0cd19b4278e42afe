@testable import KVLabEngine
@testable import KVLabMethods
@testable import KVLabRun
import Testing

/// Budgets as a ratio, an entry count or bytes for kvlab's own methods: how each becomes the
/// method's token parameters, the one-line errors, and the real cache keeping them.
@Suite struct EvictionBudgetTests {
    /// 2 layers × 2 KV heads × 8 channels: one entry is 2 · 2 · 2 · 8 · 4 = 256 bytes of fp32 keys and values.
    static let layout = KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 8, groupSize: 1, capacity: 512)

    @Test(arguments: [
        ("h2o:ratio=0.5", "h2o:ratio=0.5"),
        ("streaming:ratio=0.25", "streaming:sinks=4,ratio=0.25"),
        ("snapkv:bytes=2MiB", "snapkv:observation=16,pool=7,bytes=2MiB"),
        ("tova:bytes=65536", "tova:bytes=64KiB"),
        ("pyramidkv:ratio=0.75,pool=5", "pyramidkv:observation=16,pool=5,ratio=0.75"),
        ("duo:budget=100", "duo:sinks=4,window=96,ratio=0.25"),
        ("h2o:budget=101", "h2o:heavy=50,recent=51"),
        ("window:budget=9", "window:window=9"),
        ("streaming:budget=100", "streaming:sinks=4,window=96"),
        ("tova:budget=64", "tova:budget=64"),
        ("pyramidkv:budget=64,min=8", "pyramidkv:budget=64,observation=16,pool=7,min=8"),
        ("h2o", "h2o:heavy=64,recent=64"),
    ])
    func budgetsHaveOneCanonicalSpelling(written: String, canonical: String) throws {
        #expect(try EvictionMethod(parsing: written).description == canonical)
        #expect(try EvictionMethod(parsing: canonical).description == canonical)
    }

    @Test(arguments: [
        ("h2o:ratio=1", "h2o: ratio=1 must be at least 0 and below 1"),
        ("snapkv:ratio=-0.5", "snapkv: ratio=-0.5 must be at least 0 and below 1"),
        ("h2o:ratio=0.5,heavy=8", "h2o: give ratio= or heavy=, not both (ratio sizes heavy/recent)"),
        ("pyramidkv:ratio=0.5,min=4", "pyramidkv: give ratio= or min=, not both (ratio sizes budget/min)"),
        ("tova:ratio=0.5,budget=8", "tova: give one of ratio, budget and bytes"),
        ("snapkv:bytes=2XB", "snapkv: bytes=2XB is not a byte count (e.g. 65536, 64KiB, 2MiB)"),
        ("h2o:bytes=0", "h2o: bytes=0 keeps nothing"),
        ("streaming:budget=4", "streaming: budget=4 must exceed sinks=4"),
        ("full:ratio=0.5", "full: unknown parameter 'ratio' (it takes no parameters)"),
    ])
    func impossibleBudgetsAreOneLineErrors(written: String, message: String) {
        #expect(throws: MethodSpecError(message)) { try EvictionMethod(parsing: written) }
    }

    @Test func duoKeepsItsOwnRatio() throws {
        let duo = try EvictionMethod(parsing: "duo:ratio=0.5")
        #expect(duo.sizing == nil && duo.description == "duo:sinks=4,window=124,ratio=0.5")
    }

    @Test func budgetsResolveToTokens() {
        // kvpress's compute_n_kept: ⌊L · (1 − R)⌋, at least 1.
        #expect(KVBudget.ratio(0.75).tokens(length: 200, layout: Self.layout) == 50)
        #expect(KVBudget.ratio(0.7).tokens(length: 200, layout: Self.layout) == 60)
        #expect(KVBudget.ratio(0.999).tokens(length: 200, layout: Self.layout) == 1)
        #expect(KVBudget.bytes(256 * 10 + 255).tokens(length: 200, layout: Self.layout) == 10)
        #expect(KVBudget.bytes(100).tokens(length: 200, layout: Self.layout) == 1)
        #expect(KVBudget.entries(33).tokens(length: 200, layout: Self.layout) == 33)
    }

    /// Bytes that hold no entry per (layer, KV head) are refused once the model's layout is known,
    /// naming the value and one entry's bytes; 256 bytes (one entry) pass.
    @Test func bytesBelowOneEntryAreRefused() throws {
        for method in ["h2o:bytes=255", "kvpress:knorm,bytes=100"] {
            let name = method.hasPrefix("kvpress") ? "kvpress:knorm" : "h2o"
            let bytes = method.hasPrefix("kvpress") ? "100" : "255"
            #expect(throws: MethodSpecError("\(name): bytes=\(bytes) holds no entry: one entry in every (layer, KV head) takes 256 on this model "
                                            + "(2 layers × 2 KV heads × fp32 key and value of 8)")) {
                try EvictionMethod(parsing: method).check(layout: Self.layout)
            }
        }
        try EvictionMethod(parsing: "h2o:bytes=256").check(layout: Self.layout)
        try EvictionMethod(parsing: "kvpress:knorm,bytes=256").check(layout: Self.layout)
    }

    /// Each method's per-head budget once sized for a prompt of `length` tokens.
    static func budget(_ method: String, length: Int?) throws -> Int? {
        try EvictionMethod(parsing: method).makePolicy(layout: layout, promptLength: length).budget(layer: 0, head: 0)
    }

    @Test func ratiosSizeEachMethodOfThePrompt() throws {
        #expect(try Self.budget("h2o:ratio=0.5", length: 200) == 100)
        #expect(try Self.budget("a2sf:ratio=0.25", length: 200) == 150)
        #expect(try Self.budget("window:ratio=0.5", length: 200) == 100)
        #expect(try Self.budget("streaming:ratio=0.5", length: 200) == 100)
        #expect(try Self.budget("tova:ratio=0.75", length: 200) == 50)
        #expect(try Self.budget("scissorhands:ratio=0.5", length: 200) == 100)
        #expect(try Self.budget("snapkv:ratio=0.5", length: 200) == 100)
        #expect(try Self.budget("adakv:ratio=0.5", length: 200) == 100)
        #expect(try Self.budget("knorm:ratio=0.5", length: 200) == 101)  // plus the newest entry
        #expect(try Self.budget("random:ratio=0.5", length: 200) == 100)
        // Before a prompt, of the context.
        #expect(try Self.budget("h2o:ratio=0.5", length: nil) == 256)
        #expect(try EvictionMethod(parsing: "tova:ratio=0.5").budgets(layout: Self.layout) == [256, 256, 256, 256])
        // Bytes: of the layout, whatever the prompt.
        #expect(try Self.budget("h2o:bytes=10KiB", length: 200) == 40)
        #expect(try Self.budget("snapkv:bytes=10KiB", length: 30) == 40)
    }

    @Test func sizedBudgetsNeverGoBelowWhatTheOtherParametersNeed() throws {
        // 200 · 0.05 = 10 tokens: SnapKV keeps its observation window + 1, Scissorhands recent + drop + 1.
        #expect(try Self.budget("snapkv:ratio=0.95", length: 200) == 17)
        #expect(try Self.budget("scissorhands:ratio=0.95", length: 200) == 49)
        #expect(try Self.budget("streaming:ratio=0.99", length: 200) == 5)
        #expect(try Self.budget("h2o:ratio=0.99", length: 200) == 2)
        guard case .pyramidkv(let b, _, _, let m) = EvictionMethod.Kind.pyramidkv(budget: 1, observation: 16, pool: 7, minimum: 1).sized(100) else {
            Issue.record("not pyramidkv"); return
        }
        #expect(b == 100 && m == 25)
    }

    static let prompt = KVPressCacheTests.prompt

    @Test(arguments: ["h2o:ratio=0.5", "tova:ratio=0.75", "snapkv:ratio=0.5,observation=4", "window:ratio=0.25",
                      "streaming:sinks=2,ratio=0.5", "h2o:bytes=120KiB"])
    func theCacheKeepsTheSizedBudgetOfThePrompt(policy: String) throws {
        let run = try KVPressCacheTests.run(policy)
        let n = try run.submit(prompt: Self.prompt).tokens.count
        let method = try EvictionMethod(parsing: policy)
        let layout = run.cache.layout
        let expected = method.sizing!.tokens(length: n, layout: layout)
        #expect(n > expected)
        for layer in 0..<layout.layerCount {
            for head in 0..<layout.kvHeadCount {
                #expect(run.cache.budget(layer: layer, head: head) == expected)
                #expect(run.cache.entryCount(layer: layer, head: head) == expected)
            }
        }
        KVPressCacheTests.expectFreed(run.cache)
    }

    @Test func aRatioChosenMidSequenceTakesItsShareOfTheTokensSoFar() throws {
        let run = try KVPressCacheTests.run("full")
        let n = try run.submit(prompt: Self.prompt).tokens.count
        var ledger = IOLedger()
        run.cache.setEviction(try EvictionMethod(parsing: "h2o:ratio=0.5"), ledger: &ledger)
        #expect(run.cache.budget(layer: 0, head: 0) == n / 2)
        #expect(run.cache.entryCount(layer: 0, head: 0) == n / 2)
    }
}
