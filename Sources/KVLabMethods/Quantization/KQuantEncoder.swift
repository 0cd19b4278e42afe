/// ggml's reference K-quant quantizers (`quantize_row_q{2,3,4,5,6}_K_ref` and their helpers in
/// ggml-quants.c), which llama-quantize runs when it has no importance matrix. Ported statement by
/// statement, float operations in the same order and C's integer conversions kept, so the bytes
/// are identical to llama.cpp's (ggml's base library is built without FMA contraction).
enum KQuantEncoder {
    /// ggml's GROUP_MAX_EPS: groups whose largest magnitude is below it are all zero.
    static let groupMaxEps: Float = 1e-15

    static func encode(_ src: UnsafePointer<Float>, count: Int, as type: WeightType, into dst: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * 256) { floats in
            withUnsafeTemporaryAllocation(of: Int8.self, capacity: 2 * 256) { bytes in
                let scratch = Scratch(floats: floats.baseAddress!, bytes: bytes.baseAddress!)
                for block in 0..<(count / 256) {
                    let x = src + block * 256
                    let out = dst + block * type.bytesPerBlock
                    out.initializeMemory(as: UInt8.self, repeating: 0, count: type.bytesPerBlock)
                    switch type {
                    case .q2_K: q2_K(x, out, scratch)
                    case .q3_K: q3_K(x, out, scratch)
                    case .q4_K: q4_K(x, out, scratch, fifthBits: false)
                    case .q5_K: q4_K(x, out, scratch, fifthBits: true)
                    case .q6_K: q6_K(x, out, scratch)
                    default: preconditionFailure("\(type) is not a K-quant")
                    }
                }
            }
        }
    }

    /// Work space reused across super-blocks: `floats` holds per-group scales, mins and weights,
    /// `bytes` the codes L and the trial codes Laux.
    private struct Scratch {
        let floats: UnsafeMutablePointer<Float>
        let bytes: UnsafeMutablePointer<Int8>
        var scales: UnsafeMutablePointer<Float> { floats }
        var mins: UnsafeMutablePointer<Float> { floats + 16 }
        var weights: UnsafeMutablePointer<Float> { floats + 32 }
        var codes: UnsafeMutablePointer<Int8> { bytes }
        var trial: UnsafeMutablePointer<Int8> { bytes + 256 }
    }

    /// ggml's `nearest_int`: round half to even through the float bit pattern of x + 1.5·2^23
    /// (exact for |x| < 2^22, as ggml's callers keep it).
    @inline(__always)
    static func nearestInt(_ value: Float) -> Int32 {
        let shifted = value + 12_582_912
        return Int32(bitPattern: shifted.bitPattern & 0x7f_ffff) - 0x40_0000
    }

    @inline(__always)
    private static func store(_ value: UInt8, _ out: UnsafeMutableRawPointer, _ offset: Int) {
        out.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
    }

    @inline(__always)
    private static func load(_ out: UnsafeMutableRawPointer, _ offset: Int) -> UInt8 {
        out.load(fromByteOffset: offset, as: UInt8.self)
    }

    // MARK: - Group quantizers

    /// The element of largest magnitude (the first on ties), or nil for a group too small to scale.
    private static func largestMagnitude(_ x: UnsafePointer<Float>, _ n: Int) -> Float? {
        var maxValue: Float = 0, amax: Float = 0
        for i in 0..<n where abs(x[i]) > amax {
            amax = abs(x[i])
            maxValue = x[i]
        }
        return amax < groupMaxEps ? nil : maxValue
    }

    /// `make_qx_quants` with rmse_type 1 and no importance weights (weights x²): symmetric codes
    /// in −nmax..<nmax, written biased by nmax; returns the scale.
    private static func makeQXQuants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
        guard let maxValue = largestMagnitude(x, n) else {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let fmax = Float(nmax)
        func clamped(_ iscale: Float, _ i: Int) -> Int32 { max(Int32(-nmax), min(Int32(nmax - 1), nearestInt(iscale * x[i]))) }
        var iscale = Float(-nmax) / maxValue
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = clamped(iscale, i)
            L[i] = Int8(l + Int32(nmax))
            let w = x[i] * x[i]
            sumlx += w * x[i] * Float(l)
            suml2 += w * Float(l) * Float(l)
        }
        var scale: Float = suml2 != 0 ? sumlx / suml2 : 0
        var best = scale * sumlx
        for step in -9...9 where step != 0 {
            iscale = -(fmax + 0.1 * Float(step)) / maxValue
            sumlx = 0
            suml2 = 0
            for i in 0..<n {
                let l = clamped(iscale, i)
                let w = x[i] * x[i]
                sumlx += w * x[i] * Float(l)
                suml2 += w * Float(l) * Float(l)
            }
            if suml2 > 0, sumlx * sumlx > best * suml2 {
                for i in 0..<n { L[i] = Int8(clamped(iscale, i) + Int32(nmax)) }
                scale = sumlx / suml2
                best = scale * sumlx
            }
        }
        return scale
    }

    /// `make_q3_quants` with do_rmse: codes in −nmax..<nmax refined by coordinate descent,
    /// written biased by nmax; returns the scale.
    private static func makeQ3Quants(_ x: UnsafePointer<Float>, _ L: UnsafeMutablePointer<Int8>) -> Float {
        let n = 16, nmax: Int32 = 4
        guard let maxValue = largestMagnitude(x, n) else {
            for i in 0..<n { L[i] = 0 }
            return 0
        }
        let iscale = Float(-nmax) / maxValue
        var sumlx: Float = 0, suml2: Float = 0
        for i in 0..<n {
            let l = max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))
            L[i] = Int8(l)
            let w = x[i] * x[i]
            sumlx += w * x[i] * Float(l)
            suml2 += w * Float(l) * Float(l)
        }
        for _ in 0..<5 {
            var changed = 0
            for i in 0..<n {
                let w = x[i] * x[i]
                var slx = sumlx - w * x[i] * Float(L[i])
                if slx > 0 {
                    var sl2 = suml2 - w * Float(L[i]) * Float(L[i])
                    let newL = max(-nmax, min(nmax - 1, nearestInt(x[i] * sl2 / slx)))
                    if newL != Int32(L[i]) {
                        slx += w * x[i] * Float(newL)
                        sl2 += w * Float(newL) * Float(newL)
                        if sl2 > 0, slx * slx * suml2 > sumlx * sumlx * sl2 {
                            L[i] = Int8(newL)
                            sumlx = slx
                            suml2 = sl2
                            changed += 1
                        }
                    }
                }
            }
            if changed == 0 { break }
        }
        for i in 0..<n { L[i] += Int8(nmax) }
        return suml2 > 0 ? sumlx / suml2 : 0
    }

    /// `make_qkx2_quants`: asymmetric codes 0...nmax with a min, searching nstep + 1 scales for the
    /// least weighted error (absolute with `mad`, else squared). Returns (scale, −min).
    private static func makeQKX2Quants(_ n: Int, _ nmax: Int, _ x: UnsafePointer<Float>, _ weights: UnsafePointer<Float>,
                                       _ L: UnsafeMutablePointer<Int8>, _ Laux: UnsafeMutablePointer<Int8>,
                                       rmin: Float, rdelta: Float, nstep: Int, mad: Bool) -> (scale: Float, min: Float) {
        var minValue = x[0], maxValue = x[0]
        var sumW = weights[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < minValue { minValue = x[i] }
            if x[i] > maxValue { maxValue = x[i] }
            let w = weights[i]
            sumW += w
            sumX += w * x[i]
        }
        if minValue > 0 { minValue = 0 }
        if maxValue == minValue {
            for i in 0..<n { L[i] = 0 }
            return (0, -minValue)
        }
        func error(_ diff: Float) -> Float { mad ? abs(diff) : diff * diff }
        func code(_ iscale: Float, _ i: Int, _ lowest: Float) -> Int32 {
            max(0, min(Int32(nmax), nearestInt(iscale * (x[i] - lowest))))
        }
        var iscale = Float(nmax) / (maxValue - minValue)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            L[i] = Int8(truncatingIfNeeded: code(iscale, i, minValue))
            let diff = scale * Float(UInt8(bitPattern: L[i])) + minValue - x[i]
            bestError += weights[i] * error(diff)
        }
        for step in 0...nstep {
            iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (maxValue - minValue)
            var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
            for i in 0..<n {
                let l = code(iscale, i, minValue)
                Laux[i] = Int8(truncatingIfNeeded: l)
                let w = weights[i]
                sumL += w * Float(l)
                sumL2 += w * Float(l) * Float(l)
                sumXL += w * Float(l) * x[i]
            }
            let D = sumW * sumL2 - sumL * sumL
            if D > 0 {
                var thisScale = (sumW * sumXL - sumX * sumL) / D
                var thisMin = (sumL2 * sumX - sumL * sumXL) / D
                if thisMin > 0 {
                    thisMin = 0
                    thisScale = sumXL / sumL2
                }
                var curError: Float = 0
                for i in 0..<n {
                    let diff = thisScale * Float(UInt8(bitPattern: Laux[i])) + thisMin - x[i]
                    curError += weights[i] * error(diff)
                }
                if curError < bestError {
                    for i in 0..<n { L[i] = Laux[i] }
                    bestError = curError
                    scale = thisScale
                    minValue = thisMin
                }
            }
        }
        return (scale, -minValue)
    }

    // MARK: - Super-blocks

    /// Packs 2-bit codes as q2_K and q3_K store them: qs[32h + l] holds codes 128h + l + 32k at bits 2k.
    private static func packTwoBit(_ L: UnsafeMutablePointer<Int8>, into qs: UnsafeMutableRawPointer) {
        for h in 0..<2 {
            for l in 0..<32 {
                var byte: UInt8 = 0
                for k in 0..<4 { byte |= UInt8(bitPattern: L[128 * h + l + 32 * k]) << (2 * k) }
                qs.storeBytes(of: byte, toByteOffset: 32 * h + l, as: UInt8.self)
            }
        }
    }

    private static func q2_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ s: Scratch) {
        let q4scale: Float = 15
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<16 {
            for l in 0..<16 { s.weights[l] = abs(x[16 * j + l]) }
            (s.scales[j], s.mins[j]) = makeQKX2Quants(16, 3, x + 16 * j, s.weights, s.codes + 16 * j, s.trial,
                                                      rmin: -0.5, rdelta: 0.1, nstep: 15, mad: true)
            if s.scales[j] > maxScale { maxScale = s.scales[j] }
            if s.mins[j] > maxMin { maxMin = s.mins[j] }
        }
        if maxScale > 0 {
            let iscale = q4scale / maxScale
            for j in 0..<16 { store(UInt8(truncatingIfNeeded: nearestInt(iscale * s.scales[j])), out, j) }
            out.storeBytes(of: Half.fromFloat(maxScale / q4scale), toByteOffset: 80, as: UInt16.self)
        }
        if maxMin > 0 {
            let iscale = q4scale / maxMin
            for j in 0..<16 { store(load(out, j) | UInt8(truncatingIfNeeded: nearestInt(iscale * s.mins[j]) << 4), out, j) }
            out.storeBytes(of: Half.fromFloat(maxMin / q4scale), toByteOffset: 82, as: UInt16.self)
        }
        let d = Half.toFloat(out.load(fromByteOffset: 80, as: UInt16.self))
        let dmin = Half.toFloat(out.load(fromByteOffset: 82, as: UInt16.self))
        for j in 0..<16 {
            let dl = d * Float(load(out, j) & 0xf)
            if dl == 0 { continue }
            let ml = dmin * Float(load(out, j) >> 4)
            for i in 0..<16 {
                s.codes[16 * j + i] = Int8(max(0, min(3, nearestInt((x[16 * j + i] + ml) / dl))))
            }
        }
        packTwoBit(s.codes, into: out + 16)
    }

    private static func q3_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ s: Scratch) {
        var maxScale: Float = 0, amax: Float = 0
        for j in 0..<16 {
            s.scales[j] = makeQ3Quants(x + 16 * j, s.codes + 16 * j)
            if abs(s.scales[j]) > amax {
                amax = abs(s.scales[j])
                maxScale = s.scales[j]
            }
        }
        let scales = out + 96
        if maxScale != 0 {
            let iscale = -32 / maxScale
            for j in 0..<16 {
                let l = UInt8(max(-32, min(31, Int8(truncatingIfNeeded: nearestInt(iscale * s.scales[j])))) + 32)
                if j < 8 {
                    store(l & 0xf, scales, j)
                } else {
                    store(load(scales, j - 8) | (l & 0xf) << 4, scales, j - 8)
                }
                store(load(scales, 8 + j % 4) | (l >> 4) << (2 * (j / 4)), scales, 8 + j % 4)
            }
            out.storeBytes(of: Half.fromFloat(1 / iscale), toByteOffset: 108, as: UInt16.self)
        }
        let d = Half.toFloat(out.load(fromByteOffset: 108, as: UInt16.self))
        for j in 0..<16 {
            let dl = d * Float(KQuantDecoder.q3_KScale(scales, j))
            if dl == 0 { continue }
            for i in 0..<16 {
                s.codes[16 * j + i] = Int8(max(-4, min(3, nearestInt(x[16 * j + i] / dl))) + 4)
            }
        }
        // The high bit of code j goes to bit j/32 of hmask[j%32]; the low two bits stay.
        for j in 0..<256 where s.codes[j] > 3 {
            store(load(out, j % 32) | UInt8(1) << (j / 32), out, j % 32)
            s.codes[j] -= 4
        }
        packTwoBit(s.codes, into: out + 32)
    }

    /// q4_K (nmax 15) and q5_K (nmax 31): groups of 32 with 6-bit scales and mins.
    private static func q4_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ s: Scratch, fifthBits: Bool) {
        let nmax = fifthBits ? 31 : 15
        var maxScale: Float = 0, maxMin: Float = 0
        for j in 0..<8 {
            var sumX2: Float = 0
            for l in 0..<32 { sumX2 += x[32 * j + l] * x[32 * j + l] }
            let avX = (sumX2 / 32).squareRoot()
            for l in 0..<32 { s.weights[l] = avX + abs(x[32 * j + l]) }
            (s.scales[j], s.mins[j]) = makeQKX2Quants(32, nmax, x + 32 * j, s.weights, s.codes + 32 * j, s.trial,
                                                      rmin: fifthBits ? -0.5 : -1, rdelta: 0.1, nstep: fifthBits ? 15 : 20, mad: false)
            if s.scales[j] > maxScale { maxScale = s.scales[j] }
            if s.mins[j] > maxMin { maxMin = s.mins[j] }
        }
        let invScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let invMin: Float = maxMin > 0 ? 63 / maxMin : 0
        let scales = out + 4
        for j in 0..<8 {
            let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(invScale * s.scales[j])))
            let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(invMin * s.mins[j])))
            if j < 4 {
                store(ls, scales, j)
                store(lm, scales, j + 4)
            } else {
                store((ls & 0xf) | (lm & 0xf) << 4, scales, j + 4)
                store(load(scales, j - 4) | (ls >> 4) << 6, scales, j - 4)
                store(load(scales, j) | (lm >> 4) << 6, scales, j)
            }
        }
        out.storeBytes(of: Half.fromFloat(maxScale / 63), as: UInt16.self)
        out.storeBytes(of: Half.fromFloat(maxMin / 63), toByteOffset: 2, as: UInt16.self)
        let d = Half.toFloat(out.load(as: UInt16.self))
        let dmin = Half.toFloat(out.load(fromByteOffset: 2, as: UInt16.self))
        for j in 0..<8 {
            let (sc, m) = KQuantDecoder.scaleMin(scales, j)
            let dl = d * Float(sc)
            if dl == 0 { continue }
            let dm = dmin * Float(m)
            for i in 0..<32 {
                s.codes[32 * j + i] = Int8(max(0, min(Int32(nmax), nearestInt((x[32 * j + i] + dm) / dl))))
            }
        }
        let qs = fifthBits ? 48 : 16
        for k in 0..<4 {
            for l in 0..<32 {
                var low = UInt8(bitPattern: s.codes[64 * k + l]), high = UInt8(bitPattern: s.codes[64 * k + l + 32])
                if fifthBits {
                    var bits = load(out, 16 + l)
                    if low > 15 { low -= 16; bits |= UInt8(1) << (2 * k) }
                    if high > 15 { high -= 16; bits |= UInt8(2) << (2 * k) }
                    store(bits, out, 16 + l)
                }
                store(low | high << 4, out, qs + 32 * k + l)
            }
        }
    }

    private static func q6_K(_ x: UnsafePointer<Float>, _ out: UnsafeMutableRawPointer, _ s: Scratch) {
        var maxScale: Float = 0, maxAbsScale: Float = 0
        for ib in 0..<16 {
            let scale = makeQXQuants(16, 32, x + 16 * ib, s.codes + 16 * ib)
            s.scales[ib] = scale
            if abs(scale) > maxAbsScale {
                maxAbsScale = abs(scale)
                maxScale = scale
            }
        }
        if maxAbsScale < groupMaxEps { return }  // the block stays all zero, d = +0
        let iscale = -128 / maxScale
        out.storeBytes(of: Half.fromFloat(1 / iscale), toByteOffset: 208, as: UInt16.self)
        for ib in 0..<16 {
            out.storeBytes(of: Int8(truncatingIfNeeded: min(127, nearestInt(iscale * s.scales[ib]))), toByteOffset: 192 + ib, as: Int8.self)
        }
        let d = Half.toFloat(out.load(fromByteOffset: 208, as: UInt16.self))
        for j in 0..<16 {
            let dl = d * Float(out.load(fromByteOffset: 192 + j, as: Int8.self))
            if dl == 0 { continue }
            for i in 0..<16 {
                s.codes[16 * j + i] = Int8(max(-32, min(31, nearestInt(x[16 * j + i] / dl))) + 32)
            }
        }
        for h in 0..<2 {
            for l in 0..<32 {
                let q = (0..<4).map { UInt8(bitPattern: s.codes[128 * h + l + 32 * $0]) }
                store((q[0] & 0xf) | (q[2] & 0xf) << 4, out, 64 * h + l)
                store((q[1] & 0xf) | (q[3] & 0xf) << 4, out, 64 * h + l + 32)
                store((q[0] >> 4) | (q[1] >> 4) << 2 | (q[2] >> 4) << 4 | (q[3] >> 4) << 6, out, 128 + 32 * h + l)
            }
        }
    }
}
