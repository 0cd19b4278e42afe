import Foundation
@testable import KVLabApp
import KVLabSession
import KVLabMethods
import KVLabRun
import KVLabTestSupport
import KVLabTUI
import Testing

/// The workbench driven synchronously: keys go through the app state's reducer, engine commands
/// to a real `EngineCore` on the embedded model, snapshots back into the state, as the run loop
/// does across its two threads.
final class Harness {
    let core: EngineCore
    var state: AppState

    /// Fixed choices, so cycling keys and snapshots do not depend on the catalog.
    static let choices = Choices(devices: ["h100-sxm", "a100-80gb", "l4"], targets: ["llama-3.1-8b", "mistral-7b", "live"],
                                 sramSizes: [100 * 1024, 164 * 1024, 228 * 1024], themes: ["dark", "light"])

    init(policy: String = "full", ghost: Bool = false, sessionDirectory: String = ".") throws {
        let model = try EmbeddedModel.load()
        var settings = RunSettings()
        try settings.set(.policy, to: policy, headDim: model.config.headDim)
        let run = try LiveRun(model: model, settings: settings, ghost: ghost)
        core = EngineCore(run: run, device: "h100-sxm", target: ProjectionSettings.defaultTarget, sessionDirectory: sessionDirectory)
        state = AppState(modelName: model.config.name, choices: Self.choices, device: "h100-sxm", target: ProjectionSettings.defaultTarget, theme: "dark")
        state.absorb(core.handle(.pause(false)))
    }

    /// Presses a key; returns the effects the run loop would not pass to the engine.
    @discardableResult
    func press(_ key: Key) -> [AppEffect] {
        var others: [AppEffect] = []
        for effect in state.handle(key) {
            if case .engine(let command) = effect { state.absorb(core.handle(command)) } else { others.append(effect) }
        }
        return others
    }

    /// Types text into the open editor and presses Enter.
    func type(_ text: String) {
        for character in text { press(.character(character)) }
        press(.enter)
    }

    /// Generates up to `count` tokens.
    func generate(_ count: Int) {
        for _ in 0..<count {
            guard let snapshot = core.advance() else { return }
            state.absorb(snapshot)
        }
    }

    /// The screen at a size, with measured latencies replaced by fixed ones (timings vary run to run).
    func screen(width: Int, height: Int) -> Buffer {
        var fixed = state
        fixed.totals.latency = History(capacity: 512)
        for step in 0..<fixed.totals.kvBytes.values.count { fixed.totals.latency.append(1.0 + Double(step % 7) * 0.25) }
        fixed.totals.ttft = fixed.totals.ttft.map { _ in 12.5 }
        var buffer = Buffer(width: width, height: height)
        WorkbenchScreen(state: fixed).render(into: &buffer)
        return buffer
    }

    func text(width: Int = 120, height: Int = 40) -> String { screen(width: width, height: height).textLines.joined(separator: "\n") }
}

@Suite struct WorkbenchScreenTests {
    /// A sequence under H2O and KIVI with the ghost, 160 tokens in: every panel has content.
    static func busy() throws -> Harness {
        let harness = try Harness(policy: "h2o:heavy=32,recent=32", ghost: true)
        harness.press(.character("b"))  // fp32 → kivi
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(160)
        return harness
    }

    @Test func mainScreenAt80x24() throws {
        expectSnapshot(try Self.busy().screen(width: 80, height: 24), "main-80x24")
    }

    @Test func mainScreenAt160x48() throws {
        expectSnapshot(try Self.busy().screen(width: 160, height: 48), "main-160x48")
    }

    @Test func helpOverlayAt80x24() throws {
        let harness = try Harness()
        harness.press(.character("?"))
        expectSnapshot(harness.screen(width: 80, height: 24), "help-80x24")
        harness.press(.escape)
        #expect(!harness.text(width: 80, height: 24).contains("kvlab keys"))
    }

    @Test func belowTheMinimumOneMessage() throws {
        let harness = try Harness()
        for (width, height) in [(79, 24), (80, 23), (40, 10)] {
            let lines = harness.screen(width: width, height: height).textLines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            #expect(lines == ["terminal too small: \(width)×\(height)", "kvlab needs at least 80×24; q quits"])
        }
        #expect(harness.text(width: 80, height: 24).contains("Generation"))
    }

    @Test func emptyStateInvitesAPrompt() throws {
        let text = try Harness().text()
        #expect(text.contains("Press i, type a prompt"))
        #expect(text.contains("ready: i types a prompt"))
    }
}

