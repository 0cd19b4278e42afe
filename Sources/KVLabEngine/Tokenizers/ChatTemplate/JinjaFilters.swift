import Foundation

/// Filters, tests and methods, as jinja2's defaults and Python's str/dict/list methods behave,
/// with transformers' `tojson` (json.dumps with ensure_ascii off).
extension JinjaBuiltins {
    static let filters: Set<String> = [
        "tojson", "length", "trim", "default", "string", "join", "upper", "lower", "items", "dictsort", "safe", "list",
        "replace", "indent", "selectattr", "rejectattr", "select", "reject", "map", "first", "last", "int", "float", "abs",
        "unique", "min", "max", "sort", "reverse", "capitalize", "title", "round", "sum", "wordcount",
    ]
    static let tests: Set<String> = [
        "defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
        "boolean", "true", "false", "callable", "odd", "even", "divisibleby", "equalto", "eq", "ne", "lt", "le", "gt",
        "ge", "in", "lower", "upper", "sameas",
    ]

    static func test(_ name: String, _ value: JinjaValue, _ arguments: [JinjaValue]) throws -> Bool {
        func argument() throws -> JinjaValue {
            guard let first = arguments.first else { throw ChatTemplateError("test \(name) needs an argument") }
            return first
        }
        switch name {
        case "defined": return value.isDefined
        case "undefined": return !value.isDefined
        case "none": return value.isNone
        case "string": if case .string = value { return true } else { return false }
        case "number": switch value { case .int, .double, .bool: return true; default: return false }
        case "integer": if case .int = value { return true } else { return false }
        case "float": if case .double = value { return true } else { return false }
        case "boolean": if case .bool = value { return true } else { return false }
        case "true": if case .bool(true) = value { return true } else { return false }
        case "false": if case .bool(false) = value { return true } else { return false }
        case "mapping": if case .dict = value { return true } else { return false }
        case "iterable", "sequence":
            switch value { case .list, .dict, .string: return true; case .undefined: return name == "iterable"; default: return false }
        case "callable": switch value { case .macro, .function, .method: return true; default: return false }
        case "odd", "even", "divisibleby":
            guard let i = value.integer else { throw ChatTemplateError("test \(name) needs an integer") }
            if name == "odd" { return i % 2 != 0 }
            if name == "even" { return i % 2 == 0 }
            guard let d = try argument().integer, d != 0 else { throw ChatTemplateError("divisibleby needs a non-zero integer") }
            return i % d == 0
        case "equalto", "eq": return value.equals(try argument())
        case "ne": return !value.equals(try argument())
        case "lt": return try compare(value, try argument()) < 0
        case "le": return try compare(value, try argument()) <= 0
        case "gt": return try compare(value, try argument()) > 0
        case "ge": return try compare(value, try argument()) >= 0
        case "in": return try contains(try argument(), value)
        case "lower": return value.text == value.text.lowercased()
        case "upper": return value.text == value.text.uppercased()
        case "sameas":
            let other = try argument()
            switch (value, other) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.list(let a), .list(let b)): return a === b
            case (.dict(let a), .dict(let b)), (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        default: throw ChatTemplateError("unsupported test \"is \(name)\"")
        }
    }

