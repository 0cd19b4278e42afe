@testable import KVLabApp
import KVLabMethods
import KVLabRun
import KVLabTUI
import Testing

/// Panels' view models built from a state alone, without an engine.
@Suite struct PanelViewTests {
    static let choices = Choices(devices: ["h100-sxm"], targets: ["llama-3-8b"], sramSizes: [100 * 1024, 228 * 1024], themes: [])

    /// A snapshot of `settings` (and B's, in compare mode) over `map`.
    static func snapshot(_ settings: RunSettings, compare: RunSettings? = nil,
                         map: KVMapSnapshot = KVMapSnapshot(layers: 0, positions: 0, cells: [])) -> EngineSnapshot {
        EngineSnapshot(event: .notice(""), settings: settings, ghost: false, paused: false, generating: false, position: map.positions,
                       contextLength: 512, residency: KVResidency(), weightBytes: 0, activationBytes: 0, map: map, device: "h100-sxm",
                       target: "llama-3-8b", projection: nil, sequenceTokens: map.positions, recording: nil,
                       compare: compare.map { CompareSnapshot(settings: $0, residency: KVResidency(), weightBytes: 0, step: nil) })
    }

    static func state(_ snapshot: EngineSnapshot) -> AppState {
        var state = AppState(modelName: "m", choices: choices, device: "h100-sxm", target: "llama-3-8b", theme: "dark")
        state.absorb(snapshot)
        return state
    }

    @Test func hintsAndKnobKeysComeFromTheKeyTable() {
        #expect(Keymap.hints.map(\.key) == ["?", "i", "space", "e", "[ ]", "b", "s", "w", "a", "d", "t", "g", "R", "r", "q"])
        #expect(KnobsView.knobs.map(\.keys) == ["e/E [ ]", "b/B", "s/S", "w", "a m/M"])
        #expect(Keymap.key(for: .cycleEviction(forward: false)) == "E")
        #expect(Keymap.key(for: .scroll(up: false)) == "PgDn")
    }

