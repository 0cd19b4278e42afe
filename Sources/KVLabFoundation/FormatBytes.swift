import Foundation

/// How a byte count is written; every size kvlab prints or writes goes through `formatBytes`.
public enum ByteFormat: Sendable {
    /// `1.5 MiB`, `512 B`: binary units with one decimal (the CLI's reports and tables).
    case readable
    /// `132K`, `16.4G`: at most 6 columns (the workbench's panels).
    case compact
    /// `228KiB`, `512`: the largest binary unit that divides the count exactly, so that
    /// `parseByteSize` reads it back (method spellings such as `tiled:sram=228KiB`).
    case exact
    /// `80 GiB`, `0.4375 GiB`, `512 B`: whole where a binary unit divides the count, else four
    /// decimals (device profile files, read back by their quantity parser).
    case profile
}

/// `bytes` written in `format`.
public func formatBytes(_ bytes: Int, _ format: ByteFormat = .readable) -> String {
    format == .exact ? exactBytes(bytes) : formatBytes(Double(bytes), format)
}

/// `bytes` written in `format` (`.exact` needs a whole count: it falls back to `.profile` otherwise).
public func formatBytes(_ bytes: Double, _ format: ByteFormat = .readable) -> String {
    switch format {
    case .readable:
        let (value, unit) = scaled(bytes, ["B", "KiB", "MiB", "GiB", "TiB"])
        return unit == "B" ? "\(Int(bytes)) B" : String(format: "%.1f %@", value, unit)
    case .compact:
        let (value, unit) = scaled(bytes, ["B", "K", "M", "G", "T", "P"])
        return value >= 100 || unit == "B" ? String(format: "%.0f%@", value, unit) : String(format: "%.1f%@", value, unit)
    case .exact where bytes == bytes.rounded() && bytes.magnitude < 0x1p62:
        return exactBytes(Int(bytes))
    case .exact, .profile:
        for (unit, factor) in [("GiB", 1024.0 * 1024 * 1024), ("MiB", 1024.0 * 1024), ("KiB", 1024.0)] where bytes >= factor {
            let value = bytes / factor
            return value == value.rounded() ? "\(Int(value)) \(unit)" : String(format: "%.4f %@", value, unit)
        }
        return "\(Int(bytes)) B"
    }
}

/// The value in the largest of `units` (steps of 1024) that keeps it at or above 1.
private func scaled(_ bytes: Double, _ units: [String]) -> (Double, String) {
    var value = bytes, unit = 0
    while value >= 1024, unit < units.count - 1 { value /= 1024; unit += 1 }
    return (value, units[unit])
}

private func exactBytes(_ bytes: Int) -> String {
    for (suffix, factor) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes % factor == 0 && bytes >= factor {
        return "\(bytes / factor)\(suffix)"
    }
    return "\(bytes)"
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
