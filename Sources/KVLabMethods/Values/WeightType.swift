/// How a weight matrix is stored in memory and in files. The quantized types are ggml's block
/// formats, bit for bit, so GGUF files load without conversion and traffic counts are real.
public enum WeightType: String, Sendable, CaseIterable, Codable {
    case f32
    case f16
    case q8_0
    case q4_0
    case q4_1

    /// Elements per block (1 for the float types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16: 1
        case .q8_0, .q4_0, .q4_1: 32
        }
    }

    /// Bytes per block: ggml's `block_q8_0` (fp16 d + 32 int8), `block_q4_0` (fp16 d + 16 bytes of
    /// nibbles), `block_q4_1` (fp16 d, fp16 m + 16 bytes).
    public var bytesPerBlock: Int {
        switch self {
        case .f32: 4
        case .f16: 2
        case .q8_0: 34
        case .q4_0: 18
        case .q4_1: 20
        }
    }

    /// Bits per weight, metadata included (e.g. 8.5 for q8_0).
    public var bitsPerWeight: Double { Double(bytesPerBlock * 8) / Double(blockSize) }

    /// Whether a row of `count` elements can be stored in this type.
    public func canStore(rowLength count: Int) -> Bool { count % blockSize == 0 }

    /// Bytes taken by `count` elements (which must be a whole number of blocks).
    public func byteCount(elements count: Int) -> Int { count / blockSize * bytesPerBlock }

    /// ggml's type id as written in GGUF tensor infos.
    public var ggmlTypeID: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q8_0: 8
        }
    }

    public init?(ggmlTypeID: UInt32) {
        guard let type = WeightType.allCases.first(where: { $0.ggmlTypeID == ggmlTypeID }) else { return nil }
        self = type
    }
}
