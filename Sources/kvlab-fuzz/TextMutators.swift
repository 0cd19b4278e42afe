import Foundation

/// Edits of JSON documents shared by the session and profile mutators.
enum JSONEdit {
    /// Every path (object keys and array indices) in `value`, containers included.
    static func paths(_ value: Any, prefix: [Any] = []) -> [[Any]] {
        var result: [[Any]] = []
        if let object = value as? [String: Any] {
            for (key, child) in object.sorted(by: { $0.key < $1.key }) { result.append(prefix + [key]); result += paths(child, prefix: prefix + [key]) }
        } else if let array = value as? [Any] {
            for (index, child) in array.enumerated() { result.append(prefix + [index]); result += paths(child, prefix: prefix + [index]) }
        }
        return result
    }

    static func get(_ value: Any, _ path: [Any]) -> Any? {
        guard let head = path.first else { return value }
        if let key = head as? String, let object = value as? [String: Any], let child = object[key] { return get(child, Array(path.dropFirst())) }
        if let index = head as? Int, let array = value as? [Any], array.indices.contains(index) { return get(array[index], Array(path.dropFirst())) }
        return nil
    }

    static func set(_ value: Any, _ path: [Any], _ new: Any) -> Any {
        guard let head = path.first else { return new }
        if let key = head as? String, var object = value as? [String: Any] {
            object[key] = set(object[key] ?? NSNull(), Array(path.dropFirst()), new)
            return object
        }
        if let index = head as? Int, var array = value as? [Any], array.indices.contains(index) {
            array[index] = set(array[index], Array(path.dropFirst()), new)
            return array
        }
        return value
    }

    static func kind(_ value: Any) -> String {
        switch value {
        case is [String: Any]: "object"
        case is [Any]: "array"
        case is String: "string"
        case is NSNull: "null"
        // Booleans read back as NSNumber too: "number" covers both, and `wrongType` never swaps them.
        case is NSNumber: "number"
        default: "other"
        }
    }

    /// A value of a different JSON kind than `value` (never null, which optional fields accept; a
    /// string never becomes a number, as quantities may be written either way: `"24 GiB"` or 58).
    static func wrongType(for value: Any, random: inout FuzzRandom) -> Any {
        let kinds: [(String, Any)] = [("string", "x"), ("number", 7), ("bool", true), ("object", ["a": 1]), ("array", [1, "b"])]
        let current = kind(value)
        return random.pick(kinds.filter { $0.0 != current && !(current == "number" && $0.0 == "bool") && !(current == "string" && $0.0 == "number") }).1
    }

