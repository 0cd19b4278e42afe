import Foundation

/// EntropyGatedChunkKV: ChunkKV whose chunks (of `chunk_length`, the last shorter) are taken best
/// mean score first until the budget `max(1, ⌊k · (1 − ratio)⌋)` is spent; a chunk at or above the
/// median chunk score whose normalized score entropy is below the median keeps only its best
/// `low_entropy_chunk_length` entries; what is left of the budget goes to the best entries not yet
/// kept. Scores are the scorer's summed over the layer's heads, so every head keeps the same
/// positions. It reads the scores' values, not only their order: it wraps the key scorers, whose
/// values are kvpress's.
struct EntropyGatedSelection: KVPressSelecting {
    let length: Int
    let lowLength: Int
    static let epsilon: Float = 1e-8

    /// Normalized entropy of `x` shifted so its minimum is at most 0 (kvpress's rebasing of negative scores).
    static func entropy(_ x: ArraySlice<Float>) -> Float {
        guard x.count > 1 else { return 0 }
        let shift = min(x.min()!, 0), shifted = x.map { $0 - shift }, sum = shifted.reduce(0, +)
        var h: Float = 0
        for v in shifted {
            let p = v / (sum + epsilon)
            h -= p * log(p + epsilon)
        }
        return min(1, max(0, h / Float(Foundation.log(Double(x.count)))))
    }

    func keep(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, scores: [[Float]], kept n: Int, budget: KVBudget,
              layout: KVLayout, vectors: (any EntryVectors)?) -> [[Bool]] {
        let count = heads.map(\.count).max() ?? 0
        guard count > 0 else { return heads.map { _ in [] } }
        var total = [Float](repeating: 0, count: count)
        for h in heads.indices { for i in 0..<heads[h].count { total[i] += scores[h][i] } }
        var left = max(1, Int(Double(count) * budget.keptFraction(of: count, layout: layout)))
        let starts = Array(stride(from: 0, to: count, by: length))
        let chunks = starts.map { total[$0..<min(count, $0 + length)] }
        let means = chunks.map { $0.reduce(0, +) / Float($0.count) }
        let entropies = chunks.map { Self.entropy($0) }
        // torch.median: the lower of the two middle values.
        let median = { (v: [Float]) in v.sorted()[(v.count - 1) / 2] }
        let scoreMedian = median(means), entropyMedian = median(entropies)
        var keep = Array(repeating: false, count: count)
        let positions = heads[0].positions
        for c in means.indices.sorted(by: { means[$0] != means[$1] ? means[$0] > means[$1] : $0 > $1 }) {
            guard left > 0 else { break }
            let range = Array(starts[c]..<min(count, starts[c] + length))
            var kept = min(range.count, left)
            if means[c] >= scoreMedian, entropies[c] < entropyMedian { kept = min(kept, lowLength) }
            for i in rankedSubset(range, range.map { total[$0] }, positions: positions).prefix(kept) { keep[i] = true }
            left -= kept
        }
        if left > 0 {
            let rest = (0..<count).filter { !keep[$0] }
            for i in rankedSubset(rest, rest.map { total[$0] }, positions: positions).prefix(left) { keep[i] = true }
        }
        return heads.map { e in Array(keep.prefix(e.count)) }
    }
}

/// DMSPress without trained gates: entries whose score is below `threshold` are evicted as they
/// leave the `sliding_window_size` newest entries, at the prompt's end and, with `decoding`,
/// at every decode step (each new entry scored by its key alone, as kvpress scores a step's
/// single key). Budgets follow from the threshold: no fixed count.
final class KVPressDMSPolicy: EvictionPolicy {
    let scorer: any KVPressKeyScorer
    let threshold: Float
    let window: Int
    let decoding: Bool
    let layout: KVLayout

    init(scorer: any KVPressKeyScorer, threshold: Float, window: Int, decoding: Bool, layout: KVLayout) {
        self.scorer = scorer
        self.threshold = threshold
        self.window = window
        self.decoding = decoding
        self.layout = layout
    }

