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

/// Writes the chunks to `path` through a temporary file renamed into place (`OutputFile`), so a
/// failed write never leaves a truncated model behind and a device or FIFO there is refused.
func writeChunks(_ chunks: [OutputChunk], to path: String) throws {
    try OutputFile.write(to: path) { handle in
        for chunk in chunks {
            switch chunk {
            case .data(let data):
                try handle.write(contentsOf: data)
            case .matrix(let matrix):
                try handle.write(contentsOf: Data(bytesNoCopy: matrix.storage, count: matrix.byteCount, deallocator: .none))
            }
        }
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
