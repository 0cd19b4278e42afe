import Foundation
@testable import KVLabMethods
import Testing

/// HeadKV as KVCache-Factory runs it: the scores file, the per-head budgets, the kept sets.
@Suite struct HeadKVTests {
    /// A scores file of `text` in a fresh directory.
    static func file(_ text: String) throws -> String {
        let path = try Fixtures.temporaryDirectory().appendingPathComponent("heads.json").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// 1 layer × 4 query heads (2 KV heads of 2): means 3, 1, 0, 0.
    static let fourHeads = #"{"0-0": [2, 4], "0-1": [1], "0-2": [0, 0], "0-3": [0]}"#

    @Test func theFileGivesEachHeadItsMean() throws {
        let scores = try HeadKVScores(path: Self.file(Self.fourHeads))
        #expect(scores.layers == 1 && scores.heads == 4)
        #expect(scores.means == [3, 1, 0, 0])
        let rendered = HeadKVScores.render(layers: 1, heads: 2, samples: [[0.5, 1], [0]])
        #expect(try HeadKVScores(path: Self.file(rendered)).means == [0.75, 0])
    }

    /// B = 100, β = 1.01: ⌊100/1.01⌋ = 99, pool 99 · 4 = 396, floor 1; query heads get
    /// 3/4 · 396 + 1 = 298, 100, 1, 1; each KV head the mean of its pair: 199 and 1.
    @Test func budgetsFollowKVCacheFactory() throws {
        let scores = try HeadKVScores(path: Self.file(Self.fourHeads))
        #expect(scores.capacities(capacity: 100, beta: 1.01, groupSize: 2) == [199, 1])
        #expect(scores.capacities(capacity: 100, beta: 1.01, groupSize: 1) == [298, 100, 1, 1])
        // β = 2: pool 50 · 4 = 200, floor 50: 200, 100, 50, 50 (their mean is B).
        #expect(scores.capacities(capacity: 100, beta: 2, groupSize: 1) == [200, 100, 50, 50])
    }

    /// Budget 8, window 2: B = 6, ⌊6/1.01⌋ = 5, pool 20, floor 1: query heads 16, 6, 1, 1, KV
    /// heads 11 and 1 past entries plus the window. Head 0 keeps all 10 earlier entries, head 1
    /// its best (position 4). A budget of 20 (B = 18) leaves the 12-entry prompt whole.
    @Test func eachKVHeadKeepsItsOwnBudget() throws {
        let path = try Self.file(Self.fourHeads)
        let method = try EvictionMethod(parsing: "headkv:scores=\(path),budget=8,observation=2,pool=1")
        #expect(method.description == "headkv:scores=\(path),budget=8,observation=2,pool=1,beta=1.01")
        let layout = KVLayout(layerCount: 1, kvHeadCount: 2, headDim: 4, groupSize: 2, capacity: 12)
        #expect(method.budgets(layout: layout) == [13, 3])
        let spike: [Float] = [1, 2, 3, 1, 9, 1, 2, 1, 1, 1, 5, 5]
        let kept = try KVPressMethodTests.finish(KVPressMethodTests.policy("headkv:scores=\(path),budget=8,observation=2,pool=1"), scores: [spike, spike])
        #expect(kept == [Array(0..<12), [4, 10, 11]])
        let whole = try KVPressMethodTests.finish(KVPressMethodTests.policy("headkv:scores=\(path),budget=20,observation=2,pool=1"), scores: [spike, spike])
        #expect(whole == [Array(0..<12), Array(0..<12)])
        #expect(throws: MethodSpecError("headkv: scores \(path) is for 1 layers × 4 query heads, the model has 2 × 4")) {
            try method.check(layout: KVLayout(layerCount: 2, kvHeadCount: 2, headDim: 4, groupSize: 2, capacity: 12))
        }
    }

    @Test(arguments: [
        ("[1, 2]", "holds an array, not an object of \"layer-head\": [scores]"),
        (#"{"0-0": [1], "x": [1]}"#, "key \"x\" is not \"layer-head\""),
        (#"{"0-0": []}"#, "\"0-0\" holds an empty list, not a list of scores"),
        (#"{"0-0": [1, -2]}"#, "\"0-0\" holds a negative score, not scores of at least 0"),
        (#"{"0-0": [1], "1-1": [1]}"#, "holds 2 heads, not every one of 2 layers × 2 heads"),
        (#"{"0-0": [0], "0-1": [0]}"#, "every head scores 0"),
        ("{", "is not JSON"),
    ])
    func badFilesAreOneLineErrorsNamingTheFile(text: String, problem: String) throws {
        let path = try Self.file(text)
        #expect {
            try EvictionMethod(parsing: "headkv:scores=\(path)")
        } throws: { error in
            let message = "\(error)"
            return message.hasPrefix("headkv: scores \(path): \(problem)") && !message.contains("\n")
        }
    }

    @Test func aMissingFileIsNamed() throws {
        #expect(throws: MethodSpecError("headkv: scores /nonexistent/heads.json: no such file")) {
            try EvictionMethod(parsing: "headkv:scores=/nonexistent/heads.json")
        }
        #expect(throws: MethodSpecError("headkv: give scores=…")) { try EvictionMethod(parsing: "headkv:budget=64") }
    }
}
