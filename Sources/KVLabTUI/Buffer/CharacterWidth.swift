/// Terminal column widths of characters, following glibc's `wcwidth` (the tables come from the
/// same Unicode version, `scripts/width_table.py`), extended to grapheme clusters the way
/// terminals draw them: a cluster is as wide as its first scalar, emoji presentation (U+FE0F)
/// and flag pairs are two columns.
public enum CharacterWidth {
    /// Columns a scalar takes: 0 (combining, format, control), 1, or 2 (wide).
    public static func of(_ scalar: Unicode.Scalar) -> Int {
        let value = scalar.value
        if value < 0x300 { return value < 0x20 || (0x7F..<0xA0).contains(value) ? 0 : 1 }
        if contains(zeroRanges, value) { return 0 }
        return contains(wideRanges, value) ? 2 : 1
    }

    /// Columns a grapheme cluster takes.
    public static func of(_ character: Character) -> Int {
        let scalars = character.unicodeScalars
        guard let first = scalars.first else { return 0 }
        let base = of(first)
        guard base == 1, scalars.count > 1 else { return base }
        if (0x1F1E6...0x1F1FF).contains(first.value) { return 2 }  // regional-indicator pair: a flag
        if first.properties.isEmoji, scalars.contains("\u{FE0F}") { return 2 }
        return base
    }

    /// Columns a string takes, cluster by cluster.
    public static func of(_ string: some StringProtocol) -> Int {
        var total = 0
        for character in string { total += of(character) }
        return total
    }

    /// Whether a character is a control character, which a cell never holds.
    public static func isControl(_ character: Character) -> Bool {
        guard let value = character.unicodeScalars.first?.value else { return false }
        return value < 0x20 || (0x7F..<0xA0).contains(value)
    }

    private static func contains(_ ranges: [ClosedRange<UInt32>], _ value: UInt32) -> Bool {
        var low = 0, high = ranges.count - 1
        while low <= high {
            let middle = (low + high) / 2
            if value < ranges[middle].lowerBound { high = middle - 1 } else if value > ranges[middle].upperBound { low = middle + 1 } else { return true }
        }
        return false
    }
}
