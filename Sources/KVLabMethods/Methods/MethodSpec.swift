import KVLabFoundation

/// A KV method as users write it everywhere (CLI, sessions, UI):
/// `name[:key=value,...][+modifier[:key=value,...]]...`, e.g. `h2o:heavy=64,recent=64+merge`.
public struct MethodSpec: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    /// Parameters in the order written (canonical order once resolved against a schema).
    public var parameters: [Parameter]
    public var modifiers: [MethodSpec]

    public struct Parameter: Sendable, Hashable {
        public var key: String
        public var value: String
    }

    public init(name: String, parameters: [Parameter] = [], modifiers: [MethodSpec] = []) {
        self.name = name
        self.parameters = parameters
        self.modifiers = modifiers
    }

    public init(parsing text: String) throws(MethodSpecError) {
        let parts = text.split(separator: "+", omittingEmptySubsequences: false)
        guard let head = parts.first else { throw MethodSpecError("empty method") }
        var spec = try Self.single(head, whole: text)
        spec.modifiers = try parts.dropFirst().map { part throws(MethodSpecError) in try Self.single(part, whole: text) }
        self = spec
    }

    private static func single(_ text: Substring, whole: String) throws(MethodSpecError) -> MethodSpec {
        let trimmed = text.trimmingSpaces
        let nameEnd = trimmed.firstIndex(of: ":") ?? trimmed.endIndex
        let name = String(trimmed[..<nameEnd]).lowercased()
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw MethodSpecError("'\(whole)' is not a method (expected name:key=value,...)")
        }
        var parameters: [Parameter] = []
        if nameEnd < trimmed.endIndex {
            let list = trimmed[trimmed.index(after: nameEnd)...]
            guard !list.isEmpty else { throw MethodSpecError("\(name): nothing after ':'") }
            for (n, item) in list.split(separator: ",", omittingEmptySubsequences: false).enumerated() {
                // `kvpress:snapkv,ratio=0.5`: kvpress's press comes first, bare (`press=snapkv` too).
                if name == KVPressMethod.methodName, n == 0, !item.contains("="), !item.trimmingSpaces.isEmpty {
                    parameters.append(Parameter(key: KVPressMethod.pressKey, value: String(item.trimmingSpaces).lowercased()))
                    continue
                }
                let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = pair[0].trimmingSpaces.lowercased()
                guard pair.count == 2, !key.isEmpty, !pair[1].trimmingSpaces.isEmpty else {
                    throw MethodSpecError("\(name): '\(item)' is not key=value")
                }
                guard !parameters.contains(where: { $0.key == key }) else {
                    throw MethodSpecError("\(name): \(key) is given twice")
                }
                parameters.append(Parameter(key: key, value: String(pair[1].trimmingSpaces)))
            }
        }
        return MethodSpec(name: name, parameters: parameters)
    }

    public func value(_ key: String) -> String? { parameters.first { $0.key == key }?.value }

    public var description: String {
        var text = name
        if !parameters.isEmpty {
            text += ":" + parameters.enumerated().map { n, p in
                name == KVPressMethod.methodName && n == 0 && p.key == KVPressMethod.pressKey ? p.value : "\(p.key)=\(p.value)"
            }.joined(separator: ",")
        }
        for modifier in modifiers { text += "+" + modifier.description }
        return text
    }
}

