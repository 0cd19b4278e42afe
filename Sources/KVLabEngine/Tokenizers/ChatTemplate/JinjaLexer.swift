import Foundation

/// Splits a Jinja template into text and tags with the whitespace rules transformers renders chat
/// templates with (`trim_blocks` and `lstrip_blocks` on, one trailing newline of the template
/// dropped), and tags into expression tokens.
enum JinjaLexer {
    enum Segment: Sendable {
        case text(String)
        case output([JinjaToken])
        case statement([JinjaToken])
    }

    static func segments(_ source: String) throws -> [Segment] {
        var bytes = Array(source.utf8)
        if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
        var segments: [Segment] = []
        var text: [UInt8] = []
        var i = 0
        // Whether the text after the previous tag loses its leading whitespace (`-%}`) or its
        // first newline (trim_blocks).
        var stripNext = false, trimNewline = false
        func flushText() {
            if !text.isEmpty { segments.append(.text(String(decoding: text, as: UTF8.self))) }
            text = []
        }
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "{"), i + 1 < bytes.count,
                  let kind = [UInt8(ascii: "{"), UInt8(ascii: "%"), UInt8(ascii: "#")].firstIndex(of: bytes[i + 1]) else {
                text.append(bytes[i])
                i += 1
                continue
            }
            let closer: [UInt8] = [[UInt8(ascii: "}"), UInt8(ascii: "}")], [UInt8(ascii: "%"), UInt8(ascii: "}")],
                                   [UInt8(ascii: "#"), UInt8(ascii: "}")]][kind]
            var start = i + 2
            let minus = start < bytes.count && bytes[start] == UInt8(ascii: "-")
            let plus = start < bytes.count && bytes[start] == UInt8(ascii: "+")
            if minus || plus { start += 1 }
            if minus {
                while let last = text.last, isSpace(last) { text.removeLast() }
            } else if kind != 0, !plus {
                // lstrip_blocks: spaces and tabs between a line start in the source and a block
                // or comment tag go.
                var j = i
                while j > 0, bytes[j - 1] == UInt8(ascii: " ") || bytes[j - 1] == UInt8(ascii: "\t") { j -= 1 }
                if j == 0 || bytes[j - 1] == UInt8(ascii: "\n") { text.removeLast(min(i - j, text.count)) }
            }
            flushText()
            // The tag's end (a comment's body is skipped whole; strings may hold the closer).
            var end = start
            var quote: UInt8?
            var found = false
            while end + 1 < bytes.count {
                let byte = bytes[end]
                if kind != 2 {
                    if let q = quote {
                        if byte == UInt8(ascii: "\\") { end += 2; continue }
                        if byte == q { quote = nil }
                        end += 1
                        continue
                    }
                    if byte == UInt8(ascii: "'") || byte == UInt8(ascii: "\"") { quote = byte; end += 1; continue }
                }
                if byte == closer[0], bytes[end + 1] == closer[1] { found = true; break }
                end += 1
            }
            guard found else { throw ChatTemplateError("a tag opened at byte \(i) is never closed") }
            var bodyEnd = end
            stripNext = bodyEnd > start && bytes[bodyEnd - 1] == UInt8(ascii: "-")
            let keep = bodyEnd > start && bytes[bodyEnd - 1] == UInt8(ascii: "+")
            if stripNext || keep { bodyEnd -= 1 }
            trimNewline = kind != 0 && !stripNext && !keep
            let body = String(decoding: bytes[start..<bodyEnd], as: UTF8.self)
            i = end + 2
            switch kind {
            case 0: segments.append(.output(try tokens(body)))
            case 1:
                let tokens = try tokens(body)
                if case .name("raw") = tokens.first?.kind {
                    // `{% raw %}…{% endraw %}`: the text in between is output as is.
                    guard let close = find(bytes, from: i, endraw: true) else { throw ChatTemplateError("{% raw %} without {% endraw %}") }
                    segments.append(.text(String(decoding: bytes[i..<close.textEnd], as: UTF8.self)))
                    i = close.after
                    continue
                }
                segments.append(.statement(tokens))
            default: break
            }
            if stripNext {
                while i < bytes.count, isSpace(bytes[i]) { i += 1 }
            } else if trimNewline {
                if i < bytes.count, bytes[i] == UInt8(ascii: "\n") { i += 1 }
                else if i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\r"), bytes[i + 1] == UInt8(ascii: "\n") { i += 2 }
            }
        }
        flushText()
        return segments
    }

    /// The `{% endraw %}` tag after `from`: where the raw text ends and where the tag ends.
    private static func find(_ bytes: [UInt8], from: Int, endraw: Bool) -> (textEnd: Int, after: Int)? {
        var i = from
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "{"), bytes[i + 1] == UInt8(ascii: "%") {
                var j = i + 2
                if j < bytes.count, bytes[j] == UInt8(ascii: "-") { j += 1 }
                while j < bytes.count, isSpace(bytes[j]) { j += 1 }
                if bytes[j...].starts(with: Array("endraw".utf8)) {
                    var k = j + 6
                    while k < bytes.count, isSpace(bytes[k]) || bytes[k] == UInt8(ascii: "-") { k += 1 }
                    if k + 1 < bytes.count, bytes[k] == UInt8(ascii: "%"), bytes[k + 1] == UInt8(ascii: "}") {
                        return (i, k + 2)
                    }
                }
            }
            i += 1
        }
        return nil
    }

    static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || (0x09...0x0D).contains(byte) }

    /// The tokens of a tag's body.
    static func tokens(_ body: String) throws -> [JinjaToken] {
        let s = Array(body.unicodeScalars)
        var out: [JinjaToken] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "_" || c.properties.isAlphabetic {
                var j = i
                while j < s.count, s[j] == "_" || s[j].properties.isAlphabetic || ("0"..."9").contains(s[j]) { j += 1 }
                out.append(JinjaToken(kind: .name(String(String.UnicodeScalarView(s[i..<j])))))
                i = j
            } else if ("0"..."9").contains(c) {
                var j = i
                var isFloat = false
                while j < s.count, ("0"..."9").contains(s[j]) || s[j] == "_" { j += 1 }
                if j + 1 < s.count, s[j] == ".", ("0"..."9").contains(s[j + 1]) {
                    isFloat = true
                    j += 1
                    while j < s.count, ("0"..."9").contains(s[j]) || s[j] == "_" { j += 1 }
                }
                if j < s.count, s[j] == "e" || s[j] == "E" {
                    var k = j + 1
                    if k < s.count, s[k] == "+" || s[k] == "-" { k += 1 }
                    if k < s.count, ("0"..."9").contains(s[k]) {
                        isFloat = true
                        j = k
                        while j < s.count, ("0"..."9").contains(s[j]) { j += 1 }
                    }
                }
                let text = String(String.UnicodeScalarView(s[i..<j])).replacingOccurrences(of: "_", with: "")
                if isFloat {
                    guard let value = Double(text) else { throw ChatTemplateError("bad number \(text)") }
                    out.append(JinjaToken(kind: .float(value)))
                } else {
                    guard let value = Int(text) else { throw ChatTemplateError("integer \(text) is out of range") }
                    out.append(JinjaToken(kind: .int(value)))
                }
                i = j
            } else if c == "'" || c == "\"" {
                var value = String.UnicodeScalarView()
                var j = i + 1
                while j < s.count, s[j] != c {
                    if s[j] == "\\", j + 1 < s.count {
                        j += 1
                        value += try escape(s, &j)
                        continue
                    }
                    value.append(s[j])
                    j += 1
                }
                guard j < s.count else { throw ChatTemplateError("unterminated string literal") }
                out.append(JinjaToken(kind: .string(String(value))))
                i = j + 1
            } else {
                let rest = String(String.UnicodeScalarView(s[i..<min(i + 2, s.count)]))
                if ["==", "!=", "<=", ">=", "//", "**"].contains(rest) {
                    out.append(JinjaToken(kind: .op(rest)))
                    i += 2
                } else if "()[]{},.:|~+-*/%<>=".unicodeScalars.contains(c) {
                    out.append(JinjaToken(kind: .op(String(c))))
                    i += 1
                } else {
                    throw ChatTemplateError("unexpected character \"\(c)\" in a tag")
                }
            }
        }
        return out
    }

    /// Python's string escapes (jinja2 decodes literals with `unicode-escape`), at `j` just past
    /// the backslash; unknown escapes keep their backslash.
    private static func escape(_ s: [Unicode.Scalar], _ j: inout Int) throws -> String.UnicodeScalarView {
        let c = s[j]
        j += 1
        func hex(_ count: Int) throws -> String.UnicodeScalarView {
            guard j + count <= s.count, let value = UInt32(String(String.UnicodeScalarView(s[j..<(j + count)])), radix: 16),
                  let scalar = Unicode.Scalar(value) else { throw ChatTemplateError("bad \\\(c) escape in a string literal") }
            j += count
            return String.UnicodeScalarView([scalar])
        }
        switch c {
        case "n": return "\n".unicodeScalars
        case "t": return "\t".unicodeScalars
        case "r": return "\r".unicodeScalars
        case "\\", "'", "\"": return String.UnicodeScalarView([c])
        case "\n": return String.UnicodeScalarView()
        case "a": return "\u{07}".unicodeScalars
        case "b": return "\u{08}".unicodeScalars
        case "f": return "\u{0C}".unicodeScalars
        case "v": return "\u{0B}".unicodeScalars
        case "0": return "\u{0}".unicodeScalars
        case "x": return try hex(2)
        case "u": return try hex(4)
        case "U": return try hex(8)
        default: return String.UnicodeScalarView(["\\", c])
        }
    }
}

struct JinjaToken: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case name(String)
        case string(String)
        case int(Int)
        case float(Double)
        case op(String)
    }
    var kind: Kind
}

/// A chat template that kvlab cannot render: a construct it does not support, a syntax error,
/// or the template's own `raise_exception`. One line, naming the construct.
public struct ChatTemplateError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// Line breaks (from a template's strings or `raise_exception`) are escaped to keep one line.
    init(_ message: String) { self.message = message.replacingOccurrences(of: "\n", with: "\\n") }
    public var description: String { "chat template: \(message)" }
}
