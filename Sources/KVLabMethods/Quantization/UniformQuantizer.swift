/// Asymmetric uniform b-bit quantization of one group (KIVI): `scale = (max − min)/(2^b − 1)` and
/// `zero = min`, both stored as fp16; code `q = round((x − zero)/scale)` (halves away from zero, as
/// C's `roundf`) clamped to `0...2^b − 1`, decoded as `zero + q·scale`. Codes are computed against
/// the fp16-rounded scale and zero, so the decoder sees exactly what the encoder assumed. Inputs go
/// through `QuantizationInput.clean`; an empty group stores scale and zero 0.
///
/// A group is `count` floats read `stride` apart: stride 1 for a per-token group (consecutive
/// channels of one vector), the row length for a per-channel group (one channel over tokens).
public struct UniformQuantizer: Sendable, Hashable {
    /// The code widths KIVI-style methods use.
    public static let supportedBits = [8, 4, 3, 2]
    /// Metadata bytes per group: the fp16 scale and the fp16 zero.
    public static let metadataBytesPerGroup = 4

    /// Bits per code.
    public let bits: Int

    /// A quantizer with `bits`-bit codes, or nil unless `bits` is one of `supportedBits`.
    public init?(bits: Int) {
        guard Self.supportedBits.contains(bits) else { return nil }
        self.bits = bits
    }

    /// The largest code, `2^b − 1`.
    package var maxCode: Int { (1 << bits) - 1 }

    /// Bytes of packed payload for `count` codes: `⌈count·b/8⌉`.
    public func payloadByteCount(codes count: Int) -> Int {
        PackedCodes.byteCount(codes: count, bits: bits)
    }

    /// The fp16 scale and zero of a group whose (clean) values span `min...max`.
    package func parameters(min: Float, max: Float) -> (scaleBits: UInt16, zeroBits: UInt16) {
        (Half.fromFloat((max - min) / Float(maxCode)), Half.fromFloat(min))
    }

    /// Quantizes the group `source[0], source[stride], …` (`count` values), writing its codes at bit
    /// `bitOffset` of `codes`, and returns its fp16 scale and zero. Values marked in `outliers` (same
    /// stride; kept elsewhere, see `OutlierSplit`) are left out of the range and get an end code.
    package func quantize(_ source: UnsafePointer<Float>, count: Int, stride: Int, outliers: UnsafePointer<Bool>? = nil,
                  into codes: UnsafeMutablePointer<UInt8>, bitOffset: Int) -> (scaleBits: UInt16, zeroBits: UInt16) {
        let range = OutlierSplit.inlierRange(source, count: count, stride: stride, outliers: outliers)
        let stored = parameters(min: range.min, max: range.max)
        encode(source, count: count, stride: stride, scaleBits: stored.scaleBits, zeroBits: stored.zeroBits,
               into: codes, bitOffset: bitOffset)
        return stored
    }

    /// Writes the codes of a group against given parameters; values outside the range they cover
    /// (outliers kept elsewhere, see `OutlierSplit`) get the nearest end code.
    package func encode(_ source: UnsafePointer<Float>, count: Int, stride: Int, scaleBits: UInt16, zeroBits: UInt16,
                into codes: UnsafeMutablePointer<UInt8>, bitOffset: Int) {
        let scale = Half.toFloat(scaleBits)
        let zero = Half.toFloat(zeroBits)
        let top = Float(maxCode)
        for i in 0..<count {
            // A zero scale (constant group, or a range below fp16's smallest step) codes everything as 0.
            var q: Float = 0
            if scale > 0 {
                q = min(max(((QuantizationInput.clean(source[i * stride]) - zero) / scale).rounded(), 0), top)
            }
            PackedCodes.store(UInt8(q), bits: bits, at: bitOffset + i * bits, in: codes)
        }
    }

    /// Decodes `count` codes at bit `bitOffset` of `codes` into `destination[0], destination[stride], …`.
    package func dequantize(_ codes: UnsafePointer<UInt8>, bitOffset: Int, count: Int, scaleBits: UInt16, zeroBits: UInt16,
                    into destination: UnsafeMutablePointer<Float>, stride: Int) {
        let scale = Half.toFloat(scaleBits)
        let zero = Half.toFloat(zeroBits)
        for i in 0..<count {
            let q = PackedCodes.load(bits: bits, at: bitOffset + i * bits, in: codes)
            destination[i * stride] = zero + Float(q) * scale
        }
    }
}