/// A method string that does not parse or does not fit its method's parameters.
public struct MethodSpecError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The parameters a method accepts, with defaults and ranges: checks a parsed spec, reads
/// typed values, and renders the canonical string with every parameter spelled out.
package struct ParameterSchema {
    package enum Kind {
        case integer(ClosedRange<Int>)
        case real(ClosedRange<Double>)
        /// A share: at least 0 and below 1 (a compression ratio).
        case share
        case choice([String])
        /// Any text the method checks itself (a file, a list); required.
        case text
        /// A byte count, digits or with `KiB`/`MiB`/`GiB` (`parseByteSize`), written back exactly.
        case byteSize(ClosedRange<Int>)
    }

    package struct Entry {
        var key: String
        var defaultValue: String
        var kind: Kind
    }

    package var method: String
    package var entries: [Entry]

    package init(_ method: String, _ entries: [Entry]) {
        self.method = method
        self.entries = entries
    }

    package static func int(_ key: String, _ defaultValue: Int, _ range: ClosedRange<Int>) -> Entry {
        Entry(key: key, defaultValue: String(defaultValue), kind: .integer(range))
    }

    package static func real(_ key: String, _ defaultValue: Double, _ range: ClosedRange<Double>) -> Entry {
        Entry(key: key, defaultValue: Self.format(defaultValue), kind: .real(range))
    }

    /// A share at least 0 and below 1, as kvpress's compression ratios are.
    package static func share(_ key: String, _ defaultValue: Double) -> Entry {
        Entry(key: key, defaultValue: Self.format(defaultValue), kind: .share)
    }

    package static func choice(_ key: String, _ defaultValue: String, _ values: [String]) -> Entry {
        Entry(key: key, defaultValue: defaultValue, kind: .choice(values))
    }

    package static func text(_ key: String) -> Entry { Entry(key: key, defaultValue: "", kind: .text) }

    /// A byte count whose default is 0 (not given).
    package static func byteSize(_ key: String, _ range: ClosedRange<Int>) -> Entry { Entry(key: key, defaultValue: "0", kind: .byteSize(range)) }

    package static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e9 ? String(Int(value)) : String(value)
    }

    /// Every parameter of `spec` resolved (defaults filled in), or an error naming the bad one.
    package func resolve(_ spec: MethodSpec) throws(MethodSpecError) -> ResolvedParameters {
        for parameter in spec.parameters where !entries.contains(where: { $0.key == parameter.key }) {
            let known = entries.isEmpty ? "it takes no parameters" : "known: " + entries.map(\.key).joined(separator: ", ")
            throw MethodSpecError("\(method): unknown parameter '\(parameter.key)' (\(known))")
        }
        var values: [String: String] = [:]
        var canonical: [MethodSpec.Parameter] = []
        for entry in entries {
            let raw = spec.value(entry.key) ?? entry.defaultValue
            let value: String
            switch entry.kind {
            case .integer(let range):
                // Digits too many for an Int are a whole number out of range, not a malformed one.
                let digits = raw.drop { $0 == "-" || $0 == "+" }
                let wholeNumber = !digits.isEmpty && raw.count - digits.count <= 1 && digits.allSatisfy { $0.isASCII && $0.isNumber }
                guard let number = Int(raw), range.contains(number) else {
                    guard wholeNumber else { throw MethodSpecError("\(method): \(entry.key)=\(raw) is not a whole number") }
                    throw MethodSpecError("\(method): \(entry.key)=\(raw) is outside \(range.lowerBound)...\(range.upperBound)")
                }
                value = String(number)
            case .real(let range):
                guard let number = Double(raw), !number.isNaN else { throw MethodSpecError("\(method): \(entry.key)=\(raw) is not a number") }
                guard number.isFinite, range.contains(number) else {
                    throw MethodSpecError("\(method): \(entry.key)=\(raw) is outside \(Self.format(range.lowerBound))...\(Self.format(range.upperBound))")
                }
                value = Self.format(number)
            case .share:
                guard let number = Double(raw), !number.isNaN else { throw MethodSpecError("\(method): \(entry.key)=\(raw) is not a number") }
                guard number >= 0, number < 1 else { throw MethodSpecError("\(method): \(entry.key)=\(raw) must be at least 0 and below 1") }
                value = Self.format(number)
            case .choice(let options):
                let lowered = raw.lowercased()
                guard options.contains(lowered) else {
                    throw MethodSpecError("\(method): \(entry.key)=\(raw) is not one of \(options.joined(separator: ", "))")
                }
                value = lowered
            case .byteSize(let range):
                guard let number = raw == "0" ? 0 : parseByteSize(raw) else {
                    throw MethodSpecError("\(method): \(entry.key)=\(raw) is not a byte count (e.g. 65536, 64KiB, 2MiB)")
                }
                guard range.contains(number) else {
                    throw MethodSpecError("\(method): \(entry.key)=\(raw) is outside \(formatBytes(range.lowerBound, .exact))...\(formatBytes(range.upperBound, .exact))")
                }
                value = formatBytes(number, .exact)
            case .text:
                guard !raw.isEmpty else { throw MethodSpecError("\(method): give \(entry.key)=…") }
                value = raw
            }
            values[entry.key] = value
            canonical.append(.init(key: entry.key, value: value))
        }
        return ResolvedParameters(values: values, canonical: canonical)
    }
}

/// One family's schemas (eviction, sparse, quantization) in the order the UI cycles through them.
package struct SchemaTable {
    package let ordered: [ParameterSchema]
    private let byName: [String: ParameterSchema]

    package init(_ ordered: [ParameterSchema]) {
        self.ordered = ordered
        byName = Dictionary(uniqueKeysWithValues: ordered.map { ($0.method, $0) })
    }

    package var names: [String] { ordered.map(\.method) }

    package subscript(name: String) -> ParameterSchema? { byName[name] }
}

/// Typed access to a spec's parameters after `ParameterSchema.resolve` checked them.
package struct ResolvedParameters {
    package var values: [String: String]
    package var canonical: [MethodSpec.Parameter]

    package func int(_ key: String) -> Int { Int(values[key]!) ?? parseByteSize(values[key]!)! }
    package func real(_ key: String) -> Double { Double(values[key]!)! }
    package func string(_ key: String) -> String { values[key]! }
}
