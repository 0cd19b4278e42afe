import Foundation

/// The operators, attribute rules, global functions and methods of rendering, with Python's and
/// jinja2's semantics (filters and tests are in JinjaFilters.swift).
enum JinjaBuiltins {
    static let functions: Set<String> = ["range", "namespace", "dict", "raise_exception", "strftime_now"]

    /// The methods of strings, dicts and lists templates call (read-only: transformers renders in
    /// jinja2's immutable sandbox, which refuses `append`, `pop` and `update`).
    static let stringMethods: Set<String> = ["strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "replace",
                                             "upper", "lower", "title", "capitalize", "find", "rfind", "count", "join", "format",
                                             "isdigit", "isspace", "isalpha", "isalnum", "splitlines"]
    static let dictMethods: Set<String> = ["get", "items", "keys", "values"]
    static let listMethods: Set<String> = ["index", "count"]

    static func iterate(_ value: JinjaValue) throws -> [JinjaValue] {
        switch value {
        case .undefined: return []
        case .list(let l): return l.items
        case .dict(let d): return d.keys.map { .string($0) }
        case .string(let s): return s.map { .string(String($0)) }
        default: throw ChatTemplateError("a \(value.typeName) is not iterable")
        }
    }

    /// `object.name`: jinja2 tries the Python attribute (a method), then the item.
    static func attribute(_ object: JinjaValue, _ name: String) throws -> JinjaValue {
        switch object {
        case .undefined(let what): throw ChatTemplateError("\(what) is undefined (reading .\(name))")
        case .dict(let d):
            if dictMethods.contains(name) { return .method(JinjaBox(object), name) }
            return d[name] ?? .undefined(name)
        case .namespace(let d): return d[name] ?? .undefined(name)
        case .string:
            return stringMethods.contains(name) ? .method(JinjaBox(object), name) : .undefined(name)
        case .list:
            return listMethods.contains(name) ? .method(JinjaBox(object), name) : .undefined(name)
        default: return .undefined(name)
        }
    }

    /// `object[key]`: jinja2 tries the item, then the attribute.
    static func item(_ object: JinjaValue, _ key: JinjaValue) throws -> JinjaValue {
        switch (object, key) {
        case (.undefined(let what), _): throw ChatTemplateError("\(what) is undefined (subscripted)")
        case (.list(let l), _):
            guard let i = key.integer else { return .undefined("item") }
            let index = i < 0 ? l.items.count + i : i
            return l.items.indices.contains(index) ? l.items[index] : .undefined("index \(i)")
        case (.string(let s), _):
            guard let i = key.integer else { return .undefined("item") }
            let characters = Array(s)
            let index = i < 0 ? characters.count + i : i
            return characters.indices.contains(index) ? .string(String(characters[index])) : .undefined("index \(i)")
        case (.dict(let d), .string(let k)): return try d[k] ?? attribute(object, k)
        case (.namespace(let d), .string(let k)): return d[k] ?? .undefined(k)
        default: return .undefined("item")
        }
    }

    /// Python's `sequence[start:stop:step]`.
    static func slice(_ object: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?) throws -> JinjaValue {
        let items: [JinjaValue]
        switch object {
        case .list(let l): items = l.items
        case .string(let s): items = s.map { .string(String($0)) }
        case .undefined(let what): throw ChatTemplateError("\(what) is undefined (sliced)")
        default: throw ChatTemplateError("a \(object.typeName) cannot be sliced")
        }
        func bound(_ value: JinjaValue?) throws -> Int? {
            guard let value, !(value.isNone) else { return nil }
            guard let i = value.integer else { throw ChatTemplateError("slice indices must be integers") }
            return i
        }
        let n = items.count
        let stride = try bound(step) ?? 1
        guard stride != 0 else { throw ChatTemplateError("slice step cannot be zero") }
        func clamp(_ i: Int?, _ defaultValue: Int) -> Int {
            guard var i else { return defaultValue }
            if i < 0 { i += n }
            return stride > 0 ? min(max(i, 0), n) : min(max(i, -1), n - 1)
        }
        var picked: [JinjaValue] = []
        var i = clamp(try bound(start), stride > 0 ? 0 : n - 1)
        let end = clamp(try bound(stop), stride > 0 ? n : -1)
        while stride > 0 ? i < end : i > end {
            picked.append(items[i])
            i += stride
        }
        if case .string = object { return .string(picked.map(\.text).joined()) }
        return .list(picked)
    }

