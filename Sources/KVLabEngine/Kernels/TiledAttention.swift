import Foundation
import KVLabMethods

/// Query rows of one KV head in token order, `group` query heads per token, where row `r` sees the
/// first `firstVisible + r / group` listed entries (causal prefill); a decode step's rows all see
/// every entry (`group` = rows, `firstVisible` = entries). On a local layer (`window`) a row also
/// sees only entries at positions above its token's minus the window: its token is at
/// `firstPosition + r / group`, entry `firstVisible − 1` is row 0's own and the entries after it
/// hold consecutive positions, while those before it (earlier context, in any order) are checked
/// one by one through `slotPositions`.
struct CausalRows {
    var group: Int
    var firstVisible: Int
    var window: Int? = nil
    var firstPosition = 0
    var slotPositions: UnsafePointer<Int32>? = nil

    @inline(__always)
    func visible(_ row: Int) -> Int { firstVisible + row / group }

    /// The first entry row `row` may see (later rows start no earlier): past its window's start
    /// once the window lies inside the prompt, else 0 (earlier context is checked by `maskWindow`).
    @inline(__always)
    func start(_ row: Int) -> Int {
        guard let window else { return 0 }
        let token = row / group
        return token + 1 >= window ? firstVisible + token - window : 0
    }

    /// Sets the scores of a block's rows for a tile's entries they do not see through the window
    /// to `masked` (row `b` of the block at `s + b·stride`); nothing on a global layer. Prompt
    /// entries before a row's window are a range; earlier context is checked entry by entry only
    /// while the window still reaches back into it.
    @inline(__always)
    func maskWindow(rows: Range<Int>, tile: Range<Int>, scores s: UnsafeMutablePointer<Float>, stride: Int, masked: Float) {
        guard let window else { return }
        let own = firstVisible - 1
        for (b, r) in rows.enumerated() {
            let token = r / group, row = s + b * stride, first = tile.lowerBound
            let context = first..<max(first, min(tile.upperBound, own))
            if token + 1 < window {
                let oldest = Int32(clamping: firstPosition + token - window)
                for e in context where slotPositions![e] <= oldest { row[e - first] = masked }
            } else {
                for e in context { row[e - first] = masked }
            }
            let cut = min(tile.upperBound, firstVisible + token - window)
            if cut > max(first, own) { for e in max(first, own)..<cut { row[e - first] = masked } }
        }
    }
}

/// FlashAttention's forward pass (Algorithm 1 of Dao et al. 2022, with causal tiles skipped) over
/// a list of key/value entries that the caller loads, scores and weights a tile at a time. The
/// outer loop walks key/value tiles, the inner one query blocks; each visit loads the block's
/// queries (and, after its first tile, its output and statistics) and stores them back, so the
/// output and the running maximum and sum go through HBM once per tile: traffic is Θ(N²d²/M).
/// Scores and probabilities live only in the tile (`.sram`). The tiles themselves (score tile,
/// key and value tiles, block output) are this object's scratch: the SRAM working set.
final class TiledAttention {
    let shape: AttentionTileShape
    let headDim: Int
    /// Entries per tile as stored here: B_c, at most the cache's capacity.
    let tileEntries: Int
    /// Row stride of the score tile (tile entries rounded up to whole 16-lane chunks).
    let scoreStride: Int
    /// B_r × `scoreStride` scores, then probabilities, of the block being visited.
    let scores: UnsafeMutablePointer<Float>
    /// A key and a value tile gathered or decoded by the caller (tile entries × head size each),
    /// for storage the score and weighting cannot read in place.
    let keyTile: UnsafeMutablePointer<Float>
    let valueTile: UnsafeMutablePointer<Float>
    /// B_r × head size: the block's P̃·V of the current tile.
    private let blockOutput: UnsafeMutablePointer<Float>
    /// Per block row: the weights of the old output and of P̃·V in the new one.
    private let factors: UnsafeMutablePointer<Float>
    /// Running maximum and sum per query row (in HBM between visits); grown by prefill only.
    private var maxima: UnsafeMutablePointer<Float>
    private var sums: UnsafeMutablePointer<Float>
    private var rowCapacity: Int

