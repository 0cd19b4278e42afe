import Foundation

/// kvpress's `KVzipPress`: an entry's importance is how much the model attends to it while asked
/// to repeat the prompt. After the prompt, each chunk of `chunk_size` prompt tokens (after the chat
/// template's prefix) runs as a fork: the repeat request ("\n\nRepeat the previous context
/// exactly.", later chunks "…, starting with" and the previous chunk's last 8 tokens), the chat
/// template's user suffix (`\n` without a template), then the chunk. In each layer the fork's
/// queries (after RoPE), scaled by 1/√head_dim, attend to the prompt's first `min(n_sink, chunk
/// start)` entries, the chunk's entries and the fork's own (causally), a softmax over that subset
/// only; an entry's score is the maximum over the fork's queries and the KV head's query group.
/// The fork's entries are dropped. The prompt's first `n_sink` entries always stay; entries of
/// the template's prefix score 0. The lowest `compression_ratio` of all (layer, KV head, entry)
/// scores go (`int(numel · ratio)` of them; an entry or byte budget: what keeps that many per head
/// on average), so budgets differ per layer and head (`layerwise=true`: each layer drops that share
/// of its own). Among equal scores the older entry, then the lower layer and head, goes first.
/// kvpress masks those keys; kvlab frees them. A prompt after earlier context scores its own
/// entries and keeps the earlier ones. On the sequence so far (chosen between decode steps, or
/// `+every`) the prompt is the sequence's tokens from position 0: the forks repeat them all, run
/// after the newest entry, and score the entries kept now, which alone are candidates.
package final class KVzipPolicy: ForkScoringPolicy {
    let budgetSpec: KVBudget
    let nSink: Int
    let chunkSize: Int
    let layerwise: Bool
    let layout: KVLayout
    /// The prompt being scored: its positions, the chunks' positions, and each fork's length.
    private var prompt: Range<Int>?
    private var chunks: [Range<Int>] = []
    private var forkLengths: [Int] = []
    /// Per (layer, KV head, prompt entry): the score, then (at the first layer's end) whether it goes.
    private var scores: [Float] = []
    /// Per (layer, KV head, prompt entry): whether the entry is kept now (all of a prompt's).
    private var present: [Bool] = []
    private var pruned: [Bool]?
    private var kept: [Int]

    static let firstRequest = "\n\nRepeat the previous context exactly."
    static let laterRequest = "\n\nRepeat the part of the previous context exactly, starting with"
    /// Tokens of the previous chunk a later request ends with (kvpress's `prev_postfix_size`).
    static let previousTail = 8

    init(budget: KVBudget, nSink: Int, chunkSize: Int, layerwise: Bool, layout: KVLayout) {
        budgetSpec = budget
        self.nSink = nSink
        self.chunkSize = chunkSize
        self.layerwise = layerwise
        self.layout = layout
        kept = Array(repeating: budget.keptCount(of: layout.capacity, layout: layout), count: layout.layerCount * layout.kvHeadCount)
    }

    package var needsScores: Bool { false }
    package var batchedPrefill: Bool { true }
    package var sequencePass: SequencePass? { .forks }
    package var stateBytesPerEntry: Int { 4 }
    /// A fork's queries, once the forks are planned.
    package var recordedQueries: Int { forkLengths.max() ?? 0 }
    package func budget(layer: Int, head: Int) -> Int? { kept[layer * layout.kvHeadCount + head] }
    package func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}

    package func forks(prompt tokens: [Int], first: Int, texts: PromptTexts) -> [[Int]] {
        prompt = nil
        chunks = []
        forkLengths = []
        pruned = nil
        guard budgetSpec.compressionRatio(of: tokens.count, layout: layout) > 0 else { return [] }
        let (prefixText, suffixText) = texts.userTurn ?? ("", "\n")
        let prefix = texts.encode(prefixText).count, suffix = texts.encode(suffixText)
        guard prefix < tokens.count else { return [] }
        let context = Array(tokens[prefix...])
        var forks: [[Int]] = []
        for (i, start) in stride(from: 0, to: context.count, by: chunkSize).enumerated() {
            let chunk = Array(context[start..<min(context.count, start + chunkSize)])
            let request = i == 0 ? texts.encode(Self.firstRequest)
                : texts.encode(Self.laterRequest) + context[max(0, start - Self.previousTail)..<start]
            forks.append(request + suffix + chunk)
            chunks.append((first + prefix + start)..<(first + prefix + start + chunk.count))
        }
        prompt = first..<(first + tokens.count)
        forkLengths = forks.map(\.count)
        scores = Array(repeating: 0, count: layout.layerCount * layout.kvHeadCount * tokens.count)
        present = Array(repeating: false, count: scores.count)
        return forks
    }

    package func observeFork(_ index: Int, layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, forkStart: Int, vectors: any EntryVectors) {
        guard let prompt else { return }
        let q = vectors.queries.count, width = vectors.queries.width, values = vectors.queries.values, d = vectors.headDim
        let group = layout.groupSize
        let chunk = chunks[index], start = chunk.lowerBound - prompt.lowerBound
        let sinks = prompt.lowerBound..<(prompt.lowerBound + min(nSink, start))
        let scale = 1 / Float(d).squareRoot(), n = prompt.count
        for h in heads.indices {
            let e = heads[h], forkBase = e.count - q
            precondition(forkBase >= 0 && Int(e.positions[forkBase]) == forkStart, "a fork's entries follow the sequence's")
            let row = (layer * layout.kvHeadCount + h) * n
            // The subset's keys: the sinks and the chunk entries kept now (all of a prompt's), the fork.
            var sinkIndices: [Int] = [], chunkIndices: [Int] = []
            for i in 0..<forkBase {
                let p = Int(e.positions[i])
                guard prompt.contains(p) else { continue }
                present[row + p - prompt.lowerBound] = true
                if sinks.contains(p) { sinkIndices.append(i) } else if chunk.contains(p) { chunkIndices.append(i) }
            }
            let sink = sinkIndices.count, inChunk = chunkIndices.count
            let indices = sinkIndices + chunkIndices + Array(forkBase..<e.count)
            var keys = [Float](repeating: 0, count: indices.count * d)
            keys.withUnsafeMutableBufferPointer { k in
                for (j, i) in indices.enumerated() { vectors.key(head: h, slot: e.slots[i], into: k.baseAddress! + j * d) }
            }
            // Every fork query's dot product with every key of the subset (the engine's matrix
            // product), then each query's softmax over the keys it sees.
            let m = indices.count
            var best = [Float](repeating: 0, count: inChunk)
            var logits = [Float](repeating: 0, count: q * m)
            values.withUnsafeBufferPointer { values in
                keys.withUnsafeBufferPointer { keys in
                    logits.withUnsafeMutableBufferPointer { logits in
                        let l = logits.baseAddress!
                        for g in 0..<group {
                            vectors.products(values.baseAddress! + (h * group + g) * d, rows: q, stride: width, keys.baseAddress!, columns: m, into: l)
                            for t in 0..<q {
                                // The fork's query t sees the fork's entries up to its own.
                                let query = l + t * m, visible = sink + inChunk + t + 1
                                var top = -Float.infinity
                                for j in 0..<visible {
                                    query[j] *= scale
                                    top = max(top, query[j])
                                }
                                var sum: Float = 0
                                for j in 0..<visible {
                                    query[j] = exp(query[j] - top)
                                    sum += query[j]
                                }
                                for j in 0..<inChunk { best[j] = max(best[j], query[sink + j] / sum) }
                            }
                        }
                    }
                }
            }
            for (j, i) in chunkIndices.enumerated() { scores[row + Int(e.positions[i]) - prompt.lowerBound] = best[j] }
        }
    }

    package func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int) {
        // Without its forks (no compression, or no room for them after the sequence) the press keeps everything.
        guard let prompt, prompt.upperBound == promptEnd else {
            for h in heads.indices { kept[layer * layout.kvHeadCount + h] = heads[h].count }
            return
        }
        let n = prompt.count
        if pruned == nil { pruned = select(count: n) }
        for h in heads.indices {
            let row = (layer * layout.kvHeadCount + h) * n
            for i in stride(from: heads[h].count - 1, through: 0, by: -1) {
                let p = Int(heads[h].positions[i])
                if prompt.contains(p), pruned![row + p - prompt.lowerBound] { heads[h].evict(i) }
            }
            kept[layer * layout.kvHeadCount + h] = heads[h].count
        }
        if layer == layout.layerCount - 1 {
            self.prompt = nil
            scores = []
            present = []
            pruned = nil
            forkLengths = []
        }
    }

    /// kvpress's `compress_post`: the lowest scores over the whole model (or each layer) go, the
    /// first `n_sink` entries of every head protected. Only kept entries are candidates (all of a
    /// prompt's); an entry or byte budget leaves each (layer, KV head) its budget on average.
    private func select(count n: Int) -> [Bool] {
        let heads = layout.kvHeadCount, layers = layout.layerCount
        for row in 0..<(layers * heads) {
            for i in 0..<min(nSink, n) { scores[row * n + i] = .infinity }
        }
        // What a budget in entries keeps per head, summed, as kvpress's ratio would remove.
        func prunedCount(_ entries: Int, rows: Int) -> Int {
            if case .ratio(let r) = budgetSpec { return Int(Double(entries) * r) }
            return max(0, entries - rows * budgetSpec.keptCount(of: n, layout: layout))
        }
        var pruned = [Bool](repeating: false, count: scores.count)
        let groups = layerwise ? (0..<layers).map { ($0 * heads * n)..<(($0 + 1) * heads * n) } : [0..<scores.count]
        for group in groups {
            // Older position first among equal scores, then lower layer and head: the index order.
            let candidates = group.filter { present[$0] }
            let order = candidates.sorted { a, b in scores[a] != scores[b] ? scores[a] < scores[b] : (a % n, a) < (b % n, b) }
            for index in order.prefix(prunedCount(candidates.count, rows: group.count / n)) { pruned[index] = true }
        }
        return pruned
    }
}
