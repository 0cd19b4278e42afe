/// Structure-aware llama2.c mutators: a checkpoint's header must describe exactly the bytes that
/// follow it, and `tokenizer.bin` must hold one well-formed entry per token.
enum Llama2cMutators {
    /// The byte size llama2.c's layout gives a header, or nil when the dimensions are unusable.
    static func expectedSize(_ h: [Int]) -> Int? {
        let (dim, hidden, layers, heads, kvHeads, vocab, context) = (h[0], h[1], h[2], h[3], h[4], abs(h[5]), h[6])
        guard dim > 0, hidden > 0, layers > 0, heads > 0, kvHeads > 0, vocab > 0, context > 0,
              dim % heads == 0, heads % kvHeads == 0, (dim / heads) % 2 == 0 else { return nil }
        let headDim = dim / heads, kvDim = kvHeads * headDim
        let perLayer = 2 * dim + dim * dim * 2 + dim * kvDim * 2 + 3 * dim * hidden
        let (total, overflow) = (vocab * dim + layers * perLayer + dim + context * headDim + (h[5] > 0 ? 0 : vocab * dim))
            .multipliedReportingOverflow(by: 4)
        return overflow ? nil : 28 + total
    }

    static func checkpoint(_ seed: [UInt8], random: inout FuzzRandom) -> Mutation? {
        var bytes = seed
        let header = (0..<7).map { Int(seed.readLE(Int32.self, at: 4 * $0)) }
        let fields = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]
        if random.chance(4) {
            let cut = 4 * (1 + random.below(64))
            if random.chance(2) { bytes.removeLast(cut) } else { bytes += [UInt8](repeating: 0, count: cut) }
            return Mutation(bytes: bytes, name: "llama2c: file size \(seed.count) -> \(bytes.count)", corrupt: true)
        }
        let k = random.below(7), old = header[k]
        let value = random.pick([old + 1, old - 1, old * 2, old / 2, 0, -old, Int(Int32.max), Int(Int32.min)].filter { $0 != old })
        var edited = header
        edited[k] = value
        // An edit that still matches the file (a sign flip that keeps the size) is not known-corrupt.
        guard expectedSize(edited) != seed.count else { return nil }
        bytes.writeLE(Int32(truncatingIfNeeded: value), at: 4 * k)
        return Mutation(bytes: bytes, name: "llama2c: \(fields[k]) \(old) -> \(value) (header inconsistent with the file size)", corrupt: true)
    }

    static func tokenizer(_ seed: [UInt8], random: inout FuzzRandom) -> Mutation? {
        var bytes = seed
        let maxLength = Int(seed.readLE(Int32.self, at: 0))
        // Entry offsets: score, then length, then bytes.
        var entries: [Int] = []
        var at = 4
        while at + 8 <= seed.count {
            entries.append(at)
            at += 8 + Int(seed.readLE(Int32.self, at: at + 4))
        }
        let e = random.pick(entries), id = entries.firstIndex(of: e)!
        switch random.below(6) {
        case 0:
            let value = random.pick([0, -1, Int(Int32.min), Int(Int32.max)])
            bytes.writeLE(Int32(truncatingIfNeeded: value), at: 0)
            return Mutation(bytes: bytes, name: "tokenizer: max_token_length \(maxLength) -> \(value)", corrupt: true)
        case 1:
            let length = Int(seed.readLE(Int32.self, at: e + 4))
            let value = random.pick([maxLength + 1, -1, Int(Int32.max), Int(Int32.min), 1 << 20])
            bytes.writeLE(Int32(truncatingIfNeeded: value), at: e + 4)
            return Mutation(bytes: bytes, name: "tokenizer: token \(id) length \(length) -> \(value)", corrupt: true)
        case 2:
            bytes.removeSubrange(e...)
            return Mutation(bytes: bytes, name: "tokenizer: cut before token \(id) (vocabulary short)", corrupt: true)
        case 3:
            let length = Int(seed.readLE(Int32.self, at: e + 4))
            guard length > 0 else { return nil }
            bytes[e + 8 + random.below(length)] = random.pick([0xFF, 0xC0, 0x80, 0xED])
            return Mutation(bytes: bytes, name: "tokenizer: token \(id) made invalid UTF-8", corrupt: true)
        case 4:
            let value = random.pick([Float.nan, .infinity, -.infinity])
            bytes.writeLE(value.bitPattern, at: e)
            return Mutation(bytes: bytes, name: "tokenizer: token \(id) score \(value)", corrupt: true)
        default:
            bytes.removeSubrange(e..<(e + 8 + Int(seed.readLE(Int32.self, at: e + 4))))
            return Mutation(bytes: bytes, name: "tokenizer: token \(id) removed (vocabulary one short)", corrupt: true)
        }
    }
}
