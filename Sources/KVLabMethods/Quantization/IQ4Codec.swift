/// ggml's non-linear 4-bit types: each 4-bit code indexes the table `kvalues_iq4nl`. iq4_nl is a
/// 32-element block (fp16 d, 16 bytes of codes); iq4_xs a 256-element super-block (fp16 d, 2 bytes
/// of high scale bits, 4 bytes of low scale bits, 128 bytes of codes) whose eight sub-blocks of 32
/// carry 6-bit scales. The encoder is `quantize_row_iq4_nl_impl` with no importance weights and
/// ntry 7, as `quantize_iq4_nl`/`quantize_iq4_xs` (what llama-quantize calls) run it.
enum IQ4Codec {
    static let values: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    static func decode(_ src: UnsafeRawPointer, count: Int, as type: WeightType, into dst: UnsafeMutablePointer<Float>) {
        for block in 0..<(count / type.blockSize) {
            let b = src + block * type.bytesPerBlock
            let y = dst + block * type.blockSize
            let d = Half.toFloat(b.loadUnaligned(as: UInt16.self))
            if type == .iq4_nl {
                decodeCodes(b + 2, scale: d, into: y)
                continue
            }
            let high = UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            for ib in 0..<8 {
                let low = (b.load(fromByteOffset: 4 + ib / 2, as: UInt8.self) >> (4 * (ib % 2))) & 0xf
                let scale = Int(low) | Int((high >> (2 * ib)) & 3) << 4
                decodeCodes(b + 8 + 16 * ib, scale: d * Float(scale - 32), into: y + 32 * ib)
            }
        }
    }

    /// 16 bytes: code j in the low nibble of byte j, code j + 16 in the high nibble.
    @inline(__always)
    private static func decodeCodes(_ qs: UnsafeRawPointer, scale: Float, into y: UnsafeMutablePointer<Float>) {
        for j in 0..<16 {
            let q = qs.load(fromByteOffset: j, as: UInt8.self)
            y[j] = scale * Float(values[Int(q & 0xf)])
            y[j + 16] = scale * Float(values[Int(q >> 4)])
        }
    }

    static func encode(_ src: UnsafePointer<Float>, count: Int, as type: WeightType, into dst: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 256) { codes in
            for block in 0..<(count / type.blockSize) {
                encodeBlock(src + block * type.blockSize, size: type.blockSize, codes: codes.baseAddress!,
                            into: dst + block * type.bytesPerBlock)
            }
        }
    }

    /// ggml's `best_index_int8`: the table index nearest `x` (ties to the upper one).
    @inline(__always)
    private static func bestIndex(_ x: Float) -> Int {
        if x <= Float(values[0]) { return 0 }
        if x >= Float(values[15]) { return 15 }
        var lo = 0, hi = 15
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if x < Float(values[mid]) { hi = mid } else { lo = mid }
        }
        return x - Float(values[hi - 1]) < Float(values[hi]) - x ? hi - 1 : hi
    }

    private static func encodeBlock(_ x: UnsafePointer<Float>, size: Int, codes L: UnsafeMutablePointer<UInt8>,
                                    into out: UnsafeMutableRawPointer) {
        let subBlocks = size / 32
        var scales = [Float](repeating: 0, count: subBlocks)
        var maxScale: Float = 0, amaxScale: Float = 0
        let v0 = Float(values[0])
        for ib in 0..<subBlocks {
            let xb = x + 32 * ib
            let Lb = L + 32 * ib
            var amax: Float = 0, maxValue: Float = 0
            for j in 0..<32 where abs(xb[j]) > amax {
                amax = abs(xb[j])
                maxValue = xb[j]
            }
            if amax < KQuantEncoder.groupMaxEps {
                scales[ib] = 0
                continue
            }
            var d = -maxValue / v0
            var id = 1 / d
            var sumqx: Float = 0, sumq2: Float = 0
            for j in 0..<32 {
                let l = bestIndex(id * xb[j])
                Lb[j] = UInt8(l)
                let q = Float(values[l]), w = xb[j] * xb[j]
                sumqx += w * q * xb[j]
                sumq2 += w * q * q
            }
            d = sumq2 > 0 ? sumqx / sumq2 : 0
            var best = d * sumqx
            for itry in -7...7 {
                id = Float(itry + Int(values[0])) / maxValue
                sumqx = 0
                sumq2 = 0
                for j in 0..<32 {
                    let q = Float(values[bestIndex(id * xb[j])]), w = xb[j] * xb[j]
                    sumqx += w * q * xb[j]
                    sumq2 += w * q * q
                }
                if sumq2 > 0, sumqx * sumqx > best * sumq2 {
                    d = sumqx / sumq2
                    best = d * sumqx
                }
            }
            scales[ib] = d
            if abs(d) > amaxScale {
                amaxScale = abs(d)
                maxScale = d
            }
        }

        let codeBytes: UnsafeMutableRawPointer
        if subBlocks > 1 {
            let d = -maxScale / 32
            out.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
            let id: Float = d != 0 ? 1 / d : 0
            var high: UInt16 = 0
            for ib in 0..<subBlocks {
                let l = max(-32, min(31, Int(KQuantEncoder.nearestInt(id * scales[ib]))))
                let dl = d * Float(l)
                let idl: Float = dl != 0 ? 1 / dl : 0
                for j in 0..<32 { L[32 * ib + j] = UInt8(bestIndex(idl * x[32 * ib + j])) }
                let biased = l + 32
                let lowOffset = 4 + ib / 2
                let previous = ib % 2 == 0 ? 0 : out.load(fromByteOffset: lowOffset, as: UInt8.self)
                out.storeBytes(of: previous | UInt8(biased & 0xf) << (4 * (ib % 2)), toByteOffset: lowOffset, as: UInt8.self)
                high |= UInt16(biased >> 4) << (2 * (ib % 8))
            }
            out.storeBytes(of: high.littleEndian, toByteOffset: 2, as: UInt16.self)
            codeBytes = out + 8
        } else {
            out.storeBytes(of: Half.fromFloat(scales[0]), as: UInt16.self)
            let id: Float = scales[0] != 0 ? 1 / scales[0] : 0
            for j in 0..<32 { L[j] = UInt8(bestIndex(id * x[j])) }
            codeBytes = out + 2
        }
        for i in 0..<(size / 32) {
            for j in 0..<16 {
                codeBytes.storeBytes(of: L[32 * i + j] | L[32 * i + 16 + j] << 4, toByteOffset: 16 * i + j, as: UInt8.self)
            }
        }
    }
}
