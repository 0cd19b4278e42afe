import Foundation
import KVLabFoundation
import KVLabMethods

/// One tensor's entry in a safetensors file.
struct SafetensorsTensor {
    var name: String
    /// The dtype as written ("F32", "BF16", "I64", ...).
    var dtype: String
    var shape: [Int]
    /// Absolute byte range of the tensor's data in the file.
    var range: Range<Int>
}

/// The safetensors container: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to its dtype, shape and data offsets (plus an optional `__metadata__` object of
/// strings), then the raw little-endian data.
struct SafetensorsFile {
    /// Element sizes of every dtype the format defines; kvlab loads weights from F32, F16 and BF16.
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    /// The reference implementation's limit on the JSON header, which keeps parsing bounded.
    static let maxHeaderLength = 100_000_000

    /// Tensors in header order.
    var tensors: [SafetensorsTensor]
    var metadata: [(key: String, value: String)]

    init(_ bytes: UnsafeRawBufferPointer) throws {
        var reader = ByteReader(bytes)
        let headerLength = try reader.read(UInt64.self)
        guard headerLength <= UInt64(reader.remaining) else {
            throw FormatError("header length \(headerLength) exceeds the \(reader.remaining) bytes left (truncated or corrupt file)")
        }
        guard headerLength <= UInt64(Self.maxHeaderLength) else {
            throw FormatError("header length \(headerLength) is over the format's limit of \(Self.maxHeaderLength) bytes")
        }
        let headerBytes = try reader.readBytes(Int(headerLength))
        // As the reference reader requires: the header is a JSON object from its first byte.
        guard headerBytes.first == UInt8(ascii: "{") else { throw FormatError("header does not start with \"{\"") }
        let header: JSONValue
        do {
            header = try JSONValue.parse(headerBytes)
        } catch let error as FormatError {
            throw FormatError("header: \(error.problem)")
        }
        guard let members = header.members else { throw FormatError("header is \(header.kind), expected a JSON object") }
        let dataStart = reader.offset
        let dataCount = reader.remaining
        metadata = []
        tensors = []
        for (name, entry) in members {
            if name == "__metadata__" {
                guard let pairs = entry.members else { throw FormatError("__metadata__ is \(entry.kind), expected an object") }
                for (key, value) in pairs {
                    guard let text = value.string else { throw FormatError("__metadata__ \(key) is \(value.kind), expected a string") }
                    metadata.append((key, text))
                }
                continue
            }
            tensors.append(try Self.tensor(name, entry, dataStart: dataStart, dataCount: dataCount))
        }
        try Self.checkLayout(tensors, dataStart: dataStart, dataCount: dataCount)
    }

