import Dispatch
import KVLabMethods

/// Matrix-vector products that read weights in their storage type (decode path). Hand-written
/// SIMD because, for small models, BLAS call overhead would dominate; each output row is summed
/// by one thread in a fixed order, so results do not depend on the thread count.
enum MatVec {
    /// Matrices smaller than this many elements run on one thread (splitting costs more).
    static let parallelThreshold = 1 << 16

    /// `out[r] = Σ_c w[r, c] · x[c]` for every row, counting the bytes moved into `ledger`.
    static func multiply(_ w: WeightMatrix, _ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                         threads: Int, ledger: inout IOLedger) {
        if threads > 1, w.elementCount >= parallelThreshold {
            let chunks = threads
            let rowsPerChunk = (w.rows + chunks - 1) / chunks
            let shared = SendablePointers(x: x, out: out)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = chunk * rowsPerChunk
                let end = min(w.rows, start + rowsPerChunk)
                if start < end { rows(w, shared.x, shared.out, start..<end) }
            }
        } else {
            rows(w, x, out, 0..<w.rows)
        }
        ledger.read(.weights, w.byteCount)
        ledger.read(.activations, w.cols * 4)
        ledger.write(.activations, w.rows * 4)
    }

    private struct SendablePointers: @unchecked Sendable {
        let x: UnsafePointer<Float>
        let out: UnsafeMutablePointer<Float>
    }

    @inline(__always)
    private static func rows(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ range: Range<Int>) {
        let n = w.cols
        switch w.type {
        case .f32: for r in range { out[r] = dotF32(w.row(r), x, n) }
        case .f16: for r in range { out[r] = dotF16(w.row(r), x, n) }
        case .q8_0: for r in range { out[r] = dotQ8_0(w.row(r), x, n) }
        case .q4_0: for r in range { out[r] = dotQ4_0(w.row(r), x, n) }
        case .q4_1: for r in range { out[r] = dotQ4_1(w.row(r), x, n) }
        case .bf16, .q5_0, .q5_1, .iq4_nl, .q6_K, .q5_K, .q4_K, .q3_K, .q2_K, .iq4_xs:
            // No type-specific kernel yet: decode each row (exactly, as the reference does) and take an f32 dot.
            withUnsafeTemporaryAllocation(of: Float.self, capacity: n) { row in
                for r in range {
                    w.decodeRow(r, into: row.baseAddress!)
                    out[r] = dotF32(UnsafeRawPointer(row.baseAddress!), x, n)
                }
            }
        }
    }

    @inline(__always)
    static func dotF32(_ a: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let xr = UnsafeRawPointer(x)
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        var i = 0
        while i + 32 <= n {
            acc0 += a.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            acc1 += a.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self) * xr.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self)
            i += 32
        }
        while i + 8 <= n {
            let p = a.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) * xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc0 += SIMD16(lowHalf: p, highHalf: .zero)
            i += 8
        }
        var sum = (acc0 + acc1).horizontalSum
        while i < n {
            sum += a.loadUnaligned(fromByteOffset: i * 4, as: Float.self) * x[i]
            i += 1
        }
        return sum
    }

    @inline(__always)
    static func dotF16(_ a: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let xr = UnsafeRawPointer(x)
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var i = 0
        while i + 16 <= n {
            acc0 += Half.toFloat(finite: a.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)) * xr.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc1 += Half.toFloat(finite: a.loadUnaligned(fromByteOffset: i * 2 + 16, as: SIMD8<UInt16>.self)) * xr.loadUnaligned(fromByteOffset: i * 4 + 32, as: SIMD8<Float>.self)
            i += 16
        }
        var sum = (acc0 + acc1).horizontalSum
        while i < n {
            sum += Half.toFloat(a.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) * x[i]
            i += 1
        }
        return sum
    }

    @inline(__always)
    static func dotQ8_0(_ a: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let xr = UnsafeRawPointer(x)
        var sum = SIMD16<Float>()
        for block in 0..<(n / 32) {
            let b = a + block * 34
            let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
            let q0 = Self.floats(signedBytes: b.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self))
            let q1 = Self.floats(signedBytes: b.loadUnaligned(fromByteOffset: 18, as: SIMD16<UInt8>.self))
            let xs0 = xr.loadUnaligned(fromByteOffset: block * 128, as: SIMD16<Float>.self)
            let xs1 = xr.loadUnaligned(fromByteOffset: block * 128 + 64, as: SIMD16<Float>.self)
            sum += (q0 * xs0 + q1 * xs1) * d
        }
        return sum.horizontalSum
    }

    @inline(__always)
    static func dotQ4_0(_ a: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let xr = UnsafeRawPointer(x)
        var sum = SIMD16<Float>()
        for block in 0..<(n / 32) {
            let b = a + block * 18
            let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
            let q = b.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self)
            let lo = Self.floats(unsignedBytes: q & 0x0f) - 8
            let hi = Self.floats(unsignedBytes: q & 0xf0) * 0.0625 - 8
            let xs0 = xr.loadUnaligned(fromByteOffset: block * 128, as: SIMD16<Float>.self)
            let xs1 = xr.loadUnaligned(fromByteOffset: block * 128 + 64, as: SIMD16<Float>.self)
            sum += (lo * xs0 + hi * xs1) * d
        }
        return sum.horizontalSum
    }

    @inline(__always)
    static func dotQ4_1(_ a: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let xr = UnsafeRawPointer(x)
        var sum = SIMD16<Float>()
        for block in 0..<(n / 32) {
            let b = a + block * 20
            let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
            let m = Half.toFloat(b.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let q = b.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
            let lo = Self.floats(unsignedBytes: q & 0x0f) * d + m
            let hi = Self.floats(unsignedBytes: q & 0xf0) * (d * 0.0625) + m
            let xs0 = xr.loadUnaligned(fromByteOffset: block * 128, as: SIMD16<Float>.self)
            let xs1 = xr.loadUnaligned(fromByteOffset: block * 128 + 64, as: SIMD16<Float>.self)
            sum += lo * xs0 + hi * xs1
        }
        return sum.horizontalSum
    }

    /// Bytes 0...255 → Float through the exponent trick `bits(2^23 + u) - 2^23`: the generic
    /// SIMD integer-to-float conversions go lane by lane.
    @inline(__always)
    static func floats(unsignedBytes u: SIMD16<UInt8>) -> SIMD16<Float> {
        let wide = SIMD16<UInt32>(truncatingIfNeeded: u) | 0x4B00_0000
        return unsafeBitCast(wide, to: SIMD16<Float>.self) - 8_388_608
    }

    /// Two's-complement bytes (int8 codes) → Float, via the unsigned trick with a bias of 128.
    @inline(__always)
    static func floats(signedBytes q: SIMD16<UInt8>) -> SIMD16<Float> {
        floats(unsignedBytes: q ^ 0x80) - 128
    }
}
