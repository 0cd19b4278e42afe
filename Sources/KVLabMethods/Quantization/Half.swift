/// IEEE binary16 conversions written out in integer arithmetic, so they are exact, vectorize,
/// and do not depend on the CPU's F16C support or on the compiler's half-float runtime calls.
/// Inlinable: the engine's f16 and ggml weight kernels call them per element, from another module.
public enum Half {
    /// binary16 bits → Float (exact for every input, subnormals, infinities and NaN included).
    @inlinable @inline(__always)
    public static func toFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let magnitude = UInt32(h & 0x7fff) << 13
        // Multiplying by 2^112 re-biases the exponent (15 → 127) and normalizes subnormals.
        var value = Float(bitPattern: magnitude) * Float(bitPattern: 0x7780_0000)
        if h & 0x7c00 == 0x7c00 { value = Float(bitPattern: magnitude | 0x7f80_0000) }
        return Float(bitPattern: value.bitPattern | sign)
    }

    /// Eight finite binary16 values → Float, vectorized (the f16 weight kernel's inner step;
    /// weights are checked finite at load, so infinities and NaN need no lane-wise fix-up).
    @inlinable @inline(__always)
    public static func toFloat(finite h: SIMD8<UInt16>) -> SIMD8<Float> {
        let wide = SIMD8<UInt32>(truncatingIfNeeded: h)
        // Shifts written as multiplications: Swift's SIMD shifts by a scalar are not vectorized.
        let sign = (wide & 0x8000) &* 65536
        let magnitude = (wide & 0x7fff) &* 8192
        let value = SIMD8<Float>(bitPattern: magnitude) * Float(bitPattern: 0x7780_0000)
        return SIMD8<Float>(bitPattern: SIMD8<UInt32>(bitPattern: value) | sign)
    }

    /// Float → binary16 bits, round to nearest even (as ggml's GGML_FP32_TO_FP16).
    @inlinable @inline(__always)
    public static func fromFloat(_ f: Float) -> UInt16 {
        Float16(f).bitPattern
    }
}

extension SIMD8 where Scalar == Float {
    @inlinable @inline(__always)
    public init(bitPattern: SIMD8<UInt32>) {
        self = unsafeBitCast(bitPattern, to: SIMD8<Float>.self)
    }
}

extension SIMD8 where Scalar == UInt32 {
    @inlinable @inline(__always)
    public init(bitPattern: SIMD8<Float>) {
        self = unsafeBitCast(bitPattern, to: SIMD8<UInt32>.self)
    }
}
