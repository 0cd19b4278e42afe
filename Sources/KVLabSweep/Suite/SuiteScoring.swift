import Foundation

/// A suite's score for one method configuration, as RULER reports it: per task the mean
/// `string_match_all` recall over its samples (0–100), and the mean over tasks.
public struct SuiteScore: Codable, Sendable, Equatable {
    public struct Group: Codable, Sendable, Equatable {
        public var name: String
        public var samples: Int
        public var score: Double
    }

    /// One sample's generated answer and its recall.
    public struct Outcome: Codable, Sendable, Equatable {
        public var index: Int
        public var prediction: String
        public var score: Double
    }

    public var suite: String
    /// Mean of the task scores, 0–100.
    public var score: Double
    /// Per task, in the suite's order.
    public var tasks: [Group]
    /// Per sample length (tokens), over every task: the mean of its task scores.
    public var lengths: [Group]
    /// Share of the prompt's KV bytes the method does not keep, after the prompt (1 − its resident
    /// KV over the full fp32 cache's), averaged over samples: kvpress's compression ratio in bytes.
    public var compressionRatio: Double
    public var outcomes: [Outcome]
}

/// RULER's scoring (`scripts/eval/synthetic/constants.py`, `evaluate.py`).
public enum SuiteScoring {
    /// RULER's `postprocess_pred`: control characters become newlines, then the text is trimmed.
    public static func postprocess(_ prediction: String) -> String {
        String(String.UnicodeScalarView(prediction.unicodeScalars.map { $0.value < 0x20 ? "\n" : $0 }))
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// RULER's `string_match_all` for one sample: the share of `references` found in the prediction, case-insensitively.
    public static func stringMatchAll(_ prediction: String, _ references: [String]) -> Double {
        guard !references.isEmpty else { return 0 }
        let text = postprocess(prediction).lowercased()
        return Double(references.filter { text.contains($0.lowercased()) }.count) / Double(references.count)
    }

    /// Scores `predictions` (one per sample, in order) against `samples`.
    public static func score(suite: String, samples: [SuiteSample], predictions: [String], compressionRatio: Double) -> SuiteScore {
        let outcomes = zip(samples, predictions).map { sample, prediction in
            SuiteScore.Outcome(index: sample.index, prediction: prediction, score: stringMatchAll(prediction, sample.outputs) * 100)
        }
        func groups(_ key: (SuiteSample) -> String) -> [SuiteScore.Group] {
            var order: [String] = [], members: [String: [Double]] = [:]
            for (sample, outcome) in zip(samples, outcomes) {
                let name = key(sample)
                if members[name] == nil { order.append(name) }
                members[name, default: []].append(outcome.score)
            }
            return order.map { SuiteScore.Group(name: $0, samples: members[$0]!.count, score: mean(members[$0]!)) }
        }
        let tasks = groups(\.task)
        // Per length, the mean of its task means (RULER's average), not of its samples.
        var lengths: [SuiteScore.Group] = []
        for length in Array(Set(samples.map(\.length))).sorted() {
            let pairs = zip(samples, outcomes).filter { $0.0.length == length }
            let byTask = Dictionary(grouping: pairs, by: { $0.0.task })
            let perTask = byTask.keys.sorted().map { task in mean(byTask[task]!.map(\.1.score)) }
            lengths.append(SuiteScore.Group(name: "\(length)", samples: pairs.count, score: mean(perTask)))
        }
        return SuiteScore(suite: suite, score: mean(tasks.map(\.score)), tasks: tasks, lengths: lengths,
                          compressionRatio: compressionRatio, outcomes: outcomes)
    }

    static func mean(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.reduce(0, +) / Double(values.count) }
}
