/// Row encoders and decoders for every `WeightType`, following ggml's reference
/// (`quantize_row_*_ref`, `dequantize_row_*`) exactly, rounding included. This file holds the float
/// types and the 32-element blocks; the 256-element super-blocks are in KQuantDecoder/KQuantEncoder
/// and the non-linear iq4 types in IQ4Codec.
package enum BlockCodec {
    /// Encodes `count` floats (a multiple of the block size) into `type`'s layout at `dst`.
    package static func encode(_ src: UnsafePointer<Float>, count: Int, as type: WeightType, into dst: UnsafeMutableRawPointer) {
        switch type {
        case .f32:
            dst.copyMemory(from: src, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst.storeBytes(of: Half.fromFloat(src[i]), toByteOffset: i * 2, as: UInt16.self) }
        case .bf16:
            for i in 0..<count { dst.storeBytes(of: bfloat16(src[i]), toByteOffset: i * 2, as: UInt16.self) }
        case .q8_0, .q5_0, .q5_1, .q4_0, .q4_1:
            for block in 0..<(count / 32) {
                encodeBlock(src + block * 32, as: type, into: dst + block * type.bytesPerBlock)
            }
        case .iq4_nl, .iq4_xs:
            IQ4Codec.encode(src, count: count, as: type, into: dst)
        case .q6_K, .q5_K, .q4_K, .q3_K, .q2_K:
            KQuantEncoder.encode(src, count: count, as: type, into: dst)
        }
    }

    /// Decodes `count` elements of `type` at `src` into floats.
    package static func decode(_ src: UnsafeRawPointer, count: Int, as type: WeightType, into dst: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst[i] = Half.toFloat(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        case .bf16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)
            }
        case .q8_0, .q5_0, .q5_1, .q4_0, .q4_1:
            for block in 0..<(count / 32) {
                decodeBlock(src + block * type.bytesPerBlock, as: type, into: dst + block * 32)
            }
        case .iq4_nl, .iq4_xs:
            IQ4Codec.decode(src, count: count, as: type, into: dst)
        case .q6_K, .q5_K, .q4_K, .q3_K, .q2_K:
            KQuantDecoder.decode(src, count: count, as: type, into: dst)
        }
    }

    /// ggml's `ggml_compute_fp32_to_bf16`: round to nearest even, NaN kept NaN (made quiet).
    static func bfloat16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if bits & 0x7fff_ffff > 0x7f80_0000 { return UInt16(bits >> 16) | 64 }
        return UInt16((UInt64(bits) + 0x7fff + UInt64((bits >> 16) & 1)) >> 16)
    }

    /// One 32-element block of the linear types (`quantize_row_q*_ref`).
    private static func encodeBlock(_ x: UnsafePointer<Float>, as type: WeightType, into out: UnsafeMutableRawPointer) {
        switch type {
        case .q8_0:
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(x[j])) }
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
            for j in 0..<32 {
                out.storeBytes(of: Int8(truncatingFloat: (x[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self)
            }
        case .q4_0, .q5_0:
            // d = (the value of largest magnitude)/−8 (−16 for q5), codes min(top, (int8_t)(x/d + 8.5 or 16.5)).
            let half: Float = type == .q4_0 ? 8 : 16
            var amax: Float = 0
            var signedMax: Float = 0
            for j in 0..<32 where amax < abs(x[j]) {
                amax = abs(x[j])
                signedMax = x[j]
            }
            let d = signedMax / -half
            let id: Float = d != 0 ? 1 / d : 0
            out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
            let top = Int8(2 * half - 1)
            storeCodes(type, into: out + 2) { UInt8(clamping: min(top, Int8(truncatingFloat: x[$0] * id + (half + 0.5)))) }
        case .q4_1, .q5_1:
            // d = (max − min)/15 (31 for q5), m = min, codes (x − min)/d + 0.5 truncated; for finite
            // blocks that lies in [0.5, top + 0.5], so clamping to top only guards overflow.
            var lo = Float.greatestFiniteMagnitude
            var hi = -Float.greatestFiniteMagnitude
            for j in 0..<32 {
                lo = min(lo, x[j])
                hi = max(hi, x[j])
            }
            let top: Int8 = type == .q4_1 ? 15 : 31
            let d = (hi - lo) / Float(top)
            let id: Float = d != 0 ? 1 / d : 0
            out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
            out.storeBytes(of: Half.fromFloat(lo), toByteOffset: 2, as: UInt16.self)
            storeCodes(type, into: out + 4) { UInt8(clamping: min(top, Int8(truncatingFloat: (x[$0] - lo) * id + 0.5))) }
        default:
            preconditionFailure("\(type) is not a 32-element linear block type")
        }
    }

    /// Writes the 32 codes of a 4- or 5-bit block as ggml lays them out: for q5 first a little-endian
    /// uint32 whose bit j is the fifth bit of code j; then 16 bytes holding code j in the low and
    /// code j + 16 in the high nibble of byte j.
    @inline(__always)
    private static func storeCodes(_ type: WeightType, into out: UnsafeMutableRawPointer, code: (Int) -> UInt8) {
        let fiveBit = type == .q5_0 || type == .q5_1
        let nibbles = fiveBit ? out + 4 : out
        var qh: UInt32 = 0
        for j in 0..<16 {
            let lo = code(j)
            let hi = code(j + 16)
            nibbles.storeBytes(of: (lo & 0x0f) | (hi & 0x0f) << 4, toByteOffset: j, as: UInt8.self)
            qh |= UInt32(lo >> 4) << j | UInt32(hi >> 4) << (j + 16)
        }
        if fiveBit { out.storeBytes(of: qh.littleEndian, as: UInt32.self) }
    }

    /// One 32-element block of the linear types (`dequantize_row_q*`): `q·d` for q8_0, `(q − 8)·d`
    /// and `(q − 16)·d` for q4_0 and q5_0, `q·d + m` for q4_1 and q5_1.
    private static func decodeBlock(_ b: UnsafeRawPointer, as type: WeightType, into y: UnsafeMutablePointer<Float>) {
        let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
        switch type {
        case .q8_0:
            for j in 0..<32 { y[j] = Float(b.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
        case .q4_0, .q5_0:
            let fiveBit = type == .q5_0
            let qh = fiveBit ? UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt32.self)) : 0
            let nibbles = b + (fiveBit ? 6 : 2)
            let offset = fiveBit ? 16 : 8
            for j in 0..<16 {
                let q = nibbles.load(fromByteOffset: j, as: UInt8.self)
                let lo = Int(q & 0x0f) | Int((qh >> j) & 1) << 4
                let hi = Int(q >> 4) | Int((qh >> (j + 16)) & 1) << 4
                y[j] = Float(lo - offset) * d
                y[j + 16] = Float(hi - offset) * d
            }
        case .q4_1, .q5_1:
            let fiveBit = type == .q5_1
            let m = Half.toFloat(b.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let qh = fiveBit ? UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) : 0
            let nibbles = b + (fiveBit ? 8 : 4)
            for j in 0..<16 {
                let q = nibbles.load(fromByteOffset: j, as: UInt8.self)
                let lo = Int(q & 0x0f) | Int((qh >> j) & 1) << 4
                let hi = Int(q >> 4) | Int((qh >> (j + 16)) & 1) << 4
                y[j] = Float(lo) * d + m
                y[j + 16] = Float(hi) * d + m
            }
        default:
            preconditionFailure("\(type) is not a 32-element linear block type")
        }
    }
}

extension Int8 {
    /// C's `(int8_t)x` for the small in-range values ggml's quantizers produce (truncation toward zero).
    @inline(__always)
    package init(truncatingFloat value: Float) {
        self = Int8(clamping: Int(value.isFinite ? value.rounded(.towardZero) : 0))
    }
}
