/// ThinK (Xu et al. 2024, "Thinner Key Cache by Query-Driven Pruning"), the `think` modifier of
/// an eviction method: per (layer, KV head), the fraction λ of key channels with the smallest
/// query-weighted magnitude is pruned once; pruned channels are not stored, and queries are
/// scored over the kept channels only. Values keep every channel.
///
/// Channel c of a head scores `‖Q_c‖ · ‖K_c‖`, ThinK's `‖Q[:, c] K[:, c]ᵀ‖_F`: `Q_c` is channel c
/// of the last `observation` queries of the head's query group (an L2 norm over the window and
/// the group's query heads; kvpress averages the squares instead, which ranks alike), `K_c`
/// channel c of the head's kept keys. ⌊λ · headDim⌋ channels go (kvpress's rounding); among
/// equal scores the lower channel stays.
///
/// When it acts (`PagedKVCache`): at the end of a batched prompt, after the eviction method's
/// own prompt-end step, on the prompt's last `observation` queries; without one, at the end of the
/// decode step that completes the first `observation` queries. It applies to the keys already
/// kept and to every later key.
public struct ThinK: Sendable, Hashable {
    /// The fraction of channels pruned, in (0, 1).
    public let lambda: Double
    /// Queries whose channel magnitudes weigh the keys'.
    public let observation: Int

    /// The most recent queries the cache keeps per layer, so that switching `think` on mid-stream
    /// can act at once: the largest `observation`.
    public static let maxObservation = 64

    /// Channels a head of `headDim` keeps: `headDim − ⌊λ · headDim⌋` (at least one, as λ < 1).
    public func keptChannelCount(headDim: Int) -> Int {
        headDim - Int((lambda * Double(headDim)).rounded(.down))
    }

    /// Channel scores `‖Q_c‖ · ‖K_c‖` from the sums of squares of each channel over the window's
    /// queries and over the keys.
    package static func scoreChannels(querySquares: UnsafePointer<Float>, keySquares: UnsafePointer<Float>, count: Int,
                              into scores: UnsafeMutablePointer<Float>) {
        for c in 0..<count { scores[c] = querySquares[c].squareRoot() * keySquares[c].squareRoot() }
    }

    /// The `keep` best of `count` channels by `scores` (ties: the lower channel), written to
    /// `channels` in ascending order; `channels` must hold `count` (it is the sort's workspace).
    package static func selectChannels(scores: UnsafePointer<Float>, count: Int, keep: Int, into channels: UnsafeMutablePointer<Int32>) {
        let all = UnsafeMutableBufferPointer(start: channels, count: count)
        for c in 0..<count { all[c] = Int32(c) }
        all.insertionSort { a, b in scores[Int(a)] != scores[Int(b)] ? scores[Int(a)] > scores[Int(b)] : a < b }
        UnsafeMutableBufferPointer(start: channels, count: keep).insertionSort(by: <)
    }
}
