import Foundation
import Testing
@testable import KVLabSweep

@Suite struct SweepGridTests {
    @Test func budgetsAndBitsExpandOnlyTheMethodsThatNameThem() throws {
        var grid = SweepGrid()
        grid.texts = ["a.txt"]
        grid.policies = ["full", "h2o:heavy={budget/2},recent={budget/2}"]
        grid.kv = ["fp32", "kivi:bits={bits}"]
        grid.budgets = [32, 64]
        grid.bits = [2, 4]
        let cells = try grid.cells()
        // full × fp32, full × kivi(2 bits), h2o(2 budgets) × fp32, h2o(2) × kivi(2).
        #expect(cells.count == 1 + 2 + 2 + 4)
        #expect(cells.contains { $0.policy.hasPrefix("h2o:heavy=16,recent=16") && $0.kv.hasPrefix("kivi:bits=4") })
        #expect(Set(cells.map(\.id)).count == cells.count)
    }

    @Test func ratiosExpandTheMethodsThatNameThem() throws {
        var grid = SweepGrid()
        grid.texts = ["a.txt"]
        grid.policies = ["full", "snapkv:ratio={ratio}", "kvpress:knorm,ratio={ratio/2}"]
        grid.ratios = [0.25, 0.5]
        let policies = try grid.cells().map(\.policy)
        #expect(policies == ["full", "snapkv:observation=16,pool=7,ratio=0.25", "snapkv:observation=16,pool=7,ratio=0.5",
                             "kvpress:knorm,ratio=0.125", "kvpress:knorm,ratio=0.25"])
        grid.ratios = []
        #expect(throws: SweepError("'snapkv:ratio={ratio}' uses {ratio}: give --ratio")) { try grid.cells() }
        grid.ratios = [1.5]
        #expect(throws: SweepError("'snapkv:ratio=1.5' / 'dense' / 'fp32': snapkv: ratio=1.5 must be at least 0 and below 1")) { try grid.cells() }
    }

    @Test func equalConfigurationsHashEquallyWhateverTheSpelling() throws {
        var a = SweepGrid(), b = SweepGrid()
        a.texts = ["t"]; b.texts = ["t"]
        a.policies = ["h2o:heavy=8,recent=8"]
        b.policies = ["h2o: recent=8, heavy=8"]
        #expect(try a.cells().map(\.id) == b.cells().map(\.id))
    }

    /// A series per combination of methods, ThinK's modifier named (it is not the full cache).
    @Test func familiesNameEveryMethodAndModifier() throws {
        var grid = SweepGrid()
        grid.texts = ["t"]
        grid.policies = ["full", "full+think:lambda=0.5", "snapkv:budget=64+think:lambda=0.25", "h2o:heavy=8,recent=8"]
        grid.sparse = ["dense", "quest:page=16,budget=64"]
        grid.kv = ["fp32", "kivi:bits=2"]
        let families = Set(try grid.cells().map(\.family))
        #expect(families == ["full", "kivi", "quest", "quest+kivi", "think", "think+kivi", "think+quest", "think+quest+kivi",
                             "snapkv+think", "snapkv+think+kivi", "snapkv+think+quest", "snapkv+think+quest+kivi",
                             "h2o", "h2o+kivi", "h2o+quest", "h2o+quest+kivi"])
    }

    @Test func badGridsAreOneLineErrors() {
        var grid = SweepGrid()
        #expect(throws: SweepError.self) { try grid.cells() }
        grid.texts = ["t"]
        grid.policies = ["h2o:heavy={budget}"]
        #expect((try? grid.cells()) == nil)
        grid.policies = ["nonsense"]
        #expect(throws: SweepError.self) { try grid.cells() }
        grid.policies = ["full"]
        grid.probes = ["needle:depth=2"]
        #expect(throws: SweepError.self) { try grid.cells() }
    }

    @Test func yamlGridFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-grid-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/grid.yaml"
        try """
        text: corpus.txt
        policy: [full, "tova:budget={budget}"]
        budget: [16, 32]
        probe: [perplexity, "needle:depth=0.25"]
        chunks: 2
        project: h100-sxm@llama-3-8b
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let grid = try SweepGrid(yamlFile: path)
        #expect(grid.texts == [directory + "/corpus.txt"])
        #expect(grid.chunks == [2])
        let cells = try grid.cells()
        #expect(cells.count == 2 * 3)
        #expect(cells.first { $0.probe.hasPrefix("needle") }?.chunks == 1)
        try "polciy: full\ntext: a\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try SweepGrid(yamlFile: path) }
    }

    @Test func slicesCoverTheListInContiguousChunks() {
        let indices = Array(0..<10)
        let slices = (0..<3).map { Array(SweepWorker.slice(indices, $0, of: 3)) }
        #expect(slices == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]])
        #expect(SweepWorker.slice([1], 1, of: 2).isEmpty)
    }
}

@Suite struct SlurmQueueTests {
    @Test func squeueLinesOfSplitAndPendingArrays() {
        let queue = SlurmExecutor.parseQueue("12 12_[0-2,5%2] PENDING\n12 12_3 RUNNING\n13 13_0 COMPLETING\n14 14 RUNNING\n")
        #expect(queue["12"] == [0: "PENDING", 1: "PENDING", 2: "PENDING", 5: "PENDING", 3: "RUNNING"])
        #expect(queue["13"] == [0: "COMPLETING"])
        #expect(queue["14"] == nil)
    }
}
