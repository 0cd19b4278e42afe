import Foundation
import KVLabEngine
import KVLabMethods

/// A retrieval probe's prompt built from a filler text (`kvlab eval --probe` and sweep cells).
public enum ProbeKind: Sendable, Equatable {
    /// A 5-digit pass key (random from `seed`) at `depth` (0 start … 1 end) of the filler, asked for at the end.
    case needle(depth: Double, seed: UInt64)
    /// Question A ends the prompt (what methods compress for); B is asked after compression,
    /// and the expected answer is `answerB` (default: the first line of the filler).
    case twoQuestion(questionA: String, questionB: String, answerB: String?)

    /// The two-question probe's default questions (`kvlab eval --question-a`, `--question-b`).
    public static let defaultQuestionA = "\nWho spoke first?\n"
    public static let defaultQuestionB = "\nWhat did they say first?\n"

    public var name: String {
        switch self {
        case .needle: "needle"
        case .twoQuestion: "two-question"
        }
    }
}

/// The tokens of a probe: the prompt (one prefill), a follow-up and the scored answer.
public struct ProbePrompt: Sendable, Equatable {
    public var prompt: [Int]
    public var followUp: [Int]
    public var answer: [Int]
    /// The answer as text, trimmed.
    public var answerText: String
    /// The needle's pass key (nil for two-question).
    public var passkey: String?

    /// The longest filler prefix whose probe (prompt + follow-up + answer) fits `context` tokens,
    /// or an error when none does.
    public static func build(_ kind: ProbeKind, filler: String, tokenizer: any Tokenizer, context: Int) throws -> ProbePrompt {
        var passkey: String?
        if case .needle(_, let seed) = kind {
            var generator = Xoshiro256(seed: seed)
            passkey = String(Int.random(in: 10_000...99_999, using: &generator))
        }
        let firstLine = filler.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? ""
        // (text before the cut, text after it, follow-up, answer) for a filler of `length` characters.
        func parts(_ length: Int) -> (prompt: String, followUp: String, answer: String) {
            let body = String(filler.prefix(length))
            switch kind {
            case .needle(let depth, _):
                let key = passkey!
                let cut = body.index(body.startIndex, offsetBy: Int(Double(body.count) * depth))
                let needle = "\nThe pass key is \(key). Remember it. \(key) is the pass key.\n"
                return (body[..<cut] + needle + body[cut...] + "\nWhat is the pass key? The pass key is", "", " \(key).")
            case .twoQuestion(let questionA, let questionB, let answerB):
                return (body + questionA, questionB, answerB ?? " " + firstLine)
            }
        }
        func encoded(_ length: Int) -> (prompt: [Int], followUp: [Int], answer: [Int])? {
            let p = parts(length)
            let prompt = tokenizer.encode(p.prompt)
            let withFollowUp = tokenizer.encode(p.prompt + p.followUp)
            let all = tokenizer.encode(p.prompt + p.followUp + p.answer)
            // Continuations must extend the prompt's tokens (no merge across the boundary).
            guard withFollowUp.starts(with: prompt), all.starts(with: withFollowUp) else { return nil }
            return (prompt, Array(withFollowUp[prompt.count...]), Array(all[withFollowUp.count...]))
        }
        // The longest filler whose probe fits the context (binary search on characters).
        var low = 0, high = filler.count
        while low < high {
            let mid = (low + high + 1) / 2
            if let e = encoded(mid), e.prompt.count + e.followUp.count + e.answer.count <= context { low = mid } else { high = mid - 1 }
        }
        guard let tokens = encoded(low), !tokens.answer.isEmpty else {
            throw ProbeError(description: "the \(kind.name) probe does not fit in \(context) tokens with this tokenizer")
        }
        return ProbePrompt(prompt: tokens.prompt, followUp: tokens.followUp, answer: tokens.answer,
                           answerText: parts(low).answer.trimmingCharacters(in: .whitespacesAndNewlines), passkey: passkey)
    }
}

/// A probe that cannot be built for this model and context.
public struct ProbeError: Error, CustomStringConvertible {
    public var description: String
}
