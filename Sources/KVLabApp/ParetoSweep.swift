import Foundation
import KVLabFoundation
import KVLabSweep

/// A sweep's results as the workbench's Pareto view draws them: the configurations one model was
/// swept over (`SweepReport.points`, averaged over texts and placements as `kvlab sweep report`
/// does), their quality axis, and the axes they can be drawn against: mean resident KV, then the
/// projected decode step of each `DEVICE@TARGET` the sweep projected onto.
public struct ParetoSweep: Sendable {
    /// The results directory.
    public let store: String
    /// The model's name as the report writes it.
    public let modelName: String
    /// One point per configuration, of one probe kind.
    public let points: [ReportPoint]
    /// ΔNLL for perplexity sweeps, needle accuracy for a store of needle cells only.
    public let quality: ReportMetric
    /// The x axes: resident KV, then one projected latency per pair.
    public let axes: [ReportMetric]
    /// The `DEVICE@TARGET` of each axis (nil for resident KV).
    public let pairs: [String?]
    /// The context the cells were projected at (nil when they differ).
    public let projectContext: Int?

    /// The points of `model` (a path, or nil for the embedded model) in the store at `directory`.
    /// Throws a one-line error when the directory is not a store or holds no results for the model.
    public init(store directory: String, model: String?) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory + "/results", isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FileError(path: directory, problem: "is not a sweep store (no results/ directory; kvlab sweep run --store makes one)")
        }
        let results = try ResultStore(directory: directory).results()
        let wanted = model.map { URL(fileURLWithPath: $0).standardizedFileURL.path } ?? SweepCell.embeddedModel
        let own = results.filter { $0.cell.model == wanted }
        guard !own.isEmpty else {
            let models = Set(results.map(\.cell.model)).sorted().map(SweepReport.modelName)
            throw FileError(path: directory, problem: "has no results for \(SweepReport.modelName(wanted))"
                            + (models.isEmpty ? " (no finished cells)" : " (it has: \(models.joined(separator: ", ")))"))
        }
        let contexts = Set(own.map(\.cell.projectContext))
        self.init(store: directory, modelName: SweepReport.modelName(wanted), points: SweepReport.points(own),
                  pairs: Set(own.flatMap(\.cell.projections)).sorted(), projectContext: contexts.count == 1 ? contexts.first : nil)
    }

    /// The points given (of one model): those of perplexity cells, or of needle cells when there
    /// are none, against resident KV and each of `pairs`' projected latency.
    public init(store: String, modelName: String, points all: [ReportPoint], pairs: [String], projectContext: Int?) {
        self.store = store
        self.modelName = modelName
        let quality: ReportMetric = all.contains { $0.probe == ReportMetric.deltaNLL.probe } ? .deltaNLL : .needleAccuracy
        self.quality = quality
        points = all.filter { $0.probe == quality.probe && quality.value($0) != nil }
        axes = [.residentKV] + pairs.map(ReportMetric.projectedLatency)
        self.pairs = [nil] + pairs
        self.projectContext = projectContext
    }
}