    static func render(_ value: Any) -> String? {
        (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `depth` nested arrays around a number.
    static func deep(_ depth: Int) -> String { String(repeating: "[", count: depth) + "1" + String(repeating: "]", count: depth) }

    static let hugeNumbers = ["1e999", "-1e999", "18446744073709551616", "9223372036854775808", "1.7976931348623157e308", "-9223372036854775809", "1e-400"]
}

/// Structure-aware session mutators over a `*.kvlab.jsonl` file's lines. Cut lines, wrong types,
/// unknown events, deep nesting and a second header are known corrupt; huge numbers, a missing
/// tail and reordered events are adversarial only (the reader checks lines, replay checks order).
enum SessionMutators {
    static func mutate(_ seed: [UInt8], random: inout FuzzRandom) -> Mutation? {
        var lines = String(decoding: seed, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard lines.count > 3 else { return nil }
        func file(_ name: String, corrupt: Bool) -> Mutation {
            Mutation(bytes: Array((lines.joined(separator: "\n") + "\n").utf8), name: "session: " + name, corrupt: corrupt)
        }
        // Not the last line: a cut last line is how a killed writer leaves a file, and is tolerated by design.
        let k = random.below(lines.count - 1)
        switch random.below(8) {
        case 0:
            let cut = random.below(lines[k].utf8.count)
            lines[k] = String(decoding: Array(lines[k].utf8)[..<cut], as: UTF8.self)
            return file("line \(k + 1) cut to \(cut) bytes", corrupt: true)
        case 1, 2:
            guard let object = try? JSONSerialization.jsonObject(with: Data(lines[k].utf8)) else { return nil }
            let paths = JSONEdit.paths(object)
            guard !paths.isEmpty else { return nil }
            let path = random.pick(paths)
            let old = JSONEdit.get(object, path) ?? NSNull()
            guard !(old is NSNull), let edited = JSONEdit.render(JSONEdit.set(object, path, JSONEdit.wrongType(for: old, random: &random))) else { return nil }
            lines[k] = edited
            return file("line \(k + 1) \(path.map { "\($0)" }.joined(separator: ".")) \(JSONEdit.kind(old)) -> wrong type", corrupt: true)
        case 3:
            guard let object = try? JSONSerialization.jsonObject(with: Data(lines[k].utf8)) else { return nil }
            let numbers = JSONEdit.paths(object).filter { JSONEdit.kind(JSONEdit.get(object, $0) ?? NSNull()) == "number" }
            guard !numbers.isEmpty, let rendered = JSONEdit.render(JSONEdit.set(object, random.pick(numbers), "@HUGE@")) else { return nil }
            let huge = random.pick(JSONEdit.hugeNumbers)
            lines[k] = rendered.replacingOccurrences(of: "\"@HUGE@\"", with: huge)
            return file("line \(k + 1) a number set to \(huge)", corrupt: false)
        case 4:
            guard k > 0, let object = try? JSONSerialization.jsonObject(with: Data(lines[k].utf8)) as? [String: Any],
                  let rendered = JSONEdit.render(object.merging(["event": random.pick(["zzz", "", "tokens", "PROMPT"])]) { $1 }) else { return nil }
            lines[k] = rendered
            return file("line \(k + 1) unknown event kind", corrupt: true)
        case 5:
            guard let object = try? JSONSerialization.jsonObject(with: Data(lines[k].utf8)) else { return nil }
            let paths = JSONEdit.paths(object)
            guard !paths.isEmpty, let rendered = JSONEdit.render(JSONEdit.set(object, random.pick(paths), "@DEEP@")) else { return nil }
            let depth = random.pick([64, 1000, 100_000])
            lines[k] = rendered.replacingOccurrences(of: "\"@DEEP@\"", with: JSONEdit.deep(depth))
            return file("line \(k + 1) a value nested \(depth) deep", corrupt: true)
        case 6:
            lines.insert(lines[0], at: 1 + random.below(lines.count - 1))
            return file("header repeated as an event", corrupt: true)
        default:
            if random.chance(2) {
                let keep = 1 + random.below(lines.count - 1)
                lines.removeSubrange(keep...)
                return file("only the first \(keep) lines (no tail)", corrupt: false)
            }
            let a = 1 + random.below(lines.count - 1), b = 1 + random.below(lines.count - 1)
            lines.swapAt(a, b)
            return file("lines \(a + 1) and \(b + 1) swapped", corrupt: false)
        }
    }
}

/// Structure-aware mutators for btop-style theme files: every output has something the parser
/// must report (an unknown key, a value that is no colour, a malformed line).
enum ThemeMutators {
    static func mutate(_ seed: [UInt8], random: inout FuzzRandom) -> Mutation? {
        var lines = String(decoding: seed, as: UTF8.self).components(separatedBy: "\n")
        let assignments = lines.indices.filter { lines[$0].hasPrefix("theme[") }
        guard !assignments.isEmpty else { return nil }
        let k = random.pick(assignments)
        let key = lines[k].split(separator: "]").first.map { String($0.dropFirst(6)) } ?? ""
        let name: String
        switch random.below(6) {
        case 0:
            let unknown = random.pick(["zzz", key + "_x", "main_bgg", String(repeating: "k", count: 10_000), ""])
            lines.insert("theme[\(unknown)]=\"default\"", at: k)
            name = "unknown key \(unknown.prefix(20))"
        case 1:
            let value = random.pick(["#12345", "#gggggg", "256", "99999999999999999999", "-1", "blue bold blink", "rgb(1,2,3)", String(repeating: "#ffffff ", count: 10_000)])
            lines[k] = "theme[\(key)]=\"\(value)\""
            name = "theme[\(key)] value \(value.prefix(20))"
        case 2:
            lines[k] = random.pick(["theme[\(key)]=\"default", "theme[\(key)=\"default\"", "theme\(key)]=default", String(lines[k].dropLast(1 + random.below(lines[k].count - 1)))])
            name = "line \(k + 1) malformed"
        case 3:
            let depth = random.pick([64, 1000, 100_000])
            lines[k] = String(repeating: "theme[", count: depth) + key + String(repeating: "]", count: depth) + "=\"default\""
            name = "key nested \(depth) deep"
        case 4:
            lines[k] = "theme[\(key)]=" + random.pick(["true", "{\"a\":1}", "[\"default\"]", "\"default\" 7"])
            name = "theme[\(key)] value of the wrong type"
        default:
            lines[k] = "theme[\(key)]=\"\(String(repeating: "bold ", count: 1 + random.below(100_000)))x\""
            name = "theme[\(key)] huge attribute list"
        }
        return Mutation(bytes: Array(lines.joined(separator: "\n").utf8), name: "theme: " + name, corrupt: true)
    }
}

/// Structure-aware mutators for JSON documents. With `strict` (device and target-shape profiles,
/// whose reader refuses unknown keys and checks every value's type) wrong types, unknown keys and
/// deep nesting are known corrupt; huge values and removed keys are adversarial (ranges and
/// defaults are the reader's). Hugging Face JSON files carry keys kvlab ignores, so there every
/// edit is adversarial.
enum ProfileMutators {
    static func mutate(_ seed: [UInt8], strict: Bool, random: inout FuzzRandom) -> Mutation? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(seed)) as? [String: Any], !object.isEmpty else { return nil }
        let paths = JSONEdit.paths(object)
        let path = random.pick(paths)
        let label = path.map { "\($0)" }.joined(separator: ".")
        func file(_ value: Any, _ name: String, corrupt: Bool, replacing marker: String? = nil, with text: String = "") -> Mutation? {
            guard var rendered = JSONEdit.render(value) else { return nil }
            if let marker { rendered = rendered.replacingOccurrences(of: "\"\(marker)\"", with: text) }
            return Mutation(bytes: Array(rendered.utf8), name: "json: " + name, corrupt: corrupt)
        }
        switch random.below(5) {
        case 0:
            let old = JSONEdit.get(object, path) ?? NSNull()
            guard !(old is NSNull) else { return nil }
            return file(JSONEdit.set(object, path, JSONEdit.wrongType(for: old, random: &random)), "\(label) \(JSONEdit.kind(old)) -> wrong type", corrupt: strict)
        case 1:
            let key = random.pick(["zzz", "hbm_bandwith", "layer", "Name", ""])
            var edited = object
            edited[key] = 1
            return file(edited, "unknown key \"\(key)\"", corrupt: strict)
        case 2:
            let depth = random.pick([64, 1000, 100_000])
            return file(JSONEdit.set(object, path, "@DEEP@"), "\(label) nested \(depth) deep", corrupt: strict, replacing: "@DEEP@", with: JSONEdit.deep(depth))
        case 3:
            let huge = random.pick(JSONEdit.hugeNumbers + ["\"1e300 GB/s\"", "\"99999999999 PiB\"", "\"-1 GiB\""])
            return file(JSONEdit.set(object, path, "@HUGE@"), "\(label) set to \(huge)", corrupt: false, replacing: "@HUGE@", with: huge)
        default:
            guard let key = path.first as? String else { return nil }
            var edited = object
            edited[key] = nil
            return file(edited, "key \(key) removed", corrupt: false)
        }
    }
}

/// Known-corrupt edits of a Hugging Face model directory's JSON: `config.json`'s shape keys made
/// the wrong type or inconsistent with the weights, `tokenizer.json`'s model parts made the wrong
/// type. Anything else falls back to the adversarial JSON edits.
enum HFMutators {
    static let shapeKeys = ["hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"]

