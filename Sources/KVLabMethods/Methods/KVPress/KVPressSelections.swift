/// A wrapper press's selection at the end of a prompt (`KVPressPolicy.Selection.wrapper`): which
/// entries of each head of a layer stay, index-aligned with `heads`.
package protocol KVPressSelecting {
    /// `scores` are the wrapped scorer's, `n` its `keptCount` for the layer.
    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]]
}

/// Marks `chosen` (entry indices of one head) kept among `count`.
private func mask(_ chosen: some Sequence<Int>, count: Int) -> [Bool] {
    var keep = Array(repeating: false, count: count)
    for i in chosen { keep[i] = true }
    return keep
}

/// ChunkPress: each chunk of `chunk_length` entries (the last shorter) is scored alone and keeps
/// its best `max(1, ⌊len · (1 − ratio)⌋)`; ties: the newer.
struct ChunkSelection: KVPressSelecting {
    let scorer: any KVPressKeyScorer
    let length: Int

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        heads.indices.map { h in
            let e = heads[h], fraction = budget.keptFraction(of: e.count, layout: layout)
            var chosen: [Int] = []
            for start in stride(from: 0, to: e.count, by: length) {
                let chunk = Array(start..<min(e.count, start + length))
                let kept = max(1, Int(Double(chunk.count) * fraction))
                chosen += rankedSubset(chunk, scorer.scores(head: h, entries: e, subset: chunk, vectors: vectors), positions: e.positions).prefix(kept)
            }
            return mask(chosen, count: e.count)
        }
    }
}

/// BlockPress: the first `n_kept` entries, then block after block of `block_size` the scorer
/// rescores the kept entries with the block and keeps the best `n_kept` (ties: the newer).
struct BlockSelection: KVPressSelecting {
    let scorer: any KVPressKeyScorer
    let size: Int

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        heads.indices.map { h in
            let e = heads[h], block = min(size, e.count)
            var kept = Array(0..<min(n, e.count))
            for start in stride(from: kept.count, to: e.count, by: block) {
                let current = kept + Array(start..<min(e.count, start + block))
                kept = Array(rankedSubset(current, scorer.scores(head: h, entries: e, subset: current, vectors: vectors), positions: e.positions).prefix(n))
            }
            return mask(kept, count: e.count)
        }
    }
}

/// ComposedPress of a scorer press and a key scorer (`then`): the first keeps its `n_kept`, the
/// second rescores what it kept and keeps `compute_n_kept(n_kept, then_ratio)` of it.
struct ComposedSelection: KVPressSelecting {
    let then: any KVPressKeyScorer
    let ratio: Double

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        heads.indices.map { h in
            let e = heads[h], first = Array(KVPressPolicy.ranked(scores[h], positions: e.positions).prefix(n))
            let second = KVBudget.ratio(ratio).keptCount(of: first.count, layout: layout)
            return mask(rankedSubset(first, then.scores(head: h, entries: e, subset: first, vectors: vectors), positions: e.positions).prefix(second),
                        count: e.count)
        }
    }
}

/// Finch with `chunk_length`: its scores of the whole prompt, each chunk keeping its own
/// `compute_n_kept(len, ratio)` best.
struct FinchChunkSelection: KVPressSelecting {
    let length: Int

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        heads.indices.map { h in
            let e = heads[h], ratio = KVBudget.ratio(1 - budget.keptFraction(of: e.count, layout: layout))
            var chosen: [Int] = []
            for start in stride(from: 0, to: e.count, by: length) {
                let chunk = Array(start..<min(e.count, start + length))
                chosen += rankedSubset(chunk, chunk.map { scores[h][$0] }, positions: e.positions).prefix(ratio.keptCount(of: chunk.count, layout: layout))
            }
            return mask(chosen, count: e.count)
        }
    }
}

/// SimLayerKV: a layer is lazy when the last `n_last` prompt queries' attention (averaged over
/// them and every query head) on the first `n_initial` and the `n_recent` entries before those
/// queries sums above `lazy_threshold`; a lazy layer keeps the first `n_initial` and the last
/// `n_recent − n_last` entries, the others everything. Nothing happens at `lazy_threshold=1` or
/// a prompt of at most `n_initial + n_recent + n_last` tokens.
struct SimLayerSelection: KVPressSelecting {
    let threshold: Double
    let nLast: Int, nRecent: Int, nInitial: Int

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        let count = heads.map(\.count).max() ?? 0
        let all = heads.map { Array(repeating: true, count: $0.count) }
        guard threshold < 1, count > nInitial + nRecent + nLast else { return all }
        let seen = count - nLast, queries = Float(heads.reduce(0) { $0 + $1.groupSize } * nLast)
        var mass: Float = 0
        for i in Array(0..<min(nInitial, seen)) + Array(max(0, seen - nRecent)..<seen) {
            for h in heads.indices { mass += scores[h][i] / queries }
        }
        guard Double(mass) > threshold else { return all }
        let recent = nRecent - nLast
        return heads.map { e in (0..<e.count).map { $0 < nInitial || $0 >= e.count - recent } }
    }
}

/// LU-KV: per-head budgets from a budget curve (`curve[round(100·ratio) − 1][layer][head]`, the
/// share each head prunes, its keep counts rounded to the layer's total as kvpress does), the
/// first `sink` and last `window` entries protected, then the scorer's best (a stable sort: ties
/// keep the older entry).
struct LUKVSelection: KVPressSelecting {
    let curve: LUKVCurve
    let sink: Int, window: Int

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        let count = heads.map(\.count).max() ?? 0, headCount = heads.count
        guard case .ratio(let ratio) = budget, ratio > 0, count > 0 else { return heads.map { Array(repeating: true, count: $0.count) } }
        let target = min(98, max(0, Int((ratio * 100).rounded(.toNearestOrEven)) - 1))
        let prune = (0..<headCount).map { curve.value(target, layer, $0) }
        guard prune.contains(where: { $0 > 0 }) else { return heads.map { Array(repeating: true, count: $0.count) } }
        let ideal = prune.map { min(1, max(0, 1 - $0)) * Float(count) }
        var total = Int(ideal.reduce(0, +).rounded(.toNearestOrEven))
        total = max(headCount, min(headCount * count, total))
        var keepCounts = ideal.map { Int($0.rounded(.down)) }
        let remainder = total - keepCounts.reduce(0, +)
        if remainder > 0 {
            let order = ideal.indices.sorted { a, b in
                let fa = ideal[a] - ideal[a].rounded(.down), fb = ideal[b] - ideal[b].rounded(.down)
                return fa != fb ? fa > fb : a < b
            }
            for h in order.prefix(min(remainder, headCount)) { keepCounts[h] += 1 }
        }
        return heads.indices.map { h in
            let e = heads[h], s = scores[h]
            // Protected entries above the scorer's always-kept (kvpress pads those with max + 1, then
            // LU-KV protects with that max + 1) above the rest.
            let tier = { (i: Int) in i < min(sink, e.count) || i >= e.count - window ? 2 : s[i] == .infinity ? 1 : 0 }
            let order = (0..<e.count).sorted { a, b in
                tier(a) != tier(b) ? tier(a) > tier(b) : s[a] != s[b] ? s[a] > s[b] : a < b
            }
            return mask(order.prefix(min(e.count, max(1, keepCounts[h]))), count: e.count)
        }
    }
}
