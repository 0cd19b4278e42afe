import Foundation
import KVLabMethods

/// One request of a serve run: when it arrives, its prompt and how many tokens it generates.
public struct ServeRequest: Sendable, Equatable, Codable {
    /// Its index in the arrival order (the scheduler's sequence id).
    public var id: Int
    /// Seconds on the run's clock at which it arrives.
    public var arrival: Double
    /// The prompt's tokens (a shared system prompt, when there is one, first).
    public var prompt: [Int]
    /// Tokens it generates before it finishes.
    public var outputTokens: Int
    /// How many of the prompt's first tokens are the system prompt every request shares.
    public var sharedPrefix: Int

    public init(id: Int, arrival: Double, prompt: [Int], outputTokens: Int, sharedPrefix: Int = 0) {
        self.id = id
        self.arrival = arrival
        self.prompt = prompt
        self.outputTokens = outputTokens
        self.sharedPrefix = sharedPrefix
    }
}

/// A closed range of lengths a synthetic stream draws from uniformly (`64` or `32..128`).
public struct LengthRange: Sendable, Equatable, Codable, CustomStringConvertible {
    public var lower: Int
    public var upper: Int

    public init(_ lower: Int, _ upper: Int) {
        precondition(lower >= 1 && lower <= upper, "a length range is 1 ≤ lower ≤ upper")
        self.lower = lower
        self.upper = upper
    }

    /// `N` or `A..B` with 1 ≤ A ≤ B ≤ `limit`; nil otherwise.
    public init?(parsing text: String, limit: Int) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let bounds: [Int?]
        switch parts.count {
        case 1: bounds = [Int(parts[0]), Int(parts[0])]
        case 3 where parts[1].isEmpty: bounds = [Int(parts[0]), Int(parts[2])]
        default: return nil
        }
        guard let lower = bounds[0], let upper = bounds[1], lower >= 1, lower <= upper, upper <= limit else { return nil }
        self.init(lower, upper)
    }

    public var description: String { lower == upper ? "\(lower)" : "\(lower)..\(upper)" }

    func draw(using generator: inout Xoshiro256) -> Int { Int.random(in: lower...upper, using: &generator) }
}

/// A seeded synthetic arrival stream: Poisson arrivals at `rate` requests per second, prompt and
/// output lengths uniform over their ranges, prompts cut from a text's tokens and, with a system
/// prompt, that text's first `systemPrompt` tokens ahead of each. The same settings give the same
/// requests on every machine (xoshiro256** from the seed; exponential gaps by inversion).
public struct SyntheticArrivals: Sendable, Equatable, Codable {
    /// Mean requests per second of the run's clock.
    public var rate: Double
    /// Requests in the stream.
    public var count: Int
    public var promptLength: LengthRange
    public var outputLength: LengthRange
    /// Tokens of shared system prompt ahead of every prompt, BOS included (0: none).
    public var systemPrompt: Int
    public var seed: UInt64

    public init(rate: Double, count: Int, promptLength: LengthRange, outputLength: LengthRange, systemPrompt: Int = 0, seed: UInt64 = 42) {
        self.rate = rate
        self.count = count
        self.promptLength = promptLength
        self.outputLength = outputLength
        self.systemPrompt = systemPrompt
        self.seed = seed
    }

    /// The text prompts are cut from when no other is given: the prologue of Romeo and Juliet,
    /// from the play the embedded model was trained on.
    public static let defaultText = """
        Two households, both alike in dignity,
        In fair Verona, where we lay our scene,
        From ancient grudge break to new mutiny,
        Where civil blood makes civil hands unclean.
        From forth the fatal loins of these two foes
        A pair of star-cross'd lovers take their life;
        Whose misadventured piteous overthrows
        Do with their death bury their parents' strife.
        The fearful passage of their death-mark'd love,
        And the continuance of their parents' rage,
        Which, but their children's end, nought could remove,
        Is now the two hours' traffic of our stage;
        The which if you with patient ears attend,
        What here shall miss, our toil shall strive to mend.

        """

    /// The requests, their prompts cut from `source` (a text's tokens, reused from its start when a
    /// prompt runs past its end); `first` (BOS) starts every prompt, and is the first of the system
    /// prompt's tokens when there is one (else not counted in the prompt's length).
    public func requests(source: [Int], first: Int?) -> [ServeRequest] {
        precondition(!source.isEmpty, "prompts are cut from a non-empty text")
        var generator = Xoshiro256(seed: seed)
        var clock = 0.0
        let head = Self.systemPrompt(systemPrompt, source: source, first: first)
        let shared = head.count
        return (0..<count).map { id in
            // Inversion of the exponential distribution; 1 − u keeps the logarithm finite.
            let u = Double(generator.next() >> 11) / Double(1 << 53)
            clock += -Foundation.log(1 - u) / rate
            let length = promptLength.draw(using: &generator)
            let output = outputLength.draw(using: &generator)
            let start = Int(generator.next() % UInt64(source.count))
            return ServeRequest(id: id, arrival: clock, prompt: (head.isEmpty ? first.map { [$0] } ?? [] : head) + Self.tokens(source, from: start, count: length), outputTokens: output,
                                sharedPrefix: shared)
        }
    }

    /// A system prompt of `count` tokens in all, `first` (BOS) among them: `source`'s first
    /// tokens after it. Empty for 0.
    public static func systemPrompt(_ count: Int, source: [Int], first: Int?) -> [Int] {
        guard count > 0 else { return [] }
        let head = first.map { [$0] } ?? []
        return head + tokens(source, from: 0, count: count - head.count)
    }

    private static func tokens(_ source: [Int], from start: Int, count: Int) -> [Int] {
        (0..<count).map { source[(start + $0) % source.count] }
    }
}
