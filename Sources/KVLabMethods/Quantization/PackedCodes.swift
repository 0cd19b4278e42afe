/// Dense bit packing of b-bit codes (1 ≤ b ≤ 8) in a byte buffer: the code at bit position `p`
/// occupies bits `p ..< p + b`, least significant bit first, so a 3-bit code may straddle two
/// bytes. Stores leave every other bit untouched, so groups can start at any bit offset and share
/// bytes with their neighbours.
package enum PackedCodes {
    /// Bytes holding `count` codes of `bits` bits: `⌈count·bits/8⌉`.
    @inline(__always)
    package static func byteCount(codes count: Int, bits: Int) -> Int {
        (count * bits + 7) / 8
    }

    /// Writes the low `bits` bits of `code` at bit position `bitPosition` of `bytes`.
    @inline(__always)
    package static func store(_ code: UInt8, bits: Int, at bitPosition: Int, in bytes: UnsafeMutablePointer<UInt8>) {
        let index = bitPosition >> 3
        let shift = bitPosition & 7
        let mask = UInt16((1 << bits) - 1) << shift
        let value = (UInt16(code) << shift) & mask
        bytes[index] = (bytes[index] & ~UInt8(truncatingIfNeeded: mask)) | UInt8(truncatingIfNeeded: value)
        // The second byte is touched only when the code straddles into it: it may lie past the buffer otherwise.
        if shift + bits > 8 {
            bytes[index + 1] = (bytes[index + 1] & ~UInt8(truncatingIfNeeded: mask >> 8)) | UInt8(truncatingIfNeeded: value >> 8)
        }
    }

    /// Reads the `bits`-bit code at bit position `bitPosition` of `bytes`.
    @inline(__always)
    package static func load(bits: Int, at bitPosition: Int, in bytes: UnsafePointer<UInt8>) -> UInt8 {
        let index = bitPosition >> 3
        let shift = bitPosition & 7
        var window = UInt16(bytes[index])
        if shift + bits > 8 { window |= UInt16(bytes[index + 1]) << 8 }
        return UInt8(truncatingIfNeeded: (window >> shift) & UInt16((1 << bits) - 1))
    }
}
