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
                switch self {
                case .q8_0: BlockCodec.encode(x, count: Self.blockSize, as: .q8_0, into: out)
                case .q4_0: BlockCodec.encode(x, count: Self.blockSize, as: .q4_0, into: out)
                case .q4_1: BlockCodec.encode(x, count: Self.blockSize, as: .q4_1, into: out)
                case .q5_0: Self.encodeQ5_0(x, into: out)
                case .q5_1: Self.encodeQ5_1(x, into: out)
                }
            }
        }
    }

    /// Decodes `count` elements (a multiple of 32) from consecutive blocks at `source`.
    package func decode(_ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>) {
        switch self {
        case .q8_0: BlockCodec.decode(source, count: count, as: .q8_0, into: destination)
        case .q4_0: BlockCodec.decode(source, count: count, as: .q4_0, into: destination)
        case .q4_1: BlockCodec.decode(source, count: count, as: .q4_1, into: destination)
        case .q5_0, .q5_1:
            for block in 0..<(count / Self.blockSize) {
                Self.decodeQ5(source + block * bytesPerBlock, hasMin: self == .q5_1,
                              into: destination + block * Self.blockSize)
            }
        }
    }

    /// ggml's `quantize_row_q5_0_ref` for one block: d = (the value of largest magnitude)/−16,
    /// codes `min(31, (int8_t)(x/d + 16.5))`.
    private static func encodeQ5_0(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        var amax: Float = 0
        var signedMax: Float = 0
        for j in 0..<blockSize where amax < abs(x[j]) {
            amax = abs(x[j])
            signedMax = x[j]
        }
        let d = signedMax / -16
        let id: Float = d != 0 ? 1 / d : 0
        out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
        storeQ5Codes(into: out + 2) { UInt8(clamping: min(31, Int8(truncatingFloat: x[$0] * id + 16.5))) }
    }

    /// ggml's `quantize_row_q5_1_ref` for one block: d = (max − min)/31, m = min,
    /// codes `(uint8_t)((x − min)/d + 0.5)`.
    private static func encodeQ5_1(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
        var lo = Float.greatestFiniteMagnitude
        var hi = -Float.greatestFiniteMagnitude
        for j in 0..<blockSize {
            lo = min(lo, x[j])
            hi = max(hi, x[j])
        }
        let d = (hi - lo) / 31
        let id: Float = d != 0 ? 1 / d : 0
        out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
        out.storeBytes(of: Half.fromFloat(lo), toByteOffset: 2, as: UInt16.self)
        // (x − min)/d + 0.5 lies in [0.5, 31.5] for finite blocks, so clamping to 31 only guards overflow.
        storeQ5Codes(into: out + 4) { UInt8(clamping: min(31, Int8(truncatingFloat: (x[$0] - lo) * id + 0.5))) }
    }

    /// Writes the 32 five-bit codes of a q5 block as ggml lays them out: a little-endian uint32 whose
    /// bit j is the fifth bit of code j, then 16 bytes holding code j in the low and j + 16 in the
    /// high nibble of byte j.
    @inline(__always)
    private static func storeQ5Codes(into out: UnsafeMutableRawPointer, code: (Int) -> UInt8) {
        var qh: UInt32 = 0
        for j in 0..<(blockSize / 2) {
            let lo = code(j)
            let hi = code(j + blockSize / 2)
            out.storeBytes(of: (lo & 0x0f) | (hi & 0x0f) << 4, toByteOffset: 4 + j, as: UInt8.self)
            qh |= UInt32(lo >> 4) << j | UInt32(hi >> 4) << (j + blockSize / 2)
        }
        out.storeBytes(of: qh.littleEndian, as: UInt32.self)
    }

    /// ggml's `dequantize_row_q5_0` (`(q − 16)·d`) and `dequantize_row_q5_1` (`q·d + m`) for one block.
    private static func decodeQ5(_ block: UnsafeRawPointer, hasMin: Bool, into y: UnsafeMutablePointer<Float>) {
        let d = Half.toFloat(block.loadUnaligned(as: UInt16.self))
        let m = hasMin ? Half.toFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)) : 0
        let codes = block + (hasMin ? 4 : 2)
        let qh = UInt32(littleEndian: codes.loadUnaligned(as: UInt32.self))
        for j in 0..<(blockSize / 2) {
            let q = codes.load(fromByteOffset: 4 + j, as: UInt8.self)
            let lo = Int(q & 0x0f) | Int((qh >> j) & 1) << 4
            let hi = Int(q >> 4) | Int((qh >> (j + blockSize / 2)) & 1) << 4
            if hasMin {
                y[j] = Float(lo) * d + m
                y[j + blockSize / 2] = Float(hi) * d + m
            } else {
                y[j] = Float(lo - 16) * d
                y[j + blockSize / 2] = Float(hi - 16) * d
            }
        }
    }
}
