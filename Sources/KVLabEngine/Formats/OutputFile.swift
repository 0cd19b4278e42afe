import Foundation
import KVLabFoundation

/// A piece of a file being written: owned bytes, or a weight matrix's storage, which is written
/// straight from memory so a model is never copied whole into one buffer.
enum OutputChunk {
    case data(Data)
    case matrix(WeightMatrix)

    var count: Int {
        switch self {
        case .data(let data): data.count
        case .matrix(let matrix): matrix.byteCount
        }
    }
}

/// Writes the chunks to `path` through a temporary file in the same directory, renamed into place
/// at the end, so a failed write never leaves a truncated model behind.
func writeChunks(_ chunks: [OutputChunk], to path: String) throws {
    let temporary = path + ".partial"
    guard FileManager.default.createFile(atPath: temporary, contents: nil) else {
        throw FileError(path: path, problem: "cannot be created (is the directory writable?)")
    }
    do {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        defer { try? handle.close() }
        for chunk in chunks {
            switch chunk {
            case .data(let data):
                try handle.write(contentsOf: data)
            case .matrix(let matrix):
                try handle.write(contentsOf: Data(bytesNoCopy: matrix.storage, count: matrix.byteCount, deallocator: .none))
            }
        }
        try handle.synchronize()
    } catch {
        try? FileManager.default.removeItem(atPath: temporary)
        throw FileError(path: path, problem: "cannot be written (\(error.localizedDescription))")
    }
    guard rename(temporary, path) == 0 else {
        let reason = String(cString: strerror(errno))
        try? FileManager.default.removeItem(atPath: temporary)
        throw FileError(path: path, problem: "cannot be written (\(reason))")
    }
}

/// The chunks joined into one buffer (tests parse written files from memory).
func joinedChunks(_ chunks: [OutputChunk]) -> Data {
    var data = Data(capacity: chunks.reduce(0) { $0 + $1.count })
    for chunk in chunks {
        switch chunk {
        case .data(let bytes): data.append(bytes)
        case .matrix(let matrix): data.append(contentsOf: matrix.encodedBytes)
        }
    }
    return data
}

/// Writes a small text file (JSON) with a one-line error naming it.
func writeText(_ text: String, to path: String) throws {
    do {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    } catch {
        throw FileError(path: path, problem: "cannot be written (\(error.localizedDescription))")
    }
}
