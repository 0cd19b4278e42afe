import Foundation
import KVLabFoundation

/// Committed text snapshots of rendered buffers: a test renders, compares with the file, and
/// re-records it when `KVLAB_RECORD_SNAPSHOTS=1` is set.
public enum Snapshot {
    /// The environment variable that switches tests to recording.
    public static let recordVariable = "KVLAB_RECORD_SNAPSHOTS"

    /// What a snapshot check found.
    public enum Outcome: Equatable, Sendable {
        /// The snapshot file holds exactly this text.
        case matched
        /// Recording was requested and the file was written (the test should fail so a recording
        /// run is never mistaken for a passing one).
        case recorded(String)
        /// Something to fix, explained.
        case failed(String)
    }

    /// Whether the environment asks for snapshots to be re-recorded.
    public static func recording(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment[recordVariable] == "1"
    }

    /// Compares `text` with `directory/name.txt`, or writes it there when `record` is set.
    public static func check(_ text: String, named name: String, directory: String, record: Bool) -> Outcome {
        let path = directory + "/" + name + ".txt"
        let rerun = "re-record with \(recordVariable)=1 swift test --filter <suite>, review the file, and commit it"
        if record {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try OutputFile.write(Data(text.utf8), to: path)
                return .recorded("recorded \(path); run again without \(recordVariable) to check it")
            } catch {
                return .failed("cannot write \(path): \(error)")
            }
        }
        guard let data = try? InputFile.read(path) else {
            return .failed("no snapshot at \(path); \(rerun)\n\(text)")
        }
        let expected = String(decoding: data, as: UTF8.self)
        guard expected != text else { return .matched }
        let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
        let actualLines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let line = (0..<min(expectedLines.count, actualLines.count)).first { expectedLines[$0] != actualLines[$0] }
            ?? min(expectedLines.count, actualLines.count)
        let want = line < expectedLines.count ? String(expectedLines[line]) : "(end of file)"
        let got = line < actualLines.count ? String(actualLines[line]) : "(end of text)"
        return .failed("\(path):\(line + 1) differs\n  expected: \(want)\n  actual:   \(got)\nIf the change is intended, \(rerun). Rendered:\n\(text)")
    }
}
