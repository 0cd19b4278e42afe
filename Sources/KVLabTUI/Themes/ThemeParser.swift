/// A problem found in a theme file, naming the file and (when it has one) the line.
public struct ThemeDiagnostic: Hashable, Sendable, CustomStringConvertible {
    /// Whether the theme can still be used.
    public enum Severity: String, Sendable {
        /// The theme is usable; something was ignored or taken from the default theme.
        case warning
        /// A line could not be understood; the key it meant keeps the default theme's value.
        case error
    }

    /// Warning or error.
    public var severity: Severity
    /// The theme file as given.
    public var path: String
    /// 1-based line number, nil for whole-file findings (missing keys).
    public var line: Int?
    /// What is wrong and what to do, naming the key.
    public var message: String

    public var description: String {
        "\(path)\(line.map { ":\($0)" } ?? ""): \(severity.rawValue): \(message)"
    }
}

/// Reads btop-style theme files: one `theme[key]="value"` per line, `#` comments.
///
/// A role's value is a colour (`#rrggbb`, `#rgb`, a palette index 0–255, a name such as
/// `bright_blue`, or `default`/empty for the terminal's own), optionally with attributes (`bold`,
/// `dim`, `underline`, `reverse`), e.g. `theme[title]="#e0e0e0 bold"`. Gradients take one colour
/// per stop (`graph_start`, `graph_mid`, `graph_end`; the middle stop is optional). Keys the file
/// leaves out come from the fallback theme, with one warning listing them.
public enum ThemeParser {
    /// The parsed theme (complete: gaps filled from `fallback`) and what was wrong with the file.
    public static func parse(_ text: String, path: String, name: String, fallback: Theme) -> (theme: Theme, diagnostics: [ThemeDiagnostic]) {
        var diagnostics: [ThemeDiagnostic] = []
        var roles: [ThemeRole: RoleStyle] = [:]
        var stops: [String: Color] = [:]
        var seen: [String: Int] = [:]
        func report(_ severity: ThemeDiagnostic.Severity, _ line: Int?, _ message: String) {
            diagnostics.append(ThemeDiagnostic(severity: severity, path: path, line: line, message: message))
        }

        for (offset, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let lineNumber = offset + 1
            let line = rawLine.trimmingWhitespace()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let (key, value) = splitAssignment(line) else {
                report(.error, lineNumber, "malformed line \(quoted(line)): expected theme[key]=\"value\"")
                continue
            }
            if let earlier = seen[key] { report(.warning, lineNumber, "key '\(key)' was already set on line \(earlier); this line wins") }
            seen[key] = lineNumber
            if let role = ThemeRole(rawValue: key) {
                switch parseRoleValue(value) {
                case .success(let style): roles[role] = style
                case .failure(let problem): report(.error, lineNumber, "theme[\(key)]: \(problem.message)")
                }
            } else if gradientKeys.contains(key) {
                if let color = Color(parsing: value.trimmingWhitespace()) {
                    stops[key] = color
                } else {
                    report(.error, lineNumber, "theme[\(key)]: \(quoted(value)) is not a colour; expected #rrggbb, #rgb, 0-255, a colour name or default")
                }
            } else {
                let hint = nearestKey(to: key).map { " (did you mean '\($0)'?)" } ?? ""
                report(.warning, lineNumber, "unknown key '\(key)'\(hint); ignored")
            }
        }

        var missing: [String] = []
        var resolvedRoles: [ThemeRole: RoleStyle] = [:]
        for role in ThemeRole.allCases {
            if let style = roles[role] { resolvedRoles[role] = style } else if seen[role.rawValue] == nil { missing.append(role.rawValue) }
            if resolvedRoles[role] == nil { resolvedRoles[role] = fallback[role] }
        }
        var gradients: [ThemeGradient: GradientStops] = [:]
        for gradient in ThemeGradient.allCases {
            let keys = gradient.keys
            let defaults = fallback.gradients[gradient] ?? GradientStops(start: .terminalDefault, end: .terminalDefault)
            for key in [keys.start, keys.end] where seen[key] == nil { missing.append(key) }
            let start = stops[keys.start], end = stops[keys.end]
            // A file giving both ends but no middle means a straight gradient, not the default's middle.
            let mid = stops[keys.mid] ?? (start != nil && end != nil ? nil : defaults.mid)
            gradients[gradient] = GradientStops(start: start ?? defaults.start, mid: mid, end: end ?? defaults.end)
        }
        if !missing.isEmpty {
            report(.warning, nil, "\(missing.count) key\(missing.count == 1 ? "" : "s") missing, taken from the \(fallback.name) theme: \(missing.joined(separator: ", "))")
        }
        return (Theme(name: name, roles: resolvedRoles, gradients: gradients), diagnostics)
    }

