/// ggml's `dequantize_row_q{2,3,4,5,6}_K` for 256-element super-blocks, arithmetic in the same
/// order so results are bit-identical. Layouts (bytes): q2_K scales[16] (4-bit scale | 4-bit min),
/// qs[64], d, dmin; q3_K hmask[32], qs[64], scales[12] (6-bit, packed), d; q4_K d, dmin,
/// scales[12] (6-bit scale and min pairs), qs[128]; q5_K as q4_K with qh[32] before qs; q6_K
/// ql[128], qh[64], scales[16] (int8), d. All d/dmin are fp16.
enum KQuantDecoder {
    static func decode(_ src: UnsafeRawPointer, count: Int, as type: WeightType, into dst: UnsafeMutablePointer<Float>) {
        for block in 0..<(count / 256) {
            let b = src + block * type.bytesPerBlock
            let y = dst + block * 256
            switch type {
            case .q2_K: q2_K(b, y)
            case .q3_K: q3_K(b, y)
            case .q4_K: q4_K(b, y, fifthBits: false)
            case .q5_K: q4_K(b, y, fifthBits: true)
            case .q6_K: q6_K(b, y)
            default: preconditionFailure("\(type) is not a K-quant")
            }
        }
    }

    @inline(__always)
    private static func half(_ b: UnsafeRawPointer, _ offset: Int) -> Float {
        Half.toFloat(b.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    private static func byte(_ b: UnsafeRawPointer, _ offset: Int) -> UInt8 { b.load(fromByteOffset: offset, as: UInt8.self) }

    /// Element 128h + 32j + l uses scale 8h + 2j + l/16 and bits 2j of qs[32h + l].
    private static func q2_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b, 80), dmin = half(b, 82)
        for h in 0..<2 {
            for j in 0..<4 {
                for part in 0..<2 {
                    let sc = byte(b, 8 * h + 2 * j + part)
                    let dl = d * Float(sc & 0xf), ml = dmin * Float(sc >> 4)
                    for l in (16 * part)..<(16 * part + 16) {
                        let q = (byte(b, 16 + 32 * h + l) >> (2 * j)) & 3
                        y[128 * h + 32 * j + l] = dl * Float(q) - ml
                    }
                }
            }
        }
    }

    /// The 6-bit scale s of q3_K's sub-block j: low 4 bits in scales[j] (j < 8) or its high nibble
    /// (scales[j − 8]), high 2 bits at bit 2(j/4) of scales[8 + j%4]; the value is s − 32.
    static func q3_KScale(_ scales: UnsafeRawPointer, _ j: Int) -> Int {
        let low = j < 8 ? byte(scales, j) & 0xf : byte(scales, j - 8) >> 4
        let high = (byte(scales, 8 + j % 4) >> (2 * (j / 4))) & 3
        return Int(low | high << 4) - 32
    }

    /// Element 128h + 32j + l: 2 bits at 2j of qs[32h + l], minus 4 unless bit 4h + j of hmask[l].
    private static func q3_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b, 108)
        for h in 0..<2 {
            for j in 0..<4 {
                let mask = UInt8(1) << (4 * h + j)
                for part in 0..<2 {
                    let dl = d * Float(q3_KScale(b + 96, 8 * h + 2 * j + part))
                    for l in (16 * part)..<(16 * part + 16) {
                        let low = Int((byte(b, 32 + 32 * h + l) >> (2 * j)) & 3)
                        let q = low - (byte(b, l) & mask != 0 ? 0 : 4)
                        y[128 * h + 32 * j + l] = dl * Float(q)
                    }
                }
            }
        }
    }

    /// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block j from the 12 packed bytes.
    static func scaleMin(_ q: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (byte(q, j) & 63, byte(q, j + 4) & 63) }
        return ((byte(q, j + 4) & 0xf) | (byte(q, j - 4) >> 6) << 4, (byte(q, j + 4) >> 4) | (byte(q, j) >> 6) << 4)
    }

    /// q4_K and q5_K: sub-blocks of 32, two per 32 code bytes (low nibbles, then high); q5_K's
    /// fifth bit of element 64k + 32p + l is bit 2k + p of qh[l].
    private static func q4_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, fifthBits: Bool) {
        let d = half(b, 0), dmin = half(b, 2)
        let qs = fifthBits ? 48 : 16
        for k in 0..<4 {
            for p in 0..<2 {
                let (sc, m) = scaleMin(b + 4, 2 * k + p)
                let d1 = d * Float(sc), m1 = dmin * Float(m)
                for l in 0..<32 {
                    let code = byte(b, qs + 32 * k + l)
                    var q = Int(p == 0 ? code & 0xf : code >> 4)
                    if fifthBits, byte(b, 16 + l) & (UInt8(1) << (2 * k + p)) != 0 { q += 16 }
                    y[64 * k + 32 * p + l] = d1 * Float(q) - m1
                }
            }
        }
    }

    /// Element 128h + 32p + l: low nibble of ql[64h + l + 32(p%2)] (high nibble for p ≥ 2), bits 2p
    /// of qh[32h + l] on top, minus 32; scale 8h + 2p + l/16.
    private static func q6_K(_ b: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = half(b, 208)
        for h in 0..<2 {
            for p in 0..<4 {
                for l in 0..<32 {
                    let low = byte(b, 64 * h + l + 32 * (p % 2))
                    let nibble = p < 2 ? low & 0xf : low >> 4
                    let high = (byte(b, 128 + 32 * h + l) >> (2 * p)) & 3
                    let q = Int(nibble | high << 4) - 32
                    let scale = b.load(fromByteOffset: 192 + 8 * h + 2 * p + l / 16, as: Int8.self)
                    y[128 * h + 32 * p + l] = d * Float(scale) * Float(q)
                }
            }
        }
    }
}