    /// A score the caller writes for an entry a row must not attend (top-k's dropped entries).
    static let masked = -Float.greatestFiniteMagnitude

    /// Scratch for `sramBytes` of SRAM, tiles of at most `maxEntries`, and `rows` query rows
    /// before any growth (a decode step's query group, so decode never allocates).
    init(sramBytes: Int, headDim: Int, maxEntries: Int, rows: Int) {
        precondition(sramBytes >= AttentionTileShape.minimumSRAMBytes(headDim: headDim), "SRAM too small for one tile")
        shape = AttentionTileShape(sramBytes: sramBytes, headDim: headDim)
        self.headDim = headDim
        tileEntries = min(shape.entries, max(1, maxEntries))
        scoreStride = (tileEntries + 15) / 16 * 16
        scores = .allocate(capacity: shape.rows * scoreStride)
        keyTile = .allocate(capacity: tileEntries * headDim)
        valueTile = .allocate(capacity: tileEntries * headDim)
        blockOutput = .allocate(capacity: shape.rows * headDim)
        factors = .allocate(capacity: 2 * shape.rows)
        rowCapacity = max(1, rows)
        maxima = .allocate(capacity: rowCapacity)
        sums = .allocate(capacity: rowCapacity)
    }

    deinit {
        for buffer in [scores, keyTile, valueTile, blockOutput, factors, maxima, sums] { buffer.deallocate() }
    }

    private func reserve(rows: Int) {
        guard rows > rowCapacity else { return }
        maxima.deallocate()
        sums.deallocate()
        rowCapacity = rows
        maxima = .allocate(capacity: rows)
        sums = .allocate(capacity: rows)
    }

