/// The byte layout of one quantized tensor (keys or values) in the cache: a record holds the codes
/// of `tokens` entries that were quantized together (payload), then their scales, zeros or block
/// scales, then their outliers (metadata). The codecs of `Quantization/` do the arithmetic; this
/// only places their output.
///
/// - uniform, per token: one entry per record; channel c's code at bit c·b, groups of G channels
///   (the last one shorter when G does not divide headDim); fp16 scale and zero per group.
/// - uniform, per channel: G entries per record; channel c's G codes at bits c·G·b…, member m's at
///   (c·G + m)·b; fp16 scale and zero per channel.
/// - uniform with dense-and-sparse outliers: after the scales and zeros, member by member, the
///   `outliers` largest magnitudes of its vector as UInt16 indices then fp16 values (4 B each).
///   They are left out of their groups' min and max and written back over the decoded vector.
/// - uniform with `nuq`: the same groups, scales and zeros (KVQuant normalizes before its
///   non-uniform datatype), but a code indexes the scope's fitted levels instead of the uniform
///   grid: a value is `zero + level·range`, with `range = (2^b − 1)·scale` the group's span.
/// - ggml blocks: 32 consecutive elements of the record's entries laid end to end. When headDim is
///   a multiple of 32 a record is one entry (llama.cpp's layout); otherwise, instead of failing as
///   llama.cpp does, lcm(headDim, 32)/headDim entries form a record and blocks straddle them.
///   Metadata is each block's fp16 d (and m for `_1`); the codes, q5's fifth bits included, are payload.
/// - fp8: one entry per record, one byte per element; the fp32 scale lives in the store.
///
/// fp8 scales and nuq levels are calibration: one set per scope, kept by the store and passed in.
package final class KVRecordCodec {
    package let format: KVTensorFormat
    package let headDim: Int
    /// Entries per record (quantized together; they wait at full precision until they are all there).
    package let tokens: Int
    package let payloadBytes: Int
    package let metadataBytes: Int
    package var recordBytes: Int { payloadBytes + metadataBytes }
    /// Outliers kept per entry (dense-and-sparse); 0 without.
    package let outliers: Int
    /// nuq's levels: nil for the uniform grid.
    package let nonUniform: NonUniformQuantizer?
    /// Floats of calibration per scope: fp8's scale, or nuq's levels; 0 for formats without.
    package let calibrationCount: Int
    /// Bytes one scope's calibration occupies: an fp32 scale, or fp16 levels.
    package var calibrationBytes: Int { nonUniform?.metadataByteCount ?? calibrationCount * 4 }
    /// The uniform formats' quantizer (built once: the kernels decode entry by entry).
    private let quantizer: UniformQuantizer?
    /// fp8: the value of each of the 256 codes (`FP8Format.decode`), looked up instead of decoded
    /// bit by bit in the attention kernel.
    private let fp8Values: [Float]
    /// Uniform groups: how many, and bytes of scales and zeros before the outliers.
    private let groupCount: Int
    private let parameterBytes: Int
    /// Scratch: outlier marks of a record's members (token-major), one group's normalized values,
    /// one member's outliers, and blocks straddling entries.
    private let mask: UnsafeMutablePointer<Bool>
    private let groupValues: UnsafeMutablePointer<Float>
    private let outlierIndices: UnsafeMutablePointer<UInt16>
    private let outlierValues: UnsafeMutablePointer<UInt16>
    private let blocks: UnsafeMutablePointer<Float>

    /// The layout of `format` for vectors of `headDim`, with `outliers` per entry and `nuq` levels
    /// (uniform formats only); nil for fp32 (no records).
    package init?(format: KVTensorFormat, headDim: Int, outliers: Int = 0, nuq: Bool = false) {
        self.format = format
        self.headDim = headDim
        self.outliers = outliers
        if case .uniform(let bits, _, _) = format {
            quantizer = UniformQuantizer(bits: bits)
            nonUniform = nuq ? NonUniformQuantizer(bits: bits) : nil
        } else {
            precondition(outliers == 0 && !nuq, "outliers and nuq apply to uniform formats")
            quantizer = nil
            nonUniform = nil
        }
        if case .fp8(let fp8, _) = format { fp8Values = (0...255).map { fp8.decode(UInt8($0)) } } else { fp8Values = [] }
        switch format {
        case .fp32:
            return nil
        case .uniform(let bits, .token, let group):
            tokens = 1
            groupCount = (headDim + group - 1) / group
            payloadBytes = PackedCodes.byteCount(codes: headDim, bits: bits)
        case .uniform(let bits, .channel, let group):
            tokens = group
            groupCount = headDim
            payloadBytes = PackedCodes.byteCount(codes: headDim * group, bits: bits)
        case .block(let block):
            var a = headDim, b = KVBlockFormat.blockSize
            while b != 0 { (a, b) = (b, a % b) }
            tokens = KVBlockFormat.blockSize / a
            groupCount = tokens * headDim / KVBlockFormat.blockSize
            payloadBytes = groupCount * (block.bytesPerBlock - (block.hasMin ? 4 : 2))
        case .fp8:
            tokens = 1
            groupCount = 0
            payloadBytes = headDim
        }
        switch format {
        case .uniform: parameterBytes = groupCount * UniformQuantizer.metadataBytesPerGroup
        case .block(let block): parameterBytes = groupCount * (block.hasMin ? 4 : 2)
        default: parameterBytes = 0
        }
        metadataBytes = parameterBytes + tokens * outliers * OutlierSplit.metadataBytesPerOutlier
        if case .fp8 = format { calibrationCount = 1 } else { calibrationCount = nonUniform?.levelCount ?? 0 }
        mask = .allocate(capacity: tokens * headDim)
        mask.initialize(repeating: false, count: tokens * headDim)
        groupValues = .allocate(capacity: max(tokens, headDim))
        outlierIndices = .allocate(capacity: max(outliers, 1))
        outlierValues = .allocate(capacity: max(outliers, 1))
        blocks = .allocate(capacity: tokens * headDim)
    }

    deinit {
        mask.deallocate()
        groupValues.deallocate()
        outlierIndices.deallocate()
        outlierValues.deallocate()
        blocks.deallocate()
    }

    /// Uniform group `g` of a record of `members` entries (token-major): its first element, how
    /// many it has, their stride, and the bit where its codes start.
    @inline(__always)
    private func group(_ g: Int, members: Int) -> (offset: Int, count: Int, stride: Int, bitOffset: Int) {
        guard case .uniform(let bits, let axis, let size) = format else { preconditionFailure("not a uniform format") }
        return axis == .token ? (g * size, min(size, headDim - g * size), 1, g * size * bits) : (g, members, headDim, g * tokens * bits)
    }

    /// Encodes `tokens` vectors (token-major at `source`) into `record`; `calibration` is the scope's
    /// fp8 scale or nuq levels.
    package func encode(_ source: UnsafePointer<Float>, calibration: UnsafePointer<Float>, into record: UnsafeMutableRawPointer) {
        let codes = record.assumingMemoryBound(to: UInt8.self)
        switch format {
        case .fp32:
            preconditionFailure("fp32 has no records")
        case .uniform:
            let quantizer = self.quantizer!
            if outliers > 0 { for m in 0..<tokens { selectOutliers(source + m * headDim, member: m, record: record) } }
            for g in 0..<groupCount {
                let (offset, count, stride, bitOffset) = group(g, members: tokens)
                let marks: UnsafePointer<Bool>? = outliers > 0 ? UnsafePointer(mask + offset) : nil
                let stored: (scaleBits: UInt16, zeroBits: UInt16)
                if let nonUniform {
                    let normalized = normalize(source + offset, count: count, stride: stride, outliers: marks, keepingMarked: true)
                    stored = (normalized.scaleBits, normalized.zeroBits)
                    nonUniform.encode(groupValues, count: count, stride: 1, levels: calibration, into: codes, bitOffset: bitOffset)
                } else {
                    stored = quantizer.quantize(source + offset, count: count, stride: stride, outliers: marks, into: codes, bitOffset: bitOffset)
                }
                storeParameters(stored, at: g, in: record)
            }
            if outliers > 0 { mask.update(repeating: false, count: tokens * headDim) }
        case .block(let block):
            block.encode(source, count: tokens * headDim, into: record)
        case .fp8(let fp8, _):
            fp8.encode(source, count: headDim, scale: calibration[0], into: codes)
        }
    }

    /// Decodes member `member` of `record` into `destination` (headDim floats).
    package func decode(_ record: UnsafeRawPointer, member: Int, calibration: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>) {
        let codes = record.assumingMemoryBound(to: UInt8.self)
        switch format {
        case .fp32:
            preconditionFailure("fp32 has no records")
        case .uniform(let bits, let axis, _):
            for g in 0..<groupCount {
                let (offset, count, _, bitOffset) = group(g, members: tokens)
                // Per channel, the member's one code of the group; per token, the whole group.
                let codeOffset = axis == .token ? bitOffset : bitOffset + member * bits
                dequantize(codes, bitOffset: codeOffset, count: axis == .token ? count : 1, group: g, record: record,
                           calibration: calibration, into: destination + offset, stride: 1)
            }
            restoreOutliers(member: member, record: record, into: destination)
        case .block(let block):
            let size = KVBlockFormat.blockSize
            let start = member * headDim
            let first = start / size, last = (start + headDim - 1) / size
            if tokens == 1 {
                block.decode(record + first * block.bytesPerBlock, count: headDim, into: destination)
            } else {
                block.decode(record + first * block.bytesPerBlock, count: (last - first + 1) * size, into: blocks)
                destination.update(from: blocks + (start - first * size), count: headDim)
            }
        case .fp8:
            let scale = calibration[0]
            fp8Values.withUnsafeBufferPointer { values in
                for i in 0..<headDim { destination[i] = values[Int(codes[i])] * scale }
            }
        }
    }

    /// Decodes every member (token-major `tokens × headDim` at `destination`).
    package func decodeAll(_ record: UnsafeRawPointer, calibration: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>) {
        switch format {
        case .uniform(_, .channel, _):
            let codes = record.assumingMemoryBound(to: UInt8.self)
            for g in 0..<groupCount {
                let (offset, count, stride, bitOffset) = group(g, members: tokens)
                dequantize(codes, bitOffset: bitOffset, count: count, group: g, record: record, calibration: calibration,
                           into: destination + offset, stride: stride)
            }
            for m in 0..<tokens { restoreOutliers(member: m, record: record, into: destination + m * headDim) }
        case .block(let block):
            block.decode(record, count: tokens * headDim, into: destination)
        default:
            // One entry per record.
            decode(record, member: 0, calibration: calibration, into: destination)
        }
    }

    /// nuq's fitting sample: the normalized values (`(x − zero)/range`) of the groups that `entries`
    /// vectors (token-major at `source`, in position order) form when quantized `tokens` at a time,
    /// outliers and zero-range groups left out. Writes them to `destination` and returns how many.
    package func normalizedSample(_ source: UnsafePointer<Float>, entries: Int, into destination: UnsafeMutablePointer<Float>) -> Int {
        var written = 0
        for start in stride(from: 0, to: entries, by: tokens) {
            let members = min(tokens, entries - start), chunk = source + start * headDim
            if outliers > 0 { for m in 0..<members { selectOutliers(chunk + m * headDim, member: m, record: nil) } }
            for g in 0..<groupCount {
                let (offset, count, stride, _) = group(g, members: members)
                let marks: UnsafePointer<Bool>? = outliers > 0 ? UnsafePointer(mask + offset) : nil
                let stored = normalize(chunk + offset, count: count, stride: stride, outliers: marks, keepingMarked: false)
                guard stored.scaleBits & 0x7fff != 0 else { continue }
                (destination + written).update(from: groupValues, count: stored.count)
                written += stored.count
            }
            if outliers > 0 { mask.update(repeating: false, count: tokens * headDim) }
        }
        return written
    }

    /// The fp16 scale and zero of a group (outliers left out of its range) and its values as
    /// `(x − zero)/range` in `groupValues`: all of them in order (`keepingMarked`, for encoding),
    /// or only the unmarked ones (for a fitting sample, `count` says how many).
    @inline(__always)
    private func normalize(_ source: UnsafePointer<Float>, count: Int, stride: Int, outliers marks: UnsafePointer<Bool>?,
                           keepingMarked: Bool) -> (scaleBits: UInt16, zeroBits: UInt16, count: Int) {
        let quantizer = self.quantizer!
        let bounds = OutlierSplit.inlierRange(source, count: count, stride: stride, outliers: marks)
        let stored = quantizer.parameters(min: bounds.min, max: bounds.max)
        let zero = Half.toFloat(stored.zeroBits), range = Half.toFloat(stored.scaleBits) * Float(quantizer.maxCode)
        // A zero range (constant group) codes everything as the level nearest 0; it decodes to `zero` anyway.
        let inverse = range > 0 ? 1 / range : 0
        var n = 0
        for i in 0..<count where keepingMarked || !(marks?[i * stride] ?? false) {
            groupValues[n] = (QuantizationInput.clean(source[i * stride]) - zero) * inverse
            n += 1
        }
        return (stored.scaleBits, stored.zeroBits, n)
    }

    /// Decodes `count` codes of uniform group `g` (uniform grid or nuq levels) into `destination`.
    @inline(__always)
    private func dequantize(_ codes: UnsafePointer<UInt8>, bitOffset: Int, count: Int, group g: Int, record: UnsafeRawPointer,
                            calibration: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>, stride: Int) {
        let (scaleBits, zeroBits) = parameters(at: g, in: record)
        guard let nonUniform else {
            quantizer!.dequantize(codes, bitOffset: bitOffset, count: count, scaleBits: scaleBits, zeroBits: zeroBits,
                                  into: destination, stride: stride)
            return
        }
        nonUniform.decode(codes, bitOffset: bitOffset, count: count, levels: calibration, into: destination, stride: stride)
        let zero = Half.toFloat(zeroBits), range = Half.toFloat(scaleBits) * Float(quantizer!.maxCode)
        for i in 0..<count { destination[i * stride] = zero + destination[i * stride] * range }
    }

    /// Picks one member's outliers, marks them in `mask` (row `member`) and, when encoding, writes
    /// them to the record's outlier list.
    @inline(__always)
    private func selectOutliers(_ vector: UnsafePointer<Float>, member: Int, record: UnsafeMutableRawPointer?) {
        OutlierSplit.select(vector, count: headDim, outlierCount: outliers, indices: outlierIndices, values: outlierValues)
        OutlierSplit.mark(outlierIndices, outlierCount: outliers, in: mask + member * headDim, true)
        guard let record else { return }
        // Records are byte-packed: copy the lists in rather than binding UInt16 at an odd address.
        let list = record + payloadBytes + parameterBytes + member * outliers * OutlierSplit.metadataBytesPerOutlier
        list.copyMemory(from: outlierIndices, byteCount: 2 * outliers)
        (list + 2 * outliers).copyMemory(from: outlierValues, byteCount: 2 * outliers)
    }

    /// Writes one member's outliers back over its decoded vector.
    @inline(__always)
    private func restoreOutliers(member: Int, record: UnsafeRawPointer, into vector: UnsafeMutablePointer<Float>) {
        guard outliers > 0 else { return }
        let list = record + payloadBytes + parameterBytes + member * outliers * OutlierSplit.metadataBytesPerOutlier
        UnsafeMutableRawPointer(outlierIndices).copyMemory(from: list, byteCount: 2 * outliers)
        UnsafeMutableRawPointer(outlierValues).copyMemory(from: list + 2 * outliers, byteCount: 2 * outliers)
        OutlierSplit.restore(indices: outlierIndices, values: outlierValues, outlierCount: outliers, into: vector)
    }

    /// Uniform metadata: group `g`'s fp16 scale and zero after the payload.
    private func storeParameters(_ stored: (scaleBits: UInt16, zeroBits: UInt16), at g: Int, in record: UnsafeMutableRawPointer) {
        let offset = payloadBytes + g * UniformQuantizer.metadataBytesPerGroup
        record.storeBytes(of: stored.scaleBits, toByteOffset: offset, as: UInt16.self)
        record.storeBytes(of: stored.zeroBits, toByteOffset: offset + 2, as: UInt16.self)
    }

    @inline(__always)
    private func parameters(at g: Int, in record: UnsafeRawPointer) -> (UInt16, UInt16) {
        let offset = payloadBytes + g * UniformQuantizer.metadataBytesPerGroup
        return (record.loadUnaligned(fromByteOffset: offset, as: UInt16.self),
                record.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self))
    }
}

extension KVBlockFormat {
    /// Whether a block stores a minimum beside its scale (`q4_1`, `q5_1`).
    package var hasMin: Bool { self == .q4_1 || self == .q5_1 }
}
