/// How a weight matrix is stored in memory and in files. The quantized types are ggml's block
/// formats, bit for bit, so GGUF files load without conversion and traffic counts are real.
public enum WeightType: String, Sendable, CaseIterable, Codable {
    // Most to fewest bits per weight: the workbench's weight knob cycles in this order.
    case f32
    case f16
    case bf16
    case q8_0
    case q6_K
    case q5_1
    case q5_K
    case q5_0
    case q4_1
    case q4_K
    case q4_0
    case iq4_nl
    case iq4_xs
    case q3_K
    case q2_K

    /// Elements per block: 1 for the float types, 32 for the `_0`/`_1` and iq4_nl blocks, 256
    /// for the K-quant and iq4_xs super-blocks.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q8_0, .q5_0, .q5_1, .q4_0, .q4_1, .iq4_nl: 32
        case .q6_K, .q5_K, .q4_K, .q3_K, .q2_K, .iq4_xs: 256
        }
    }

    /// Bytes per block, as ggml's `block_*` structs (layouts in BlockCodec, KQuantDecoder and IQ4Codec).
    public var bytesPerBlock: Int {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q8_0: 34
        case .q5_0: 22
        case .q5_1: 24
        case .q4_0, .iq4_nl: 18
        case .q4_1: 20
        case .q6_K: 210
        case .q5_K: 176
        case .q4_K: 144
        case .q3_K: 110
        case .q2_K: 84
        case .iq4_xs: 136
        }
    }

    /// Bits per weight, metadata included (e.g. 8.5 for q8_0, 4.5 for q4_K).
    public var bitsPerWeight: Double { Double(bytesPerBlock * 8) / Double(blockSize) }

    /// Whether a row of `count` elements can be stored in this type.
    public func canStore(rowLength count: Int) -> Bool { count % blockSize == 0 }

    /// Bytes taken by `count` elements (which must be a whole number of blocks).
    public func byteCount(elements count: Int) -> Int { count / blockSize * bytesPerBlock }

    /// The type rows of `count` elements are stored in when this type is asked for: this type if
    /// the row is a whole number of blocks, else llama.cpp's fallback (`tensor_type_fallback` in
    /// llama-quant.cpp: a 256-block type falls to a 32-block type of similar size, and anything
    /// that still does not fit to f16).
    public func storing(rowLength count: Int) -> WeightType {
        if canStore(rowLength: count) { return self }
        let fallback: WeightType = switch self {
        case .iq4_xs: .iq4_nl
        case .q2_K, .q3_K: .q4_0
        case .q4_K: .q5_0
        case .q5_K: .q5_1
        case .q6_K: .q8_0
        default: .f16
        }
        return fallback.canStore(rowLength: count) ? fallback : .f16
    }

    /// ggml's type id as written in GGUF tensor infos.
    public var ggmlTypeID: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0: 2
        case .q4_1: 3
        case .q5_0: 6
        case .q5_1: 7
        case .q8_0: 8
        case .q2_K: 10
        case .q3_K: 11
        case .q4_K: 12
        case .q5_K: 13
        case .q6_K: 14
        case .iq4_nl: 20
        case .iq4_xs: 23
        case .bf16: 30
        }
    }

    public init?(ggmlTypeID: UInt32) {
        guard let type = WeightType.allCases.first(where: { $0.ggmlTypeID == ggmlTypeID }) else { return nil }
        self = type
    }
}
