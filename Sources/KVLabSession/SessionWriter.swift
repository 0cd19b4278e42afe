import Foundation
import KVLabFoundation

/// Writes a session file as it happens: the header when created, then each event as one line
/// appended with a single `write(2)`, so a killed writer loses at most the line being written and
/// readers can follow the file while it grows.
public final class SessionWriter {
    /// The session file.
    public let path: String
    private let handle: FileHandle
    private let encoder = SessionLineEncoder()
    /// Whether each line is also forced to the disk (`fsync`), surviving a machine crash, not just
    /// a killed process.
    public let synchronizes: Bool

    /// Creates (or truncates) `path` and writes `header`.
    public init(path: String, header: SessionHeader, synchronizes: Bool = false) throws {
        self.path = path
        self.synchronizes = synchronizes
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw FileError(path: path, problem: "cannot be created (is the directory writable?)")
        }
        self.handle = handle
        try write(header)
    }

    deinit { try? handle.close() }

    /// Appends one event.
    public func append(_ event: SessionEvent) throws {
        try write(event)
    }

    private func write(_ value: some Encodable) throws {
        let line: Data
        do { line = try encoder.line(value) } catch {
            throw FileError(path: path, problem: "cannot encode a session line (\(error))")
        }
        do {
            try handle.write(contentsOf: line)
            if synchronizes { try handle.synchronize() }
        } catch {
            throw FileError(path: path, problem: "cannot be written (\(error.localizedDescription))")
        }
    }
}
