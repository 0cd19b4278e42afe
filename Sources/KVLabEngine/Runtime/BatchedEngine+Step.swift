import Foundation
import KVLabMethods

/// The batched forward pass: every row of the step (a decode token, or a prefill chunk's tokens)
/// through each weight matrix once, attention per sequence on its own cache.
extension BatchedEngine {
    /// One sequence's rows in a step.
    struct Slice {
        let state: SequenceState
        let tokens: [Int]
        let first: Int
        let row: Int
        /// A prompt chunk attended as one batched prefill (else one decode row).
        let batchedChunk: Bool
        var count: Int { tokens.count }
    }

    /// Runs one step: for each work item, its sequence's next decode token or prompt chunk. The
    /// logits of each sequence after its last row are then in `logits(_:)`. Checks everything
    /// (sequences, tokens, prompts, the pool's budget for the pages the step may take) before
    /// running anything.
    @discardableResult
    public func step(_ work: [BatchWork]) throws(BatchError) -> BatchReport {
        let start = DispatchTime.now().uptimeNanoseconds
        let slices = try plan(work)
        guard !slices.isEmpty else { throw .noWork }
        let needed = slices.reduce(0) { $0 + $1.state.cache.growthBound(appending: $1.count, endingPrompt: endsPrompt($1)) }
        guard pool.fits(needed) else { throw .poolFull(needed: needed, available: pool.availableBytes ?? 0) }
        let c = config, n = slices.reduce(0) { $0 + $1.count }, angles = rope.anglesPerPosition
        var sequenceLedgers = [IOLedger](repeating: IOLedger(), count: slices.count)
        for (i, slice) in slices.enumerated() {
            let state = slice.state
            // A fork decoding right after its prefix: the prefix's prompt ends here.
            if !slice.batchedChunk, state.inPrompt {
                state.cache.beginPrefill(end: state.position)
                state.cache.endPrefill(ledger: &sequenceLedgers[i])
                state.inPrompt = false
            }
            do { try state.cache.makeRoom(position: slice.first, count: slice.count, ledger: &sequenceLedgers[i]) } catch {
                throw .engine(state.id, error)
            }
            if slice.batchedChunk {
                state.cache.beginPrefill(end: state.promptEnd!)
                state.inPrompt = true
            }
        }
        // Renumbering for room is cache work outside the layers.
        var outside = IOLedger(), total = IOLedger(), timings = StepTimings(), flops: UInt64 = 0
        for ledger in sequenceLedgers { outside.add(ledger) }
        let batch = buffers(rows: n)
        for slice in slices {
            let rotary = slice.state.cache.rotaryPosition(slice.first)
            for (t, token) in slice.tokens.enumerated() {
                let r = slice.row + t
                weights.embed(token, into: batch.x + r * c.dim)
                outside.read(.weights, weights.tokenEmbedding.rowBytes)
                rope.fill(position: rotary + t, cos: batch.cos + r * angles, sin: batch.sin + r * angles)
            }
        }
        for (l, layer) in weights.layers.enumerated() {
            var ledger = IOLedger()
            var t0 = DispatchTime.now().uptimeNanoseconds
            weights.normRows(batch.x, layer.attentionNorm, into: batch.xb, rows: n)
            multiply(batch.xb, rows: n, [(layer.query, batch.q), (layer.key, batch.k), (layer.value, batch.v)], scratch: batch.weightScratch,
                     ledger: &ledger, flops: &flops)
            let offset = rope.offset(layer: l)
            for slice in slices {
                let keysBeforeRoPE = slice.state.cache.keysBeforeRoPE
                for r in slice.row..<(slice.row + slice.count) {
                    weights.finishProjections(layer, queryScale: rope.queryScales[l], keysBeforeRoPE: keysBeforeRoPE,
                                              q: batch.q + r * c.queryDim, k: batch.k + r * c.kvDim, v: batch.v + r * c.kvDim,
                                              cos: batch.cos + r * angles + offset, sin: batch.sin + r * angles + offset)
                }
            }
            var t1 = DispatchTime.now().uptimeNanoseconds
            timings.projectionNanoseconds += t1 - t0
            for (i, slice) in slices.enumerated() {
                var cacheLedger = IOLedger()
                attend(slice, layer: l, batch: batch, ledger: &cacheLedger, flops: &flops)
                sequenceLedgers[i].add(cacheLedger)
                ledger.add(cacheLedger)
            }
            t0 = DispatchTime.now().uptimeNanoseconds
            timings.attentionNanoseconds += t0 - t1
            multiply(batch.attention, rows: n, [(layer.attentionOutput, batch.xb)], scratch: batch.weightScratch, ledger: &ledger,
                     flops: &flops)
            weights.postNorm(layer.postAttentionNorm, batch.xb, rows: n)
            Ops.add(batch.x, batch.xb, count: n * c.dim)
            t1 = DispatchTime.now().uptimeNanoseconds
            timings.projectionNanoseconds += t1 - t0
            weights.normRows(batch.x, layer.ffnNorm, into: batch.xb, rows: n)
            multiply(batch.xb, rows: n, [(layer.ffnGate, batch.hidden), (layer.ffnUp, batch.hidden2)], scratch: batch.weightScratch,
                     ledger: &ledger, flops: &flops)
            Ops.gate(batch.hidden, batch.hidden2, count: n * c.hiddenDim, activation: c.activation)
            multiply(batch.hidden, rows: n, [(layer.ffnDown, batch.xb)], scratch: batch.weightScratch, ledger: &ledger, flops: &flops)
            weights.postNorm(layer.postFFNNorm, batch.xb, rows: n)
            Ops.add(batch.x, batch.xb, count: n * c.dim)
            timings.feedForwardNanoseconds += DispatchTime.now().uptimeNanoseconds - t1
            total.add(ledger)
        }
        // A prompt's last chunk: its policy, `think` and quantization act now, outside the layers.
        for (i, slice) in slices.enumerated() where slice.batchedChunk && endsPrompt(slice) {
            var promptEnd = IOLedger()
            slice.state.cache.endPrefill(ledger: &promptEnd)
            slice.state.inPrompt = false
            sequenceLedgers[i].add(promptEnd)
            outside.add(promptEnd)
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let logits = classify(slices, batch: batch, ledger: &outside, flops: &flops)
        let end = DispatchTime.now().uptimeNanoseconds
        timings.classifierNanoseconds = end - t0
        timings.totalNanoseconds = end - start
        total.add(outside)
        var reports: [SequenceStepReport] = []
        for (i, slice) in slices.enumerated() {
            let state = slice.state
            state.logits = Array(logits[(i * c.vocabSize)..<((i + 1) * c.vocabSize)])
            state.history += slice.tokens
            state.position += slice.count
            let prompt = !state.pending.isEmpty
            if prompt {
                state.pending.removeFirst(slice.count)
                if state.pending.isEmpty { state.promptEnd = nil }
            }
            let report = makeReport(state, phase: prompt ? .prefill : .decode, first: slice.first, count: slice.count,
                                    token: slice.tokens[slice.count - 1], timings: timings, ledger: sequenceLedgers[i])
            state.lastReport = report
            reports.append(SequenceStepReport(sequence: state.id, report: report))
        }
        return BatchReport(sequences: reports, ledger: total, rows: n, flops: flops, timings: timings)
    }

    /// Checks the work and lays out its rows.
    private func plan(_ work: [BatchWork]) throws(BatchError) -> [Slice] {
        var seen = Set<SequenceID>(), slices: [Slice] = [], row = 0
        for item in work {
            let id = item.sequence
            let state = try state(id)
            guard seen.insert(id).inserted else { throw .duplicateWork(id) }
            guard state.swapped == nil else { throw .swappedOut(id) }
            let tokens: [Int], batched: Bool
            switch item {
            case .decode(_, let token):
                guard state.pending.isEmpty else { throw .promptPending(id, remaining: state.pending.count) }
                guard token >= 0, token < config.vocabSize else { throw .engine(id, .invalidToken(token, vocabularySize: config.vocabSize)) }
                tokens = [token]
                batched = false
            case .prefill(_, let count):
                guard !state.pending.isEmpty else { throw .noPromptPending(id) }
                guard count > 0 else { throw .engine(id, .emptyInput) }
                // A method that acts after every prompt token gets it one decode row a step.
                batched = state.cache.batchedPrefill
                tokens = Array(state.pending.prefix(batched ? count : 1))
            }
            guard state.cache.hasRoom(position: state.position, count: tokens.count) else { throw .engine(id, .contextFull(limit: capacity)) }
            slices.append(Slice(state: state, tokens: tokens, first: state.position, row: row, batchedChunk: batched))
            row += tokens.count
        }
        return slices
    }

    /// Whether a slice runs its sequence's last prompt tokens.
    func endsPrompt(_ slice: Slice) -> Bool { slice.batchedChunk && slice.first + slice.count == slice.state.promptEnd }

    /// One sequence's rows of one layer on its cache: appends, then attention (per decode row, or
    /// the prompt chunk at once). Its FLOPs are counted as dense attention over the entries each
    /// query sees (q·k and p·v, two each per element): a sparse mode's reads of fewer are not.
    private func attend(_ slice: Slice, layer l: Int, batch: PrefillBuffers, ledger: inout IOLedger, flops: inout UInt64) {
        let c = config, cache = slice.state.cache, kvHeads = cache.layout.kvHeadCount
        let perEntry = UInt64(4 * cache.layout.groupSize * cache.layout.headDim)
        func entries() -> Int { (0..<kvHeads).reduce(0) { $0 + cache.entryCount(layer: l, head: $1) } }
        for t in 0..<slice.count {
            let r = slice.row + t
            cache.append(layer: l, position: slice.first + t, keys: batch.k + r * c.kvDim, values: batch.v + r * c.kvDim, ledger: &ledger)
            if !slice.batchedChunk {
                flops += perEntry * UInt64(entries())
                cache.attend(layer: l, position: slice.first + t, queries: batch.q + r * c.queryDim, output: batch.attention + r * c.queryDim,
                             ledger: &ledger)
            }
        }
        if slice.batchedChunk {
            // Nothing is evicted inside a prompt: its t-th token sees the entries before the chunk and t + 1 of its own.
            let n = slice.count
            flops += perEntry * UInt64(n * entries() - kvHeads * n * (n - 1) / 2)
            cache.attend(layer: l, positions: slice.first..<(slice.first + slice.count), queries: batch.q + slice.row * c.queryDim,
                         output: batch.attention + slice.row * c.queryDim, ledger: &ledger)
        }
    }

    /// `out = x · wᵀ` for each (w, out) over `rows` rows of one input: the decode kernels (one
    /// dispatch, the input quantized once) for a single row, as `InferenceEngine.decode` runs
    /// them; batched products, each matrix read once, otherwise.
    private func multiply(_ x: UnsafeMutablePointer<Float>, rows: Int, _ products: [(WeightMatrix, UnsafeMutablePointer<Float>)],
                          scratch: UnsafeMutablePointer<Float>, ledger: inout IOLedger, flops: inout UInt64) {
        for (w, _) in products { flops += UInt64(2 * rows * w.elementCount) }
        if rows == 1 {
            let p = products.map { MatVec.Product($0.0, into: $0.1) }
            MatVec.multiply(p[0], p.count > 1 ? p[1] : nil, p.count > 2 ? p[2] : nil, input: x, scratch: quantized, pool: workers, ledger: &ledger)
        } else {
            MatMul.multiply(x, rows: rows, products, scratch: scratch, pool: workers, ledger: &ledger)
        }
    }

    /// Logits after each slice's last row (slices × vocabulary): the final norm and classifier over
    /// those rows, the classifier read once.
    private func classify(_ slices: [Slice], batch: PrefillBuffers, ledger: inout IOLedger, flops: inout UInt64) -> [Float] {
        let c = config, m = slices.count
        let last = UnsafeMutablePointer<Float>.allocate(capacity: m * c.dim)
        let normed = UnsafeMutablePointer<Float>.allocate(capacity: m * c.dim)
        defer {
            last.deallocate()
            normed.deallocate()
        }
        for (i, slice) in slices.enumerated() { (last + i * c.dim).update(from: batch.x + (slice.row + slice.count - 1) * c.dim, count: c.dim) }
        weights.normRows(last, weights.outputNorm, into: normed, rows: m)
        return [Float](unsafeUninitializedCapacity: m * c.vocabSize) { buffer, count in
            multiply(normed, rows: m, [(weights.output, buffer.baseAddress!)], scratch: batch.weightScratch, ledger: &ledger, flops: &flops)
            weights.capLogits(buffer.baseAddress!, rows: m)
            count = m * c.vocabSize
        }
    }

    private func makeReport(_ state: SequenceState, phase: Phase, first: Int, count: Int, token: Int, timings: StepTimings,
                            ledger: IOLedger) -> StepReport {
        let summary = state.logits.withUnsafeBufferPointer { LogitStatistics($0.baseAddress!, count: config.vocabSize) }
        let cache = state.cache
        var entries = 0
        for l in 0..<cache.layout.layerCount {
            for h in 0..<cache.layout.kvHeadCount { entries += cache.entryCount(layer: l, head: h) }
        }
        return StepReport(phase: phase, position: first, tokenCount: count, token: token,
                          top: TopToken(id: summary.argmax, logProbability: summary.maxLogProbability), entropy: summary.entropy,
                          timings: timings, ledger: ledger, cache: cache.residency, cacheEntries: entries)
    }
}
