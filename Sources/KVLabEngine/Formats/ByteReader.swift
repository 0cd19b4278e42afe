import Foundation
import KVLabFoundation

/// A bounds-checked little-endian cursor over file bytes: every read either succeeds or throws,
/// so no file content can make the loader trap.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset: Int

    init(_ bytes: UnsafeRawBufferPointer, offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    mutating func seek(to newOffset: Int) throws {
        guard newOffset >= 0, newOffset <= bytes.count else {
            throw FormatError("offset \(newOffset) is past the end of the file (\(bytes.count) bytes)")
        }
        offset = newOffset
    }

    mutating func skip(_ count: Int) throws {
        guard count >= 0, count <= remaining else { throw truncated(count) }
        offset += count
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let size = MemoryLayout<T>.size
        guard size <= remaining else { throw truncated(size) }
        let value = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += size
        return T(littleEndian: value)
    }

    mutating func readFloat() throws -> Float { Float(bitPattern: try read(UInt32.self)) }
    mutating func readDouble() throws -> Double { Double(bitPattern: try read(UInt64.self)) }

    /// Reads `count` bytes as a slice of the underlying buffer (no copy).
    mutating func readBytes(_ count: Int) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw truncated(count) }
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
        offset += count
        return slice
    }

    mutating func readFloats(_ count: Int) throws -> [Float] {
        guard count >= 0, count <= remaining / 4 else { throw truncated(count.multipliedReportingOverflow(by: 4).partialValue) }
        let raw = try readBytes(count * 4)
        return (0..<count).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
    }

    /// Reads `count` bytes as UTF-8 text; invalid UTF-8 is an error, not a replacement.
    mutating func readUTF8(_ count: Int) throws -> String {
        let raw = try readBytes(count)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw FormatError("invalid UTF-8 in a string at byte offset \(offset - count)")
        }
        return text
    }

    private func truncated(_ wanted: Int) -> FormatError {
        FormatError("file is truncated: needed \(wanted) bytes at offset \(offset), \(remaining) left")
    }
}

/// Appends little-endian values to a growing byte buffer (the writers' counterpart of ByteReader).
struct ByteWriter {
    private(set) var data = Data()

    mutating func write<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }
    mutating func writeFloat(_ value: Float) { write(value.bitPattern) }
    mutating func writeBytes(_ bytes: UnsafeRawBufferPointer) { data.append(contentsOf: bytes) }
    mutating func writeBytes(_ bytes: [UInt8]) { data.append(contentsOf: bytes) }
    mutating func pad(toMultipleOf alignment: Int) {
        let extra = (alignment - data.count % alignment) % alignment
        data.append(contentsOf: [UInt8](repeating: 0, count: extra))
    }
    var count: Int { data.count }
}
