@testable import KVLabEngine
@testable import KVLabFoundation
import KVLabMethods
@testable import KVLabMethods
import KVLabRun
@testable import KVLabRun
import Testing

/// `policy_mean_nll` of the independent implementation, reproduced for every listed policy
/// with the streaming protocol of docs KV-METHODS.md.
@Suite(.enabled(if: Fixtures.haveStories, Comment(rawValue: Fixtures.skipMessage)))
struct PolicyReferenceTests {
    /// "h2o heavy=16 recent=16" → "h2o:heavy=16,recent=16" (the reference writes w for window).
    static func methodString(_ label: String) -> String {
        let words = label.split(separator: " ")
        let parameters = words.dropFirst().map { $0.hasPrefix("w=") ? "window=" + $0.dropFirst(2) : String($0) }
        return parameters.isEmpty ? String(words[0]) : words[0] + ":" + parameters.joined(separator: ",")
    }

    @Test func everyReferencePolicyMatches() throws {
        let model = try #require(Fixtures.stories)
        let reference = try #require(Reference.shared)
        #expect(reference.policy_mean_nll.values.count >= 10)
        for (label, expected) in reference.policy_mean_nll.values.sorted(by: { $0.key < $1.key }) {
            let method = try EvictionMethod(parsing: Self.methodString(label))
            let evaluator = StreamingEvaluator(weights: model.weights, eviction: method, withGhost: false)
            let summary = try evaluator.evaluate(reference.greedy.ids)
            #expect(abs(summary.meanNLL - expected) < 1e-4, "\(label): \(summary.meanNLL) vs \(expected)")
        }
    }
}