@Suite struct WorkbenchKeyTests {
    /// The scripted session: prompt, policy change, budget down, bits, bad method string, quit.
    @Test func keysMovePanels() throws {
        let harness = try Harness()
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(300)
        let fullScreen = harness.text()
        #expect(fullScreen.contains("evict   full"))
        #expect(!fullScreen.contains("░"), "nothing evicted under the full cache")

        harness.press(.character("e"))  // full → window
        let windowScreen = harness.text()
        #expect(windowScreen.contains("evict   window window 128"))
        #expect(windowScreen.contains("░"), "the KV map shows evicted positions")
        #expect(windowScreen.contains("window:window=128 from token 300") || windowScreen.contains("policy full → window:window=128"))
        let before = try #require(harness.state.snapshot).residency.total

        harness.press(.character("["))  // budget down
        #expect(harness.text().contains("evict   window window 64"))
        let after = try #require(harness.state.snapshot).residency.total
        #expect(after < before, "resident KV bytes fall with the budget: \(before) → \(after)")

        harness.press(.character("b"))
        #expect(harness.text().contains("kv      kivi bits 2"))
        harness.press(.character("b"))
        #expect(harness.text().contains("kv      kivi bits 8"))

        harness.press(.character(":"))
        #expect(harness.text().contains("method> policy=window:window=64"))
        harness.press(.control("u"))
        harness.type("sparse=quest:page=3")
        let refused = harness.text()
        #expect(refused.contains("quest"), "the status bar names the problem")
        #expect(harness.state.status?.isError == true)
        #expect(harness.state.value(.sparse) == "dense")

        #expect(harness.press(.character("q")) == [.quit])
    }

    @Test func promptEditingAndHistory() throws {
        let harness = try Harness()
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.press(.character("i"))
        for character in "JULIX" { harness.press(.character(character)) }
        harness.press(.backspace)
        harness.press(.left)
        harness.press(.character("E"))
        #expect(harness.state.editor?.string == "JULEI")
        harness.press(.escape)
        #expect(harness.state.editor == nil)
        harness.press(.character("i"))
        harness.press(.up)
        #expect(harness.state.editor?.string == "ROMEO:")
        harness.press(.enter)
        #expect(harness.state.generating)
        #expect(harness.state.promptHistory == ["ROMEO:"])
    }

    @Test func pauseGhostDeviceTargetAndRerun() throws {
        let harness = try Harness()
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(20)
        harness.press(.character(" "))
        #expect(harness.state.paused)
        #expect(harness.core.advance() == nil, "a paused engine generates nothing")
        harness.press(.character(" "))
        harness.press(.character("g"))
        harness.generate(5)
        #expect(harness.state.totals.ghost.tokens == 5)
        #expect(harness.text().contains("top-1"))
        harness.press(.character("d"))
        #expect(harness.text().contains("device a100-80gb"))
        harness.press(.character("T"))
        #expect(harness.text().contains("target live"))
        harness.press(.character("R"))
        #expect(harness.state.totals.latency.values.isEmpty, "a rerun starts the panels' histories again")
        #expect(harness.state.snapshot?.position == harness.state.snapshot?.sequenceTokens)
    }

    @Test func compareModeRunsBTeacherForcedBesideA() throws {
        let harness = try Harness(ghost: true)
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(40)
        harness.press(.character("c"))
        let started = try #require(harness.state.compare, "c starts compare mode")
        #expect(started.settings == harness.state.settings, "B starts as a copy of A")
        #expect(harness.text().contains("compare A|B"))

        harness.press(.character("e"))  // full → window, on B
        harness.press(.character("["))  // window 128 → 64, on B
        #expect(harness.state.settings?.value(of: .policy) == "full", "knob keys change B, not A")
        #expect(harness.state.compare?.settings.value(of: .policy) == "window:window=64")
        #expect(harness.state.status?.text.hasPrefix("B policy") == true)

        let tokensBefore = harness.core.run.tokens.count
        harness.generate(120)
        let screen = harness.text()
        #expect(screen.contains("A full"), "the knob panel shows A's method")
        #expect(screen.contains("B window window 64"), "and B's under it")
        #expect(screen.contains("A=B fp32"), "knobs A and B agree on share one line")
        #expect(screen.contains("B vs A ΔNLL"), "the quality panel compares B with A")
        #expect(screen.contains("vs ghost KL"))
        #expect(screen.contains("HBM→SRAM A "), "the traffic panel shows A, B and the delta")
        #expect(screen.contains("B    ") && screen.contains(" Δ "), "the latency panel shows B's step time and its delta")
        let snapshot = try #require(harness.state.snapshot)
        let b = try #require(snapshot.compare)
        #expect(b.residency.total < snapshot.residency.total, "B's smaller window holds fewer KV bytes: \(b.residency.total) vs \(snapshot.residency.total)")
        #expect(harness.state.totals.compare.tokens == harness.core.run.tokens.count - tokensBefore, "B followed every token A generated")
        #expect(harness.state.totals.compare.klSum > 0, "a 64-token window changes B's distributions")
        // Teacher-forced: B's step processed A's token at A's position.
        let step = try #require(b.step)
        let token = try #require(harness.state.totals.lastToken)
        #expect(step.report.position == token.report.position)
        #expect(b.step?.nll ?? -1 >= 0)

        harness.press(.character("R"))  // B reruns with A from the prompt
        #expect(harness.state.totals.compare.tokens == 0)
        harness.generate(3)
        #expect(harness.state.totals.compare.tokens == 3)

        harness.press(.character("c"))
        #expect(harness.state.compare == nil, "c again discards B")
        #expect(!harness.text().contains("compare A|B"))
        harness.press(.character("e"))
        #expect(harness.state.settings?.value(of: .policy) == "window:window=128", "knob keys change A again")
    }

