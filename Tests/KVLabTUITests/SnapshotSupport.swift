import Foundation
import KVLabTUI
import Testing

/// Compares a buffer with its committed snapshot in Snapshots/ (re-recorded with
/// KVLAB_RECORD_SNAPSHOTS=1).
func expectSnapshot(_ buffer: Buffer, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Snapshots").path
    switch Snapshot.check(buffer.snapshot(), named: name, directory: directory, record: Snapshot.recording()) {
    case .matched: break
    case .recorded(let message), .failed(let message): Issue.record(Comment(rawValue: message), sourceLocation: sourceLocation)
    }
}

/// A buffer with `widget` rendered over all of it.
func rendered(_ widget: some Widget, width: Int, height: Int) -> Buffer {
    var buffer = Buffer(width: width, height: height)
    widget.render(area: buffer.area, buffer: &buffer)
    return buffer
}