    /// Softmax attention of `rows` query rows (which `score` reads) over the first
    /// `causal.visible(r)` of `entries` listed entries, written to `output` (row-major).
    /// - `load(tile)` brings the tile's keys and values on chip and counts their HBM bytes.
    /// - `score(rows, tile, into, stride)` writes each row's scaled q·k for the tile's entries
    ///   (or `masked`); entries a row cannot see causally are ignored whatever is written.
    /// - `accumulate(rows, tile, weights, stride, into)` writes Σ weight · value per row (row-major,
    ///   head size each) over the tile's entries.
    func attend(rows: Int, output: UnsafeMutablePointer<Float>, entries: Int, causal: CausalRows,
                load: (Range<Int>) -> Void,
                score: (Range<Int>, Range<Int>, UnsafeMutablePointer<Float>, Int) -> Void,
                accumulate: (Range<Int>, Range<Int>, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void,
                ledger: inout IOLedger) {
        let hd = headDim, blockRows = shape.rows
        reserve(rows: rows)
        maxima.update(repeating: -.infinity, count: rows)
        sums.update(repeating: 0, count: rows)
        output.update(repeating: 0, count: rows * hd)
        var first = 0
        while first < entries {
            let tile = first..<min(first + tileEntries, entries)
            // A tile no block sees (before every window) is never loaded.
            var loaded = false
            var block = 0
            while block < rows {
                let blockRange = block..<min(block + blockRows, rows)
                block = blockRange.upperBound
                // Causal: a block whose last row sees nothing of this tile skips it, and so does one
                // whose first row's window starts after it (local layers).
                let blockStart = causal.start(blockRange.lowerBound)
                guard causal.visible(blockRange.upperBound - 1) > tile.lowerBound, blockStart < tile.upperBound else { continue }
                if !loaded {
                    load(tile)
                    loaded = true
                }
                let n = blockRange.count
                ledger.read(.activations, n * hd * 4)
                // Output and statistics carried from the block's earlier tiles.
                if tile.lowerBound > blockStart {
                    ledger.read(.activations, n * hd * 4)
                    ledger.read(.softmaxStatistics, n * 8)
                }
                score(blockRange, tile, scores, scoreStride)
                causal.maskWindow(rows: blockRange, tile: tile, scores: scores, stride: scoreStride, masked: Self.masked)
                var anyRow = false
                for (b, r) in blockRange.enumerated() {
                    let seen = min(tile.count, causal.visible(r) - tile.lowerBound)
                    if exponentiate(row: r, scores: scores + b * scoreStride, count: seen, tileCount: tile.count,
                                    factors: factors + 2 * b) { anyRow = true }
                }
                ledger.onChip(.scores, n * tile.count * 8)
                if anyRow {
                    accumulate(blockRange, tile, scores, scoreStride, blockOutput)
                    for (b, r) in blockRange.enumerated() {
                        rescale(factors: factors + 2 * b, blockOutput: blockOutput + b * hd, output: output + r * hd)
                    }
                }
                ledger.write(.activations, n * hd * 4)
                ledger.write(.softmaxStatistics, n * 8)
            }
            first = tile.upperBound
        }
    }

    /// Probabilities of rows `rows` (all seeing the first `entries` listed entries, through the
    /// window of `causal` on a local layer) from the statistics `attend` left: a second pass over
    /// the key tiles (counted by `loadKeys`), scores recomputed on chip, each tile's probabilities
    /// handed to `emit(rows, tile, p, stride)` (rows relative to `rows.lowerBound`); tiles before
    /// the window are skipped. For methods that need attention probabilities.
    func probabilities(rows: Range<Int>, entries: Int, causal: CausalRows? = nil,
                       loadKeys: (Range<Int>) -> Void,
                       score: (Range<Int>, Range<Int>, UnsafeMutablePointer<Float>, Int) -> Void,
                       emit: (Range<Int>, Range<Int>, UnsafePointer<Float>, Int) -> Void,
                       ledger: inout IOLedger) {
        let hd = headDim, blockRows = shape.rows
        var first = causal.map { $0.start(rows.lowerBound) / tileEntries * tileEntries } ?? 0
        while first < entries {
            let tile = first..<min(first + tileEntries, entries)
            loadKeys(tile)
            var block = rows.lowerBound
            while block < rows.upperBound {
                let blockRange = block..<min(block + blockRows, rows.upperBound)
                block = blockRange.upperBound
                let n = blockRange.count
                ledger.read(.activations, n * hd * 4)
                ledger.read(.softmaxStatistics, n * 8)
                score(blockRange, tile, scores, scoreStride)
                causal?.maskWindow(rows: blockRange, tile: tile, scores: scores, stride: scoreStride, masked: Self.masked)
                for (b, r) in blockRange.enumerated() {
                    normalize(row: scores + b * scoreStride, count: tile.count, maximum: maxima[r], sum: sums[r])
                }
                ledger.onChip(.scores, n * tile.count * 8)
                emit((blockRange.lowerBound - rows.lowerBound)..<(blockRange.upperBound - rows.lowerBound), tile, scores, scoreStride)
            }
            first = tile.upperBound
        }
    }

    /// Turns one row's scores in place into e^(s − m_new) over its first `count` entries (masked
    /// entries and the rest of the row 0), where m_new is the larger of the running maximum and
    /// the tile's; updates the row's statistics and leaves the factors `rescale` applies. Returns
    /// false when the row sees no unmasked entry of the tile (its output stays as it is).
    @inline(__always)
    private func exponentiate(row r: Int, scores row: UnsafeMutablePointer<Float>, count: Int, tileCount: Int,
                              factors: UnsafeMutablePointer<Float>) -> Bool {
        var tileMaximum = Self.masked
        for i in 0..<max(0, count) where row[i] > tileMaximum { tileMaximum = row[i] }
        guard count > 0, tileMaximum > Self.masked else {
            row.update(repeating: 0, count: tileCount)
            factors[1] = 0
            return false
        }
        let old = maxima[r], newMaximum = max(old, tileMaximum)
        let raw = UnsafeMutableRawPointer(row)
        var sum = SIMD16<Float>()
        for chunk in 0..<((tileCount + 15) / 16) {
            let s = raw.loadUnaligned(fromByteOffset: chunk * 64, as: SIMD16<Float>.self)
            let unseen = (Self.lanes + Float(chunk * 16)) .>= Float(count)
            let p = Vector.exp(s - newMaximum).replacing(with: 0, where: unseen .| (s .== Self.masked))
            sum += p
            raw.storeBytes(of: p, toByteOffset: chunk * 64, as: SIMD16<Float>.self)
        }
        let carried = sums[r] * expf(old - newMaximum)
        let newSum = carried + sum.horizontalSum
        maxima[r] = newMaximum
        sums[r] = newSum
        // O_new = (ℓ_old·e^(m_old − m_new)·O_old + P̃·V) / ℓ_new (Algorithm 1, line 12).
        factors[0] = carried / newSum
        factors[1] = 1 / newSum
        return true
    }

    /// `out[b] += Σ_n weights[b·stride + n] · values[n]` over `count` contiguous value rows, for
    /// `rows` rows, eight channels held in a register across the values.
    @inline(__always)
    static func weigh(values: UnsafePointer<Float>, count: Int, weights: UnsafePointer<Float>, rows: Int, stride: Int,
                      headDim hd: Int, into out: UnsafeMutablePointer<Float>) {
        let raw = UnsafeRawPointer(values)
        for b in 0..<rows {
            let w = weights + b * stride, o = out + b * hd
            var slice = 0
            while slice + 8 <= hd {
                var acc = UnsafeRawPointer(o + slice).loadUnaligned(as: SIMD8<Float>.self)
                for n in 0..<count { acc += w[n] * raw.loadUnaligned(fromByteOffset: (n * hd + slice) * 4, as: SIMD8<Float>.self) }
                UnsafeMutableRawPointer(o + slice).storeBytes(of: acc, as: SIMD8<Float>.self)
                slice += 8
            }
            for c in slice..<hd {
                var acc = o[c]
                for n in 0..<count { acc += w[n] * values[n * hd + c] }
                o[c] = acc
            }
        }
    }

    /// `s[b·stride + n] = scale · q_b·k_n` for `count` contiguous keys and `rows` query rows.
    @inline(__always)
    static func score(keys: UnsafePointer<Float>, count: Int, queries: UnsafePointer<Float>, rows: Int, headDim hd: Int, scale: Float,
                      into s: UnsafeMutablePointer<Float>, stride: Int) {
        for n in 0..<count {
            let key = UnsafeRawPointer(keys + n * hd)
            for b in 0..<rows {
                let query = UnsafeRawPointer(queries + b * hd)
                var acc = SIMD8<Float>()
                var c = 0
                while c + 8 <= hd {
                    acc += query.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self) * key.loadUnaligned(fromByteOffset: c * 4, as: SIMD8<Float>.self)
                    c += 8
                }
                var dot = acc.horizontalSum
                while c < hd {
                    dot += query.load(fromByteOffset: c * 4, as: Float.self) * key.load(fromByteOffset: c * 4, as: Float.self)
                    c += 1
                }
                s[b * stride + n] = dot * scale
            }
        }
    }

