import Foundation
import KVLabFoundation
import KVLabMethods

/// How the next token is chosen from logits.
public struct SamplerSettings: Sendable, Equatable, Codable {
    /// 0 means greedy (argmax); so does any temperature below `greedyTemperature`.
    public var temperature: Float
    /// Keep only the k most likely tokens (0: off).
    public var topK: Int
    /// Keep the smallest set of tokens whose probability reaches p (1: off).
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 42) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }

    /// Temperatures below this sample greedily, whatever top-k and top-p say: logits divided by
    /// them overflow Float (1e-40 made every probability NaN), and where they do not, the softmax
    /// already leaves all the probability on the most likely token.
    public static let greedyTemperature: Float = 1e-6
    /// The largest temperature (the distribution is uniform long before it).
    public static let maxTemperature: Float = 1000

    /// Checks ranges, with messages naming the flag-like setting.
    public func validate() throws {
        guard temperature.isFinite, temperature >= 0, temperature <= Self.maxTemperature else {
            throw FormatError("temperature must be between 0 and \(Int(Self.maxTemperature)), got \(temperature)")
        }
        guard topK >= 0 else { throw FormatError("top-k must be ≥ 0, got \(topK)") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw FormatError("top-p must be in (0, 1], got \(topP)") }
    }
}

/// Seeded sampling with temperature, top-k and top-p; its buffers are allocated once, so a
/// sample never touches the heap. Deterministic for a seed.
public final class Sampler {
    public let settings: SamplerSettings
    private var rng: Xoshiro256
    private let probabilities: UnsafeMutablePointer<Float>
    private let candidates: UnsafeMutablePointer<Int32>
    private let vocabularySize: Int

    public init(settings: SamplerSettings, vocabularySize: Int) {
        self.settings = settings
        self.vocabularySize = vocabularySize
        rng = Xoshiro256(seed: settings.seed)
        // Rounded up to whole 16-lane chunks for Vector.softmax.
        probabilities = .allocate(capacity: (vocabularySize + 15) / 16 * 16)
        candidates = .allocate(capacity: vocabularySize)
    }

    deinit {
        probabilities.deallocate()
        candidates.deallocate()
    }

    /// The next token for `logits`.
    public func sample(_ logits: UnsafeBufferPointer<Float>) -> Int {
        let n = min(logits.count, vocabularySize)
        if settings.temperature < SamplerSettings.greedyTemperature { return Self.argmax(logits, count: n) }
        for i in 0..<n {
            let scaled = logits[i] / settings.temperature
            // An overflowed (or NaN) logit would turn the softmax into NaNs: sample greedily instead.
            guard scaled < .infinity else { return Self.argmax(logits, count: n) }
            probabilities[i] = scaled
        }
        Vector.softmax(probabilities, count: n)
        var count = 0
        if settings.topK > 0 || settings.topP < 1 {
            // Candidates: with top-p alone, tokens below (1-p)/(n-1) cannot be in the nucleus
            // (llama2.c's cut), which keeps the sort short.
            let cutoff = settings.topK > 0 ? 0 : (1 - settings.topP) / Float(max(n - 1, 1))
            for i in 0..<n where probabilities[i] >= cutoff {
                candidates[count] = Int32(i)
                count += 1
            }
            sortByProbability(count)
            // The most likely token always stays: a cutoff above a near-uniform distribution
            // would otherwise leave no candidate.
            if count == 0 {
                candidates[0] = Int32(Self.argmax(logits, count: n))
                count = 1
            }
            if settings.topK > 0 { count = min(count, settings.topK) }
            if settings.topP < 1 {
                var cumulative: Float = 0
                for i in 0..<count {
                    cumulative += probabilities[Int(candidates[i])]
                    if cumulative >= settings.topP {
                        count = i + 1
                        break
                    }
                }
            }
        } else {
            for i in 0..<n { candidates[i] = Int32(i) }
            count = n
        }
        var total: Float = 0
        for i in 0..<count { total += probabilities[Int(candidates[i])] }
        let target = rng.nextUnitFloat() * total
        var cumulative: Float = 0
        for i in 0..<count {
            cumulative += probabilities[Int(candidates[i])]
            if target < cumulative { return Int(candidates[i]) }
        }
        return Int(candidates[count - 1])
    }

    /// The first most likely token, as greedy decoding picks it (`LogitStatistics.argmax`).
    private static func argmax(_ logits: UnsafeBufferPointer<Float>, count: Int) -> Int {
        var best = 0
        for i in 1..<max(count, 1) where logits[i] > logits[best] { best = i }
        return best
    }

    /// In-place heapsort of `candidates[0..<count]`: most probable first, lower id first on ties.
    private func sortByProbability(_ count: Int) {
        let p = probabilities, c = candidates
        // "Less" in heap order means "belongs later in the result".
        func later(_ a: Int32, _ b: Int32) -> Bool {
            let pa = p[Int(a)], pb = p[Int(b)]
            return pa < pb || (pa == pb && a > b)
        }
        func siftDown(_ start: Int, _ end: Int) {
            var root = start
            while 2 * root + 1 < end {
                var child = 2 * root + 1
                if child + 1 < end, later(c[child + 1], c[child]) { child += 1 }
                if later(c[child], c[root]) { c.swapAt(root, child); root = child } else { return }
            }
        }
        guard count > 1 else { return }
        for start in stride(from: count / 2 - 1, through: 0, by: -1) { siftDown(start, count) }
        for end in stride(from: count - 1, to: 0, by: -1) {
            c.swapAt(0, end)
            siftDown(0, end)
        }
    }
}

extension UnsafeMutablePointer {
    @inline(__always)
    fileprivate func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]
        self[i] = self[j]
        self[j] = t
    }
}
