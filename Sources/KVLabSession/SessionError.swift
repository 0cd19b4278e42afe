import Foundation
import KVLabFoundation

/// A problem with a session file, as one line naming the file and, when known, the line.
public struct SessionError: Error, CustomStringConvertible, Equatable {
    /// The session file.
    public var path: String
    /// 1-based line number; nil for problems with the file as a whole.
    public var line: Int?
    /// What is wrong, on one line.
    public var problem: String

    /// The error, with control characters in `problem` escaped and an overlong one shortened (the
    /// same rule as model files), so text quoted from a file cannot break the one-line message.
    public init(path: String, line: Int?, problem: String) {
        self.path = path
        self.line = line
        self.problem = FileError(path: path, problem: problem).singleLine.problem
    }

    public var description: String { line.map { "\(path):\($0): \(problem)" } ?? "\(path): \(problem)" }
}

/// A session file that ends before its recording did: the writer was killed (or the file was
/// truncated) after the events it holds, which may all verify.
public struct RecordingCut: Error, CustomStringConvertible, Equatable {
    /// The session file.
    public var path: String
    /// Tokens recorded before the cut.
    public var step: Int
    /// Complete events the file holds.
    public var events: Int
    /// What shows the cut: the missing end event, or an incomplete last line (older formats).
    public var reason: String

    public var description: String { "\(path): recording cut after step \(step): \(reason)" }
}

/// A problem with one line's content; whoever reads the file adds its path and the line number.
public struct SessionProblem: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension DecodingError {
    /// One line naming the field (`report.cache.pageSlack`) and what is wrong with it.
    var summary: String {
        func path(_ context: Context, _ key: CodingKey? = nil) -> String {
            let keys = context.codingPath + (key.map { [$0] } ?? [])
            let names = keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            let joined = names.reduce("") { $0.isEmpty || $1.hasPrefix("[") ? $0 + $1 : $0 + "." + $1 }
            return joined.isEmpty ? "the line" : "'\(joined)'"
        }
        switch self {
        case .keyNotFound(let key, let context): return "\(path(context, key)) is missing"
        case .valueNotFound(let type, let context): return "\(path(context)) is null, expected \(Self.typeName(type))"
        case .typeMismatch(let type, let context): return "\(path(context)) is not \(Self.typeName(type))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                // The JSON itself is malformed; Foundation's underlying error says where.
                let detail = (context.underlyingError as NSError?)?.userInfo[NSDebugDescriptionErrorKey] as? String
                return "not valid JSON" + (detail.map { " (\($0))" } ?? "")
            }
            return "\(path(context)): \(context.debugDescription)"
        @unknown default: return "cannot be decoded"
        }
    }

    /// `summary` of an error decoding `line`. Foundation calls a well-formed line "not valid JSON",
    /// naming no field, when a number does not fit its field (1.79e308 in a Float); the line is
    /// parsed again here to name the number and its field instead.
    func summary(of line: Data) -> String {
        guard case .dataCorrupted(let context) = self, context.codingPath.isEmpty,
              let value = try? JSONValue.parse(line), let (field, number) = Self.outOfRange(value, path: "") else { return summary }
        return "'\(field)' = \(number) is out of range (too large for its field)"
    }

    /// The first number too large for a Float, or written whole but beyond Int, with its path.
    private static func outOfRange(_ value: JSONValue, path: String) -> (String, Double)? {
        switch value {
        case .number(let number):
            let tooLarge = !(abs(number) <= Double(Float.greatestFiniteMagnitude)) || (number == number.rounded() && abs(number) >= 0x1p63)
            return tooLarge ? (path, number) : nil
        case .array(let items):
            for (index, item) in items.enumerated() {
                if let found = outOfRange(item, path: path + "[\(index)]") { return found }
            }
        case .object(let members):
            for member in members {
                if let found = outOfRange(member.value, path: path.isEmpty ? member.key : path + "." + member.key) { return found }
            }
        default: break
        }
        return nil
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "a boolean"
        case is Int.Type, is Int64.Type, is UInt64.Type, is Int32.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        default: "\(type)"
        }
    }
}
