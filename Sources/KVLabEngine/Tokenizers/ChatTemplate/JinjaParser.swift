/// Jinja statements and expressions, parsed from the lexer's segments with jinja2's grammar and
/// operator precedence. An unsupported statement fails when the template is parsed; a filter or
/// test kvlab does not implement fails when it is used, as jinja2 (3.x) fails on unknown ones
/// only in the branches a rendering reaches.
indirect enum JinjaNode: Sendable {
    case text(String)
    case output(JinjaExpr)
    case conditional([(condition: JinjaExpr, body: [JinjaNode])], otherwise: [JinjaNode])
    case loop(targets: [String], iterable: JinjaExpr, filter: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode])
    case assign(targets: [String], value: JinjaExpr)
    case assignAttribute(object: String, attribute: String, value: JinjaExpr)
    case assignBlock(name: String, body: [JinjaNode])
    case macro(name: String, parameters: [(name: String, defaultValue: JinjaExpr?)], body: [JinjaNode])
    case filterBlock(name: String, arguments: [JinjaExpr], body: [JinjaNode])
    case breakLoop
    case continueLoop
}

indirect enum JinjaExpr: Sendable {
    case literal(JinjaLiteral)
    case name(String)
    case list([JinjaExpr])
    case dict([(key: JinjaExpr, value: JinjaExpr)])
    case attribute(JinjaExpr, String)
    case item(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, JinjaExpr?, JinjaExpr?, JinjaExpr?)
    case call(JinjaExpr, [JinjaExpr], [(name: String, value: JinjaExpr)])
    case filter(JinjaExpr, String, [JinjaExpr], [(name: String, value: JinjaExpr)])
    case test(JinjaExpr, String, [JinjaExpr], negated: Bool)
    case not(JinjaExpr)
    case negate(JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    case conditional(JinjaExpr, condition: JinjaExpr, otherwise: JinjaExpr?)
}

enum JinjaLiteral: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

struct JinjaParser {
    private let segments: [JinjaLexer.Segment]
    private var position = 0

    static func parse(_ source: String) throws -> [JinjaNode] {
        var parser = JinjaParser(segments: try JinjaLexer.segments(source))
        let (nodes, end) = try parser.block(until: [])
        if let end { throw ChatTemplateError("unexpected {% \(end) %}") }
        return nodes
    }

    private init(segments: [JinjaLexer.Segment]) { self.segments = segments }

    /// The rest of the tokens of the tag that ended the last block (`{% elif x %}`'s condition).
    private var lastTokens = TokenStream([])

    /// Nodes up to one of the statements named in `enders` (returned, the rest of its tag left in
    /// `lastTokens`), or to the end of the template (nil).
    private mutating func block(until enders: Set<String>) throws -> ([JinjaNode], String?) {
        var nodes: [JinjaNode] = []
        while position < segments.count {
            let segment = segments[position]
            position += 1
            switch segment {
            case .text(let text): nodes.append(.text(text))
            case .output(let tokens):
                var stream = TokenStream(tokens)
                nodes.append(.output(try stream.expression()))
                try stream.expectEnd("{{ }}")
            case .statement(let tokens):
                var stream = TokenStream(tokens)
                guard case .name(let keyword)? = stream.peek?.kind else { throw ChatTemplateError("a {% %} tag without a statement") }
                if enders.contains(keyword) {
                    stream.advance()
                    lastTokens = stream
                    return (nodes, keyword)
                }
                stream.advance()
                nodes.append(try statement(keyword, &stream))
            }
        }
        if !enders.isEmpty { throw ChatTemplateError("missing {% \(enders.sorted().joined(separator: " or ")) %}") }
        return (nodes, nil)
    }

    private mutating func statement(_ keyword: String, _ stream: inout TokenStream) throws -> JinjaNode {
        switch keyword {
        case "if":
            var branches: [(condition: JinjaExpr, body: [JinjaNode])] = []
            var condition = try stream.expression()
            try stream.expectEnd("{% if %}")
            while true {
                let (body, end) = try block(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                switch end {
                case "elif":
                    condition = try lastTokens.expression()
                    try lastTokens.expectEnd("{% elif %}")
                case "else":
                    try lastTokens.expectEnd("{% else %}")
                    let (otherwise, _) = try block(until: ["endif"])
                    return .conditional(branches, otherwise: otherwise)
                default:
                    return .conditional(branches, otherwise: [])
                }
            }
        case "for":
            var targets = [try stream.name()]
            while stream.accept(",") { targets.append(try stream.name()) }
            try stream.expectName("in")
            let iterable = try stream.expression(conditional: false)
            var filter: JinjaExpr?
            if stream.acceptName("if") { filter = try stream.expression(conditional: false) }
            if stream.acceptName("recursive") { throw ChatTemplateError("unsupported construct: recursive for loops") }
            try stream.expectEnd("{% for %}")
            let (body, end) = try block(until: ["else", "endfor"])
            var otherwise: [JinjaNode] = []
            if end == "else" { (otherwise, _) = try block(until: ["endfor"]) }
            return .loop(targets: targets, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
        case "set":
            let first = try stream.name()
            if stream.accept(".") {
                let attribute = try stream.name()
                try stream.expect("=")
                let value = try stream.expression()
                try stream.expectEnd("{% set %}")
                return .assignAttribute(object: first, attribute: attribute, value: value)
            }
            var targets = [first]
            while stream.accept(",") { targets.append(try stream.name()) }
            if stream.atEnd {
                guard targets.count == 1 else { throw ChatTemplateError("a {% set %} block assigns one name") }
                let (body, _) = try block(until: ["endset"])
                return .assignBlock(name: first, body: body)
            }
            try stream.expect("=")
            var value = try stream.expression()
            if stream.accept(",") {
                var items = [value]
                repeat { items.append(try stream.expression()) } while stream.accept(",")
                value = .list(items)
            }
            try stream.expectEnd("{% set %}")
            return .assign(targets: targets, value: value)
        case "macro":
            let name = try stream.name()
            try stream.expect("(")
            var parameters: [(name: String, defaultValue: JinjaExpr?)] = []
            while !stream.accept(")") {
                let parameter = try stream.name()
                parameters.append((parameter, stream.accept("=") ? try stream.expression() : nil))
                if !stream.accept(",") { try stream.expect(")"); break }
            }
            try stream.expectEnd("{% macro %}")
            let (body, _) = try block(until: ["endmacro"])
            return .macro(name: name, parameters: parameters, body: body)
        case "filter":
            let name = try stream.name()
            var arguments: [JinjaExpr] = []
            if stream.accept("(") { (arguments, _) = try stream.arguments() }
            try stream.expectEnd("{% filter %}")
            let (body, _) = try block(until: ["endfilter"])
            return .filterBlock(name: name, arguments: arguments, body: body)
        case "generation":
            // transformers' assistant-mask marker renders its body unchanged.
            try stream.expectEnd("{% generation %}")
            let (body, _) = try block(until: ["endgeneration"])
            return .conditional([(.literal(.bool(true)), body)], otherwise: [])
        case "break":
            try stream.expectEnd("{% break %}")
            return .breakLoop
        case "continue":
            try stream.expectEnd("{% continue %}")
            return .continueLoop
        default:
            throw ChatTemplateError("unsupported statement {% \(keyword) %}")
        }
    }
}

/// Expression parsing over one tag's tokens.
struct TokenStream {
    private let tokens: [JinjaToken]
    private var index = 0

    init(_ tokens: [JinjaToken]) { self.tokens = tokens }

    var peek: JinjaToken? { index < tokens.count ? tokens[index] : nil }
    var atEnd: Bool { index >= tokens.count }
    mutating func advance() { index += 1 }

    mutating func accept(_ op: String) -> Bool {
        guard peek?.kind == .op(op) else { return false }
        index += 1
        return true
    }

    mutating func acceptName(_ name: String) -> Bool {
        guard peek?.kind == .name(name) else { return false }
        index += 1
        return true
    }

    mutating func expect(_ op: String) throws {
        guard accept(op) else { throw ChatTemplateError("expected \"\(op)\" \(near)") }
    }

    mutating func expectName(_ name: String) throws {
        guard acceptName(name) else { throw ChatTemplateError("expected \"\(name)\" \(near)") }
    }

    mutating func expectEnd(_ tag: String) throws {
        guard atEnd else { throw ChatTemplateError("unexpected \(near) in \(tag)") }
    }

    mutating func name() throws -> String {
        guard case .name(let name)? = peek?.kind else { throw ChatTemplateError("expected a name \(near)") }
        index += 1
        return name
    }

    private var near: String {
        guard let token = peek else { return "at the end of a tag" }
        switch token.kind {
        case .name(let name): return "at \"\(name)\""
        case .op(let op): return "at \"\(op)\""
        case .string(let text): return "at the string \"\(text.prefix(30))\""
        case .int(let value): return "at \(value)"
        case .float(let value): return "at \(value)"
        }
    }

    mutating func expression(conditional: Bool = true) throws -> JinjaExpr {
        let value = try or()
        guard conditional, acceptName("if") else { return value }
        let condition = try or()
        let otherwise = acceptName("else") ? try expression() : nil
        return .conditional(value, condition: condition, otherwise: otherwise)
    }

    private mutating func or() throws -> JinjaExpr {
        var left = try and()
        while acceptName("or") { left = .binary("or", left, try and()) }
        return left
    }

    private mutating func and() throws -> JinjaExpr {
        var left = try not()
        while acceptName("and") { left = .binary("and", left, try not()) }
        return left
    }

    private mutating func not() throws -> JinjaExpr {
        if acceptName("not") { return .not(try not()) }
        return try compare()
    }

    private mutating func compare() throws -> JinjaExpr {
        var left = try math1()
        while true {
            if case .op(let op)? = peek?.kind, ["==", "!=", "<", ">", "<=", ">="].contains(op) {
                index += 1
                left = .binary(op, left, try math1())
            } else if acceptName("in") {
                left = .binary("in", left, try math1())
            } else if peek?.kind == .name("not"), index + 1 < tokens.count, tokens[index + 1].kind == .name("in") {
                index += 2
                left = .not(.binary("in", left, try math1()))
            } else {
                return left
            }
        }
    }

    private mutating func math1() throws -> JinjaExpr {
        var left = try concat()
        while case .op(let op)? = peek?.kind, op == "+" || op == "-" {
            index += 1
            left = .binary(op, left, try concat())
        }
        return left
    }

    private mutating func concat() throws -> JinjaExpr {
        var left = try math2()
        while accept("~") { left = .binary("~", left, try math2()) }
        return left
    }

    private mutating func math2() throws -> JinjaExpr {
        var left = try pow()
        while case .op(let op)? = peek?.kind, ["*", "/", "//", "%"].contains(op) {
            index += 1
            left = .binary(op, left, try pow())
        }
        return left
    }

    private mutating func pow() throws -> JinjaExpr {
        var left = try unary()
        while accept("**") { left = .binary("**", left, try unary()) }
        return left
    }

    private mutating func unary(withFilter: Bool = true) throws -> JinjaExpr {
        var node: JinjaExpr
        if accept("-") {
            node = .negate(try unary(withFilter: false))
        } else if accept("+") {
            node = try unary(withFilter: false)
        } else {
            node = try primary()
        }
        node = try postfix(node)
        return withFilter ? try filters(node) : node
    }

    private mutating func primary() throws -> JinjaExpr {
        guard let token = peek else { throw ChatTemplateError("expected an expression \(near)") }
        index += 1
        switch token.kind {
        case .string(var text):
            // Adjacent string literals concatenate, as in Python.
            while case .string(let more)? = peek?.kind { text += more; index += 1 }
            return .literal(.string(text))
        case .int(let value): return .literal(.int(value))
        case .float(let value): return .literal(.double(value))
        case .name(let name):
            switch name {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(name)
            }
        case .op("("):
            if accept(")") { return .list([]) }
            let first = try expression()
            if accept(")") { return first }
            var items = [first]
            while accept(",") {
                if peek?.kind == .op(")") { break }
                items.append(try expression())
            }
            try expect(")")
            return .list(items)
        case .op("["):
            var items: [JinjaExpr] = []
            while !accept("]") {
                items.append(try expression())
                if !accept(",") { try expect("]"); break }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(key: JinjaExpr, value: JinjaExpr)] = []
            while !accept("}") {
                let key = try expression()
                try expect(":")
                pairs.append((key, try expression()))
                if !accept(",") { try expect("}"); break }
            }
            return .dict(pairs)
        default:
            index -= 1
            throw ChatTemplateError("expected an expression \(near)")
        }
    }

    private mutating func postfix(_ base: JinjaExpr) throws -> JinjaExpr {
        var node = base
        while true {
            if accept(".") {
                if case .int(let i)? = peek?.kind {
                    index += 1
                    node = .item(node, .literal(.int(i)))
                } else {
                    node = .attribute(node, try name())
                }
            } else if accept("[") {
                node = try subscriptOrSlice(node)
            } else if accept("(") {
                let (positional, named) = try arguments()
                node = .call(node, positional, named)
            } else {
                return node
            }
        }
    }

    private mutating func subscriptOrSlice(_ node: JinjaExpr) throws -> JinjaExpr {
        var parts: [JinjaExpr?] = []
        var current: JinjaExpr?
        var isSlice = false
        while true {
            if accept("]") { parts.append(current); break }
            if accept(":") {
                isSlice = true
                parts.append(current)
                current = nil
                continue
            }
            current = try expression()
        }
        guard isSlice else {
            guard let key = parts.first ?? nil else { throw ChatTemplateError("empty subscript") }
            return .item(node, key)
        }
        guard parts.count <= 3 else { throw ChatTemplateError("a slice has at most three parts") }
        while parts.count < 3 { parts.append(nil) }
        return .slice(node, parts[0], parts[1], parts[2])
    }

    /// Call arguments after "(": positional, then `name=value`.
    mutating func arguments() throws -> ([JinjaExpr], [(name: String, value: JinjaExpr)]) {
        var positional: [JinjaExpr] = []
        var named: [(name: String, value: JinjaExpr)] = []
        while !accept(")") {
            if case .name(let key)? = peek?.kind, index + 1 < tokens.count, tokens[index + 1].kind == .op("=") {
                index += 2
                named.append((key, try expression()))
            } else {
                positional.append(try expression())
            }
            if !accept(",") { try expect(")"); break }
        }
        return (positional, named)
    }

    private mutating func filters(_ base: JinjaExpr) throws -> JinjaExpr {
        var node = base
        while true {
            if accept("|") {
                var name = try name()
                if name == "d" { name = "default" }
                if name == "count" { name = "length" }
                var positional: [JinjaExpr] = []
                var named: [(name: String, value: JinjaExpr)] = []
                if accept("(") { (positional, named) = try arguments() }
                node = .filter(node, name, positional, named)
            } else if acceptName("is") {
                let negated = acceptName("not")
                let name = try name()
                var arguments: [JinjaExpr] = []
                if accept("(") {
                    (arguments, _) = try self.arguments()
                } else if let token = peek, startsArgument(token) {
                    arguments = [try postfix(try primary())]
                }
                node = .test(node, name, arguments, negated: negated)
            } else if accept("(") {
                let (positional, named) = try arguments()
                node = .call(node, positional, named)
            } else {
                return node
            }
        }
    }

    /// Whether a token can start a test's bare argument (`is divisibleby 3`, `is sameas none`).
    private func startsArgument(_ token: JinjaToken) -> Bool {
        switch token.kind {
        case .string, .int, .float: return true
        case .name(let name): return !["and", "or", "else", "if", "in", "is", "not"].contains(name)
        case .op(let op): return op == "[" || op == "{"
        }
    }
}
