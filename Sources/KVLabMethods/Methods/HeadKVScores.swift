import Foundation
import KVLabFoundation

/// HeadKV's per-query-head retrieval-reasoning scores in KVCache-Factory's file format (and the
/// HeadKV authors'): one JSON object whose keys are `"layer-head"` (query heads, from 0) and whose
/// values are lists of per-sample scores; a head's score is its list's mean. `kvlab heads` writes
/// the same format for the loaded model.
public struct HeadKVScores: Sendable, Hashable {
    package let path: String
    package let layers: Int
    /// Query heads per layer.
    package let heads: Int
    /// Mean score per query head, layer-major.
    package let means: [Double]

    package init(path: String) throws(MethodSpecError) {
        self.path = path
        let fail = { (why: String) in MethodSpecError("headkv: scores \(path): \(why)") }
        let document: JSONValue
        do { document = try JSONValue.parse(InputFile.read(path)) } catch let error as FileError {
            throw fail(error.problem)
        } catch {
            throw fail("is not JSON (\(error))")
        }
        guard let members = document.members else { throw fail("holds \(document.kind), not an object of \"layer-head\": [scores]") }
        var table: [Int: [Int: Double]] = [:]
        for (key, value) in members {
            let parts = key.split(separator: "-", omittingEmptySubsequences: false)
            guard parts.count == 2, let layer = Int(parts[0]), let head = Int(parts[1]), layer >= 0, head >= 0 else {
                throw fail("key \"\(key)\" is not \"layer-head\"")
            }
            guard let list = value.array, !list.isEmpty else { throw fail("\"\(key)\" holds \(value.kind == "an array" ? "an empty list" : value.kind), not a list of scores") }
            var sum = 0.0
            for item in list {
                guard let x = item.double, x.isFinite, x >= 0 else { throw fail("\"\(key)\" holds \(item.kind == "a number" ? "a negative score" : item.kind), not scores of at least 0") }
                sum += x
            }
            table[layer, default: [:]][head] = sum / Double(list.count)
        }
        guard !table.isEmpty else { throw fail("holds no heads") }
        let layers = table.keys.max()! + 1, heads = table.values.map { $0.keys.max()! }.max()! + 1
        self.layers = layers
        self.heads = heads
        guard members.count == layers * heads else {
            throw fail("holds \(members.count) heads, not every one of \(layers) layers × \(heads) heads")
        }
        let means = (0..<layers).flatMap { l in (0..<heads).map { table[l]![$0]! } }
        guard means.contains(where: { $0 > 0 }) else { throw fail("every head scores 0") }
        self.means = means
    }

    /// The file's text for per-sample scores of each query head (layer-major): one line, keys in
    /// layer then head order, as the HeadKV authors publish theirs.
    package static func render(layers: Int, heads: Int, samples: [[Double]]) -> String {
        let members: [(key: String, value: JSONValue)] = (0..<layers).flatMap { l in
            (0..<heads).map { h in ("\(l)-\(h)", JSONValue.array(samples[l * heads + h].map { .number($0) })) }
        }
        return JSONValue.object(members).compactText() + "\n"
    }

    /// KVCache-Factory's HeadKV budgets (run_longbench.py) for `capacity` past entries per head
    /// on average (its `max_capacity_prompts`, B) and `beta` (`head_beta`): each query head
    /// gets `round(score / Σscores · ⌊B/β⌋ · layers · heads + B − ⌊B/β⌋)`, rounding half to even as
    /// torch does; a KV head takes the mean of its `groupSize` query heads' budgets, rounded the
    /// same way (KVCache-Factory's `kv_head` layout: kvlab stores each KV head once, so a sum
    /// would spend `groupSize` times the memory the budget names). Layer-major, per KV head.
    package func capacities(capacity: Int, beta: Double, groupSize: Int) -> [Int] {
        let total = means.reduce(0, +)
        let pooled = (Double(capacity) / beta).rounded(.down)
        let pool = pooled * Double(layers * heads), floor = Double(capacity) - pooled
        let perQuery = means.map { Int(($0 / total * pool + floor).rounded(.toNearestOrEven)) }
        return stride(from: 0, to: perQuery.count, by: groupSize).map { start in
            let mean = Float(perQuery[start..<(start + groupSize)].reduce(0, +)) / Float(groupSize)
            return Int(mean.rounded(.toNearestOrEven))
        }
    }
}
