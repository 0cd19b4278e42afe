import Foundation

/// Bytes with a binary unit (B, KiB, MiB, GiB), one decimal: how the CLI and the workbench show sizes.
public func formatBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes), unit = 0
    while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
}

/// A byte count written as a number of bytes or with a binary suffix (`512`, `64KiB`, `1MiB`,
/// `1GiB`; `B` allowed), or nil.
public func parseByteSize(_ text: String) -> Int? {
    let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("B", 1)]
    let trimmed = Substring(text).trimmingSpaces
    var digits = trimmed, scale = 1
    if let (suffix, factor) = units.first(where: { trimmed.hasSuffix($0.0) }) {
        digits = trimmed.dropLast(suffix.count)
        scale = factor
    }
    guard let value = Int(digits), value > 0, value <= Int.max / scale else { return nil }
    return value * scale
}

/// `bytes` in the largest binary unit that divides it exactly (`233472` → `228KiB`), so that
/// `parseByteSize` reads it back.
public func formatByteSize(_ bytes: Int) -> String {
    for (suffix, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes % factor == 0 && bytes >= factor {
        return "\(bytes / factor)\(suffix)"
    }
    return "\(bytes)"
}
