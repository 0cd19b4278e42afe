import Foundation

/// Renders parsed Jinja nodes: variable scopes as jinja2 has them (a for loop's or macro's
/// assignments stay inside it; `if` opens no scope), loop variables, macros, break/continue.
final class JinjaRenderer {
    private var scopes: [[String: JinjaValue]]
    /// Output is bounded so a runaway template ends with an error, not exhausted memory.
    static let outputLimit = 16 << 20
    private var budget = 10_000_000

    private enum Jump: Error {
        case breakLoop
        case continueLoop
    }

    init(globals: [String: JinjaValue]) { scopes = [globals] }

    func render(_ nodes: [JinjaNode]) throws -> String {
        var out = ""
        try run(nodes, into: &out)
        return out
    }

    private func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() { if let value = scope[name] { return value } }
        if JinjaBuiltins.functions.contains(name) { return .function(name) }
        return .undefined(name)
    }

    private func assign(_ name: String, _ value: JinjaValue) { scopes[scopes.count - 1][name] = value }

    private func run(_ nodes: [JinjaNode], into out: inout String) throws {
        for node in nodes {
            budget -= 1
            guard budget > 0, out.utf8.count < Self.outputLimit else { throw ChatTemplateError("rendering does not finish") }
            switch node {
            case .text(let text): out += text
            case .output(let expr): out += try evaluate(expr).text
            case .conditional(let branches, let otherwise):
                if let branch = try branches.first(where: { try evaluate($0.condition).isTrue }) {
                    try run(branch.body, into: &out)
                } else {
                    try run(otherwise, into: &out)
                }
            case .loop(let targets, let iterable, let filter, let body, let otherwise):
                try loop(targets, try evaluate(iterable), filter, body, otherwise, into: &out)
            case .assign(let targets, let value):
                let value = try evaluate(value)
                if targets.count == 1 {
                    assign(targets[0], value)
                } else {
                    let items = try unpack(value, count: targets.count)
                    for (target, item) in zip(targets, items) { assign(target, item) }
                }
            case .assignAttribute(let object, let attribute, let value):
                guard case .namespace(let namespace) = lookup(object) else {
                    throw ChatTemplateError("cannot set attribute \(attribute) of \(object), which is not a namespace")
                }
                namespace[attribute] = try evaluate(value)
            case .assignBlock(let name, let body):
                var text = ""
                try run(body, into: &text)
                assign(name, .string(text))
            case .macro(let name, let parameters, let body):
                assign(name, .macro(JinjaMacro(name: name, parameters: parameters, body: body)))
            case .filterBlock(let name, let arguments, let body):
                var text = ""
                try run(body, into: &text)
                out += try JinjaBuiltins.filter(name, .string(text), try arguments.map(evaluate), [:]).text
            case .breakLoop: throw Jump.breakLoop
            case .continueLoop: throw Jump.continueLoop
            }
        }
    }

    private func unpack(_ value: JinjaValue, count: Int) throws -> [JinjaValue] {
        let items = try JinjaBuiltins.iterate(value)
        guard items.count == count else { throw ChatTemplateError("cannot unpack \(items.count) values into \(count) names") }
        return items
    }

    private func loop(_ targets: [String], _ iterable: JinjaValue, _ filter: JinjaExpr?, _ body: [JinjaNode],
                      _ otherwise: [JinjaNode], into out: inout String) throws {
        var items = try JinjaBuiltins.iterate(iterable)
        scopes.append([:])
        defer { scopes.removeLast() }
        func bind(_ item: JinjaValue) throws {
            if targets.count == 1 {
                assign(targets[0], item)
            } else {
                for (target, value) in zip(targets, try unpack(item, count: targets.count)) { assign(target, value) }
            }
        }
        if let filter {
            items = try items.filter { item in
                try bind(item)
                return try evaluate(filter).isTrue
            }
        }
        if items.isEmpty {
            try run(otherwise, into: &out)
            return
        }
        for (index, item) in items.enumerated() {
            try bind(item)
            let n = items.count
            assign("loop", .dict(JinjaDict([
                ("index", .int(index + 1)), ("index0", .int(index)), ("first", .bool(index == 0)),
                ("last", .bool(index == n - 1)), ("length", .int(n)), ("revindex", .int(n - index)),
                ("revindex0", .int(n - index - 1)), ("depth", .int(1)), ("depth0", .int(0)),
                ("previtem", index > 0 ? items[index - 1] : .undefined("previtem")),
                ("nextitem", index + 1 < n ? items[index + 1] : .undefined("nextitem")),
                ("cycle", .function("cycle:\(index)")),
            ])))
            do {
                try run(body, into: &out)
            } catch Jump.continueLoop {
                continue
            } catch Jump.breakLoop {
                break
            }
        }
    }

    func evaluate(_ expr: JinjaExpr) throws -> JinjaValue {
        switch expr {
        case .literal(let literal):
            switch literal {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let name): return lookup(name)
        case .list(let items): return .list(try items.map(evaluate))
        case .dict(let pairs):
            let dict = JinjaDict()
            for (key, value) in pairs {
                guard case .string(let k) = try evaluate(key) else { throw ChatTemplateError("unsupported construct: dict keys that are not strings") }
                dict[k] = try evaluate(value)
            }
            return .dict(dict)
        case .attribute(let base, let name): return try JinjaBuiltins.attribute(try evaluate(base), name)
        case .item(let base, let key): return try JinjaBuiltins.item(try evaluate(base), try evaluate(key))
        case .slice(let base, let start, let stop, let step):
            return try JinjaBuiltins.slice(try evaluate(base), try start.map(evaluate), try stop.map(evaluate), try step.map(evaluate))
        case .call(let callee, let positional, let named):
            let function = try evaluate(callee)
            let arguments = try positional.map(evaluate)
            var keywords: [String: JinjaValue] = [:]
            for (name, value) in named { keywords[name] = try evaluate(value) }
            if case .macro(let macro) = function { return try call(macro, arguments, keywords) }
            return try JinjaBuiltins.call(function, arguments, keywords)
        case .filter(let base, let name, let positional, let named):
            var keywords: [String: JinjaValue] = [:]
            for (key, value) in named { keywords[key] = try evaluate(value) }
            return try JinjaBuiltins.filter(name, try evaluate(base), try positional.map(evaluate), keywords)
        case .test(let base, let name, let arguments, let negated):
            let result = try JinjaBuiltins.test(name, try evaluate(base), try arguments.map(evaluate))
            return .bool(result != negated)
        case .not(let base): return .bool(!(try evaluate(base).isTrue))
        case .negate(let base):
            switch try evaluate(base) {
            case .int(let i): return .int(-i)
            case .double(let d): return .double(-d)
            case .bool(let b): return .int(b ? -1 : 0)
            case let other: throw ChatTemplateError("cannot negate a \(other.typeName)")
            }
        case .binary("and", let left, let right):
            let l = try evaluate(left)
            return l.isTrue ? try evaluate(right) : l
        case .binary("or", let left, let right):
            let l = try evaluate(left)
            return l.isTrue ? l : try evaluate(right)
        case .binary(let op, let left, let right):
            return try JinjaBuiltins.binary(op, try evaluate(left), try evaluate(right))
        case .conditional(let value, let condition, let otherwise):
            if try evaluate(condition).isTrue { return try evaluate(value) }
            return try otherwise.map(evaluate) ?? .undefined("conditional")
        }
    }

    /// Calls a macro: its own scope over the template's globals, parameters bound positionally
    /// or by name, the rendered body as the result.
    func call(_ macro: JinjaMacro, _ arguments: [JinjaValue], _ keywords: [String: JinjaValue]) throws -> JinjaValue {
        guard arguments.count <= macro.parameters.count else {
            throw ChatTemplateError("macro \(macro.name) takes \(macro.parameters.count) arguments, got \(arguments.count)")
        }
        var local: [String: JinjaValue] = [:]
        for (i, parameter) in macro.parameters.enumerated() {
            if i < arguments.count {
                local[parameter.name] = arguments[i]
            } else if let value = keywords[parameter.name] {
                local[parameter.name] = value
            } else if let defaultValue = parameter.defaultValue {
                local[parameter.name] = try evaluate(defaultValue)
            } else {
                local[parameter.name] = .undefined(parameter.name)
            }
        }
        let saved = scopes
        scopes = [scopes[0], local]
        defer { scopes = saved }
        var out = ""
        try run(macro.body, into: &out)
        return .string(out)
    }
}
