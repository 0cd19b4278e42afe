import Foundation

/// One layer's rotary position embedding: its base and scaling. The engine and the caches that
/// rotate keys themselves (pre-RoPE key storage, re-rotation) all take their angles from here, so
/// they rotate alike: `inverseFrequencies` for the angles (position × frequency), `logitScale`
/// for what the scaling does to attention logits.
public struct RoPE: Sendable, Equatable, Hashable, Codable {
    public var theta: Double
    public var scaling: RoPEScaling

    public init(theta: Double, scaling: RoPEScaling = .none) {
        self.theta = theta
        self.scaling = scaling
    }

    /// One inverse frequency per channel pair of a `headDim` head, scaling applied.
    public func inverseFrequencies(headDim: Int) -> [Double] { scaling.inverseFrequencies(headDim: headDim, theta: theta) }

    /// What attention logits are multiplied by (YaRN's or LongRoPE's attention factor squared; 1 otherwise).
    public var logitScale: Double { scaling.logitScale }

    /// One line for `kvlab info`.
    public var summary: String { "θ \(String(format: "%g", theta)), scaling \(scaling.summary)" }
}

/// How a model stretches RoPE past its training context. Each case reproduces transformers'
/// `modeling_rope_utils` (and llama.cpp's equivalent) exactly.
public enum RoPEScaling: Sendable, Equatable, Hashable, Codable {
    case none
    /// Positions divided by `factor` (every inverse frequency divided by it).
    case linear(factor: Double)
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContext: Int)
    /// YaRN: interpolation below the correction range, extrapolation above, a linear ramp between;
    /// attention logits multiplied by `attentionFactor`² (cos and sin both scaled by it).
    case yarn(factor: Double, originalContext: Int, betaFast: Double, betaSlow: Double, attentionFactor: Double, truncate: Bool)
    /// llama.cpp's `rope_freqs.weight`: each inverse frequency divided by its own factor (how its
    /// converter stores Llama 3.1 scaling).
    case frequencyFactors([Double])
    /// Phi-3's LongRoPE: each inverse frequency divided by its own factor, the short set when the
    /// context the model runs with (`context`) is at most `originalContext`, else the long set;
    /// attention logits multiplied by `attentionFactor`² (cos and sin both scaled by it).
    /// transformers picks the set by each forward pass's length; kvlab rotates a key once, as it
    /// is written, so like llama.cpp (by `n_ctx`) it picks once, by the context.
    case longrope(shortFactors: [Double], longFactors: [Double], originalContext: Int, context: Int, attentionFactor: Double)

    /// One line for `kvlab info`.
    public var summary: String {
        func g(_ x: Double) -> String { String(format: "%g", x) }
        switch self {
        case .none: return "none"
        case .linear(let f): return "linear, factor \(g(f))"
        case .llama3(let f, let low, let high, let original):
            return "llama3, factor \(g(f)), low/high frequency factors \(g(low))/\(g(high)), original context \(original)"
        case .yarn(let f, let original, let fast, let slow, let attention, _):
            return "yarn, factor \(g(f)), original context \(original), β fast/slow \(g(fast))/\(g(slow)), attention factor \(g(attention))"
        case .frequencyFactors(let factors):
            return "per-frequency factors (rope_freqs, \(factors.count) values, \(g(factors.min() ?? 1))...\(g(factors.max() ?? 1)))"
        case .longrope(_, _, let original, let context, let attention):
            return "longrope, \(context > original ? "long" : "short") factors (context \(context), original \(original)), attention factor \(g(attention))"
        }
    }

    /// The YaRN attention factor transformers infers when the config gives none: 0.1·ln(factor) + 1.
    public static func yarnAttentionFactor(_ factor: Double) -> Double {
        factor <= 1 ? 1 : 0.1 * log(factor) + 1
    }

    /// The LongRoPE attention factor transformers infers when the config gives none:
    /// √(1 + ln(factor) / ln(original context)).
    public static func longropeAttentionFactor(_ factor: Double, originalContext: Int) -> Double {
        factor <= 1 ? 1 : (1 + log(factor) / log(Double(originalContext))).squareRoot()
    }

    /// Why these parameters cannot be used (factors and lengths must be positive and finite, a
    /// frequency table must match the head), or nil.
    public func problem(headDim: Int) -> String? {
        func bad(_ x: Double) -> Bool { !x.isFinite || x <= 0 }
        switch self {
        case .none: return nil
        case .linear(let f): return bad(f) ? "RoPE scaling factor \(f) is not usable" : nil
        case .llama3(let f, let low, let high, let original):
            if bad(f) || bad(low) || bad(high) || original <= 0 { return "llama3 RoPE scaling parameters are not usable" }
            return high > low ? nil : "llama3 RoPE high_freq_factor \(high) must exceed low_freq_factor \(low)"
        case .yarn(let f, let original, let fast, let slow, let attention, _):
            return bad(f) || bad(fast) || bad(slow) || bad(attention) || original <= 1 ? "yarn RoPE scaling parameters are not usable" : nil
        case .frequencyFactors(let factors):
            if factors.count != headDim / 2 { return "rope_freqs has \(factors.count) factors for \(headDim / 2) frequencies" }
            return factors.contains(where: bad) ? "rope_freqs holds a factor that is not positive and finite" : nil
        case .longrope(let short, let long, let original, let context, let attention):
            for (name, factors) in [("short", short), ("long", long)] {
                if factors.count != headDim / 2 { return "longrope has \(factors.count) \(name) factors for \(headDim / 2) frequencies" }
                if factors.contains(where: bad) { return "longrope holds a \(name) factor that is not positive and finite" }
            }
            return bad(attention) || original <= 1 || context <= 0 ? "longrope RoPE scaling parameters are not usable" : nil
        }
    }

    /// Inverse frequencies of a head of `headDim` channels with base `theta`: the one place the
    /// RoPE math lives. Computed in Double; each scaling as its reference defines it.
    public func inverseFrequencies(headDim: Int, theta: Double) -> [Double] {
        let half = headDim / 2, d = Double(headDim)
        let base = (0..<half).map { 1 / pow(theta, Double(2 * $0) / d) }
        switch self {
        case .none:
            return base
        case .linear(let factor):
            return base.map { $0 / factor }
        case .frequencyFactors(let factors):
            return zip(base, factors).map { $0 / $1 }
        case .longrope(let short, let long, let original, let context, _):
            return zip(base, context > original ? long : short).map { $0 / $1 }
        case .llama3(let factor, let low, let high, let original):
            let context = Double(original)
            let lowWavelength = context / low, highWavelength = context / high
            return base.map { frequency in
                let wavelength = 2 * Double.pi / frequency
                if wavelength < highWavelength { return frequency }
                if wavelength > lowWavelength { return frequency / factor }
                let smooth = (context / wavelength - low) / (high - low)
                return (1 - smooth) * frequency / factor + smooth * frequency
            }
        case .yarn(let factor, let original, let betaFast, let betaSlow, _, let truncate):
            func correctionDimension(_ rotations: Double) -> Double {
                d * log(Double(original) / (rotations * 2 * Double.pi)) / (2 * log(theta))
            }
            var low = correctionDimension(betaFast), high = correctionDimension(betaSlow)
            if truncate { low = low.rounded(.down); high = high.rounded(.up) }
            low = max(low, 0)
            high = min(high, d - 1)
            if low == high { high += 0.001 }
            return base.enumerated().map { i, frequency in
                let ramp = min(max((Double(i) - low) / (high - low), 0), 1)
                let extrapolation = 1 - ramp
                return frequency / factor * (1 - extrapolation) + frequency * extrapolation
            }
        }
    }

    /// What attention logits are multiplied by (YaRN's or LongRoPE's attention factor, squared: it
    /// scales both the query's and the key's rotation); 1 otherwise.
    public var logitScale: Double {
        switch self {
        case .yarn(_, _, _, _, let attention, _), .longrope(_, _, _, _, let attention): return attention * attention
        default: return 1
        }
    }
}
