import Foundation
import KVLabFoundation

/// A device or shape file parsed as JSON, kept with its path and text so that every problem is
/// one line naming the file, the line and the key: `h100.json: line 7: hbm_bandwidth: ...`.
struct ProfileDocument {
    let path: String
    let text: String
    let root: JSONValue

    /// Reads and parses `path`; unreadable files and JSON syntax errors name the file.
    init(path: String) throws {
        try self.init(path: path, data: try InputFile.read(path))
    }

    init(path: String, data: Data) throws {
        self.path = path
        text = String(decoding: data, as: UTF8.self)
        do {
            root = try JSONValue.parse(data)
        } catch {
            throw FileError(path: path, problem: "\(error)")
        }
        guard root.members != nil else { throw FileError(path: path, problem: "is \(root.kind), expected a JSON object") }
    }

    /// The 1-based line where `"key":` first appears (keys of profile files are unique).
    func line(of key: String) -> Int? {
        let needle = "\"\(key)\""
        var line = 1
        var rest = Substring(text)
        while let range = rest.range(of: needle) {
            line += rest[rest.startIndex..<range.lowerBound].reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            let after = rest[range.upperBound...].drop { $0 == " " || $0 == "\t" }
            if after.first == ":" { return line }
            line += rest[range].reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            rest = rest[range.upperBound...]
        }
        return nil
    }

    /// A one-line error about `key`, with its line when the key is present.
    func error(_ key: String, _ problem: String) -> FileError {
        let place = line(of: key).map { "line \($0): " } ?? ""
        return FileError(path: path, problem: "\(place)\(key): \(problem)")
    }

    /// Refuses keys outside `known` (a typo would otherwise silently fall back to a default).
    func checkKeys(_ known: [String]) throws {
        for member in root.members ?? [] where !known.contains(member.key) {
            throw error(member.key, "unknown key (known: \(known.joined(separator: ", ")))")
        }
    }

    func value(_ key: String) -> JSONValue? {
        guard let value = root[key], !value.isNull else { return nil }
        return value
    }

    func string(_ key: String) throws -> String {
        guard let value = value(key) else { throw error(key, "missing") }
        guard let text = value.string, !text.isEmpty else { throw error(key, "is \(value.kind), expected a non-empty string") }
        return text
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value = value(key) else { throw error(key, "missing") }
        guard let number = value.integer else { throw error(key, "is \(value.kind), expected a whole number") }
        guard range.contains(number) else { throw error(key, "\(number) is outside \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = value(key) else { return fallback }
        guard let flag = value.bool else { throw error(key, "is \(value.kind), expected true or false") }
        return flag
    }

    /// A plain number of `kind` (efficiencies), `fallback` when absent.
    func number(_ key: String, _ kind: QuantityKind, default fallback: Double) throws -> Double {
        guard let value = value(key) else { return fallback }
        guard let number = value.double, Self.accepts(number, kind) else { throw error(key, "is \(describe(value)), expected \(kind.expectation)") }
        return number
    }

    /// `{"value": ..., "source": "..."}`. A required figure must have a value; an optional one may
    /// have `"value": null` (the device lacks the feature, e.g. fp8 on an A100) or be absent.
    func figure(_ key: String, _ kind: QuantityKind, required: Bool) throws -> Figure? {
        guard let object = value(key) else {
            if required { throw error(key, "missing (expected {\"value\": ..., \"source\": \"...\"})") }
            return nil
        }
        guard object.members != nil else { throw error(key, "is \(object.kind), expected {\"value\": ..., \"source\": \"...\"}") }
        for member in object.members! where member.key != "value" && member.key != "source" {
            throw error(key, "unknown member \"\(member.key)\" (a figure has value and source)")
        }
        guard let source = object["source"]?.string, !source.isEmpty else { throw error(key, "has no source (cite the datasheet)") }
        guard let raw = object["value"], !raw.isNull else {
            if required { throw error(key, "value is missing or null") }
            return Figure(value: nil, source: source)
        }
        let number: Double?
        if let text = raw.string { number = kind.parse(text) } else { number = raw.double }
        guard let number, Self.accepts(number, kind) else { throw error(key, "value \(describe(raw)) is not \(kind.expectation)") }
        return Figure(value: number, source: source)
    }

    private static func accepts(_ number: Double, _ kind: QuantityKind) -> Bool {
        switch kind {
        case .count: number >= 1 && number == number.rounded() && number < 1e9
        case .ratio: number > 0 && number <= 1
        default: number > 0 && number.isFinite
        }
    }

    private func describe(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): "\"\(text.prefix(40))\""
        case .integer(let number): String(number)
        case .number(let number): String(number)
        default: value.kind
        }
    }
}

/// A value read from a device or shape file (`ProfileDocument`).
protocol ProfileFile {
    init(document: ProfileDocument) throws
}

extension ProfileFile {
    /// Reads a file; every problem is one line naming the file, the line and the key.
    public init(path: String) throws {
        try self.init(document: ProfileDocument(path: path))
    }

    /// Parses a file's bytes (`path` names it in errors).
    public init(path: String, data: Data) throws {
        try self.init(document: ProfileDocument(path: path, data: data))
    }
}
