/// kvpress's `SnapKVPress.score`: the attention the last `window_size` prompt queries give each
/// entry before the window (mean over the window and the query group; kvlab sums, which ranks
/// alike), average-pooled with `kernel_size` over those entries (zero padding counted, as
/// `avg_pool1d`'s `count_include_pad`); the window itself always stays. A prompt of at most
/// `window_size` tokens is kept whole (kvpress refuses it).
struct SnapKVScorer: KVPressScorer {
    let windowSize: Int
    let kernelSize: Int

    var observation: Int { windowSize }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        let boundary = Int32(promptEnd - windowSize)
        return heads.map { e in
            var before = 0
            while before < e.count, e.positions[before] < boundary { before += 1 }
            guard promptEnd > windowSize else { return Array(repeating: .infinity, count: e.count) }
            var out = Array(repeating: Float.infinity, count: e.count)
            let half = kernelSize / 2
            for i in 0..<before {
                var sum: Float = 0
                for j in max(0, i - half)...min(before - 1, i + half) { sum += e.scores[j] }
                out[i] = sum / Float(kernelSize)
            }
            return out
        }
    }
}

/// kvpress's `PyramidKVPress`: SnapKV's scores with a budget per layer falling linearly with
/// depth (`get_layer_budget`: from `2·(n − w) − (n − w)/β` entries above the window at layer 0,
/// capped at the prompt, down to the rest; rounded half to even, as Python's `round`), or
/// kvpress's `round(k · (1 − ratio))` everywhere when that schedule does not fit.
struct PyramidKVScorer: KVPressScorer {
    let snap: SnapKVScorer
    let beta: Int

    var observation: Int { snap.observation }

    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]] {
        snap.scores(heads: heads, promptEnd: promptEnd, vectors: vectors)
    }

    func keptCount(layer: Int, of count: Int, budget: KVBudget, layout: KVLayout) -> Int {
        let q = Double(count), w = Double(snap.windowSize), share = budget.keptShare(of: count, layout: layout)
        // In kvpress's order of operations, so that the float results agree.
        let maxCapacity = w + share
        var minNum = (maxCapacity - w) / Double(beta)
        var maxNum = (maxCapacity - w) * 2 - minNum
        if maxNum >= q - w {
            maxNum = q - w
            minNum = (maxCapacity - w) * 2 - maxNum
        }
        guard q >= maxNum, maxNum >= minNum, minNum >= w else {
            return min(count, max(1, Int(share.rounded(.toNearestOrEven))))
        }
        let layers = layout.layerCount
        let steps = layers > 1 ? (maxNum - minNum) / Double(layers - 1) : 0
        return min(count, Int((maxNum - Double(layer) * steps).rounded(.toNearestOrEven)))
    }
}