    static func mutate(_ seed: [UInt8], random: inout FuzzRandom) -> Mutation? {
        guard random.chance(2), var object = try? JSONSerialization.jsonObject(with: Data(seed)) as? [String: Any] else {
            return ProfileMutators.mutate(seed, strict: false, random: &random)
        }
        let name: String
        if object["model_type"] != nil {
            let key = random.pick(shapeKeys + ["num_attention_heads", "num_key_value_heads"])
            let old = object[key] as? Int ?? 0
            if shapeKeys.contains(key), random.chance(2) {
                let value = random.pick([old * 2, old + 1, old - 1, 0, -1].filter { $0 != old })
                object[key] = value
                name = "config.json \(key) \(old) -> \(value) (the weights disagree)"
            } else {
                object[key] = random.pick(["x", [old], ["n": old], true] as [Any])
                name = "config.json \(key) of the wrong type"
            }
        } else if var model = object["model"] as? [String: Any] {
            let key = random.pick(["vocab", "merges", "type"])
            model[key] = random.pick(key == "type" ? ["zzz", 7] as [Any] : ["x", 7, true] as [Any])
            object["model"] = model
            name = "tokenizer.json model.\(key) of the wrong type"
        } else {
            return ProfileMutators.mutate(seed, strict: false, random: &random)
        }
        return JSONEdit.render(object).map { Mutation(bytes: Array($0.utf8), name: "hf: " + name, corrupt: true) }
    }
}
