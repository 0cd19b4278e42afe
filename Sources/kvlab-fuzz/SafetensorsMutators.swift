import Foundation

/// Structure-aware safetensors mutators. The format requires each tensor's `data_offsets` to
/// match its dtype and shape, and the offsets to cover the byte buffer contiguously with no
/// overlap; every output here breaks one of those rules or the header's own length.
enum SafetensorsMutators {
    static func mutate(_ seed: [UInt8], random: inout FuzzRandom) -> Mutation? {
        guard seed.count >= 8 else { return nil }
        let headerLength = Int(seed.readLE(UInt64.self, at: 0))
        guard 8 + headerLength <= seed.count,
              var header = (try? JSONSerialization.jsonObject(with: Data(seed[8..<(8 + headerLength)]))) as? [String: Any] else { return nil }
        var data = Array(seed[(8 + headerLength)...])
        let names = header.keys.filter { $0 != "__metadata__" }.sorted()
        guard names.count > 1 else { return nil }
        func entry(_ name: String) -> [String: Any] { header[name] as? [String: Any] ?? [:] }
        func offsets(_ name: String) -> [Int] { entry(name)["data_offsets"] as? [Int] ?? [0, 0] }
        func set(_ name: String, _ key: String, _ value: Any) {
            var e = entry(name)
            e[key] = value
            header[name] = e
        }
        func file(_ description: String, headerLength override: Int? = nil) -> Mutation? {
            guard let json = try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) else { return nil }
            var bytes = [UInt8](repeating: 0, count: 8)
            bytes.writeLE(UInt64(truncatingIfNeeded: override ?? json.count), at: 0)
            return Mutation(bytes: bytes + json + data, name: "safetensors: " + description, corrupt: true)
        }
        let name = random.pick(names)
        let range = offsets(name)
        var other = random.pick(names.filter { $0 != name })
        switch random.below(10) {
        case 0:
            set(name, "data_offsets", offsets(other))
            return file("\(name) data_offsets alias \(other)")
        case 1:
            let shift = 4 * (1 + random.below(4))
            let moved = random.chance(2) ? [range[0] - shift, range[1]] : [range[0], range[1] + shift]
            guard moved[0] >= 0, moved != range else { return nil }
            set(name, "data_offsets", moved)
            return file("\(name) data_offsets \(range) -> \(moved) (overlap, size mismatch)")
        case 2:
            let sizes = names.filter { let o = offsets($0); return o[1] - o[0] != range[1] - range[0] }
            guard !sizes.isEmpty else { return nil }
            other = random.pick(sizes)
            let theirs = offsets(other)
            set(name, "data_offsets", theirs)
            set(other, "data_offsets", range)
            return file("data_offsets of \(name) and \(other) (different sizes) swapped")
        case 3:
            set(name, "data_offsets", [range[1], range[0]])
            return file("\(name) data_offsets reversed")
        case 4:
            // A hole: 4 unused bytes before this tensor, later tensors moved along.
            let gap = 4 * (1 + random.below(4))
            data.insert(contentsOf: [UInt8](repeating: 0, count: gap), at: range[0])
            for n in names where offsets(n)[0] >= range[0] { set(n, "data_offsets", offsets(n).map { $0 + gap }) }
            return file("\(gap)-byte hole before \(name)")
        case 5:
            let dtype = entry(name)["dtype"] as? String ?? ""
            let changed = random.pick(["F16", "BF16", "F64", "I32", "I8", "U8", "F8_E4M3", "Q4", ""].filter { $0 != dtype })
            set(name, "dtype", changed)
            return file("\(name) dtype \(dtype) -> \(changed)")
        case 6:
            var shape = entry(name)["shape"] as? [Int] ?? []
            guard !shape.isEmpty else { return nil }
            let d = random.below(shape.count), old = shape[d]
            shape[d] = random.pick([old * 2, old / 2, old + 1, 0, 1 << 40].filter { $0 != old })
            if shape.count == 2, shape[0] == shape[1] { return nil }
            set(name, "shape", shape)
            return file("\(name) shape dim \(d) \(old) -> \(shape[d])")
        case 7:
            let length = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]).count) ?? 0
            let claimed = random.pick([length + data.count + 1, length + 1 << 20, Int(Int32.max), 1 << 62, length - 1, length / 2])
            return file("header length \(length) -> \(claimed)", headerLength: claimed)
        case 8:
            header["extra.weight"] = ["dtype": "F32", "shape": [(range[1] - range[0]) / 4], "data_offsets": range]
            return file("extra tensor sharing \(name)'s bytes")
        default:
            let cut = 1 + random.below(min(64, data.count))
            if random.chance(2) { data.removeLast(cut) } else { data += [UInt8](repeating: 0x55, count: cut) }
            let change = data.count - (seed.count - 8 - headerLength)
            return Mutation(bytes: Array(seed[..<(8 + headerLength)]) + data, name: "safetensors: byte buffer \(change) bytes", corrupt: true)
        }
    }
}