    @Test func recordingWritesASessionFromARerun() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-app-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let harness = try Harness(sessionDirectory: directory.path)
        harness.press(.character("r"))
        #expect(harness.state.recording == nil)
        #expect(harness.state.status?.isError == true, "nothing to record before a prompt")
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(10)
        harness.press(.character("r"))
        let path = try #require(harness.state.recording)
        #expect(harness.text().contains("● REC kvlab-"))
        harness.generate(40)
        harness.press(.character("e"))
        harness.generate(5)
        harness.press(.character("r"))
        #expect(harness.state.recording == nil)
        #expect(harness.state.status?.text == "recorded \(path)")
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.first?.contains("kvlab-session") == true)
        #expect(lines.filter { $0.hasPrefix("{\"event\":\"token\"") }.count == 45, "the rerun's tokens, not the 10 before it")
        #expect(lines.contains { $0.contains("\"event\":\"knob\"") })
    }

    @Test func attentionSRAMWeightsAndTheme() throws {
        let harness = try Harness()
        harness.press(.character("a"))
        #expect(harness.state.value(.attention) == "tiled:sram=228KiB")
        harness.press(.character("M"))
        #expect(harness.state.value(.attention) == "tiled:sram=164KiB")
        harness.press(.character("m"))
        harness.press(.character("m"))
        #expect(harness.state.value(.attention) == "tiled:sram=100KiB", "wraps around")
        harness.press(.character("w"))
        #expect(harness.state.value(.weights) == "f32")
        #expect(harness.press(.character("y")) == [.theme("light")])
    }
}

@Suite struct KeymapTests {
    @Test func readmeKeymapIsTheKeyTable() throws {
        let readme = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("README.md")
        let text = try String(contentsOf: readme, encoding: .utf8)
        let begin = "<!-- keymap: generated from Keymap.table -->\n", end = "<!-- end keymap -->"
        let start = try #require(text.range(of: begin), "README has the keymap markers")
        let stop = try #require(text.range(of: end, range: start.upperBound..<text.endIndex))
        #expect(String(text[start.upperBound..<stop.lowerBound]) == Keymap.table.markdown(),
                "README's keymap differs from Keymap.table; paste Keymap.table.markdown() between the markers")
    }

    @Test func everyKeyIsBoundOnce() {
        let keys = Keymap.table.bindings.flatMap(\.keys)
        #expect(Set(keys).count == keys.count)
        #expect(Keymap.action(for: .character("E")) == .cycleEviction(forward: false))
        #expect(Keymap.action(for: .character("]")) == .budget(up: true))
        #expect(Keymap.action(for: .control("c")) == .quit)
        #expect(Keymap.action(for: .character("z")) == nil)
    }

    @Test func cyclingRulesComeFromTheMethodTables() throws {
        #expect(AppState.scaleBudget(try MethodSpec(parsing: "h2o:heavy=64,recent=64"), up: false)?.description == "h2o:heavy=32,recent=32")
        #expect(AppState.scaleBudget(try MethodSpec(parsing: "snapkv:budget=128,observation=16,pool=7"), up: true)?.description == "snapkv:budget=256,observation=16,pool=7")
        #expect(AppState.scaleBudget(try MethodSpec(parsing: "full"), up: true) == nil)
        #expect(AppState.nextBits(try MethodSpec(parsing: "kivi:bits=2,group=32,residual=128")).description == "kivi:bits=8,group=32,residual=128")
        #expect(AppState.nextBits(try MethodSpec(parsing: "uniform:kbits=4,vbits=4,kaxis=channel,vaxis=token,group=32,residual=128")).description
                == "uniform:kbits=3,vbits=3,kaxis=channel,vaxis=token,group=32,residual=128")
        #expect(AppState.nextBits(try MethodSpec(parsing: "fp32")).description == "kivi")
        #expect(AppState.cycle(EvictionMethod.names, after: EvictionMethod.names.last!, forward: true) == EvictionMethod.names[0])
    }

    /// `+` and `-` step the pace through the core's list and stop at its ends (unpaced last).
    @Test func paceKeysStepThroughThePaces() {
        var state = AppState(modelName: "m", choices: Choices(devices: [], targets: [], sramSizes: [], themes: []),
                             device: "d", target: "t", theme: "dark")
        #expect(state.pace == 20)
        #expect(state.handle(.character("+")) == [.engine(.pace(50))])
        for _ in 0..<5 { _ = state.handle(.character("+")) }
        #expect(state.pace == nil)
        for _ in 0..<20 { _ = state.handle(.character("-")) }
        #expect(state.pace == 1)
        #expect(state.handle(.character("-")) == [.engine(.pace(1))])
    }
}