    static func filter(_ name: String, _ value: JinjaValue, _ arguments: [JinjaValue], _ keywords: [String: JinjaValue]) throws -> JinjaValue {
        func argument(_ index: Int, _ key: String) -> JinjaValue? { index < arguments.count ? arguments[index] : keywords[key] }
        switch name {
        case "tojson":
            let indent = argument(0, "indent")?.integer
            let sortKeys = argument(3, "sort_keys")?.isTrue ?? false
            var separators = indent == nil ? (", ", ": ") : (",", ": ")
            if case .list(let pair)? = argument(2, "separators"), pair.items.count == 2 {
                separators = (pair.items[0].text, pair.items[1].text)
            }
            return .string(try json(value, indent: indent, separators: separators, sortKeys: sortKeys, level: 0))
        case "length":
            switch value {
            case .undefined: return .int(0)
            case .string(let s): return .int(s.count)
            case .list(let l): return .int(l.items.count)
            case .dict(let d): return .int(d.keys.count)
            default: throw ChatTemplateError("a \(value.typeName) has no length")
            }
        case "trim":
            let chars = argument(0, "chars")
            return try method(.string(value.text), "strip", chars.map { [$0] } ?? [], [:])
        case "default":
            let fallback = argument(0, "default_value") ?? .string("")
            let boolean = argument(1, "boolean")?.isTrue ?? false
            return (boolean ? value.isTrue : value.isDefined) ? value : fallback
        case "string": return .string(value.text)
        case "safe": return value
        case "join":
            let separator = argument(0, "d")?.text ?? ""
            var items = try iterate(value)
            if let attribute = argument(1, "attribute") { items = try items.map { try JinjaBuiltins.attribute($0, attribute.text) } }
            return .string(items.map(\.text).joined(separator: separator))
        case "upper": return .string(value.text.uppercased())
        case "lower": return .string(value.text.lowercased())
        case "capitalize": return try method(.string(value.text), "capitalize", [], [:])
        case "title": return try method(.string(value.text), "title", [], [:])
        case "items":
            guard case .dict(let d) = value else {
                if case .undefined = value { return .list([]) }
                throw ChatTemplateError("items needs a dict, got a \(value.typeName)")
            }
            return .list(d.keys.map { .list([.string($0), d[$0]!]) })
        case "dictsort":
            guard case .dict(let d) = value else { throw ChatTemplateError("dictsort needs a dict") }
            let keys = d.keys.sorted { $0.lowercased().unicodeScalars.lexicographicallyPrecedes($1.lowercased().unicodeScalars) { $0.value < $1.value } }
            return .list(keys.map { .list([.string($0), d[$0]!]) })
        case "list": return .list(try iterate(value))
        case "replace":
            guard let old = argument(0, "old")?.text, let new = argument(1, "new")?.text else {
                throw ChatTemplateError("replace needs old and new strings")
            }
            return try method(.string(value.text), "replace", [.string(old), .string(new)] + (argument(2, "count").map { [$0] } ?? []), [:])
        case "indent":
            let width = argument(0, "width")
            let pad = width.flatMap { $0.integer.map { String(repeating: " ", count: $0) } } ?? (width?.text ?? "    ")
            let first = argument(1, "first")?.isTrue ?? false
            let blank = argument(2, "blank")?.isTrue ?? false
            var lines = value.text.components(separatedBy: "\n")
            for i in lines.indices where (i > 0 || first) && (blank || !lines[i].trimmingCharacters(in: .whitespaces).isEmpty) {
                lines[i] = pad + lines[i]
            }
            return .string(lines.joined(separator: "\n"))
        case "selectattr", "rejectattr", "select", "reject":
            let byAttribute = name.hasSuffix("attr")
            var rest = arguments
            var attributeName = ""
            if byAttribute {
                guard !rest.isEmpty else { throw ChatTemplateError("\(name) needs an attribute name") }
                attributeName = rest.removeFirst().text
            }
            let testName = rest.isEmpty ? nil : rest.removeFirst().text
            if let testName, !tests.contains(testName) { throw ChatTemplateError("unsupported test \"\(testName)\"") }
            let keep = name.hasPrefix("select")
            // jinja2 selects from a false value (None, an empty list) nothing.
            guard value.isTrue else { return .list([]) }
            return .list(try iterate(value).filter { item in
                let subject = byAttribute ? try JinjaBuiltins.attribute(item, attributeName) : item
                let passed = try testName.map { try test($0, subject, rest) } ?? subject.isTrue
                return passed == keep
            })
        case "map":
            let items = try iterate(value)
            if let attribute = keywords["attribute"] {
                let fallback = keywords["default"]
                return .list(try items.map { item in
                    let v = try JinjaBuiltins.attribute(item, attribute.text)
                    return v.isDefined ? v : (fallback ?? v)
                })
            }
            guard let filterName = arguments.first?.text, filters.contains(filterName) else {
                throw ChatTemplateError("unsupported filter \"\(arguments.first?.text ?? "")\" in map")
            }
            return .list(try items.map { try filter(filterName, $0, Array(arguments.dropFirst()), [:]) })
        case "first": return try iterate(value).first ?? .undefined("first")
        case "last": return try iterate(value).last ?? .undefined("last")
        case "int":
            switch value {
            case .int: return value
            case .double(let d): return .int(Int(d))
            case .bool(let b): return .int(b ? 1 : 0)
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? Double(s).map { Int($0) } ?? (argument(0, "default")?.integer ?? 0))
            default: return .int(argument(0, "default")?.integer ?? 0)
            }
        case "float":
            return .double(value.number ?? Double(value.text.trimmingCharacters(in: .whitespaces)) ?? 0)
        case "abs":
            switch value {
            case .int(let i): return .int(abs(i))
            case .double(let d): return .double(abs(d))
            default: throw ChatTemplateError("abs needs a number")
            }
        case "round":
            guard let x = value.number else { throw ChatTemplateError("round needs a number") }
            let digits = argument(0, "precision")?.integer ?? 0
            let scale = Foundation.pow(10, Double(digits))
            return .double((x * scale).rounded(.toNearestOrEven) / scale)
        case "unique":
            var seen: [JinjaValue] = []
            for item in try iterate(value) where !seen.contains(where: { $0.equals(item) }) { seen.append(item) }
            return .list(seen)
        case "min", "max":
            let items = try iterate(value)
            guard var best = items.first else { return .undefined(name) }
            for item in items.dropFirst() where try compare(item, best) * (name == "min" ? -1 : 1) > 0 { best = item }
            return best
        case "sum":
            return try iterate(value).reduce(JinjaValue.int(0)) { try binary("+", $0, $1) }
        case "sort":
            let reverse = argument(0, "reverse")?.isTrue ?? false
            let attribute = keywords["attribute"]?.text
            let items = try iterate(value)
            let keys = try items.map { item in try attribute.map { try JinjaBuiltins.attribute(item, $0) } ?? item }
            var order = Array(items.indices)
            var failure: Error?
            order.sort { a, b in
                do { return try compare(keys[a], keys[b]) * (reverse ? -1 : 1) < 0 } catch { failure = error; return false }
            }
            if let failure { throw failure }
            return .list(order.map { items[$0] })
        case "reverse":
            if case .string(let s) = value { return .string(String(s.reversed())) }
            return .list(try iterate(value).reversed())
        case "wordcount": return .int(value.text.split(whereSeparator: \.isWhitespace).count)
        default: throw ChatTemplateError("unsupported filter \"\(name)\"")
        }
    }

    /// Python's `json.dumps(value, ensure_ascii=False, indent=…, separators=…, sort_keys=…)`.
    static func json(_ value: JinjaValue, indent: Int?, separators: (String, String), sortKeys: Bool, level: Int) throws -> String {
        let newline = indent.map { "\n" + String(repeating: " ", count: $0 * (level + 1)) } ?? ""
        let closing = indent.map { "\n" + String(repeating: " ", count: $0 * level) } ?? ""
        switch value {
        case .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
            return JinjaValue.pythonFloat(d)
        case .string(let s): return jsonString(s)
        case .list(let l):
            if l.items.isEmpty { return "[]" }
            let items = try l.items.map { try json($0, indent: indent, separators: separators, sortKeys: sortKeys, level: level + 1) }
            return "[" + newline + items.joined(separator: separators.0 + newline) + closing + "]"
        case .dict(let d), .namespace(let d):
            if d.keys.isEmpty { return "{}" }
            let keys = sortKeys ? d.keys.sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) { $0.value < $1.value } } : d.keys
            let items = try keys.map { key in
                jsonString(key) + separators.1 + (try json(d[key]!, indent: indent, separators: separators, sortKeys: sortKeys, level: level + 1))
            }
            return "{" + newline + items.joined(separator: separators.0 + newline) + closing + "}"
        case .undefined(let what): throw ChatTemplateError("\(what) is undefined (passed to tojson)")
        default: throw ChatTemplateError("a \(value.typeName) is not JSON serializable")
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
