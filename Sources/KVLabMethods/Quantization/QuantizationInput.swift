/// How the scale-based KV codecs (uniform, non-uniform, outliers) treat values they cannot store:
/// NaN and ±infinity become 0 and finite values are clamped to ±65504, binary16's largest finite
/// value, because scales, zeros, levels and outliers are stored as fp16 and a single non-finite
/// or out-of-range value would otherwise poison the metadata of its whole group.
package enum QuantizationInput {
    /// The largest finite binary16 value.
    package static let halfMax: Float = 65504

    /// `x` made storable: 0 when not finite, else clamped to `-halfMax...halfMax`.
    @inline(__always)
    package static func clean(_ x: Float) -> Float {
        x.isFinite ? min(max(x, -halfMax), halfMax) : 0
    }
}