    static func binary(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
        switch op {
        case "==": return .bool(l.equals(r))
        case "!=": return .bool(!l.equals(r))
        case "<", ">", "<=", ">=":
            let order = try compare(l, r)
            switch op {
            case "<": return .bool(order < 0)
            case ">": return .bool(order > 0)
            case "<=": return .bool(order <= 0)
            default: return .bool(order >= 0)
            }
        case "in": return .bool(try contains(r, l))
        case "~": return .string(l.text + r.text)
        case "+":
            switch (l, r) {
            case (.string(let a), .string(let b)): return .string(a + b)
            case (.list(let a), .list(let b)): return .list(a.items + b.items)
            default: return try arithmetic(op, l, r)
            }
        case "*":
            switch (l, r) {
            case (.string(let s), _) where r.integer != nil: return .string(String(repeating: s, count: max(0, r.integer!)))
            case (.list(let a), _) where r.integer != nil:
                return .list(Array([[JinjaValue]](repeating: a.items, count: max(0, r.integer!)).joined()))
            default: return try arithmetic(op, l, r)
            }
        default:
            if op == "%", case .string = l { throw ChatTemplateError("unsupported construct: %-formatting of strings") }
            return try arithmetic(op, l, r)
        }
    }

    private static func arithmetic(_ op: String, _ l: JinjaValue, _ r: JinjaValue) throws -> JinjaValue {
        guard let x = l.number, let y = r.number else {
            throw ChatTemplateError("unsupported operand types for \(op): \(l.typeName) and \(r.typeName)")
        }
        if let a = l.integer, let b = r.integer, op != "/" {
            switch op {
            case "+": return .int(a &+ b)
            case "-": return .int(a &- b)
            case "*": return .int(a &* b)
            case "//", "%":
                guard b != 0 else { throw ChatTemplateError("integer division or modulo by zero") }
                let q = Int((Double(a) / Double(b)).rounded(.down))
                return op == "//" ? .int(q) : .int(a - q * b)
            case "**":
                if b >= 0 { return .int(Int(Foundation.pow(Double(a), Double(b)))) }
                return .double(Foundation.pow(Double(a), Double(b)))
            default: break
            }
        }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/":
            guard y != 0 else { throw ChatTemplateError("division by zero") }
            return .double(x / y)
        case "//":
            guard y != 0 else { throw ChatTemplateError("division by zero") }
            return .double((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw ChatTemplateError("modulo by zero") }
            return .double(x - (x / y).rounded(.down) * y)
        case "**": return .double(Foundation.pow(x, y))
        default: throw ChatTemplateError("unsupported operator \(op)")
        }
    }

    static func compare(_ l: JinjaValue, _ r: JinjaValue) throws -> Int {
        if let x = l.number, let y = r.number { return x < y ? -1 : x > y ? 1 : 0 }
        switch (l, r) {
        case (.string(let a), .string(let b)):
            let x = Array(a.unicodeScalars.map(\.value)), y = Array(b.unicodeScalars.map(\.value))
            return x.lexicographicallyPrecedes(y) ? -1 : x == y ? 0 : 1
        case (.list(let a), .list(let b)):
            for (x, y) in zip(a.items, b.items) {
                let order = try compare(x, y)
                if order != 0 { return order }
            }
            return a.items.count < b.items.count ? -1 : a.items.count > b.items.count ? 1 : 0
        default: throw ChatTemplateError("cannot compare a \(l.typeName) with a \(r.typeName)")
        }
    }