    /// The reference reader's rule (`Metadata::validate` in the safetensors crate): sorted by their
    /// offsets, the tensors lie back to back from the start of the data to its end, so none
    /// overlaps or aliases another and no byte belongs to no tensor. Header order is free (writers
    /// differ), so two tensors of the same size that trade offsets stay undetectable, as there.
    private static func checkLayout(_ tensors: [SafetensorsTensor], dataStart: Int, dataCount: Int) throws {
        let ordered = tensors.sorted {
            ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound)
        }
        func span(_ tensor: SafetensorsTensor) -> String {
            "bytes \(tensor.range.lowerBound - dataStart)..<\(tensor.range.upperBound - dataStart)"
        }
        var previous: SafetensorsTensor?
        var end = dataStart
        for tensor in ordered {
            if tensor.range.lowerBound < end, let previous {
                throw FormatError("tensor \(tensor.name) data (\(span(tensor))) overlaps tensor \(previous.name) (\(span(previous)))")
            }
            if tensor.range.lowerBound > end {
                let gap = tensor.range.lowerBound - end
                throw FormatError(previous.map {
                    "\(gap) data bytes between tensor \($0.name) (\(span($0))) and tensor \(tensor.name) (\(span(tensor))) belong to no tensor"
                } ?? "the first \(gap) data bytes, before tensor \(tensor.name) (\(span(tensor))), belong to no tensor")
            }
            previous = tensor
            end = tensor.range.upperBound
        }
        if end < dataStart + dataCount {
            let extra = dataStart + dataCount - end
            throw FormatError(previous.map { "\(extra) data bytes after the last tensor \($0.name) (\(span($0))) belong to no tensor" }
                ?? "\(extra) data bytes belong to no tensor (the header lists none)")
        }
    }

    private static func tensor(_ name: String, _ entry: JSONValue, dataStart: Int, dataCount: Int) throws -> SafetensorsTensor {
        guard let dtype = entry["dtype"]?.string else { throw FormatError("tensor \(name) has no dtype") }
        guard let elementSize = elementSizes[dtype] else { throw FormatError("tensor \(name) has unknown dtype \(dtype)") }
        guard let rawShape = entry["shape"]?.array else { throw FormatError("tensor \(name) has no shape") }
        let shape = rawShape.compactMap(\.integer)
        guard shape.count == rawShape.count, shape.allSatisfy({ $0 >= 0 }) else {
            throw FormatError("tensor \(name) has a shape that is not a list of non-negative integers")
        }
        guard let offsets = entry["data_offsets"]?.array?.compactMap(\.integer), offsets.count == 2,
              offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw FormatError("tensor \(name) has data_offsets that are not two ascending non-negative integers")
        }
        var byteCount = elementSize
        for dim in shape {
            let (product, overflow) = byteCount.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw FormatError("tensor \(name) with shape \(shape) is too large") }
            byteCount = product
        }
        guard offsets[1] - offsets[0] == byteCount else {
            throw FormatError("tensor \(name) spans \(offsets[1] - offsets[0]) bytes, its shape \(shape) of \(dtype) needs \(byteCount)")
        }
        guard offsets[1] <= dataCount else {
            throw FormatError("tensor \(name) data (bytes \(offsets[0])..<\(offsets[1])) extends past the end of the file "
                + "(\(dataCount) data bytes)")
        }
        return SafetensorsTensor(name: name, dtype: dtype, shape: shape, range: (dataStart + offsets[0])..<(dataStart + offsets[1]))
    }

    /// Converts a tensor's F32, F16 or BF16 data to floats.
    static func floats(_ tensor: SafetensorsTensor, in bytes: UnsafeRawBufferPointer) throws -> [Float] {
        let data = UnsafeRawBufferPointer(rebasing: bytes[tensor.range])
        switch tensor.dtype {
        case "F32":
            return (0..<(data.count / 4)).map {
                Float(bitPattern: UInt32(littleEndian: data.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
            }
        case "F16":
            return (0..<(data.count / 2)).map { Half.toFloat(UInt16(littleEndian: data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) }
        case "BF16":
            // bfloat16 is the top half of a float32.
            return (0..<(data.count / 2)).map {
                Float(bitPattern: UInt32(UInt16(littleEndian: data.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self))) << 16)
            }
        default:
            throw FormatError("tensor \(tensor.name) has dtype \(tensor.dtype); kvlab reads F32, F16 and BF16")
        }
    }

    // MARK: - Writing

    /// A tensor to write: its data is a chunk of exactly shape × dtype bytes.
    struct Entry {
        var name: String
        var dtype: String
        var shape: [Int]
        var data: OutputChunk
    }

    /// The file as chunks: header (padded with spaces to a multiple of 8, as the reference
    /// writer does, so the data stays aligned), then every tensor's data back to back.
    static func encode(_ entries: [Entry], metadata: [(String, String)] = [("format", "pt")]) -> [OutputChunk] {
        var members: [(key: String, value: JSONValue)] = [("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))]
        var offset = 0
        for entry in entries {
            let end = offset + entry.data.count
            members.append((entry.name, .object([
                ("dtype", .string(entry.dtype)),
                ("shape", .array(entry.shape.map { .integer($0) })),
                ("data_offsets", .array([.integer(offset), .integer(end)])),
            ])))
            offset = end
        }
        var header = Array(JSONValue.object(members).compactText().utf8)
        header += Array(repeating: UInt8(ascii: " "), count: (8 - header.count % 8) % 8)
        var prefix = ByteWriter()
        prefix.write(UInt64(header.count))
        prefix.writeBytes(header)
        return [.data(prefix.data)] + entries.map(\.data)
    }
}
