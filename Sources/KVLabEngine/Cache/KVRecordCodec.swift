/// The byte layout of one quantized tensor (keys or values) in the cache: a record holds the codes
/// of `tokens` entries that were quantized together (payload), then their scales, zeros or block
/// scales (metadata). The codecs of `Quantization/` do the arithmetic; this only places their output.
///
/// - uniform, per token: one entry per record; channel c's code at bit c·b, groups of G channels
///   (the last one shorter when G does not divide headDim); fp16 scale and zero per group.
/// - uniform, per channel: G entries per record; channel c's G codes at bits c·G·b…, member m's at
///   (c·G + m)·b; fp16 scale and zero per channel.
/// - ggml blocks: 32 consecutive elements of the record's entries laid end to end. When headDim is
///   a multiple of 32 a record is one entry (llama.cpp's layout); otherwise, instead of failing as
///   llama.cpp does, lcm(headDim, 32)/headDim entries form a record and blocks straddle them.
///   Metadata is each block's fp16 d (and m for `_1`); the codes, q5's fifth bits included, are payload.
/// - fp8: one entry per record, one byte per element; the fp32 scale lives in the store.
struct KVRecordCodec {
    let format: KVTensorFormat
    let headDim: Int
    /// Entries per record (quantized together; they wait at full precision until they are all there).
    let tokens: Int
    let payloadBytes: Int
    let metadataBytes: Int
    var recordBytes: Int { payloadBytes + metadataBytes }
    /// The uniform formats' quantizer (built once: the kernels decode entry by entry).
    private let quantizer: UniformQuantizer?
    /// fp8: the value of each of the 256 codes (`FP8Format.decode`), looked up instead of decoded
    /// bit by bit in the attention kernel.
    private let fp8Values: [Float]

    /// The layout of `format` for vectors of `headDim`; nil for fp32 (no records).
    init?(format: KVTensorFormat, headDim: Int) {
        self.format = format
        self.headDim = headDim
        if case .uniform(let bits, _, _) = format { quantizer = UniformQuantizer(bits: bits) } else { quantizer = nil }
        if case .fp8(let fp8, _) = format { fp8Values = (0...255).map { fp8.decode(UInt8($0)) } } else { fp8Values = [] }
        switch format {
        case .fp32:
            return nil
        case .uniform(let bits, .token, let group):
            tokens = 1
            payloadBytes = PackedCodes.byteCount(codes: headDim, bits: bits)
            metadataBytes = (headDim + group - 1) / group * UniformQuantizer.metadataBytesPerGroup
        case .uniform(let bits, .channel, let group):
            tokens = group
            payloadBytes = PackedCodes.byteCount(codes: headDim * group, bits: bits)
            metadataBytes = headDim * UniformQuantizer.metadataBytesPerGroup
        case .block(let block):
            var a = headDim, b = KVBlockFormat.blockSize
            while b != 0 { (a, b) = (b, a % b) }
            tokens = KVBlockFormat.blockSize / a
            let blocks = tokens * headDim / KVBlockFormat.blockSize
            metadataBytes = blocks * (block.hasMin ? 4 : 2)
            payloadBytes = blocks * block.bytesPerBlock - metadataBytes
        case .fp8:
            tokens = 1
            payloadBytes = headDim
            metadataBytes = 0
        }
    }

    /// Encodes `tokens` vectors (token-major at `source`) into `record`; `scale` is the fp8 scale.
    func encode(_ source: UnsafePointer<Float>, scale: Float, into record: UnsafeMutableRawPointer) {
        let codes = record.assumingMemoryBound(to: UInt8.self)
        switch format {
        case .fp32:
            preconditionFailure("fp32 has no records")
        case .uniform(let bits, .token, let group):
            let quantizer = self.quantizer!
            for (g, first) in stride(from: 0, to: headDim, by: group).enumerated() {
                let stored = quantizer.quantize(source + first, count: min(group, headDim - first), stride: 1,
                                                into: codes, bitOffset: first * bits)
                storeParameters(stored, at: g, in: record)
            }
        case .uniform(let bits, .channel, _):
            let quantizer = self.quantizer!
            for c in 0..<headDim {
                let stored = quantizer.quantize(source + c, count: tokens, stride: headDim, into: codes, bitOffset: c * tokens * bits)
                storeParameters(stored, at: c, in: record)
            }
        case .block(let block):
            block.encode(source, count: tokens * headDim, into: record)
        case .fp8(let fp8, _):
            fp8.encode(source, count: headDim, scale: scale, into: codes)
        }
    }

    /// Decodes member `member` of `record` into `destination` (headDim floats); `scratch` holds
    /// `tokens × headDim` floats for blocks that straddle entries.
    func decode(_ record: UnsafeRawPointer, member: Int, scale: Float, into destination: UnsafeMutablePointer<Float>,
                scratch: UnsafeMutablePointer<Float>) {
        let codes = record.assumingMemoryBound(to: UInt8.self)
        switch format {
        case .fp32:
            preconditionFailure("fp32 has no records")
        case .uniform(let bits, .token, let group):
            let quantizer = self.quantizer!
            for (g, first) in stride(from: 0, to: headDim, by: group).enumerated() {
                let (scaleBits, zeroBits) = parameters(at: g, in: record)
                quantizer.dequantize(codes, bitOffset: first * bits, count: min(group, headDim - first), scaleBits: scaleBits,
                                     zeroBits: zeroBits, into: destination + first, stride: 1)
            }
        case .uniform(let bits, .channel, _):
            let quantizer = self.quantizer!
            for c in 0..<headDim {
                let (scaleBits, zeroBits) = parameters(at: c, in: record)
                quantizer.dequantize(codes, bitOffset: (c * tokens + member) * bits, count: 1, scaleBits: scaleBits,
                                     zeroBits: zeroBits, into: destination + c, stride: 1)
            }
        case .block(let block):
            let size = KVBlockFormat.blockSize
            let start = member * headDim
            let first = start / size, last = (start + headDim - 1) / size
            if tokens == 1 {
                block.decode(record + first * block.bytesPerBlock, count: headDim, into: destination)
            } else {
                block.decode(record + first * block.bytesPerBlock, count: (last - first + 1) * size, into: scratch)
                destination.update(from: scratch + (start - first * size), count: headDim)
            }
        case .fp8:
            fp8Values.withUnsafeBufferPointer { values in
                for i in 0..<headDim { destination[i] = values[Int(codes[i])] * scale }
            }
        }
    }

    /// Decodes every member (token-major `tokens × headDim` at `destination`).
    func decodeAll(_ record: UnsafeRawPointer, scale: Float, into destination: UnsafeMutablePointer<Float>) {
        switch format {
        case .uniform(let bits, .channel, _):
            let codes = record.assumingMemoryBound(to: UInt8.self)
            for c in 0..<headDim {
                let (scaleBits, zeroBits) = parameters(at: c, in: record)
                quantizer!.dequantize(codes, bitOffset: c * tokens * bits, count: tokens, scaleBits: scaleBits, zeroBits: zeroBits,
                                      into: destination + c, stride: headDim)
            }
        case .block(let block):
            block.decode(record, count: tokens * headDim, into: destination)
        default:
            // One entry per record: the member decode needs no scratch.
            decode(record, member: 0, scale: scale, into: destination, scratch: destination)
        }
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
    var hasMin: Bool { self == .q4_1 || self == .q5_1 }
}
