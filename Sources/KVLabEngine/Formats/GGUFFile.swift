import Foundation
import KVLabFoundation
import KVLabMethods

/// GGUF metadata value types, with their ids as written in the file.
enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// The fewest bytes one value of this type occupies (a string is at least its length field),
    /// so an element count can be checked against the bytes left before anything is allocated.
    var minimumSize: Int {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }
}

/// One GGUF metadata value. Arrays carry their element type, so an empty array can be written.
enum GGUFValue: Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    case array(GGUFValueType, [GGUFValue])

    var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    /// Any integer type as `Int` (nil for other types or a `UInt64` beyond `Int.max`).
    var integer: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    /// Either float type as `Double`.
    var floatingPoint: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: nil
        }
    }

    /// A short rendering for `kvlab info` (arrays summarized by their length).
    var displayText: String {
        switch self {
        case .string(let v): v
        case .bool(let v): v ? "true" : "false"
        case .float32(let v): "\(v)"
        case .float64(let v): "\(v)"
        case .array(let type, let values): "[\(values.count) × \(type)]"
        default: integer.map(String.init) ?? "?"
        }
    }

    /// The type name used in error messages ("uint32", "array of string").
    var typeDescription: String {
        if case .array(let element, _) = self { return "array of \(element)" }
        return "\(type)"
    }
}

/// One tensor's entry in a GGUF file: `dims` innermost first (ne0 = columns).
struct GGUFTensorInfo {
    var name: String
    var dims: [Int]
    var type: WeightType
    /// Absolute byte range of the tensor's data in the file.
    var range: Range<Int>

    /// Shape outermost first, as `TensorInfo` shows it.
    var shape: [Int] { dims.reversed() }

    /// Type, shape and byte count, for errors about where the tensor lies ("f16 [64, 64], 8192 bytes").
    var summary: String { "\(type.rawValue) \(shape), \(range.count) bytes" }
}

/// The container level of a GGUF file (header, metadata, tensor table), parsed and checked
/// without interpreting the model: every count and offset is validated against the file size
/// before it is used, so hostile values become errors rather than allocations or traps.
struct GGUFFile {
    static let magic: UInt32 = 0x4655_4747  // "GGUF" read as a little-endian UInt32
    static let defaultAlignment = 32
    /// GGML_MAX_DIMS.
    static let maxDimensions = 4
    /// Limits far above any real model (whose largest arrays are vocabularies of a few hundred
    /// thousand tokens) that bound memory use: each parsed item costs more memory than file bytes.
    static let maxArrayLength = 1 << 24
    static let maxTensors = 1 << 20
    static let maxMetadata = 1 << 20
    /// Capacity reserved before items are read; beyond it, storage grows only with items that parse.
    static let upfrontReservation = 1 << 16

    var version: Int
    /// Metadata in file order.
    var metadata: [(key: String, value: GGUFValue)]
    var tensors: [GGUFTensorInfo]
    var alignment: Int
    /// Where the aligned tensor data section starts.
    var dataOffset: Int

    private var index: [String: Int]

    /// The metadata value for `key`.
    subscript(key: String) -> GGUFValue? { index[key].map { metadata[$0].value } }

