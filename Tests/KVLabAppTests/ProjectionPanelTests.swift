import Foundation
@testable import KVLabApp
import KVLabSession
import Testing

/// The projection's limits on screen: the context key steps 4K → 32K → 128K → the target's
/// maximum, and the Latency panel says when the target does not fit or the context passes its own.
@Suite struct ProjectionPanelTests {
    @Test func contextKeyStepsThroughTheTargetsMaximum() {
        #expect(AppState.contexts(targetMaximum: 8192) == [4096, 8192, 32768, 131072])
        #expect(AppState.contexts(targetMaximum: 131072) == [4096, 32768, 131072])
        #expect(AppState.nextContext(after: 4096, targetMaximum: 8192, forward: true) == 8192)
        #expect(AppState.nextContext(after: 131072, targetMaximum: 8192, forward: true) == 4096)
        #expect(AppState.nextContext(after: 4096, targetMaximum: 8192, forward: false) == 131072)
        #expect(AppState.nextContext(after: 20000, targetMaximum: 8192, forward: true) == 32768)
    }

    @Test func latencyPanelWarnsOfItsLimits() throws {
        let harness = try Harness()
        harness.press(.character("i"))
        harness.type("ROMEO:")
        harness.generate(3)
        // The default context is within the default target's own (Llama-3.1-8B, 128K).
        #expect(harness.state.snapshot?.projection?.setup.context == ProjectionSettings.defaultContext)
        var text = harness.text()
        #expect(!text.contains("does not fit") && !text.contains("beyond the target"))
        harness.press(.character("d"))  // h100-sxm → a100-80gb
        harness.press(.character("d"))  // → l4 (24 GiB)
        harness.press(.character("t"))  // llama-3.1-8b → mistral-7b (32K)
        #expect(harness.state.snapshot?.projection?.setup.context == 32768)
        text = harness.text()
        #expect(!text.contains("beyond the target") && text.contains("at 32768 tokens"), "\(text)")
        harness.press(.character("x"))
        #expect(harness.state.status?.text == "projected context 131072 tokens")
        text = harness.text()
        #expect(harness.state.snapshot?.projection?.setup.context == 131072)
        #expect(text.contains("does not fit") && text.contains("beyond the target's context"), "\(text)")
        // At 80×24 the Latency panel has five rows: both limits still show, shorter.
        let small = harness.text(width: 80, height: 24)
        #expect(small.contains("does not fit 29.6G/24.0G") && small.contains("beyond context (32768)"), "\(small)")
        harness.press(.character("X"))
        #expect(harness.state.snapshot?.projection?.setup.context == 32768)
    }
}
