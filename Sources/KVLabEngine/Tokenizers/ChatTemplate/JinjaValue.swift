import Foundation

/// A value while rendering, with Python's semantics (jinja2 runs on Python objects): lists,
/// dicts and namespaces are shared references, as Python's are.
enum JinjaValue {
    /// A missing variable or key (jinja2's `Undefined`): empty when printed, false, iterable as
    /// nothing, an error when its attributes are used.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list(JinjaList)
    case dict(JinjaDict)
    case namespace(JinjaDict)
    case macro(JinjaMacro)
    /// A global function (`range`, `namespace`, `raise_exception`…) by name.
    case function(String)
    /// A method bound to its object (`message.content.strip`).
    case method(JinjaBox, String)

    static func list(_ items: [JinjaValue]) -> JinjaValue { .list(JinjaList(items)) }

    var isTrue: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s): !s.isEmpty
        case .list(let l): !l.items.isEmpty
        case .dict(let d): !d.keys.isEmpty
        default: true
        }
    }

    var isDefined: Bool { if case .undefined = self { false } else { true } }

    /// Python's `str()`.
    var text: String {
        switch self {
        case .undefined: ""
        case .string(let s): s
        default: repr
        }
    }

    /// Python's `repr()` (what printing a list or dict shows of its items).
    var repr: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .double(let d): Self.pythonFloat(d)
        case .string(let s): Self.pythonRepr(s)
        case .list(let l): "[" + l.items.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let d): "{" + d.keys.map { Self.pythonRepr($0) + ": " + d.values[$0]!.repr }.joined(separator: ", ") + "}"
        case .namespace: "<Namespace>"
        case .macro(let m): "<Macro '\(m.name)'>"
        case .function(let name): "<function \(name)>"
        case .method(_, let name): "<method \(name)>"
        }
    }

    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    static func pythonRepr(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(scalar) == quote { out += "\\" + String(quote) }
                else if scalar.value < 0x20 || scalar.value == 0x7F { out += String(format: "\\x%02x", scalar.value) }
                else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + String(quote)
    }

    var typeName: String {
        switch self {
        case .undefined: "undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .list: "list"
        case .dict: "dict"
        case .namespace: "Namespace"
        case .macro: "macro"
        case .function, .method: "function"
        }
    }

    /// Python's `==`.
    func equals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.string(let a), .string(let b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case (.list(let a), .list(let b)):
            return a.items.count == b.items.count && zip(a.items, b.items).allSatisfy { $0.equals($1) }
        case (.dict(let a), .dict(let b)):
            return a.keys.count == b.keys.count && a.keys.allSatisfy { key in b.values[key].map { a.values[key]!.equals($0) } ?? false }
        case (.namespace(let a), .namespace(let b)): return a === b
        default:
            if let x = number, let y = other.number { return x == y }
            return false
        }
    }

    /// The numeric value of a bool, int or float (Python treats bools as numbers).
    var number: Double? {
        switch self {
        case .bool(let b): b ? 1 : 0
        case .int(let i): Double(i)
        case .double(let d): d
        default: nil
        }
    }

    var integer: Int? {
        switch self {
        case .bool(let b): b ? 1 : 0
        case .int(let i): i
        default: nil
        }
    }
}

final class JinjaList {
    var items: [JinjaValue]
    init(_ items: [JinjaValue]) { self.items = items }
}

/// A dict with string keys in insertion order (also a namespace's attributes).
final class JinjaDict {
    private(set) var keys: [String] = []
    private(set) var values: [String: JinjaValue] = [:]

    init(_ pairs: [(String, JinjaValue)] = []) {
        for (key, value) in pairs { self[key] = value }
    }

    subscript(_ key: String) -> JinjaValue? {
        get { values[key] }
        set {
            if values[key] == nil, newValue != nil { keys.append(key) }
            if newValue == nil { keys.removeAll { $0 == key } }
            values[key] = newValue
        }
    }
}

final class JinjaMacro {
    let name: String
    let parameters: [(name: String, defaultValue: JinjaExpr?)]
    let body: [JinjaNode]
    init(name: String, parameters: [(name: String, defaultValue: JinjaExpr?)], body: [JinjaNode]) {
        self.name = name
        self.parameters = parameters
        self.body = body
    }
}

/// A method's receiver.
final class JinjaBox {
    let value: JinjaValue
    init(_ value: JinjaValue) { self.value = value }
}
