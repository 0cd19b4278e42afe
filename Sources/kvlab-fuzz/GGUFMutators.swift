/// Where a GGUF file's structural fields are, so mutators can edit them in place.
struct GGUFLayout {
    struct Tensor {
        var name: String
        var nameLengthAt: Int
        var nDimsAt: Int
        var dims: [Int]
        var dimsAt: Int
        var typeAt: Int
        var type: UInt32
        var offsetAt: Int
        var offset: Int
    }

    var tensorCountAt = 8
    var kvCountAt = 16
    var tensors: [Tensor] = []
    /// Position and width of `llama.block_count`'s value.
    var blockCount: (at: Int, width: Int, value: Int)?
    /// Positions of every string length (keys, string values, tensor names) and array length.
    var stringLengthsAt: [Int] = []
    var arrayLengthsAt: [Int] = []
    var alignment = 32
    var dataStart = 0

    /// Parses a valid file (the seeds); nil if it is not one this reader follows.
    init?(_ bytes: [UInt8]) {
        var at = 24
        func u32() -> Int? { guard at + 4 <= bytes.count else { return nil }; defer { at += 4 }; return Int(bytes.readLE(UInt32.self, at: at)) }
        func u64() -> Int? { guard at + 8 <= bytes.count else { return nil }; defer { at += 8 }; return Int(exactly: bytes.readLE(UInt64.self, at: at)) }
        func string() -> String? {
            stringLengthsAt.append(at)
            guard let length = u64(), at + length <= bytes.count else { return nil }
            defer { at += length }
            return String(decoding: bytes[at..<(at + length)], as: UTF8.self)
        }
        let widths = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
        func skipValue(_ type: Int) -> Bool {
            if let width = widths[type] { at += width; return at <= bytes.count }
            if type == 8 { return string() != nil }
            guard type == 9, let element = u32() else { return false }
            arrayLengthsAt.append(at)
            guard let count = u64() else { return false }
            for _ in 0..<count where !skipValue(element) { return false }
            return true
        }
        guard bytes.count >= 24, bytes.starts(with: Array("GGUF".utf8)) else { return nil }
        let tensorCount = Int(bytes.readLE(UInt64.self, at: 8)), kvCount = Int(bytes.readLE(UInt64.self, at: 16))
        for _ in 0..<kvCount {
            guard let key = string(), let type = u32() else { return nil }
            if key.hasSuffix(".block_count"), let width = widths[type] {
                blockCount = (at, width, Int(bytes.readLE(UInt32.self, at: at)))
            }
            if key == "general.alignment", type == 4 { alignment = Int(bytes.readLE(UInt32.self, at: at)) }
            guard skipValue(type) else { return nil }
        }
        for _ in 0..<tensorCount {
            let nameAt = at
            guard let name = string() else { return nil }
            let nDimsAt = at
            guard let nDims = u32() else { return nil }
            let dimsAt = at
            var dims: [Int] = []
            for _ in 0..<nDims { guard let dim = u64() else { return nil }; dims.append(dim) }
            let typeAt = at
            guard let type = u32() else { return nil }
            let offsetAt = at
            guard let offset = u64() else { return nil }
            tensors.append(Tensor(name: name, nameLengthAt: nameAt, nDimsAt: nDimsAt, dims: dims, dimsAt: dimsAt, typeAt: typeAt,
                                  type: UInt32(type), offsetAt: offsetAt, offset: offset))
        }
        dataStart = (at + alignment - 1) / alignment * alignment
    }

    /// Bytes per block and elements per block of the ggml types the mutators switch between.
    static let typeSizes: [UInt32: (bytes: Int, elements: Int)] = [
        0: (4, 1), 1: (2, 1), 2: (18, 32), 3: (20, 32), 8: (34, 32), 12: (144, 256), 30: (2, 1),
    ]

    static func byteCount(type: UInt32, dims: [Int]) -> Int? {
        guard let size = typeSizes[type] else { return nil }
        let elements = dims.reduce(1, *)
        guard elements % size.elements == 0, dims.first.map({ $0 % size.elements == 0 }) ?? true else { return nil }
        return elements / size.elements * size.bytes
    }

    func byteCount(_ tensor: Tensor) -> Int { Self.byteCount(type: tensor.type, dims: tensor.dims) ?? 0 }
}

