/// Row encoders and decoders for every `WeightType`, following ggml's reference
/// (`quantize_row_*_ref`, `dequantize_row_*`) exactly, rounding included.
package enum BlockCodec {
    /// Encodes `count` floats (a multiple of the block size) into `type`'s layout at `dst`.
    package static func encode(_ src: UnsafePointer<Float>, count: Int, as type: WeightType, into dst: UnsafeMutableRawPointer) {
        switch type {
        case .f32:
            dst.copyMemory(from: src, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst.storeBytes(of: Half.fromFloat(src[i]), toByteOffset: i * 2, as: UInt16.self) }
        case .q8_0:
            for block in 0..<(count / 32) {
                let x = src + block * 32
                let out = dst + block * 34
                var amax: Float = 0
                for j in 0..<32 { amax = max(amax, abs(x[j])) }
                let d = amax / 127
                let id: Float = d != 0 ? 1 / d : 0
                out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
                for j in 0..<32 {
                    out.storeBytes(of: Int8(truncatingFloat: (x[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self)
                }
            }
        case .q4_0:
            for block in 0..<(count / 32) {
                let x = src + block * 32
                let out = dst + block * 18
                var amax: Float = 0
                var signedMax: Float = 0
                for j in 0..<32 where amax < abs(x[j]) {
                    amax = abs(x[j])
                    signedMax = x[j]
                }
                let d = signedMax / -8
                let id: Float = d != 0 ? 1 / d : 0
                out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
                for j in 0..<16 {
                    let lo = min(15, Int8(truncatingFloat: x[j] * id + 8.5))
                    let hi = min(15, Int8(truncatingFloat: x[j + 16] * id + 8.5))
                    out.storeBytes(of: UInt8(lo) | UInt8(hi) << 4, toByteOffset: 2 + j, as: UInt8.self)
                }
            }
        case .q4_1:
            for block in 0..<(count / 32) {
                let x = src + block * 32
                let out = dst + block * 20
                var lo = Float.greatestFiniteMagnitude
                var hi = -Float.greatestFiniteMagnitude
                for j in 0..<32 {
                    lo = min(lo, x[j])
                    hi = max(hi, x[j])
                }
                let d = (hi - lo) / 15
                let id: Float = d != 0 ? 1 / d : 0
                out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
                out.storeBytes(of: Half.fromFloat(lo), toByteOffset: 2, as: UInt16.self)
                for j in 0..<16 {
                    let a = min(15, Int8(truncatingFloat: (x[j] - lo) * id + 0.5))
                    let b = min(15, Int8(truncatingFloat: (x[j + 16] - lo) * id + 0.5))
                    out.storeBytes(of: UInt8(a) | UInt8(b) << 4, toByteOffset: 4 + j, as: UInt8.self)
                }
            }
        }
    }

    /// Decodes `count` elements of `type` at `src` into floats.
    package static func decode(_ src: UnsafeRawPointer, count: Int, as type: WeightType, into dst: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16:
            for i in 0..<count { dst[i] = Half.toFloat(src.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
        case .q8_0:
            for block in 0..<(count / 32) {
                let b = src + block * 34
                let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
                for j in 0..<32 { dst[block * 32 + j] = Float(b.load(fromByteOffset: 2 + j, as: Int8.self)) * d }
            }
        case .q4_0:
            for block in 0..<(count / 32) {
                let b = src + block * 18
                let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
                for j in 0..<16 {
                    let q = b.load(fromByteOffset: 2 + j, as: UInt8.self)
                    dst[block * 32 + j] = Float(Int(q & 0x0f) - 8) * d
                    dst[block * 32 + j + 16] = Float(Int(q >> 4) - 8) * d
                }
            }
        case .q4_1:
            for block in 0..<(count / 32) {
                let b = src + block * 20
                let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
                let m = Half.toFloat(b.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
                for j in 0..<16 {
                    let q = b.load(fromByteOffset: 4 + j, as: UInt8.self)
                    dst[block * 32 + j] = Float(q & 0x0f) * d + m
                    dst[block * 32 + j + 16] = Float(q >> 4) * d + m
                }
            }
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
