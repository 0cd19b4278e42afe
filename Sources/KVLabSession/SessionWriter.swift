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

    /// Creates (or truncates) `path` and writes `header`. Appended to as it happens, the file
    /// cannot be renamed into place: `OutputFile.openForAppending` refuses a device, FIFO or other
    /// non-regular file there instead.
    public init(path: String, header: SessionHeader, synchronizes: Bool = false) throws {
        self.path = path
        self.synchronizes = synchronizes
        handle = try OutputFile.openForAppending(path)
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
