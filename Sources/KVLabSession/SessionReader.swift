import Foundation
import KVLabFoundation

/// One event of a session file and the line it is on.
public struct SessionRecord: Sendable, Equatable {
    /// 1-based line number (the header is line 1).
    public var line: Int
    /// The event on that line.
    public var event: SessionEvent
}

/// Reads a session file line by line, never holding more than one line in memory. A corrupt line
/// is a `SessionError` naming the file and the line; an incomplete last line (the writer was
/// killed mid-line, or is still writing it) is left out and noted in `incompleteLine`; a session
/// from a newer format version is refused with a message saying so. At the end, `cut` says
/// whether the file holds the whole recording (its `end` event).
public final class SessionReader {
    /// The file being read.
    public let path: String
    /// Line 1.
    public let header: SessionHeader
    /// The number of a last line that had no newline and was ignored, once the end is reached.
    public private(set) var incompleteLine: Int?
    /// The line number of the last event returned (1 while only the header is read).
    public private(set) var line = 1
    /// The end event, once read.
    public private(set) var end: RecordingEnd?
    /// Events returned so far.
    public private(set) var events = 0
    /// Tokens recorded by the events returned so far.
    public private(set) var steps = 0
    /// Whether the end of the file was reached.
    private var exhausted = false
    private var lines: LineReader
    private let decoder = JSONDocument.decoder()

    /// Lines longer than this are refused rather than buffered (real ones are a few KiB).
    public static let maxLineBytes = 64 << 20

    /// Opens `path` and reads its header.
    public init(path: String) throws {
        self.path = path
        // Regular files only: a FIFO with no writer would block the read forever.
        let handle: FileHandle
        do { handle = try InputFile.open(path) } catch let error as FileError {
            throw SessionError(path: path, line: nil, problem: error.problem)
        }
        lines = LineReader(handle: handle, path: path, limit: Self.maxLineBytes)
        guard let first = try lines.next() else {
            throw SessionError(path: path, line: nil, problem: "empty file, expected a kvlab session header on line 1")
        }
        guard first.complete else {
            throw SessionError(path: path, line: 1, problem: "the header line is incomplete (no newline)")
        }
        header = try Self.decodeHeader(first.bytes, path: path, decoder: decoder)
    }

    private static func decodeHeader(_ bytes: Data, path: String, decoder: JSONDecoder) throws -> SessionHeader {
        func fail(_ problem: String) -> SessionError { SessionError(path: path, line: 1, problem: problem) }
        // Format and version first, so a newer file gets a clear message rather than a missing field.
        struct Probe: Decodable {
            var format: String?
            var version: Int?
            var kvlab: String?
        }
        let probe: Probe
        do { probe = try decoder.decode(Probe.self, from: bytes) } catch let error as DecodingError {
            throw fail("not a kvlab session header: \(error.summary(of: bytes))")
        }
        guard probe.format == SessionHeader.formatName else {
            throw fail("not a kvlab session (line 1 has no \"format\": \"\(SessionHeader.formatName)\")")
        }
        guard let version = probe.version else { throw fail("'version' is missing") }
        guard version <= SessionHeader.currentVersion else {
            throw fail("session format \(version) (written by kvlab \(probe.kvlab ?? "?")) is newer than this kvlab \(kvlabVersion) "
                + "reads (format \(SessionHeader.currentVersion)); use a newer kvlab")
        }
        let header: SessionHeader
        do { header = try decoder.decode(SessionHeader.self, from: bytes) } catch let error as DecodingError {
            throw fail("header: \(error.summary(of: bytes))")
        }
        do { try header.validate() } catch { throw fail("header: \(error)") }
        return header
    }