/// Structure-aware GGUF mutators: each output breaks a rule a reader must check (tensor ranges
/// inside the data, aligned, disjoint and sized by type and shape; the layer count matching the
/// tensors; counts and lengths within the file).
enum GGUFMutators {
    static func mutate(_ seed: [UInt8], random: inout FuzzRandom) -> Mutation? {
        guard let layout = GGUFLayout(seed), layout.tensors.count > 1 else { return nil }
        var bytes = seed
        let tensors = layout.tensors
        let ordered = tensors.indices.sorted { tensors[$0].offset < tensors[$1].offset }
        let i = random.below(tensors.count)
        let t = tensors[i]
        func setOffset(_ index: Int, _ value: Int) { bytes.writeLE(UInt64(truncatingIfNeeded: value), at: tensors[index].offsetAt) }
        switch random.below(11) {
        case 0:
            var j = random.below(tensors.count - 1)
            if j >= i { j += 1 }
            setOffset(i, tensors[j].offset)
            return Mutation(bytes: bytes, name: "gguf: \(t.name) offset aliases \(tensors[j].name)", corrupt: true)
        case 1:
            // Start inside the tensor stored before this one.
            let rank = 1 + random.below(ordered.count - 1)
            let previous = tensors[ordered[rank - 1]], index = ordered[rank]
            let size = layout.byteCount(previous)
            guard size > layout.alignment else { return nil }
            let inside = previous.offset + layout.alignment * (1 + random.below((size - 1) / layout.alignment))
            guard inside < previous.offset + size, inside != tensors[index].offset else { return nil }
            setOffset(index, inside)
            return Mutation(bytes: bytes, name: "gguf: \(tensors[index].name) offset \(inside) overlaps \(previous.name)", corrupt: true)
        case 2:
            let shift = 1 + random.below(layout.alignment - 1)
            setOffset(i, t.offset + shift)
            return Mutation(bytes: bytes, name: "gguf: \(t.name) offset misaligned by \(shift)", corrupt: true)
        case 3:
            let dataSize = seed.count - layout.dataStart
            let value = random.pick([dataSize, dataSize + layout.alignment, Int(Int32.max) + 1, 1 << 40, -layout.alignment])
            setOffset(i, value)
            return Mutation(bytes: bytes, name: "gguf: \(t.name) offset \(value) outside the data", corrupt: true)
        case 4:
            let types = GGUFLayout.typeSizes.keys.filter { $0 != t.type }.sorted()
            let type = random.pick(types)
            let oldSize = layout.byteCount(t), newSize = GGUFLayout.byteCount(type: type, dims: t.dims)
            guard newSize != oldSize else { return nil }
            // Shrinking the last tensor only leaves trailing bytes; every other change breaks a range.
            guard newSize == nil || ordered.last != i || newSize! > oldSize else { return nil }
            bytes.writeLE(type, at: t.typeAt)
            return Mutation(bytes: bytes, name: "gguf: \(t.name) type \(t.type) -> \(type) (\(oldSize) -> \(newSize.map(String.init) ?? "invalid") bytes)", corrupt: true)
        case 5:
            let d = random.below(t.dims.count)
            let choices = [t.dims[d] * 2, t.dims[d] / 2, t.dims[d] + 1, 0, 1 << 40, Int(UInt32.max) + 1]
            let value = random.pick(choices.filter { $0 != t.dims[d] })
            bytes.writeLE(UInt64(value), at: t.dimsAt + 8 * d)
            return Mutation(bytes: bytes, name: "gguf: \(t.name) dim \(d) \(t.dims[d]) -> \(value)", corrupt: true)
        case 6:
            guard t.dims.count == 2, t.dims[0] != t.dims[1] else { return nil }
            bytes.writeLE(UInt64(t.dims[1]), at: t.dimsAt)
            bytes.writeLE(UInt64(t.dims[0]), at: t.dimsAt + 8)
            return Mutation(bytes: bytes, name: "gguf: \(t.name) dims swapped to [\(t.dims[1]), \(t.dims[0])]", corrupt: true)
        case 7:
            let value = random.pick([0, t.dims.count + 1, 5, 1 << 20, Int(UInt32.max)].filter { $0 != t.dims.count })
            bytes.writeLE(UInt32(value), at: t.nDimsAt)
            return Mutation(bytes: bytes, name: "gguf: \(t.name) n_dims \(t.dims.count) -> \(value)", corrupt: true)
        case 8:
            guard let block = layout.blockCount else { return nil }
            let value = random.pick([block.value - 1, block.value + 1, 0, block.value * 4, 1 << 30].filter { $0 >= 0 && $0 != block.value })
            for k in 0..<block.width { bytes[block.at + k] = UInt8(truncatingIfNeeded: value >> (8 * k)) }
            return Mutation(bytes: bytes, name: "gguf: block_count \(block.value) -> \(value)", corrupt: true)
        case 9:
            let (what, at) = random.pick([("tensor count", layout.tensorCountAt), ("kv count", layout.kvCountAt)]
                + layout.stringLengthsAt.map { ("string length at \($0)", $0) } + layout.arrayLengthsAt.map { ("array length at \($0)", $0) })
            let old = Int(bytes.readLE(UInt64.self, at: at))
            let value = random.pick([old + 1, 1 << 32, 1 << 40, 1 << 62, Int.max])
            bytes.writeLE(UInt64(value), at: at)
            return Mutation(bytes: bytes, name: "gguf: \(what) \(old) -> \(value)", corrupt: true)
        default:
            // Two tensors with one name: renamed to another of the same length.
            let twins = tensors.indices.filter { $0 != i && tensors[$0].name.utf8.count == t.name.utf8.count }
            guard !twins.isEmpty else { return nil }
            let other = tensors[random.pick(twins)]
            bytes.replaceSubrange((t.nameLengthAt + 8)..<(t.nameLengthAt + 8 + t.name.utf8.count), with: Array(other.name.utf8))
            return Mutation(bytes: bytes, name: "gguf: \(t.name) renamed to duplicate \(other.name)", corrupt: true)
        }
    }
}
