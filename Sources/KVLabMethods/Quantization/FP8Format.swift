/// 8-bit floats for the KV cache, as vLLM stores them (`fp8_e4m3`, `fp8_e5m2`) with an fp32 scale
/// per tensor or per head: stored = fp8(x / scale), decoded = float(stored) · scale.
///
/// - `e4m3` is OCP E4M3FN (torch `float8_e4m3fn`): bias 7, no infinities, S.1111.111 is NaN, max 448.
/// - `e5m2` is IEEE-like (torch `float8_e5m2`): bias 15, S.11111.00 is ±∞, max 57344.
///
/// Encoding rounds to nearest, ties to even, and saturates: finite values beyond the largest
/// finite value become ±max (vLLM clamps before casting). ±∞ saturates in e4m3, which has no
/// infinity, and stays ±∞ in e5m2; NaN stays NaN (0x7F in e4m3, 0x7E in e5m2, sign kept).
public enum FP8Format: String, Sendable, CaseIterable, Codable {
    case e4m3 = "fp8_e4m3"
    case e5m2 = "fp8_e5m2"

    /// Stored mantissa bits.
    package var mantissaBits: Int {
        switch self {
        case .e4m3: 3
        case .e5m2: 2
        }
    }

    /// Exponent bias.
    package var bias: Int {
        switch self {
        case .e4m3: 7
        case .e5m2: 15
        }
    }

    /// The code of the largest finite value (0x7E = 448, 0x7B = 57344).
    package var maxCode: UInt8 {
        switch self {
        case .e4m3: 0x7e
        case .e5m2: 0x7b
        }
    }

    /// The largest finite value: 448 for e4m3, 57344 for e5m2.
    public var maxFinite: Float {
        switch self {
        case .e4m3: 448
        case .e5m2: 57344
        }
    }

    /// The fp32 scale that maps `absMax` onto `maxFinite` (vLLM's dynamic scale); 1 when `absMax`
    /// is 0 or not finite, so an all-zero tensor still gets a usable scale.
    public func scale(absMax: Float) -> Float {
        absMax.isFinite && absMax > 0 ? absMax / maxFinite : 1
    }

    /// The largest finite magnitude among `count` values (0 when there is none): over a whole
    /// tensor for a per-tensor scale, over one head's values for a per-head scale.
    package static func absMax(_ source: UnsafePointer<Float>, count: Int) -> Float {
        var amax: Float = 0
        for i in 0..<count where source[i].isFinite { amax = max(amax, abs(source[i])) }
        return amax
    }

    /// `x` as an fp8 code.
    package func encode(_ x: Float) -> UInt8 {
        let sign: UInt8 = x.sign == .minus ? 0x80 : 0
        if x.isNaN { return sign | (self == .e4m3 ? 0x7f : 0x7e) }
        if x.isInfinite { return sign | (self == .e5m2 ? 0x7c : maxCode) }
        let a = abs(x)
        let m = mantissaBits
        let magnitude: UInt32
        if a < Float(sign: .plus, exponent: 1 - bias, significand: 1) {
            // Subnormal: a whole number of steps 2^(1−bias−m). Scaling by a power of two is exact, so
            // rounding sees the true quotient; 2^m steps is the smallest normal's code, as it should be.
            magnitude = UInt32((a * Float(sign: .plus, exponent: bias - 1 + m, significand: 1)).rounded(.toNearestOrEven))
        } else {
            // Round float32's 23-bit fraction to m bits, ties to even; a carry moves into the exponent,
            // then re-bias the exponent from 127 to `bias`.
            let bits = a.bitPattern
            let shift = UInt32(23 - m)
            let rounded = (bits + (1 << (shift - 1)) - 1 + ((bits >> shift) & 1)) >> shift
            magnitude = rounded - (UInt32(127 - bias) << UInt32(m))
        }
        return sign | UInt8(min(magnitude, UInt32(maxCode)))
    }

    /// The value of fp8 code `code`.
    package func decode(_ code: UInt8) -> Float {
        let m = mantissaBits
        let exponentField = Int(code & 0x7f) >> m
        let mantissa = Int(code) & ((1 << m) - 1)
        let magnitude: Float
        if self == .e4m3 && code & 0x7f == 0x7f {
            magnitude = .nan
        } else if self == .e5m2 && exponentField == 31 {
            magnitude = mantissa == 0 ? .infinity : .nan
        } else if exponentField == 0 {
            magnitude = Float(mantissa) * Float(sign: .plus, exponent: 1 - bias - m, significand: 1)
        } else {
            magnitude = Float(bitPattern: UInt32(exponentField - bias + 127) << 23 | UInt32(mantissa) << UInt32(23 - m))
        }
        return code & 0x80 != 0 ? -magnitude : magnitude
    }

    /// Encodes `count` values divided by `scale` (multiplied by its inverse, as vLLM does).
    package func encode(_ source: UnsafePointer<Float>, count: Int, scale: Float, into codes: UnsafeMutablePointer<UInt8>) {
        let inverse = 1 / scale
        for i in 0..<count { codes[i] = encode(source[i] * inverse) }
    }

    /// Decodes `count` codes multiplied by `scale`.
    package func decode(_ codes: UnsafePointer<UInt8>, count: Int, scale: Float, into destination: UnsafeMutablePointer<Float>) {
        for i in 0..<count { destination[i] = decode(codes[i]) * scale }
    }
}
