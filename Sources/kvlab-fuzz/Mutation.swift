import KVLabMethods

/// One fuzz input: the bytes of the file under test, how they were made (printed to reproduce a
/// failure), and whether a structure-aware mutator made them known to be invalid.
struct Mutation {
    var bytes: [UInt8]
    var name: String
    /// True when the file breaks a rule of its format, so accepting it is a failure.
    var corrupt: Bool
}

/// A seeded generator with the small helpers the mutators share.
struct FuzzRandom {
    var generator: Xoshiro256

    /// The generator for input `index` of `format` in run `seed`: every input is reproducible on its own.
    init(seed: UInt64, format: String, index: Int) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in format.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        generator = Xoshiro256(seed: seed &* 0x9E37_79B9_7F4A_7C15 ^ hash ^ UInt64(index) &* 0xD1B5_4A32_D192_ED03)
    }

    mutating func next() -> UInt64 { generator.next() }

    /// A uniform integer in 0..<bound (bound > 0).
    mutating func below(_ bound: Int) -> Int { Int(generator.next() % UInt64(max(1, bound))) }

    mutating func chance(_ oneIn: Int) -> Bool { below(oneIn) == 0 }

    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Format-blind damage: bit flips, bytes set to boundary values, 4/8-byte integers set to extremes,
/// truncation, chunk duplication and removal, and splices with another seed.
enum ByteMutator {
    static let boundaryBytes: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x20, 0x0A, 0x22, 0x7B, 0x5B]
    static let extremes: [UInt64] = [
        .max, 1 << 31, 1 << 32, 1 << 40, 1 << 60, 1 << 63, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x8000_0000,
        UInt64(bitPattern: -1), UInt64(bitPattern: -8), 0, 1,
    ]

    /// One to three stacked operations on `seed`; positions favour the first `focus` bytes (the
    /// header, where damage reaches the parser) half the time.
    static func mutate(_ seed: [UInt8], focus: Int, others: [[UInt8]], random: inout FuzzRandom) -> Mutation {
        var bytes = seed
        var steps: [String] = []
        for _ in 0...random.below(3) {
            steps.append(apply(&bytes, focus: focus, others: others, random: &random))
        }
        return Mutation(bytes: bytes, name: "bytes: " + steps.joined(separator: ", "), corrupt: false)
    }

    private static func apply(_ bytes: inout [UInt8], focus: Int, others: [[UInt8]], random: inout FuzzRandom) -> String {
        guard !bytes.isEmpty else {
            bytes = [random.pick(boundaryBytes)]
            return "insert into empty"
        }
        func position() -> Int {
            random.chance(2) ? random.below(min(max(focus, 1), bytes.count)) : random.below(bytes.count)
        }
        switch random.below(8) {
        case 0:
            let at = position(), bit = random.below(8)
            bytes[at] ^= 1 << UInt8(bit)
            return "flip bit \(bit) at \(at)"
        case 1:
            let at = position(), value = random.pick(boundaryBytes)
            bytes[at] = value
            return "set byte \(at) to \(value)"
        case 2:
            let at = position(), value = random.pick(extremes), width = random.chance(2) ? 8 : 4
            for i in 0..<width where at + i < bytes.count { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
            return "set \(width) bytes at \(at) to \(value)"
        case 3:
            let at = position()
            bytes.removeSubrange(at...)
            return "truncate at \(at)"
        case 4:
            let at = position(), length = 1 + random.below(min(256, bytes.count - at))
            bytes.insert(contentsOf: bytes[at..<(at + length)], at: at)
            return "duplicate \(length) bytes at \(at)"
        case 5:
            let at = position(), length = 1 + random.below(min(256, bytes.count - at))
            bytes.removeSubrange(at..<(at + length))
            return "remove \(length) bytes at \(at)"
        case 6:
            let at = position(), length = 1 + random.below(min(64, bytes.count - at))
            for i in at..<(at + length) { bytes[i] = UInt8(truncatingIfNeeded: random.next()) }
            return "randomize \(length) bytes at \(at)"
        default:
            let other = others.isEmpty ? bytes : random.pick(others)
            let at = position(), from = random.below(max(other.count, 1))
            bytes = Array(bytes[..<at]) + Array(other[from...])
            return "splice at \(at) with another seed from \(from)"
        }
    }
}

extension Array where Element == UInt8 {
    func readLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var value: T = 0
        for i in 0..<MemoryLayout<T>.size { value |= T(truncatingIfNeeded: self[offset + i]) << (8 * i) }
        return value
    }

    mutating func writeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
}
