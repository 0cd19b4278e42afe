import Foundation
import Testing

/// `kvlab sweep run --executor slurm` against a real one-node Slurm (scripts/slurm-single-node
/// installs and starts it where it can: root and Debian's packages); skipped where it cannot.
@Suite(.serialized) struct SweepSlurmTests {
    /// Nil when a cluster answers; otherwise why not.
    static let unavailable: String? = {
        let process = Process()
        process.executableURL = CLITests.packageRoot.appendingPathComponent("scripts/slurm-single-node")
        // Start an installed Slurm, install nothing: scripts/test installs it before the tests.
        process.environment = ProcessInfo.processInfo.environment.merging(["KVLAB_SLURM_INSTALL": "0"]) { $1 }
        let errors = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        do { try process.run() } catch { return "cannot run scripts/slurm-single-node: \(error)" }
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let reason = message.trimmingCharacters(in: .whitespacesAndNewlines)
            print("SweepSlurmTests skipped: \(reason)")
            return reason
        }
        return nil
    }()

    static let grid = ["--tokens", "48", "--chunks", "2", "--policy", "full", "--policy", "tova:budget={budget}",
                       "--policy", "h2o:heavy={budget/2},recent={budget/2}", "--kv", "fp32", "--kv", "kivi:bits={bits},residual=16",
                       "--budget", "8,16", "--bits", "2", "--probe", "perplexity", "--probe", "needle:depth=0.3",
                       "--project", "h100-sxm@llama-3-8b", "--quiet"]

    /// Each result without what depends on where and when it ran (`measured`, `provenance`), as sorted JSON.
    static func deterministic(_ store: URL) throws -> [String: String] {
        try SweepCLITests.results(store).mapValues { result in
            var kept = result
            kept["measured"] = nil
            kept["provenance"] = nil
            return try SweepCLITests.canonical(kept)
        }
    }

    @Test(.enabled(if: unavailable == nil, "needs Slurm (scripts/slurm-single-node)"))
    func slurmGivesTheLocalResults() throws {
        let directory = try SweepCLITests.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = directory.appendingPathComponent("text.txt").path
        let local = directory.appendingPathComponent("local"), slurm = directory.appendingPathComponent("slurm")
        let localRun = try CLITests.run(["sweep", "run", "--store", local.path, "--text", text] + Self.grid)
        #expect(localRun.status == 0, "\(localRun.stderr)")
        let slurmRun = try CLITests.run(["sweep", "run", "--store", slurm.path, "--text", text, "--executor", "slurm", "--partition", "debug",
                                         "--time", "0:10:00", "--cpus-per-task", "1", "--array-tasks", "3", "--wait"] + Self.grid)
        #expect(slurmRun.status == 0, "\(slurmRun.stdout)\(slurmRun.stderr)")
        let expected = try Self.deterministic(local), actual = try Self.deterministic(slurm)
        #expect(expected.count == 20)
        #expect(actual == expected)
        let executors = try SweepCLITests.results(slurm).values.compactMap { ($0["provenance"] as? [String: Any])?["executor"] as? String }
        #expect(executors.count == 20 && executors.allSatisfy { $0.hasPrefix("slurm:") }, "\(executors)")
        let status = try CLITests.run(["sweep", "status", "--store", slurm.path])
        #expect(status.stdout.contains("20 done, 0 pending, 0 running, 0 failed"), "\(status.stdout)")
    }

    @Test(.enabled(if: unavailable == nil, "needs Slurm (scripts/slurm-single-node)"))
    func retryResubmitsOnlyTheFailedCells() throws {
        let directory = try SweepCLITests.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = directory.appendingPathComponent("text.txt").path, store = directory.appendingPathComponent("store").path
        let grid = ["--text", text, "--tokens", "32", "--policy", "full", "--policy", "window:window={budget}", "--budget", "8,16", "--quiet"]
        // Two cells finish first; then a held submission of the third is cancelled while pending.
        let first = try CLITests.run(["sweep", "run", "--store", store] + grid.dropLast(3) + ["--budget", "8,16", "--quiet"]
                                     + ["--executor", "slurm", "--wait"])
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let held = try CLITests.run(["sweep", "run", "--store", store, "--text", text, "--tokens", "32", "--policy", "window:window=24",
                                     "--executor", "slurm", "--sbatch-option=--hold"])
        #expect(held.status == 0, "\(held.stdout)\(held.stderr)")
        let job = try #require(held.stdout.components(separatedBy: "as job ").last?.split(separator: " ").first.map(String.init))
        let pending = try CLITests.run(["sweep", "status", "--store", store])
        #expect(pending.stdout.contains("slurm job \(job) (1 cells in 1 tasks"), "\(pending.stdout)")
        #expect(pending.stdout.contains("0 done, 1 pending, 0 running, 0 failed"), "\(pending.stdout)")
        let cancel = Process()
        cancel.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cancel.arguments = ["scancel", job]
        try cancel.run()
        cancel.waitUntilExit()
        var failed = ""
        for _ in 0..<50 {
            failed = try CLITests.run(["sweep", "status", "--store", store]).stdout
            if failed.contains("0 done, 0 pending, 0 running, 1 failed") { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(failed.contains("0 done, 0 pending, 0 running, 1 failed"), "\(failed)")
        let retry = try CLITests.run(["sweep", "run", "--store", store, "--retry", "--executor", "slurm", "--wait"])
        #expect(retry.status == 0, "\(retry.stdout)\(retry.stderr)")
        #expect(retry.stdout.contains("1 cells, 0 done before: submitted 1 as job"), "\(retry.stdout)")
        #expect(try SweepCLITests.results(URL(fileURLWithPath: store)).count == 4)
        let nothing = try CLITests.run(["sweep", "run", "--store", store, "--retry", "--executor", "slurm"])
        #expect(nothing.stdout.contains("no failed cells"), "\(nothing.stdout)")
    }
}