    /// The next event, or nil at the end of the file (then `incompleteLine` says whether a last,
    /// incomplete line was left out).
    public func next() throws -> SessionRecord? {
        guard let next = try lines.next() else {
            exhausted = true
            return nil
        }
        let number = line + 1
        // Even a partial line: the writer stops at the end event, so whatever follows was added.
        if end != nil { throw SessionError(path: path, line: number, problem: "a line after the end-of-recording event") }
        guard next.complete else {
            incompleteLine = number
            exhausted = true
            return nil
        }
        line = number
        let event: SessionEvent
        do {
            event = try decoder.decode(SessionEvent.self, from: next.bytes)
        } catch let error as DecodingError {
            throw SessionError(path: path, line: number, problem: next.bytes.isEmpty ? "empty line" : error.summary(of: next.bytes))
        } catch {
            throw SessionError(path: path, line: number, problem: "\(error)")
        }
        do { try event.validate() } catch { throw SessionError(path: path, line: number, problem: "\(event.name): \(error)") }
        switch event {
        case .end(let recorded):
            // Lines lost in the middle leave a whole-looking file; the count tells.
            guard recorded.events == events else {
                throw SessionError(path: path, line: number, problem: "end: the recording wrote \(recorded.events) events, the file holds \(events)")
            }
            end = recorded
        case .token(let token): steps = max(steps, token.metrics.step + 1)
        default: steps = max(steps, event.step)
        }
        events += 1
        return SessionRecord(line: number, event: event)
    }

    /// Once every line is read: nil when the file holds the whole recording, else how it was cut.
    /// Files of formats before `SessionHeader.endEventVersion` have no end event: they count as
    /// whole unless the header stands alone (every recording starts with an event) or the last
    /// line is incomplete, which only a writer cut off leaves.
    public var cut: RecordingCut? {
        guard exhausted, end == nil else { return nil }
        func cut(_ reason: String) -> RecordingCut { RecordingCut(path: path, step: steps, events: events, reason: reason) }
        if header.version >= SessionHeader.endEventVersion || events == 0 { return cut("no end-of-recording event") }
        return incompleteLine.map { cut("line \($0) is incomplete") }
    }

    /// Every remaining event.
    public func readAll() throws -> [SessionRecord] {
        var records: [SessionRecord] = []
        while let record = try next() { records.append(record) }
        return records
    }

    /// A note for the user about a left-out last line, or nil.
    public var incompleteLineNote: String? {
        incompleteLine.map { "\(path):\($0): incomplete last line ignored (the writer stopped mid-line); read up to line \($0 - 1)" }
    }
}

/// Splits a file into lines as it is read, in chunks.
private struct LineReader {
    let handle: FileHandle
    let path: String
    let limit: Int
    private var buffer: [UInt8] = []
    /// Where the next line starts in `buffer`.
    private var start = 0
    private var atEnd = false
    private var linesReturned = 0

    init(handle: FileHandle, path: String, limit: Int) {
        self.handle = handle
        self.path = path
        self.limit = limit
    }

    /// The next line without its newline, and whether it had one.
    mutating func next() throws -> (bytes: Data, complete: Bool)? {
        // Bytes of the pending line already searched for a newline end before `scanned`.
        var scanned = start
        while true {
            if let newline = buffer[scanned...].firstIndex(of: 0x0A) {
                let line = Data(buffer[start..<newline])
                start = newline + 1
                linesReturned += 1
                return (line, true)
            }
            scanned = buffer.count
            if scanned - start > limit {
                throw SessionError(path: path, line: linesReturned + 1, problem: "line longer than \(limit) bytes")
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                let rest = Data(buffer[start...])
                start = buffer.count
                linesReturned += 1
                return (rest, false)
            }
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 1 << 16) } catch {
                throw SessionError(path: path, line: nil, problem: "cannot be read (\(error.localizedDescription))")
            }
            guard let chunk, !chunk.isEmpty else {
                atEnd = true
                continue
            }
            // Drop the lines already returned before the buffer grows.
            if start > 0 {
                buffer.removeFirst(start)
                scanned -= start
                start = 0
            }
            buffer += chunk
        }
    }
}