    private static let lanes = SIMD16<Float>(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

    /// O_new = O_old · factors[0] + P̃·V · factors[1] for one row (untouched when factors[1] is 0).
    @inline(__always)
    private func rescale(factors: UnsafePointer<Float>, blockOutput pv: UnsafePointer<Float>, output o: UnsafeMutablePointer<Float>) {
        let keep = factors[0], inverse = factors[1]
        guard inverse != 0 else { return }
        for c in 0..<headDim { o[c] = o[c] * keep + pv[c] * inverse }
    }

    /// p = e^(s − m)/ℓ over a tile's `count` entries (masked entries 0; 0 everywhere for a row that
    /// attended nothing), in place.
    @inline(__always)
    private func normalize(row: UnsafeMutablePointer<Float>, count: Int, maximum: Float, sum: Float) {
        let raw = UnsafeMutableRawPointer(row)
        let inverse = sum > 0 ? 1 / sum : 0
        for chunk in 0..<((count + 15) / 16) {
            let s = raw.loadUnaligned(fromByteOffset: chunk * 64, as: SIMD16<Float>.self)
            let p = (Vector.exp(s - maximum) * inverse).replacing(with: 0, where: s .== Self.masked)
            raw.storeBytes(of: p, toByteOffset: chunk * 64, as: SIMD16<Float>.self)
        }
    }
}
