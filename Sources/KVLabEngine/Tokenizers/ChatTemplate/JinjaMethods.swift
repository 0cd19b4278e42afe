import Foundation

/// Python's read-only str, dict and list methods that chat templates call.
extension JinjaBuiltins {
    static func method(_ object: JinjaValue, _ name: String, _ arguments: [JinjaValue], _ keywords: [String: JinjaValue]) throws -> JinjaValue {
        func argument(_ index: Int, _ key: String) -> JinjaValue? {
            let value = index < arguments.count ? arguments[index] : keywords[key]
            if let value, value.isNone { return nil }
            return value
        }
        switch object {
        case .dict(let d):
            switch name {
            case "get":
                guard case .string(let key)? = arguments.first else { return argument(1, "default") ?? .none }
                return d[key] ?? argument(1, "default") ?? .none
            case "items": return .list(d.keys.map { .list([.string($0), d[$0]!]) })
            case "keys": return .list(d.keys.map { .string($0) })
            case "values": return .list(d.keys.map { d[$0]! })
            default: break
            }
        case .list(let l):
            switch name {
            case "index":
                guard let target = arguments.first, let i = l.items.firstIndex(where: { $0.equals(target) }) else {
                    throw ChatTemplateError("list.index: value not in list")
                }
                return .int(i)
            case "count": return .int(l.items.filter { $0.equals(arguments.first ?? .none) }.count)
            default: break
            }
        case .string(let s):
            return try stringMethod(s, name, argument)
        default: break
        }
        throw ChatTemplateError("unsupported method \(object.typeName).\(name)()")
    }

    /// `str.format` with `{}`, `{0}` and `{name}` fields (no format specs) and `{{`/`}}` escapes.
    private static func format(_ s: String, _ argument: (Int, String) -> JinjaValue?) throws -> String {
        var out = ""
        var next = 0
        var chars = Array(s)[...]
        while let ch = chars.popFirst() {
            if ch == "}" {
                guard chars.popFirst() == "}" else { throw ChatTemplateError("str.format: single '}'") }
                out.append("}")
                continue
            }
            guard ch == "{" else { out.append(ch); continue }
            if chars.first == "{" { chars.removeFirst(); out.append("{"); continue }
            var field = ""
            while let c = chars.popFirst(), c != "}" { field.append(c) }
            guard !field.contains(":"), !field.contains("!") else { throw ChatTemplateError("unsupported construct: str.format specs") }
            let value: JinjaValue?
            if field.isEmpty { value = argument(next, ""); next += 1 }
            else if let index = Int(field) { value = argument(index, "") }
            else { value = argument(Int.max, field) }
            guard let value else { throw ChatTemplateError("str.format: no value for {\(field)}") }
            out += value.text
        }
        return out
    }

    private static func stringMethod(_ s: String, _ name: String, _ argument: (Int, String) -> JinjaValue?) throws -> JinjaValue {
        let scalars = Array(s.unicodeScalars)
        func text(_ part: ArraySlice<Unicode.Scalar>) -> String { String(String.UnicodeScalarView(part)) }
        switch name {
        case "strip", "lstrip", "rstrip":
            let chars = argument(0, "chars").map { Set($0.text.unicodeScalars) }
            func strips(_ c: Unicode.Scalar) -> Bool { chars?.contains(c) ?? c.properties.isWhitespace }
            var start = 0, end = scalars.count
            if name != "rstrip" { while start < end, strips(scalars[start]) { start += 1 } }
            if name != "lstrip" { while end > start, strips(scalars[end - 1]) { end -= 1 } }
            return .string(text(scalars[start..<end]))
        case "split", "rsplit":
            let limit = argument(1, "maxsplit")?.integer ?? -1
            guard let separator = argument(0, "sep")?.text else {
                // Runs of whitespace, no empty pieces.
                var pieces = s.split(whereSeparator: { $0.isWhitespace }).map { JinjaValue.string(String($0)) }
                if limit >= 0, pieces.count > limit + 1 {
                    if name == "rsplit" { throw ChatTemplateError("unsupported construct: rsplit with maxsplit on whitespace") }
                    let head = pieces.prefix(limit)
                    var rest = Substring(s)
                    for _ in 0..<limit {
                        rest = rest.drop { $0.isWhitespace }
                        rest = rest.drop { !$0.isWhitespace }
                    }
                    pieces = Array(head) + [.string(String(rest.drop { $0.isWhitespace }))]
                }
                return .list(pieces)
            }
            guard !separator.isEmpty else { throw ChatTemplateError("split: empty separator") }
            var parts = s.components(separatedBy: separator)
            if limit >= 0, parts.count > limit + 1 {
                if name == "split" {
                    parts = Array(parts.prefix(limit)) + [parts.dropFirst(limit).joined(separator: separator)]
                } else {
                    parts = [parts.dropLast(limit).joined(separator: separator)] + Array(parts.suffix(limit))
                }
            }
            return .list(parts.map { .string($0) })
        case "startswith", "endswith":
            let candidates: [String]
            switch argument(0, "prefix") {
            case .string(let p)?: candidates = [p]
            case .list(let l)?: candidates = l.items.map(\.text)
            default: throw ChatTemplateError("\(name) needs a string")
            }
            return .bool(candidates.contains { c in
                name == "startswith" ? scalars.starts(with: c.unicodeScalars) : scalars.reversed().starts(with: c.unicodeScalars.reversed())
            })
        case "replace":
            guard let old = argument(0, "old")?.text, let new = argument(1, "new")?.text else {
                throw ChatTemplateError("replace needs two strings")
            }
            let count = argument(2, "count")?.integer ?? -1
            if count < 0 { return .string(s.replacingOccurrences(of: old, with: new, options: .literal)) }
            var parts = s.components(separatedBy: old)
            guard parts.count > count + 1 else { return .string(parts.joined(separator: new)) }
            let head = parts.prefix(count + 1).joined(separator: new)
            parts.removeFirst(count + 1)
            return .string(([head] + parts).joined(separator: old))
        case "upper": return .string(s.uppercased())
        case "lower": return .string(s.lowercased())
        case "capitalize": return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "title":
            var out = ""
            var previousCased = false
            for ch in s {
                out += previousCased ? ch.lowercased() : ch.uppercased()
                previousCased = ch.isLetter
            }
            return .string(out)
        case "find", "rfind":
            guard let needle = argument(0, "sub")?.text else { throw ChatTemplateError("\(name) needs a string") }
            let options: String.CompareOptions = name == "find" ? [.literal] : [.literal, .backwards]
            guard let range = s.range(of: needle, options: options) else { return .int(-1) }
            return .int(s.unicodeScalars.distance(from: s.unicodeScalars.startIndex, to: range.lowerBound))
        case "count":
            guard let needle = argument(0, "x")?.text, !needle.isEmpty else { throw ChatTemplateError("count needs a string") }
            return .int(s.components(separatedBy: needle).count - 1)
        case "join":
            guard let items = argument(0, "iterable") else { throw ChatTemplateError("join needs a list") }
            return .string(try iterate(items).map(\.text).joined(separator: s))
        case "format": return .string(try format(s, argument))
        case "splitlines":
            return .list(s.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { .string(String($0)) }
                .dropLast(s.last?.isNewline == true ? 1 : 0))
        case "isdigit": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType == .decimal })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(\.properties.isWhitespace))
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(\.properties.isAlphabetic))
        case "isalnum":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        default: throw ChatTemplateError("unsupported method str.\(name)()")
        }
    }
}
