import Foundation
import Testing

/// `kvlab heads --out FILE`, then `--policy headkv:scores=FILE` on the embedded model as a user runs them.
@Suite struct HeadKVCLITests {
    @Test func scoresTheModelThenKeepsEachHeadsBudget() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("heads-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let heads = try CLITests.run(["heads", "--out", path])
        #expect(heads.status == 0, "\(heads.stderr)")
        #expect(heads.stdout.contains("query heads"))
        let n = try KVPressCLITests.promptTokens()
        let policy = "headkv:scores=\(path),budget=\(n / 2),observation=4"
        let (result, positions) = try KVPressCLITests.keptPositions(["-n", "0", "--policy", policy])
        #expect(result.status == 0, "\(result.stderr)")
        // Unequal heads: each keeps what its budget allows (the window included), together about the mean budget.
        let counts = (positions ?? []).flatMap { $0.map(\.count) }
        #expect(!counts.isEmpty && counts.allSatisfy { $0 >= 4 && $0 <= n })
        #expect(Set(counts).count > 1, "\(counts)")
        for head in (positions ?? []).flatMap({ $0 }) { #expect(head.last == n - 1, "the window stays") }
    }

    @Test func aBadScoresFileIsOneLineNamingIt() throws {
        let result = try CLITests.run(["run", "--prompt", "Hi", "-n", "1", "--policy", "headkv:scores=/nonexistent/heads.json"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("headkv: scores /nonexistent/heads.json: no such file"), "\(result.stderr)")
        #expect(result.stderr.split(separator: "\n").count == 1)
    }
}