    init(_ bytes: UnsafeRawBufferPointer) throws {
        var reader = ByteReader(bytes)
        guard bytes.count >= 4 else { throw FormatError("not a GGUF file: \(bytes.count) bytes, shorter than the 4-byte magic") }
        guard try reader.read(UInt32.self) == Self.magic else {
            throw FormatError("not a GGUF file: the magic is \(Self.quoted(bytes.prefix(4))), expected \"GGUF\"")
        }
        let version = try reader.read(UInt32.self)
        guard version == 2 || version == 3 else {
            if version.byteSwapped == 2 || version.byteSwapped == 3 {
                throw FormatError("big-endian GGUF files are not supported")
            }
            throw FormatError("GGUF version \(version) is not supported (2 or 3)")
        }
        let tensorCount = try Self.count(&reader, minimumSize: 24, limit: Self.maxTensors, what: "tensor count")
        let metadataCount = try Self.count(&reader, minimumSize: 13, limit: Self.maxMetadata, what: "metadata count")

        var metadata: [(key: String, value: GGUFValue)] = []
        metadata.reserveCapacity(min(metadataCount, Self.upfrontReservation))
        var index: [String: Int] = [:]
        for _ in 0..<metadataCount {
            let key = try Self.readString(&reader, what: "a metadata key")
            let value = try Self.readValue(&reader, key: key)
            guard index[key] == nil else { throw FormatError("duplicate metadata key \(key)") }
            index[key] = metadata.count
            metadata.append((key, value))
        }

        var alignment = Self.defaultAlignment
        if let value = index["general.alignment"].map({ metadata[$0].value }) {
            guard let declared = value.integer, declared > 0, declared <= 1 << 20, declared & (declared - 1) == 0 else {
                throw FormatError("general.alignment \(value.displayText) is not a power of two up to 1048576")
            }
            alignment = declared
        }

        var infos: [(name: String, dims: [Int], type: WeightType, offset: Int, size: Int)] = []
        infos.reserveCapacity(min(tensorCount, Self.upfrontReservation))
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let name = try Self.readString(&reader, what: "a tensor name")
            guard names.insert(name).inserted else { throw FormatError("duplicate tensor \(name)") }
            let dimCount = try reader.read(UInt32.self)
            guard dimCount >= 1, dimCount <= Self.maxDimensions else {
                throw FormatError("tensor \(name) has \(dimCount) dimensions (1...\(Self.maxDimensions) allowed)")
            }
            var dims: [Int] = []
            for _ in 0..<dimCount {
                let raw = try reader.read(UInt64.self)
                guard raw >= 1, let dim = Int(exactly: raw) else {
                    throw FormatError("tensor \(name) has dimension \(raw)")
                }
                dims.append(dim)
            }
            let typeID = try reader.read(UInt32.self)
            guard let type = WeightType(ggmlTypeID: typeID) else {
                throw FormatError("tensor \(name) has \(Self.typeName(typeID)), which kvlab does not support "
                    + "(supported: \(WeightType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            let size = try Self.byteSize(dims: dims, type: type, name: name)
            let rawOffset = try reader.read(UInt64.self)
            guard let offset = Int(exactly: rawOffset) else {
                throw FormatError("tensor \(name) has data offset \(rawOffset), past any file")
            }
            guard offset % alignment == 0 else {
                throw FormatError("tensor \(name) data offset \(offset) is not a multiple of the alignment \(alignment)")
            }
            infos.append((name, dims, type, offset, size))
        }
        // The data section starts at the next multiple of the alignment; offsets are relative to it.
        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        let tensors = try Self.layOut(infos, dataOffset: dataOffset, alignment: alignment, fileSize: bytes.count)
        self.version = Int(version)
        self.metadata = metadata
        self.index = index
        self.alignment = alignment
        self.tensors = tensors
        self.dataOffset = dataOffset
    }

    /// Places every tensor in the file under llama.cpp's layout rule (gguf.cpp compares each offset
    /// with the running padded size): tensors lie back to back in table order from the start of the
    /// data section, each padded to the alignment, and the data section ends with the last one. So
    /// no tensor overlaps or aliases another, no byte belongs to no tensor, and a tensor whose type
    /// or shape was changed no longer fits the offsets around it. Only the last tensor's padding may
    /// be missing (as llama.cpp allows). One pass over the table; no tensor data is read.
    private static func layOut(_ infos: [(name: String, dims: [Int], type: WeightType, offset: Int, size: Int)],
                               dataOffset: Int, alignment: Int, fileSize: Int) throws -> [GGUFTensorInfo] {
        var tensors: [GGUFTensorInfo] = []
        tensors.reserveCapacity(infos.count)
        var expected = 0  // where the next tensor must start, relative to the data section
        for info in infos {
            let (start, startOverflow) = dataOffset.addingReportingOverflow(info.offset)
            let (end, endOverflow) = start.addingReportingOverflow(info.size)
            guard !startOverflow, !endOverflow, end <= fileSize else {
                throw FormatError("tensor \(info.name) data (\(info.size) bytes at offset \(info.offset)) "
                    + "extends past the end of the file (\(fileSize) bytes)")
            }
            let tensor = GGUFTensorInfo(name: info.name, dims: info.dims, type: info.type, range: start..<end)
            if info.offset < expected {
                // Everything before is back to back, so the tensor it lands in is the one whose padded span holds it.
                let other = tensors.last { $0.range.lowerBound - dataOffset <= info.offset } ?? tensors[0]
                throw FormatError("tensor \(info.name) data (\(info.size) bytes at \(Self.span(tensor, dataOffset))) "
                    + "overlaps tensor \(other.name) (\(other.summary) at \(Self.span(other, dataOffset))); "
                    + "GGUF tensors lie back to back in table order")
            }
            if info.offset > expected {
                guard let previous = tensors.last else {
                    throw FormatError("tensor \(info.name) is the first tensor but starts at offset \(info.offset) "
                        + "of the data section, not 0")
                }
                throw FormatError("tensor \(previous.name) (\(previous.summary)) is followed by "
                    + "\(info.offset - expected) bytes that belong to no tensor before tensor \(info.name) at offset "
                    + "\(info.offset); GGUF tensors lie back to back in table order, each padded to \(alignment) bytes")
            }
            tensors.append(tensor)
            expected = info.offset + Self.padded(info.size, to: alignment)
        }
        if let last = tensors.last, fileSize > dataOffset + expected {
            throw FormatError("\(fileSize - dataOffset - expected) bytes after the last tensor \(last.name) "
                + "(\(last.summary)) belong to no tensor")
        }
        return tensors
    }

    /// `count` rounded up to a multiple of `alignment`.
    static func padded(_ count: Int, to alignment: Int) -> Int {
        (count + alignment - 1) / alignment * alignment
    }

    private static func span(_ tensor: GGUFTensorInfo, _ dataOffset: Int) -> String {
        "\(tensor.range.lowerBound - dataOffset)..<\(tensor.range.upperBound - dataOffset)"
    }

    /// Four magic bytes as text when printable ("GGUX"), in hex otherwise.
    private static func quoted(_ magic: UnsafeRawBufferPointer.SubSequence) -> String {
        if magic.allSatisfy({ (0x20..<0x7F).contains($0) && $0 != UInt8(ascii: "\"") }) {
            return "\"" + String(decoding: magic, as: UTF8.self) + "\""
        }
        return magic.map { String(format: "%02X", $0) }.joined(separator: " ")
    }

    /// A UInt64 count that must be at most the number of `minimumSize`-byte items that could still
    /// fit, and at most `limit`.
    private static func count(_ reader: inout ByteReader, minimumSize: Int, limit: Int, what: String) throws -> Int {
        let raw = try reader.read(UInt64.self)
        guard raw <= UInt64(reader.remaining / minimumSize) else {
            throw FormatError("\(what) \(raw) cannot fit in the \(reader.remaining) bytes left (truncated or corrupt file)")
        }
        guard raw <= UInt64(limit) else { throw FormatError("\(what) \(raw) is more than kvlab reads (\(limit))") }
        return Int(raw)
    }

    private static func readString(_ reader: inout ByteReader, what: String) throws -> String {
        let length = try reader.read(UInt64.self)
        guard length <= UInt64(reader.remaining) else {
            throw FormatError("\(what) has length \(length), more than the \(reader.remaining) bytes left (truncated or corrupt file)")
        }
        do {
            return try reader.readUTF8(Int(length))
        } catch let error as FormatError {
            throw FormatError("\(what): \(error.problem)")
        }
    }

    private static func readValue(_ reader: inout ByteReader, key: String) throws -> GGUFValue {
        let rawType = try reader.read(UInt32.self)
        guard let type = GGUFValueType(rawValue: rawType) else {
            throw FormatError("metadata \(key) has unknown value type \(rawType)")
        }
        guard type == .array else { return try readScalar(&reader, type: type, key: key) }
        let rawElement = try reader.read(UInt32.self)
        guard let element = GGUFValueType(rawValue: rawElement) else {
            throw FormatError("metadata \(key) is an array of unknown value type \(rawElement)")
        }
        guard element != .array else { throw FormatError("metadata \(key) is a nested array, which kvlab does not read") }
        let raw = try reader.read(UInt64.self)
        guard raw <= UInt64(reader.remaining / element.minimumSize) else {
            throw FormatError("metadata \(key) is an array of \(raw) \(element) values, which cannot fit in the "
                + "\(reader.remaining) bytes left (truncated or corrupt file)")
        }
        guard raw <= UInt64(Self.maxArrayLength) else {
            throw FormatError("metadata \(key) is an array of \(raw) values, more than kvlab reads (\(Self.maxArrayLength))")
        }
        var values: [GGUFValue] = []
        values.reserveCapacity(min(Int(raw), Self.upfrontReservation))
        for _ in 0..<Int(raw) { values.append(try readScalar(&reader, type: element, key: key)) }
        return .array(element, values)
    }

    private static func readScalar(_ reader: inout ByteReader, type: GGUFValueType, key: String) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try reader.read(UInt8.self))
        case .int8: return .int8(try reader.read(Int8.self))
        case .uint16: return .uint16(try reader.read(UInt16.self))
        case .int16: return .int16(try reader.read(Int16.self))
        case .uint32: return .uint32(try reader.read(UInt32.self))
        case .int32: return .int32(try reader.read(Int32.self))
        case .uint64: return .uint64(try reader.read(UInt64.self))
        case .int64: return .int64(try reader.read(Int64.self))
        case .float32: return .float32(try reader.readFloat())
        case .float64: return .float64(try reader.readDouble())
        case .bool:
            let byte = try reader.read(UInt8.self)
            guard byte <= 1 else { throw FormatError("metadata \(key) has boolean value \(byte)") }
            return .bool(byte == 1)
        case .string: return .string(try readString(&reader, what: "metadata \(key)"))
        case .array: throw FormatError("metadata \(key) is a nested array, which kvlab does not read")
        }
    }

    /// Bytes taken by a tensor, with every product checked for overflow.
    private static func byteSize(dims: [Int], type: WeightType, name: String) throws -> Int {
        guard type.canStore(rowLength: dims[0]) else {
            throw FormatError("tensor \(name) has rows of \(dims[0]) elements, "
                + "not a multiple of the \(type.rawValue) block size \(type.blockSize)")
        }
        var size = dims[0] / type.blockSize
        for dim in [type.bytesPerBlock] + dims.dropFirst() {
            let (product, overflow) = size.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw FormatError("tensor \(name) with dimensions \(dims) is too large") }
            size = product
        }
        return size
    }

    /// ggml's name for a type id, for errors about types kvlab cannot load.
    static func typeName(_ id: UInt32) -> String {
        let names: [UInt32: String] = [
            9: "q8_1", 15: "q8_K", 16: "iq2_xxs", 17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s", 21: "iq3_s", 22: "iq2_s",
            24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64", 29: "iq1_m", 34: "tq1_0", 35: "tq2_0", 39: "mxfp4",
        ]
        return names[id].map { "ggml type \($0) (id \(id))" } ?? "unknown ggml type id \(id)"
    }
}

// MARK: - Writing

extension ByteWriter {
    /// A GGUF string: UInt64 byte length, then UTF-8 bytes.
    mutating func writeGGUFString(_ text: String) {
        write(UInt64(text.utf8.count))
        writeBytes(Array(text.utf8))
    }

    /// A GGUF metadata value, its type id included.
    mutating func writeGGUFValue(_ value: GGUFValue) {
        write(value.type.rawValue)
        writeGGUFPayload(value)
    }

    private mutating func writeGGUFPayload(_ value: GGUFValue) {
        switch value {
        case .uint8(let v): write(v)
        case .int8(let v): write(v)
        case .uint16(let v): write(v)
        case .int16(let v): write(v)
        case .uint32(let v): write(v)
        case .int32(let v): write(v)
        case .uint64(let v): write(v)
        case .int64(let v): write(v)
        case .float32(let v): writeFloat(v)
        case .float64(let v): write(v.bitPattern)
        case .bool(let v): write(UInt8(v ? 1 : 0))
        case .string(let v): writeGGUFString(v)
        case .array(let element, let values):
            write(element.rawValue)
            write(UInt64(values.count))
            for v in values { writeGGUFPayload(v) }
        }
    }
}
