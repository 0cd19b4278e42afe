/// What a profile figure measures, with the units it may be written in. Numbers are base units
/// (bytes, bytes/s, FLOP/s); strings carry a unit, e.g. `"80 GiB"`, `"3.35 TB/s"`, `"989 TFLOP/s"`.
enum QuantityKind {
    case bytes
    case bandwidth
    case flops
    /// A plain count (SMs, cores, layers).
    case count
    /// A dimensionless factor (efficiencies).
    case ratio

    /// Accepted unit names and their multipliers.
    var units: [(name: String, factor: Double)] {
        switch self {
        case .bytes:
            [("B", 1), ("KiB", 1024), ("MiB", 1024 * 1024), ("GiB", 1024 * 1024 * 1024), ("TiB", 1024 * 1024 * 1024 * 1024),
             ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12)]
        case .bandwidth:
            [("B/s", 1), ("KB/s", 1e3), ("MB/s", 1e6), ("GB/s", 1e9), ("TB/s", 1e12), ("GiB/s", 1024 * 1024 * 1024)]
        case .flops:
            [("FLOP/s", 1), ("GFLOP/s", 1e9), ("TFLOP/s", 1e12), ("PFLOP/s", 1e15), ("OP/s", 1), ("GOP/s", 1e9), ("TOP/s", 1e12)]
        case .count, .ratio:
            []
        }
    }

    /// How the expected value is described in an error.
    var expectation: String {
        switch self {
        case .bytes: "a size in bytes or a string like \"80 GiB\""
        case .bandwidth: "a bandwidth in B/s or a string like \"3.35 TB/s\""
        case .flops: "a rate in FLOP/s or a string like \"989 TFLOP/s\""
        case .count: "a positive whole number"
        case .ratio: "a number in (0, 1]"
        }
    }

    /// The value of `text` (`"<number> <unit>"`), or nil when it is not one of this kind.
    func parse(_ text: String) -> Double? {
        let parts = text.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2, let number = Double(parts[0]), number.isFinite,
              let unit = units.first(where: { $0.name == parts[1] }) else { return nil }
        return number * unit.factor
    }
}
