/// llama.cpp's block formats for the KV cache (`--cache-type-k/v`): 32 elements along the head
/// dimension per block, bit for bit as ggml's `quantize_row_*_ref` and `dequantize_row_*` write
/// and read them. q8_0, q4_0 and q4_1 share `BlockCodec` with the weights; q5_0 and q5_1 live here.
///
/// Non-finite inputs are encoded as 0 (ggml would let one infinity turn the block's scale into
/// infinity); finite inputs give ggml's bytes exactly, even where the fp16 scale overflows.
public enum KVBlockFormat: String, Sendable, CaseIterable, Codable {
    case q8_0
    case q4_0
    case q4_1
    case q5_0
    case q5_1

    /// Elements per block.
    public static let blockSize = 32

    /// Bytes per block: fp16 d (and fp16 m for `_1`), for q5 a little-endian uint32 of fifth bits,
    /// then the low bits (8 for q8_0, two 4-bit codes per byte otherwise).
    public var bytesPerBlock: Int {
        switch self {
        case .q8_0: 34
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        }
    }

    /// Bits per element, metadata included (e.g. 5.5 for q5_0).
    public var bitsPerElement: Double { Double(bytesPerBlock * 8) / Double(Self.blockSize) }

    /// Bytes taken by `count` elements (a whole number of blocks).
    public func byteCount(elements count: Int) -> Int { count / Self.blockSize * bytesPerBlock }

    /// Encodes `count` floats (a multiple of 32) into consecutive blocks at `destination`.
    package func encode(_ source: UnsafePointer<Float>, count: Int, into destination: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.blockSize) { scratch in
            let x = scratch.baseAddress!
            for block in 0..<(count / Self.blockSize) {
                for j in 0..<Self.blockSize {
                    let value = source[block * Self.blockSize + j]
                    x[j] = value.isFinite ? value : 0
                }
                let out = destination + block * bytesPerBlock
                BlockCodec.encode(x, count: Self.blockSize, as: weightType, into: out)
            }
        }
    }

    /// Decodes `count` elements (a multiple of 32) from consecutive blocks at `source`.
    package func decode(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        BlockCodec.decode(source, count: count, as: weightType, into: destination)
    }

    /// The weight type with the same block layout.
    private var weightType: WeightType {
        switch self {
        case .q8_0: .q8_0
        case .q4_0: .q4_0
        case .q4_1: .q4_1
        case .q5_0: .q5_0
        case .q5_1: .q5_1
        }
    }
}
