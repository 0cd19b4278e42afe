import Foundation
import Testing

/// `--policy METHOD:ratio=R` (and `bytes=`) for kvlab's own methods as a user runs them.
@Suite struct BudgetCLITests {
    @Test func aRatioKeepsItsShareOfThePrompt() throws {
        let n = try KVPressCLITests.promptTokens()
        for policy in ["h2o:ratio=0.5", "snapkv:ratio=0.5,observation=4", "window:ratio=0.5", "cam:ratio=0.5,observation=4"] {
            let (result, positions) = try KVPressCLITests.keptPositions(["-n", "0", "--policy", policy])
            #expect(result.status == 0, "\(policy): \(result.stderr)")
            #expect(positions?.isEmpty == false)
            for layer in positions ?? [] {
                for head in layer {
                    #expect(head.count == n / 2, "\(policy)")
                    #expect(head.last == n - 1, "\(policy) keeps the newest entry")
                }
            }
        }
    }

    @Test func impossibleBudgetsAreOneLineErrors() throws {
        for (policy, message) in [("snapkv:ratio=1.5", "snapkv: ratio=1.5 must be at least 0 and below 1"),
                                  ("h2o:ratio=0.5,recent=8", "h2o: give ratio= or recent=, not both"),
                                  ("tova:bytes=lots", "tova: bytes=lots is not a byte count"),
                                  ("tova:bytes=100", "tova: bytes=100 holds no entry: one entry in every (layer, KV head) takes")] {
            let result = try CLITests.run(["run", "--prompt", "Hi", "-n", "1", "--policy", policy])
            #expect(result.status != 0)
            #expect(result.stderr.contains(message), "\(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
    }
}
