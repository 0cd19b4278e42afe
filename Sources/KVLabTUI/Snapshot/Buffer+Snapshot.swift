extension Buffer {
    /// The rows as text: wide clusters written once, trailing spaces dropped.
    public var textLines: [String] {
        (0..<height).map { y in
            var line = ""
            for x in 0..<width where !self[x, y].isContinuation { line += self[x, y].symbol }
            while line.last == " " { line.removeLast() }
            return line
        }
    }

    /// A text snapshot: the rows, then a style map (one code per cell, `.` for the plain style,
    /// trailing `.` dropped) and its legend, so a test sees both what is drawn and how.
    public func snapshot() -> String {
        var codes: [Style: Character] = [.plain: "."]
        var legend: [(Character, Style)] = []
        var map: [String] = []
        for y in 0..<height {
            var row = ""
            for x in 0..<width {
                let style = self[x, y].style
                if codes[style] == nil {
                    let code = legend.count < Self.styleCodes.count ? Self.styleCodes[legend.count] : "¤"
                    codes[style] = code
                    legend.append((code, style))
                }
                row.append(codes[style]!)
            }
            while row.last == "." { row.removeLast() }
            map.append(row)
        }
        return (textLines + ["-- styles --"] + map + ["-- legend --"] + legend.map { "\($0.0) \($0.1.snapshotDescription)" })
            .joined(separator: "\n") + "\n"
    }

    /// One-column characters naming styles in a snapshot's map: ASCII letters and digits, then
    /// Greek and Cyrillic letters (gradients produce many styles).
    static let styleCodes: [Character] = {
        let ranges: [ClosedRange<UInt32>] = [0x61...0x7A, 0x41...0x5A, 0x30...0x39, 0x3B1...0x3C9, 0x391...0x3A9, 0x430...0x44F, 0x410...0x42F]
        return ranges.flatMap { $0.compactMap { Unicode.Scalar($0).map(Character.init) } }
    }()
}

extension Style {
    /// How snapshots spell a style: `fg=title bg=#202020 bold`.
    public var snapshotDescription: String {
        var parts: [String] = []
        if let foreground { parts.append("fg=" + foreground.snapshotDescription) }
        if let background { parts.append("bg=" + background.snapshotDescription) }
        parts += TextAttributes.names.filter { attributes.contains($0.1) }.map(\.0)
        return parts.isEmpty ? "plain" : parts.joined(separator: " ")
    }
}

extension Paint {
    /// How snapshots spell a paint: a role key, `graph@128`, or a colour.
    public var snapshotDescription: String {
        switch self {
        case .role(let role): role.rawValue
        case .gradient(let gradient, let position): "\(gradient.rawValue)@\(position)"
        case .color(let color): color.description
        }
    }
}
