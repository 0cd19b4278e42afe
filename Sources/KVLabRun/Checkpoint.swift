import Crypto
import KVLabEngine

/// A fingerprint of a run's state after some step, for replays to compare: exact SHA-256 digests
/// of the cache and the logits, and magnitudes that tolerate the last-bit differences another
/// machine's BLAS kernels can make (see `compare(toRecorded:tolerance:strict:)`).
public struct Checkpoint: Sendable, Equatable, Codable {
    /// Tokens generated before it.
    public var step: Int
    /// Position of the next token.
    public var position: Int
    /// SHA-256 of every (layer, KV head)'s kept positions: what the methods decided to keep.
    public var positionsDigest: String
    /// SHA-256 of every (layer, KV head)'s kept positions, keys and values as attention reads them
    /// (fp32 bit patterns; quantized entries decoded).
    public var cacheDigest: String
    /// SHA-256 of the next-token logits (fp32 bit patterns).
    public var logitsDigest: String
    /// Σ|k| over every kept entry, summed in Double in one fixed order.
    public var keyMagnitude: Double
    /// Σ|v| likewise.
    public var valueMagnitude: Double
    /// log Σ exp(logits).
    public var logSumExp: Double
    /// The largest logit.
    public var maxLogit: Double

    /// Relative tolerance of the magnitude comparison, and of the replay's other recorded floats.
    public static let tolerance = 1e-4

    /// The fingerprint of `cache` and `logits`. Bytes are hashed little-endian, as every platform
    /// Swift runs on stores them.
    public init(step: Int, position: Int, cache: PagedKVCache, logits: UnsafeBufferPointer<Float>) {
        self.step = step
        self.position = position
        var positions = SHA256(), contents = SHA256()
        var keys = 0.0, values = 0.0
        let layout = cache.layout
        var keyBuffer: [Float] = [], valueBuffer: [Float] = []
        for layer in 0..<layout.layerCount {
            for head in 0..<layout.kvHeadCount {
                let kept = cache.keptPositions(layer: layer, head: head).map { Int32($0) }
                keyBuffer.removeAll(keepingCapacity: true)
                valueBuffer.removeAll(keepingCapacity: true)
                for i in kept.indices {
                    let entry = cache.entry(layer: layer, head: head, i)
                    keyBuffer += entry.key
                    valueBuffer += entry.value
                }
                for x in keyBuffer { keys += Double(x.magnitude) }
                for x in valueBuffer { values += Double(x.magnitude) }
                let count = [Int32(kept.count)]
                count.withUnsafeBytes { positions.update(bufferPointer: $0); contents.update(bufferPointer: $0) }
                kept.withUnsafeBytes { positions.update(bufferPointer: $0); contents.update(bufferPointer: $0) }
                keyBuffer.withUnsafeBytes { contents.update(bufferPointer: $0) }
                valueBuffer.withUnsafeBytes { contents.update(bufferPointer: $0) }
            }
        }
        positionsDigest = positions.finalizeHex()
        cacheDigest = contents.finalizeHex()
        var logitHasher = SHA256()
        logitHasher.update(bufferPointer: UnsafeRawBufferPointer(logits))
        logitsDigest = logitHasher.finalizeHex()
        keyMagnitude = keys
        valueMagnitude = values
        let statistics = LogitStatistics(logits.baseAddress!, count: logits.count)
        logSumExp = Double(statistics.logSumExp)
        maxLogit = Double(logits[statistics.argmax])
    }

    /// How an observed checkpoint relates to a recorded one.
    public enum Match: Sendable, Equatable {
        /// Every digest is equal: bit-identical state.
        case exact
        /// The same kept positions; cache or logit bits differ, but every magnitude is within tolerance.
        case withinTolerance
        /// A real difference, with the part that differs.
        case mismatch(field: String, expected: String, observed: String)
    }

    /// Compares this (observed) checkpoint with a recorded one. Kept positions are the methods'
    /// discrete decisions and must be equal; the magnitudes must agree within `tolerance`
    /// (`agrees`) even when the digests are equal, since a digest does not cover them. `strict`:
    /// digests equal and magnitudes bit for bit.
    public func compare(toRecorded recorded: Checkpoint, tolerance: Double = Checkpoint.tolerance, strict: Bool = false) -> Match {
        if step != recorded.step { return .mismatch(field: "step", expected: "\(recorded.step)", observed: "\(step)") }
        if position != recorded.position {
            return .mismatch(field: "position", expected: "\(recorded.position)", observed: "\(position)")
        }
        if positionsDigest != recorded.positionsDigest {
            return .mismatch(field: "kept positions", expected: recorded.positionsDigest, observed: positionsDigest)
        }
        let digestsEqual = cacheDigest == recorded.cacheDigest && logitsDigest == recorded.logitsDigest
        if strict, !digestsEqual {
            return .mismatch(field: "digests (strict)", expected: "cache \(recorded.cacheDigest.prefix(16)) logits \(recorded.logitsDigest.prefix(16))",
                             observed: "cache \(cacheDigest.prefix(16)) logits \(logitsDigest.prefix(16))")
        }
        let pairs = [("key magnitude", recorded.keyMagnitude, keyMagnitude), ("value magnitude", recorded.valueMagnitude, valueMagnitude),
                     ("logits log-sum-exp", recorded.logSumExp, logSumExp), ("largest logit", recorded.maxLogit, maxLogit)]
        for (field, expected, observed) in pairs where !Self.agrees(expected, observed, tolerance: strict ? nil : tolerance) {
            return .mismatch(field: field, expected: "\(expected)", observed: "\(observed)")
        }
        return digestsEqual ? .exact : .withinTolerance
    }

    /// Whether a recorded number matches the one measured now: bit for bit when `tolerance` is
    /// nil, else within `tolerance` relative to the larger of 1 and the values (so numbers near 0,
    /// a KL of 1e-7, compare absolutely). Infinities and NaN match only their like: a NaN recorded
    /// where the run has a number is a corrupt record, whatever the tolerance.
    public static func agrees(_ recorded: Double, _ observed: Double, tolerance: Double?) -> Bool {
        if recorded.isNaN || observed.isNaN { return recorded.isNaN && observed.isNaN }
        guard let tolerance else { return recorded.bitPattern == observed.bitPattern }
        if recorded == observed { return true }
        guard recorded.isFinite, observed.isFinite else { return false }
        return (recorded - observed).magnitude <= tolerance * max(1, recorded.magnitude, observed.magnitude)
    }
}
