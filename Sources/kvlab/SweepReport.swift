import Foundation
import ArgumentParser
import KVLabFoundation
import KVLabSweep

/// `kvlab sweep report`: SVG plots of quality against memory and projected latency, and a Markdown table.
struct SweepReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write SVG plots (ΔNLL, KL, needle accuracy vs resident KV and projected latency, Pareto frontier) and summary.md.")

    @OptionGroup var storeOptions: StoreOptions

    @Option(name: .shortAndLong, help: "Directory for the plots and summary.md (default: STORE/report).")
    var output: String?

    func run() throws {
        let store = try storeOptions.open()
        let results = try singleLineErrors { try store.results() }
        guard !results.isEmpty else { throw CLIError("\(store.directory): no finished cells to report") }
        let directory = output ?? store.directory + "/report"
        do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw CLIError("\(directory): cannot be created (\(error.localizedDescription))")
        }
        for file in SweepReport.files(results) {
            try singleLineErrors { try OutputFile.write(Data(file.content.utf8), to: directory + "/" + file.name) }
            print(directory + "/" + file.name)
        }
    }
}