    @Test func knobsShowOneRowWhereAAndBAgreeAndTwoWhereTheyDiffer() throws {
        var b = RunSettings()
        try b.set(.eviction(EvictionMethod(parsing: "window:window=64")), headDim: nil)
        let map = KVMapSnapshot(layers: 2, positions: 2, cells: [.kept, .quantized, .evicted, .kept])
        let view = KnobsView(Self.state(Self.snapshot(RunSettings(), compare: b, map: map)))
        #expect(view.comparing)
        #expect(view.rows[0] == KnobsView.Row(label: "evict", side: .a, value: MethodText(name: "full"), keys: ""))
        #expect(view.rows[1] == KnobsView.Row(label: "", side: .b, value: MethodText(name: "window", parameters: [.init(key: "window", value: "64")]),
                                              keys: "e/E [ ]"))
        #expect(view.rows[2].side == .both && view.rows[2].value?.name == "fp32")
        #expect(view.rows.last == KnobsView.Row(label: "ghost", side: nil, value: MethodText(name: "off"), keys: "g"))
        #expect(view.kvNow?.keptShare == 0.75, "kept and quantized entries count as kept")
    }

    @Test func knobsSpellTheKernelFromItsTypedValue() throws {
        var settings = RunSettings()
        try settings.set(.attention(.tiled(sramBytes: 228 * 1024)), headDim: 64)
        let view = KnobsView(Self.state(Self.snapshot(settings)))
        #expect(view.rows.first { $0.label == "kernel" }?.value == MethodText(name: "tiled", parameters: [.init(key: "sram", value: "228KiB")]))
        #expect(view.rows.first { $0.label == "weights" }?.value == MethodText(name: "stored"))
        #expect(KnobsView(AppState(modelName: "m", choices: Self.choices, device: "d", target: "t", theme: "dark")).rows[0].value == nil,
                "no values before the engine's first snapshot")
    }

    /// The evict row says when the method acts: in a row too narrow for every parameter, the last
    /// ones give way to " …" and `+every:steps=N` stays.
    @Test func theEvictRowKeepsItsModifiersWhereParametersDoNotFit() throws {
        var settings = RunSettings()
        try settings.set(.eviction(EvictionMethod(parsing: "kvpress:kvzip,ratio=0.5+every:steps=16")), headDim: nil)
        // 53 columns: the Knobs panel of a 120-column screen, where the press name once gave way too.
        for width in [60, 53] {
            var buffer = Buffer(width: width, height: 10)
            KnobsPanel(view: KnobsView(Self.state(Self.snapshot(settings))), glyphs: .unicode).render(area: buffer.area, buffer: &buffer)
            let row = buffer.textLines.first { $0.contains("evict") } ?? ""
            #expect(row.contains("kvpress:kvzip") && row.contains(" … +every:steps=16"), "\(row)")
        }
        var short = RunSettings()
        try short.set(.eviction(EvictionMethod(parsing: "window:window=64")), headDim: nil)
        var buffer = Buffer(width: 60, height: 10)
        KnobsPanel(view: KnobsView(Self.state(Self.snapshot(short))), glyphs: .unicode).render(area: buffer.area, buffer: &buffer)
        #expect(buffer.textLines.contains { $0.contains("evict   window window 64 ") && !$0.contains("…") })
    }

    @Test func kvMapColumnsTakeTheMajorityOfTheirPositions() {
        let map = KVMapSnapshot(layers: 4, positions: 6, cells: Array(repeating: [KVCellState.kept, .evicted, .evicted, .quantized, .quantized, .kept], count: 4).flatMap { $0 })
        let view = KVMapView(map: map)
        #expect(view.positionsPerColumn(columns: 3) == 2)
        let (layers, states) = view.cells(rows: 2, columns: 3)
        #expect(layers == [0, 2], "more layers than rows: an even sample")
        #expect(states[0] == [.kept, .quantized, .kept], "ties go kept, then quantized, then evicted")
        #expect(KVMapView(map: nil).cells(rows: 2, columns: 3).states.isEmpty)
    }

    @Test func qualityMeansAreOverTheComparedTokens() {
        var state = Self.state(Self.snapshot(RunSettings(), compare: RunSettings()))
        state.totals.ghost = RunTotals.Ghost(tokens: 4, top1Agreements: 3, klSum: 0.2, firstDivergence: RunTotals.Divergence(position: 9, generated: 2), last: nil)
        state.totals.compare.tokens = 2
        state.totals.compare.klSum = 0.5
        state.totals.compare.ghostKL = (0.3, 3)
        let view = QualityView(state)
        #expect(view.top1Share == 0.75)
        #expect(abs((view.meanKL ?? 0) - 0.05) < 1e-12)
        #expect(view.compare?.meanKL == 0.25)
        #expect(abs((view.compare?.meanGhostKL ?? 0) - 0.1) < 1e-12)
        #expect(QualityView(Self.state(Self.snapshot(RunSettings()))).top1Share == nil, "no share before a compared token")
    }

    @Test func knobKeysSendTypedChangesToTheConfigurationTheyChange() throws {
        var state = Self.state(Self.snapshot(RunSettings()))
        #expect(state.handle(.character("e")) == [.engine(.set(.eviction(try EvictionMethod(parsing: "window"))))])
        #expect(state.handle(.character("w")) == [.engine(.set(.weights(.f32)))])
        #expect(state.handle(.character("a")) == [.engine(.set(.attention(.tiled(sramBytes: AttentionKernel.defaultSRAMBytes))))])
        #expect(state.handle(.character("[")).isEmpty)
        #expect(state.status?.text == "full has no budget: press e for an eviction method")
        _ = state.handle(.character(":"))
        _ = state.handle(.control("u"))
        for character in "kv=kivi:bits=5" { _ = state.handle(.character(character)) }
        #expect(state.handle(.enter).isEmpty, "the editor parses the string and refuses it")
        #expect(state.status?.isError == true && state.status?.text.contains("bits=5") == true)

        var comparing = Self.state(Self.snapshot(RunSettings(), compare: RunSettings()))
        #expect(comparing.handle(.character("B")) == [.engine(.setCompare(.quant(try KVQuantMethod(parsing: "uniform"))))])
    }
}
