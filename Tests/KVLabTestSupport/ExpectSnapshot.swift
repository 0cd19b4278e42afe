import Foundation
import KVLabTUI
import Testing

/// Compares a buffer with its committed snapshot in the Snapshots/ folder beside the calling
/// test file (re-recorded with KVLAB_RECORD_SNAPSHOTS=1).
public func expectSnapshot(_ buffer: Buffer, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let directory = URL(fileURLWithPath: sourceLocation.filePath).deletingLastPathComponent().appendingPathComponent("Snapshots").path
    switch Snapshot.check(buffer.snapshot(), named: name, directory: directory, record: Snapshot.recording()) {
    case .matched: break
    case .recorded(let message), .failed(let message): Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    }
}