    static func contains(_ container: JinjaValue, _ element: JinjaValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let e) = element else { throw ChatTemplateError("'in <string>' needs a string on the left") }
            return e.isEmpty || s.range(of: e, options: .literal) != nil
        case .list(let l): return l.items.contains { $0.equals(element) }
        case .dict(let d), .namespace(let d):
            guard case .string(let key) = element else { return false }
            return d[key] != nil
        case .undefined: return false  // jinja2's Undefined iterates as empty
        default: throw ChatTemplateError("a \(container.typeName) is not a container")
        }
    }

    /// Calls a global function or a bound method.
    static func call(_ function: JinjaValue, _ arguments: [JinjaValue], _ keywords: [String: JinjaValue]) throws -> JinjaValue {
        switch function {
        case .function(let name):
            if name.hasPrefix("cycle:") {
                guard !arguments.isEmpty else { throw ChatTemplateError("loop.cycle needs arguments") }
                return arguments[Int(name.dropFirst(6))! % arguments.count]
            }
            switch name {
            case "range":
                let bounds = try arguments.map { value -> Int in
                    guard let i = value.integer else { throw ChatTemplateError("range() takes integers") }
                    return i
                }
                let (start, stop, step) = switch bounds.count {
                case 1: (0, bounds[0], 1)
                case 2: (bounds[0], bounds[1], 1)
                case 3: (bounds[0], bounds[1], bounds[2])
                default: throw ChatTemplateError("range() takes 1 to 3 arguments")
                }
                guard step != 0 else { throw ChatTemplateError("range() step cannot be zero") }
                let values = Array(Swift.stride(from: start, to: stop, by: step).prefix(1_000_000))
                return .list(values.map { .int($0) })
            case "namespace", "dict":
                let dict = JinjaDict()
                for argument in arguments {
                    guard case .dict(let d) = argument else { throw ChatTemplateError("\(name)() takes keyword arguments or a dict") }
                    for key in d.keys { dict[key] = d[key] }
                }
                for key in keywords.keys.sorted() { dict[key] = keywords[key] }
                return name == "dict" ? .dict(dict) : .namespace(dict)
            case "raise_exception":
                throw ChatTemplateError("the template refuses: \(arguments.first?.text ?? "")")
            case "strftime_now":
                guard case .string(let format)? = arguments.first else { throw ChatTemplateError("strftime_now() takes a format string") }
                return .string(try strftime(format, Date()))
            default: throw ChatTemplateError("unsupported function \(name)()")
            }
        case .method(let box, let name): return try method(box.value, name, arguments, keywords)
        case .undefined(let what): throw ChatTemplateError("\(what) is undefined (called)")
        default: throw ChatTemplateError("a \(function.typeName) is not callable")
        }
    }

    /// Python's `datetime.now().strftime` for the directives chat templates use.
    static func strftime(_ format: String, _ date: Date) throws -> String {
        let calendar = Calendar(identifier: .gregorian)
        let c = calendar.dateComponents(in: TimeZone.current, from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                      "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        func two(_ n: Int?) -> String { String(format: "%02d", n ?? 0) }
        var out = ""
        var chars = format.makeIterator()
        while let ch = chars.next() {
            guard ch == "%" else { out.append(ch); continue }
            guard let directive = chars.next() else { out.append("%"); break }
            switch directive {
            case "d": out += two(c.day)
            case "m": out += two(c.month)
            case "Y": out += String(c.year ?? 0)
            case "y": out += two((c.year ?? 0) % 100)
            case "b": out += String(months[(c.month ?? 1) - 1].prefix(3))
            case "B": out += months[(c.month ?? 1) - 1]
            case "a": out += String(days[(c.weekday ?? 1) - 1].prefix(3))
            case "A": out += days[(c.weekday ?? 1) - 1]
            case "H": out += two(c.hour)
            case "M": out += two(c.minute)
            case "S": out += two(c.second)
            case "j": out += String(format: "%03d", calendar.ordinality(of: .day, in: .year, for: date) ?? 0)
            case "%": out += "%"
            default: throw ChatTemplateError("unsupported strftime directive %\(directive)")
            }
        }
        return out
    }
}

extension JinjaValue {
    var isNone: Bool { if case .none = self { true } else { false } }
}
