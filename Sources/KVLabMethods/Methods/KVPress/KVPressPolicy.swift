/// How a kvpress press scores a layer's prompt entries at the end of a prompt.
package protocol KVPressScorer {
    /// Last prompt queries whose attention (`s_t`, summed into each entry's running score) the
    /// press reads; 0 for none.
    var observation: Int { get }
    /// Each head's score per entry, in entry order; higher stays. Entries the press always keeps
    /// (kvpress pads them with the layer's maximum + 1) score `.infinity`. `vectors` reads the
    /// entries' keys and values (nil where the caller has none: presses that need them keep all).
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) -> [[Float]]
    /// `scores` for a press that also reads its compression ratio (kvpress's `compression_ratio`,
    /// or the share an entry count or byte budget removes).
    func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?, compressionRatio: Double) -> [[Float]]
    /// Latest queries of each layer the press reads (`EvictionPolicy.recordedQueries`; 0: none).
    var queries: Int { get }
    /// Entries each head of `layer` keeps out of `count` (kvpress's `compute_n_kept` by default).
    func keptCount(layer: Int, of count: Int, budget: KVBudget, layout: KVLayout) -> Int
    /// The weight of the attention of the query at `position` in the running score (1 by default; Finch's normalization).
    func queryWeight(position: Int) -> Float
}

extension KVPressScorer {
    package var observation: Int { 0 }
    package var queries: Int { 0 }
    package func scores(heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?, compressionRatio: Double) -> [[Float]] {
        scores(heads: heads, promptEnd: promptEnd, vectors: vectors)
    }
    package func keptCount(layer: Int, of count: Int, budget: KVBudget, layout: KVLayout) -> Int {
        budget.keptCount(of: count, layout: layout)
    }
    package func queryWeight(position: Int) -> Float { 1 }
}