    var needsScores: Bool { false }
    var batchedPrefill: Bool { true }
    var stateBytesPerEntry: Int { 4 }
    func budget(layer: Int, head: Int) -> Int? { nil }
    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>) {}

    func finishPrefill(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, promptEnd: Int, vectors: any EntryVectors) {
        for h in heads.indices {
            let all = Array(0..<heads[h].count)
            for (i, s) in scorer.scores(head: h, entries: heads[h], subset: all, vectors: vectors).enumerated() { heads[h].scores[i] = s }
            // The entries past the window, newest first so indices stay valid.
            for i in stride(from: heads[h].count - window - 1, through: 0, by: -1) where heads[h].scores[i] < threshold { heads[h].evict(i) }
        }
    }

    func afterAttention(layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, vectors: any EntryVectors) {
        guard decoding else { return }
        for h in heads.indices where heads[h].count > 0 {
            let newest = heads[h].count - 1
            heads[h].scores[newest] = scorer.scores(head: h, entries: heads[h], subset: [newest], vectors: vectors)[0]
            // The entry leaving the window now: `window` positions before the newest.
            let leaving = Int(heads[h].positions[newest]) - window
            var i = newest
            while i >= 0, Int(heads[h].positions[i]) > leaving { i -= 1 }
            if i >= 0, Int(heads[h].positions[i]) == leaving, heads[h].scores[i] < threshold { heads[h].evict(i) }
        }
    }
}

/// An LU-KV budget curve: a NumPy `.npy` file of shape [99, layers, KV heads] (float32 or
/// float64, C order), the share of its entries each (layer, KV head) prunes at ratios 0.01…0.99.
struct LUKVCurve: Sendable, Hashable {
    let path: String
    let layers: Int
    let heads: Int
    let values: [Float]

    func value(_ target: Int, _ layer: Int, _ head: Int) -> Float { values[(target * layers + layer) * heads + head] }

    init(path: String) throws(MethodSpecError) {
        self.path = path
        let fail = { (why: String) in MethodSpecError("kvpress:lukv: curve \(path): \(why)") }
        guard let data = FileManager.default.contents(atPath: path) else { throw fail("cannot be read") }
        let bytes = [UInt8](data)
        guard bytes.count > 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else { throw fail("is not a .npy file") }
        let (headerStart, headerLength) = bytes[6] == 1
            ? (10, Int(bytes[8]) | Int(bytes[9]) << 8)
            : (12, bytes.count > 12 ? Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24 : -1)
        guard headerLength >= 0, headerStart + headerLength <= bytes.count else { throw fail("its header is cut short") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        let width: Int
        if header.contains("'<f4'") { width = 4 } else if header.contains("'<f8'") { width = 8 } else {
            throw fail("holds neither little-endian float32 nor float64")
        }
        guard header.contains("'fortran_order': False") else { throw fail("is in Fortran order") }
        guard let open = header.firstIndex(of: "("), let close = header[open...].firstIndex(of: ")") else { throw fail("has no shape") }
        let shape = header[header.index(after: open)..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard shape.count == 3, shape[0] == 99, shape[1] > 0, shape[2] > 0 else {
            throw fail("has shape \(shape), not [99, layers, KV heads]")
        }
        let count = shape[0] * shape[1] * shape[2], start = headerStart + headerLength
        guard bytes.count - start == count * width else { throw fail("holds \(bytes.count - start) bytes of data, not \(count * width)") }
        layers = shape[1]
        heads = shape[2]
        values = (0..<count).map { i in
            var bits: UInt64 = 0
            for b in 0..<width { bits |= UInt64(bytes[start + i * width + b]) << (8 * b) }
            return width == 4 ? Float(bitPattern: UInt32(bits)) : Float(Double(bitPattern: bits))
        }
    }
}
