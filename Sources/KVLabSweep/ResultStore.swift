import Foundation
import Crypto
import KVLabFoundation

/// A sweep's results directory: one JSON file per finished cell, named by the cell's id and
/// written through a temporary file and a rename, so a killed worker leaves no partial result and
/// concurrent writers (local workers, Slurm array tasks on other nodes sharing the directory)
/// never see each other's half-written files. Reading merges whatever files are there.
///
///     DIR/plans/PLAN.json      the cells of one `sweep run` (workers read them by index)
///     DIR/results/ID.json      a finished cell (`SweepResult`)
///     DIR/failed/ID.json       a cell that threw or whose worker died (`CellFailure`)
///     DIR/slurm/               job records, batch scripts and logs of `--executor slurm`
public struct ResultStore: Sendable {
    public let directory: String

    public init(directory: String) { self.directory = directory }

    /// Creates the store's directories (a file where one should be is a one-line error).
    public func create() throws {
        for sub in ["", "plans", "results", "failed", "slurm"] {
            let path = sub.isEmpty ? directory : directory + "/" + sub
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else { throw FileError(path: path, problem: "is not a directory") }
                continue
            }
            do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw FileError(path: path, problem: "cannot be created (\(error.localizedDescription))")
            }
        }
    }

    // MARK: plans

    /// Saves the cells of a run as a plan and returns its path (the same cells give the same plan).
    public func savePlan(_ cells: [SweepCell]) throws -> String {
        var hash = SHA256()
        for cell in cells { hash.update(data: Data(cell.id.utf8)) }
        let path = directory + "/plans/" + String(hash.finalizeHex().prefix(16)) + ".json"
        if FileManager.default.fileExists(atPath: path) { return path }
        try OutputFile.write(try JSONDocument.encoder().encode(cells), to: path)
        return path
    }

    public static func loadPlan(_ path: String) throws -> [SweepCell] {
        try decode([SweepCell].self, path: path)
    }

    /// Every plan in the store, newest first.
    public func plans() -> [String] {
        let folder = directory + "/plans"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".json") }
        func modified(_ name: String) -> Date {
            ((try? FileManager.default.attributesOfItem(atPath: folder + "/" + name))?[.modificationDate] as? Date) ?? .distantPast
        }
        return names.sorted { modified($0) > modified($1) }.map { folder + "/" + $0 }
    }

    // MARK: results

    public func resultPath(_ id: String) -> String { directory + "/results/" + id + ".json" }
    public func failurePath(_ id: String) -> String { directory + "/failed/" + id + ".json" }

    public func isDone(_ id: String) -> Bool { FileManager.default.fileExists(atPath: resultPath(id)) }

    /// The ids of the finished cells.
    public func doneIDs() -> Set<String> { ids(in: "results") }

    /// The ids of the cells that failed and have not finished since.
    public func failedIDs() -> Set<String> { ids(in: "failed").subtracting(doneIDs()) }

    private func ids(in folder: String) -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + folder)) ?? []
        return Set(names.filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) })
    }

    public func write(_ result: SweepResult) throws {
        try OutputFile.write(try JSONDocument.encoder().encode(result), to: resultPath(result.id))
        try? FileManager.default.removeItem(atPath: failurePath(result.id))
    }

    public func write(_ failure: CellFailure) throws {
        try OutputFile.write(try JSONDocument.encoder().encode(failure), to: failurePath(failure.id))
    }

    /// Every finished cell's result, in id order.
    public func results() throws -> [SweepResult] {
        try doneIDs().sorted().map { try Self.decode(SweepResult.self, path: resultPath($0)) }
    }

    public func failures() throws -> [CellFailure] {
        try failedIDs().sorted().map { try Self.decode(CellFailure.self, path: failurePath($0)) }
    }

    static func decode<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        let data = try InputFile.read(path)
        do { return try JSONDocument.decoder().decode(type, from: data) } catch {
            throw FileError(path: path, problem: "is not a kvlab sweep file (\(Self.reason(error)))")
        }
    }

    /// A decoding error in a few words.
    static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "no '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted(let context): context.debugDescription
        default: "\(error)"
        }
    }
}

/// A cell that did not finish: the error it threw, or how its worker ended.
public struct CellFailure: Codable, Sendable, Equatable {
    public var id: String
    public var cell: SweepCell
    public var error: String
    public var executor: String
    public var time: String

    public init(cell: SweepCell, error: String, executor: String) {
        id = cell.id
        self.cell = cell
        self.error = error
        self.executor = executor
        time = ISO8601DateFormatter().string(from: Date())
    }
}
