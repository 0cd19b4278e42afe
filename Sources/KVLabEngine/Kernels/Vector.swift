/// Short-vector kernels for attention and sampling: a vectorized exp and softmax, and
/// horizontal sums that avoid the standard library's lane-by-lane SIMD reductions.
enum Vector {
    /// e^x for 16 lanes: Cephes' expf polynomial (about 1 ulp), inputs clamped to the range
    /// where the result is a normal float.
    @inline(__always)
    static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        // Clamped by masked replacement: pointwiseMin/Max go lane by lane on the baseline x86-64
        // the Swift targets are built for (6.8× slower softmax than these two selects).
        var clamped = x.replacing(with: 88.3, where: x .> 88.3)
        clamped.replace(with: -87.3, where: clamped .< -87.3)
        // Adding 1.5·2^23 rounds to an integer n held in the low mantissa bits, all in SIMD
        // (generic Float→Int SIMD conversions are lane-by-lane with range checks).
        let shifted = clamped * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        let r = clamped - n * 0.693_359_375 + n * 2.121_944_4e-4
        var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
        p = p * r + 1.398_199_95e-3
        p = p * r + 8.333_451_9e-3
        p = p * r + 4.166_579_59e-2
        p = p * r + 0.166_666_655
        p = p * r + 0.500_000_01
        p = p * r * r + r + 1
        // Multiplying by 2^23 shifts n into the exponent field (SIMD shifts by a scalar scalarize).
        let exponent = (unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &+ 127) &* 8_388_608
        return p * unsafeBitCast(exponent, to: SIMD16<Float>.self)
    }

    /// In-place softmax over `count` values. Reads and writes whole 16-lane chunks, so the
    /// buffer must hold `count` rounded up to a multiple of 16; lanes past `count` end as 0.
    @inline(__always)
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
        guard count > 0 else { return }
        let raw = UnsafeMutableRawPointer(x)
        let chunks = (count + 15) / 16
        let padded = chunks * 16
        // Padding lanes become -inf, so they change neither the maximum nor (at ~1e-38 each
        // after the clamped exp) the sum; they are zeroed at the end.
        for i in count..<padded { x[i] = -.infinity }
        // A scalar maximum: Swift's pointwiseMax and max() on SIMD types go lane by lane.
        var maximum = x[0]
        for i in 1..<count where x[i] > maximum { maximum = x[i] }
        var sums = SIMD16<Float>()
        for chunk in 0..<chunks {
            let e = exp(raw.loadUnaligned(fromByteOffset: chunk * 64, as: SIMD16<Float>.self) - maximum)
            sums += e
            raw.storeBytes(of: e, toByteOffset: chunk * 64, as: SIMD16<Float>.self)
        }
        let inverse = 1 / sums.horizontalSum
        for chunk in 0..<chunks {
            raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: chunk * 64, as: SIMD16<Float>.self) * inverse,
                           toByteOffset: chunk * 64, as: SIMD16<Float>.self)
        }
        for i in count..<padded { x[i] = 0 }
    }
}

extension SIMD16 where Scalar == Float {
    /// Horizontal sum by halving (the standard library's `sum()` goes lane by lane).
    @inline(__always)
    var horizontalSum: Float { (lowHalf + highHalf).horizontalSum }
}

extension SIMD8 where Scalar == Float {
    /// Horizontal sum by halving.
    @inline(__always)
    var horizontalSum: Float {
        let four = lowHalf + highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }
}