    /// Every key a theme file may set.
    public static var knownKeys: [String] {
        ThemeRole.allCases.map(\.rawValue) + gradientKeys
    }

    static let gradientKeys: [String] = ThemeGradient.allCases.flatMap { [$0.keys.start, $0.keys.mid, $0.keys.end] }

    struct ValueProblem: Error { var message: String }

    /// `theme[key]="value"` (spaces around `=` allowed, a `#` comment may follow) → key and value.
    static func splitAssignment(_ line: Substring) -> (String, Substring)? {
        guard line.hasPrefix("theme["), let close = line.firstIndex(of: "]") else { return nil }
        let key = line[line.index(line.startIndex, offsetBy: 6)..<close].trimmingWhitespace()
        var rest = line[line.index(after: close)...].trimmingWhitespace()
        guard !key.isEmpty, rest.first == "=" else { return nil }
        rest = rest.dropFirst().trimmingWhitespace()
        guard let quote = rest.first, quote == "\"" || quote == "'" else { return nil }
        rest = rest.dropFirst()
        guard let end = rest.firstIndex(of: quote) else { return nil }
        let after = rest[rest.index(after: end)...].trimmingWhitespace()
        guard after.isEmpty || after.hasPrefix("#") else { return nil }
        return (String(key), rest[..<end])
    }

    static func parseRoleValue(_ value: Substring) -> Result<RoleStyle, ValueProblem> {
        var color: Color?
        var attributes: TextAttributes = []
        for word in value.split(whereSeparator: \.isWhitespace) {
            if let attribute = TextAttributes.names.first(where: { $0.0 == word.lowercased() }) {
                attributes.insert(attribute.1)
            } else if let parsed = Color(parsing: word) {
                guard color == nil else { return .failure(ValueProblem(message: "\(quoted(value)) names two colours; give one colour and any of bold, dim, underline, reverse")) }
                color = parsed
            } else {
                return .failure(ValueProblem(message: "\(quoted(word)) is neither a colour (#rrggbb, #rgb, 0-255, a colour name, default) nor an attribute (bold, dim, underline, reverse)"))
            }
        }
        return .success(RoleStyle(color ?? .terminalDefault, attributes))
    }

    /// The known key closest to a misspelt one (edit distance at most 3).
    static func nearestKey(to key: String) -> String? {
        let scored = knownKeys.map { ($0, editDistance(Array(key.lowercased()), Array($0))) }
        guard let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 3 else { return nil }
        return best.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() { current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))) }
            previous = current
        }
        return previous[b.count]
    }

    /// Text quoted for a message, shortened and with control characters escaped so a hostile line
    /// cannot break the one-line diagnostic.
    static func quoted(_ text: some StringProtocol) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars.prefix(80) {
            if scalar.value < 0x20 || scalar.value == 0x7F { escaped += "\\u{\(String(scalar.value, radix: 16))}" } else { escaped.unicodeScalars.append(scalar) }
        }
        return "'" + escaped + (text.unicodeScalars.count > 80 ? "…" : "") + "'"
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and carriage returns.
    func trimmingWhitespace() -> SubSequence {
        var slice = self[...]
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return slice
    }
}
