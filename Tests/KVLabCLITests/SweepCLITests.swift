import Foundation
import Testing
#if canImport(FoundationXML)
import FoundationXML
#endif

/// `kvlab sweep` as a user runs it: cells equal to `kvlab eval`, resuming after an interrupt,
/// export and report.
@Suite(.serialized) struct SweepCLITests {
    /// A short play-like text: the embedded model was trained on Shakespeare.
    static let text = (0..<12).map { i in
        "ROMEO:\nBut soft, what light through yonder window breaks? It is the east, and Juliet is the sun \(i).\n\n"
            + "JULIET:\nO Romeo, Romeo! wherefore art thou Romeo? Deny thy father and refuse thy name.\n\n"
    }.joined()

    /// A fresh directory holding `text.txt`.
    static func workspace() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kvlab-sweep-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try text.write(to: directory.appendingPathComponent("text.txt"), atomically: true, encoding: .utf8)
        return directory
    }

    static func results(_ store: URL) throws -> [String: [String: Any]] {
        let folder = store.appendingPathComponent("results")
        var results: [String: [String: Any]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) where name.hasSuffix(".json") {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            results[String(name.dropLast(5))] = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        }
        return results
    }

    /// A JSON object as text with sorted keys (decoded booleans and numbers compare as written).
    static func canonical(_ object: Any) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    @Test func cellsComputeWhatEvalComputes() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let text = directory.appendingPathComponent("text.txt").path, store = directory.appendingPathComponent("store").path
        let policies = ["full", "h2o:heavy=8,recent=8"]
        let sweep = try CLITests.run(["sweep", "run", "--store", store, "--text", text, "--tokens", "48", "--chunks", "2",
                                      "--probe", "perplexity", "--probe", "needle:depth=0.3", "--workers", "2", "--quiet"]
                                     + policies.flatMap { ["--policy", $0] })
        #expect(sweep.status == 0, "\(sweep.stderr)")
        let results = try Self.results(URL(fileURLWithPath: store))
        #expect(results.count == 4)
        let eval = try CLITests.run(["eval", "--text", text, "--tokens", "48", "--chunks", "2", "--json"] + policies.flatMap { ["--policy", $0] })
        #expect(eval.status == 0, "\(eval.stderr)")
        let evalSummaries = try #require(JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])["results"] as? [[String: Any]]
        let probe = try CLITests.run(["eval", "--text", text, "--tokens", "48", "--probe", "needle", "--depth", "0.3", "--json"]
                                     + policies.flatMap { ["--policy", $0] })
        #expect(probe.status == 0, "\(probe.stderr)")
        let evalProbes = try #require(JSONSerialization.jsonObject(with: Data(probe.stdout.utf8)) as? [[String: Any]])
        for result in results.values {
            let cell = try #require(result["cell"] as? [String: Any]), quality = try #require(result["quality"] as? [String: Any])
            let policy = try #require(cell["policy"] as? String)
            if cell["probe"] as? String == "perplexity" {
                let expected = try #require(evalSummaries?.first { $0["method"] as? String == policy })
                #expect(try Self.canonical(expected) == Self.canonical(quality["summary"] ?? [:]), "\(policy)")
            } else {
                let expected = try #require(evalProbes.first { $0["method"] as? String == policy })
                #expect(try Self.canonical(expected) == Self.canonical(quality["probe"] ?? [:]), "\(policy)")
            }
            let provenance = try #require(result["provenance"] as? [String: Any])
            #expect((provenance["modelSHA256"] as? String)?.count == 64)
            #expect(provenance["kvlabVersion"] as? String != nil && provenance["machine"] as? String != nil)
        }
        let csv = try CLITests.run(["sweep", "export", "--csv", "--store", store])
        #expect(csv.status == 0, "\(csv.stderr)")
        #expect(csv.stdout.split(separator: "\n").count == 5)
        #expect(csv.stdout.hasPrefix("id,model,text,probe,"))
    }

    @Test func anInterruptedSweepResumesWithoutRedoingFinishedCells() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("store")
        let arguments = ["sweep", "run", "--store", store.path, "--text", directory.appendingPathComponent("text.txt").path,
                         "--tokens", "96", "--chunks", "3", "--policy", "full", "--policy", "tova:budget={budget}",
                         "--policy", "streaming:sinks=4,window={budget}", "--budget", "8,16,24,32,40", "--workers", "1", "--quiet"]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        process.arguments = arguments
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        let results = store.appendingPathComponent("results")
        // Interrupt once a few cells are done (as Ctrl-C does).
        let deadline = Date().addingTimeInterval(120)
        while ((try? FileManager.default.contentsOfDirectory(atPath: results.path))?.count ?? 0) < 3, Date() < deadline, process.isRunning {
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.interrupt()
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        let before = try FileManager.default.contentsOfDirectory(atPath: results.path).filter { !$0.hasPrefix(".") }
        #expect(before.count >= 3 && before.count < 11)
        var stamps: [String: Date] = [:]
        for name in before {
            stamps[name] = try FileManager.default.attributesOfItem(atPath: results.appendingPathComponent(name).path)[.modificationDate] as? Date
        }
        let resumed = try CLITests.run(arguments)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("11 cells, \(before.count) done before, running \(11 - before.count)"), "\(resumed.stdout)")
        for name in before {
            let stamp = try FileManager.default.attributesOfItem(atPath: results.appendingPathComponent(name).path)[.modificationDate] as? Date
            #expect(stamp == stamps[name], "\(name) was computed again")
        }
        #expect(try Self.results(store).count == 11)
        let again = try CLITests.run(arguments)
        #expect(again.stdout.contains("11 cells, all done"))
        let status = try CLITests.run(["sweep", "status", "--store", store.path])
        #expect(status.stdout.contains("11 cells, 11 done, 0 failed, 0 not run"), "\(status.stdout)")
    }

    /// The pid of the `kvlab sweep worker` writing into `store`, from /proc.
    static func workerPID(store: String) -> Int32? {
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.contains("worker"), arguments.contains(store) { return pid }
        }
        return nil
    }

    @Test func aKilledWorkersCellIsRecordedFailedAndRunAgain() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("store").path
        let arguments = ["sweep", "run", "--store", store, "--text", directory.appendingPathComponent("text.txt").path, "--tokens", "160",
                         "--policy", "full", "--policy", "tova:budget={budget}", "--budget", "8,16,32", "--workers", "1", "--quiet"]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CLITests.binary)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = Pipe()
        try process.run()
        var worker: Int32?
        let deadline = Date().addingTimeInterval(60)
        while worker == nil, Date() < deadline, process.isRunning {
            worker = Self.workerPID(store: store)
            Thread.sleep(forTimeInterval: 0.02)
        }
        let pid = try #require(worker)
        kill(pid, SIGKILL)
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1, "\(text)")
        #expect(text.contains("3 of 4 cells done"), "\(text)")
        let status = try CLITests.run(["sweep", "status", "--store", store])
        #expect(status.stdout.contains("its worker exited (signal 9) while running it"), "\(status.stdout)")
        let rerun = try CLITests.run(arguments)
        #expect(rerun.status == 0, "\(rerun.stderr)")
        #expect(rerun.stdout.contains("4 cells, 3 done before, running 1"), "\(rerun.stdout)")
        let after = try CLITests.run(["sweep", "status", "--store", store])
        #expect(after.stdout.contains("4 cells, 4 done, 0 failed"), "\(after.stdout)")
    }

    @Test func reportWritesPlotsAndASummary() throws {
        let directory = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = directory.appendingPathComponent("store").path
        let run = try CLITests.run(["sweep", "run", "--store", store, "--text", directory.appendingPathComponent("text.txt").path,
                                    "--tokens", "40", "--policy", "full", "--policy", "window:window={budget}", "--budget", "8,16",
                                    "--probe", "perplexity", "--probe", "needle", "--project", "h100-sxm@llama-3-8b", "--quiet"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try CLITests.run(["sweep", "report", "--store", store])
        #expect(report.status == 0, "\(report.stderr)")
        let files = report.stdout.split(separator: "\n").map(String.init)
        #expect(files.contains { $0.hasSuffix("/delta-nll-vs-kv.svg") })
        #expect(files.contains { $0.hasSuffix("/needle-accuracy-vs-latency-h100-sxm-on-llama-3-8b.svg") })
        #expect(files.contains { $0.hasSuffix("/summary.md") })
        for file in files where file.hasSuffix(".svg") {
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(parser.parse(), "\(file) is not well-formed XML: \(String(describing: parser.parserError))")
        }
        let missing = try CLITests.run(["sweep", "report", "--store", directory.appendingPathComponent("nowhere").path])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("not a sweep results directory"))
    }
}