/// A kvpress press in kvlab's cache: batched prompt, scores at its end, then kvpress's selection,
/// evicting physically what kvpress drops (head-wise budgets included, where kvpress masks).
/// Nothing happens during decode, as in kvpress.
///
/// Selection: `perHead` is kvpress's `ScorerPress.compress` (each head keeps its `n_kept` best;
/// among equal scores at the boundary, where torch's top-k keeps an arbitrary subset, the newer
/// entry stays); `acrossHeads` is `AdaKVPress` (each head's `⌊n_kept · α⌋` best, at least one,
/// are safe; then the layer drops its `n_heads · (k − n_kept)` lowest, ties: the older first);
/// `chunks` is `ChunkKVPress` (the scores summed over the layer's heads and averaged per chunk of
/// `chunk_length` entries, the last one shorter; every head keeps the same `max(1, ⌊chunks · (1 − ratio)⌋)`
/// best chunks, ties: the newer chunk).
package final class KVPressPolicy: EvictionPolicy {
    package enum Selection {
        case perHead, acrossHeads(alphaSafeguard: Double), chunks(length: Int)
        /// A wrapper press's own (KVPressSelections.swift).
        case wrapper(any KVPressSelecting)
    }

    let scorer: any KVPressScorer
    let budgetSpec: KVBudget
    let selection: Selection
    let layout: KVLayout
    let decoding: KVPressDecoding?
    /// PrefillDecodingPress: the scorer of decode-time compressions, the prompt's being `scorer`.
    let decodingScorer: (any KVPressScorer)?
    /// Decode steps of each layer since its last compression (`decoding`).
    private var steps: [Int]
    /// Entries each (layer, KV head) kept at the last prompt's end; before one, the count a
    /// prompt filling the context would keep.
    private var kept: [Int]

    init(scorer: any KVPressScorer, budget: KVBudget, selection: Selection, layout: KVLayout, decoding: KVPressDecoding? = nil,
         decodingScorer: (any KVPressScorer)? = nil) {
        self.scorer = scorer
        self.decodingScorer = decodingScorer
        budgetSpec = budget
        self.selection = selection
        self.layout = layout
        self.decoding = decoding
        steps = Array(repeating: 0, count: layout.layerCount)
        kept = (0..<layout.layerCount).flatMap { layer in
            Array(repeating: scorer.keptCount(layer: layer, of: layout.capacity, budget: budget, layout: layout), count: layout.kvHeadCount)
        }
    }

    package var needsScores: Bool { false }
    package var batchedPrefill: Bool { true }
    package var prefillObservation: Int { scorer.observation }
    package var stateBytesPerEntry: Int { 4 }
    /// kvpress's DecodingPress buffers the hidden states of at most 256 steps since its last compression.
    package var recordedQueries: Int { decoding == nil ? scorer.queries : min(scorer.queries, 256) }
    /// A scorer that reads every prompt query (NonCausalAttn, Compactor, ExpectedAttention) gets
    /// the sequence's recomputed by the engine when it acts on the sequence so far.
    package var sequencePass: SequencePass? {
        scorer.queries == .max && (decoding == nil || decodingScorer != nil) ? .promptQueries : nil
    }
    package func budget(layer: Int, head: Int) -> Int? { kept[layer * layout.kvHeadCount + head] }
    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}

    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, vectors: any EntryVectors) {
        guard let decoding else {
            // A prompt press reads only its prompt's queries.
            vectors.queries.removeAll()
            return
        }
        steps[layer] += 1
        guard steps[layer] >= decoding.interval else { return }
        steps[layer] = 0
        let count = heads.map(\.count).max() ?? 0
        guard let newest = heads.first.map({ Int($0.positions[$0.count - 1]) }) else {
            vectors.queries.removeAll()
            return
        }
        let target = decoding.target(seen: newest + 1)
        guard count > target else {
            // kvpress empties its buffer at every compression step, even one that keeps everything.
            vectors.queries.removeAll()
            return
        }
        select(layer: layer, heads: heads, promptEnd: newest + 1, vectors: vectors, scorer: decodingScorer ?? scorer, selection: .perHead,
               budget: .ratio(KVPressDecoding.ratio(keeping: target, of: count)))
    }

    package func observePrefill(layer: Int, head: Int, entries: HeadEntries, queryPosition: Int, promptEnd: Int) {
        guard queryPosition >= promptEnd - scorer.observation else { return }
        let weight = scorer.queryWeight(position: queryPosition)
        for i in 0..<entries.count { entries.scores[i] += entries.stepScores[i] * weight }
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {
        finish(layer: layer, heads: heads, promptEnd: promptEnd, vectors: nil)
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: any EntryVectors) {
        finish(layer: layer, heads: heads, promptEnd: promptEnd, vectors: vectors)
    }

    /// At a prompt's end: every press but DecodingPress, which leaves the prompt whole
    /// (PrefillDecodingPress compresses both).
    private func finish(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?) {
        guard decoding == nil || decodingScorer != nil else {
            vectors?.queries.removeAll()
            return
        }
        select(layer: layer, heads: heads, promptEnd: promptEnd, vectors: vectors, scorer: scorer, selection: selection, budget: budgetSpec)
    }

    private func select(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: (any EntryVectors)?,
                        scorer: any KVPressScorer, selection: Selection, budget budgetSpec: KVBudget) {
        let count = heads.map(\.count).max() ?? 0
        guard count > 0 else { return }
        let scores = scorer.scores(heads: heads, promptEnd: promptEnd, vectors: vectors, compressionRatio: budgetSpec.compressionRatio(of: count, layout: layout))
        vectors?.queries.removeAll()
        let n = scorer.keptCount(layer: layer, of: count, budget: budgetSpec, layout: layout)
        var keep = heads.indices.map { Array(repeating: false, count: heads[$0].count) }
        switch selection {
        case .perHead:
            for h in heads.indices {
                for i in Self.ranked(scores[h], positions: heads[h].positions).prefix(n) { keep[h][i] = true }
            }
        case .acrossHeads(let alpha):
            var safe = Int(Double(n) * alpha)
            if alpha > 0 { safe = max(1, safe) }
            // (tier, score, position, head, index): safe entries above the protected ones above the rest.
            var candidates: [(tier: Int, score: Float, position: Int32, head: Int, index: Int)] = []
            for h in heads.indices {
                let order = Self.ranked(scores[h], positions: heads[h].positions)
                for (rank, i) in order.enumerated() {
                    let tier = rank < safe ? 2 : scores[h][i] == .infinity ? 1 : 0
                    candidates.append((tier, scores[h][i], heads[h].positions[i], h, i))
                    keep[h][i] = true
                }
            }
            let pruned = heads.count * (count - n)
            candidates.sort { a, b in
                if a.tier != b.tier { return a.tier < b.tier }
                if a.score != b.score { return a.score < b.score }
                return a.position != b.position ? a.position < b.position : a.head < b.head
            }
            for c in candidates.prefix(pruned) { keep[c.head][c.index] = false }
        case .chunks(let length):
            let complete = count / length, chunkCount = (count + length - 1) / length
            var chunkScores = [Float](repeating: 0, count: chunkCount)
            for c in 0..<chunkCount {
                let range = c * length..<min(count, (c + 1) * length)
                var sum: Float = 0
                for i in range { for h in heads.indices { sum += scores[h][i] } }
                chunkScores[c] = sum / Float(range.count)
            }
            // kvpress keeps whole chunks, and with no whole chunk falls back to the scorer alone.
            let keptChunks = max(1, Int(Double(chunkCount) * budgetSpec.keptFraction(of: count, layout: layout)))
            let order = chunkScores.indices.sorted { a, b in chunkScores[a] != chunkScores[b] ? chunkScores[a] > chunkScores[b] : a > b }
            for c in order.prefix(keptChunks) {
                for h in heads.indices { for i in (c * length)..<min(count, (c + 1) * length) { keep[h][i] = true } }
            }
            if complete == 0 {
                for h in heads.indices {
                    keep[h] = Array(repeating: false, count: heads[h].count)
                    for i in Self.ranked(scores[h], positions: heads[h].positions).prefix(n) { keep[h][i] = true }
                }
            }
        case .wrapper(let wrapper):
            keep = wrapper.keep(layer: layer, heads: heads, scores: scores, kept: n, budget: budgetSpec, layout: layout, vectors: vectors)
        }
        for h in heads.indices {
            for i in stride(from: heads[h].count - 1, through: 0, by: -1) where !keep[h][i] { heads[h].evict(i) }
            for i in 0..<heads[h].count { heads[h].scores[i] = 0 }
            kept[layer * layout.kvHeadCount + h] = heads[h].count
        }
    }

    /// Entry indices best first: higher score, then the newer position.
    static func ranked(_ scores: [Float], positions: UnsafeMutablePointer<Int32>) -> [Int] {
        scores.indices.sorted { a, b in scores[a] != scores[b] ? scores[a] > scores[b] : positions[a] > positions[b] }
    }
}
