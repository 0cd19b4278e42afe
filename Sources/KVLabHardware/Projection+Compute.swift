import KVLabMethods


extension Projection {
    /// Projects `setup`: bytes and FLOPs of every op of a decode step and of a prefill, each timed
    /// on the roofline (`max(FLOPs / peak, bytes / bandwidth, host bytes / link)`, efficiencies
    /// applied), the KV footprint, capacity and the memory hierarchy.
    ///
    /// Counting follows the engine's IO ledger, scaled to the target: every weight matrix is read
    /// once per step (in its storage type, block scales included); each op reads its input and
    /// writes its output activations; attention reads each kept key and value once per KV head
    /// (GQA shares them across the group) in the form the cache stores it; the naive kernel writes
    /// the scores, softmax reads and rewrites them, P·V reads them; the tiled kernel keeps them on
    /// chip. Sparse modes read what they select, and block-retrieval fetches missed blocks from
    /// host DRAM.
    public init(_ setup: ProjectionSetup) {
        let model = ProjectionModel(setup)
        let kept = model.kept(context: setup.context)
        self.init(setup: setup, decode: model.decode(kept: kept, ideal: false), idealDecode: model.decode(kept: kept, ideal: true),
                  prefill: model.prefill(), kv: model.footprint(kept: kept), capacity: model.capacity(kept: kept),
                  hierarchy: model.hierarchy(kept: kept), tileEntries: model.tileEntries,
                  meanKept: kept.reduce(0, +) / Double(max(1, kept.count)), notes: model.notes)
    }
}

/// The arithmetic of a projection, with what every op needs precomputed.
struct ProjectionModel {
    let setup: ProjectionSetup
    let target: TargetShape
    let storage: KVStorageModel
    /// Float bytes of activations, scores and unquantized entries.
    let f: Double
    let precision: DeviceProfile.Precision
    /// Token budget per target (layer, KV head); nil where unbounded.
    let budgets: [Int?]
    /// Policy state per kept entry besides its position (scores, counters, merge and mixed counts).
    let stateBytes: Double
    /// Whether each step must produce group-summed attention scores per entry.
    let needsScores: Bool
    let tileEntries: Int

    init(_ setup: ProjectionSetup) {
        self.setup = setup
        target = setup.target
        f = Double(setup.float.bytes)
        storage = KVStorageModel(quant: setup.quant, headDim: target.headDim, float: setup.float, mixedHighShare: setup.live?.mixedHighShare)
        precision = setup.weights == .f32 || setup.float == .f32 ? .fp32 : .fp16
        let layout = KVLayout(layerCount: target.layers, kvHeadCount: target.kvHeads, headDim: target.headDim,
                              groupSize: target.groupSize, capacity: max(1, setup.context))
        budgets = setup.eviction.budgets(layout: layout)
        stateBytes = Double(setup.eviction.stateBytesPerEntry + (setup.quant.mixed != nil ? 4 : 0))
        var collects = false
        if case .threshold = setup.sparse.kind { collects = true }
        needsScores = setup.eviction.needsAttentionScores || setup.quant.mixed != nil || collects
        // The naive kernel has no tiles; the hierarchy view then shows what the device's SRAM would hold.
        let sram = if case .tiled(let bytes) = setup.kernel { bytes } else { Int(setup.device.sramPerSM) }
        tileEntries = AttentionTileShape(sramBytes: sram, headDim: target.headDim, elementBytes: setup.float.bytes).entries
    }

    var notes: [String] {
        var notes: [String] = []
        if case .duo(_, _, let ratio) = setup.eviction.kind, setup.live == nil {
            notes.append("duo: a share \(ratio) of heads keeps everything (heads are chosen on the prompt; here averaged per head)")
        }
        switch setup.eviction.kind {
        case .snapkv, .pyramidkv, .adakv:
            if setup.live == nil {
                notes.append("\(setup.eviction.spec.name): costed at the first step after a prompt of the context's length (it compresses the prompt once, then keeps every new token)")
            }
        default: break
        }
        if case .scissorhands = setup.eviction.kind {
            notes.append("scissorhands: the cache is costed at its budget (it oscillates between budget − drop and budget)")
        }
        if setup.quant.mixed != nil, setup.live?.mixedHighShare == nil {
            notes.append("mixed: without a live state every quantized entry is costed at the low precision")
        }
        if setup.live == nil {
            switch setup.sparse.kind {
            case .threshold: notes.append("threshold: which entries pass is data-dependent; without a live state every entry is read")
            case .topK: notes.append("topk: values read are bounded by group size × k per KV head (the union of the group's top-k)")
            case .blockRetrieval: notes.append("block-retrieval: without a live state every chosen block is a host fetch once past blocks outgrow the LRU (an upper bound)")
            default: break
            }
        }
        if case .tiled = setup.kernel {
            notes.append("tiled prefill: K/V tiles re-read for every block of query rows are costed from device memory (FlashAttention's IO model; L2 hits would lower it)")
        }
        if setup.live != nil { notes.append("live state: kept entries per head, read shares and host fetches taken from the live cache") }
        let windows = Set(target.attentionSpans.compactMap(\.window)).sorted()
        if !windows.isEmpty {
            let local = target.attentionSpans.filter { $0.window != nil }.count
            notes.append("\(local) of \(target.layers) layers local (window \(windows.map(String.init).joined(separator: ", "))): each keeps and attends at most its window")
        }
        return notes
    }

    // MARK: - Kept entries

    /// Entries kept per target (layer, KV head), layer-major, at `context` tokens: the method's,
    /// and at most the window on the target's local layers.
    func kept(context: Int) -> [Double] {
        let c = Double(context)
        var kept = budgets.map { budget in budget.map { min(c, Double($0)) } ?? c }
        if case .duo(let sinks, let window, let ratio) = setup.eviction.kind {
            kept = kept.map { _ in ratio * c + (1 - ratio) * min(c, Double(sinks + window)) }
        }
        if let live = setup.live {
            for l in 0..<target.layers {
                for h in 0..<target.kvHeads {
                    let i = l * target.kvHeads + h
                    kept[i] = min(kept[i], live.kept(layer: l, head: h, layers: target.layers, kvHeads: target.kvHeads, context: context))
                }
            }
        }
        for (l, span) in target.attentionSpans.enumerated() {
            guard let window = span.window else { continue }
            for h in 0..<target.kvHeads { kept[l * target.kvHeads + h] = min(kept[l * target.kvHeads + h], Double(window)) }
        }
        return kept
    }

    // MARK: - Weights

    /// Bytes of a `rows × cols` matrix in the selected type; rows that are not whole blocks take
    /// llama.cpp's fallback type, as the engine stores them.
    func matrixBytes(rows: Int, cols: Int) -> Double {
        let type = setup.weights.storing(rowLength: cols)
        return Double(type.byteCount(elements: rows * cols))
    }

    var layerWeightBytes: Double {
        let t = target
        let bias = t.qkvBias ? Double(t.queryDim + 2 * t.kvDim) * f : 0
        return matrixBytes(rows: t.queryDim, cols: t.hidden) + 2 * matrixBytes(rows: t.kvDim, cols: t.hidden)
            + matrixBytes(rows: t.hidden, cols: t.queryDim) + 2 * matrixBytes(rows: t.ffn, cols: t.hidden)
            + matrixBytes(rows: t.hidden, cols: t.ffn) + 2 * Double(t.hidden) * f + bias
    }

    var embeddingBytes: Double { matrixBytes(rows: target.vocab, cols: target.hidden) }

    /// Every weight held in device memory (the classifier once more when untied).
    var weightBytes: Double {
        Double(target.layers) * layerWeightBytes + embeddingBytes * (target.tiedEmbeddings ? 1 : 2) + Double(target.hidden) * f
    }

    // MARK: - Attention reads

    /// What one decode step reads from one (layer, KV head) of one sequence holding `n` entries.
    struct HeadRead {
        var keyBytes = 0.0
        var valueBytes = 0.0
        /// Entries scored against the queries (keys read).
        var scored = 0.0
        /// Values weighted into the output.
        var valuesRead = 0.0
        /// Quest's page bounds, block-retrieval's representative keys.
        var selectionBytes = 0.0
        var selectionFLOPs = 0.0
        var hostBytes = 0.0
        /// Quantized key and value elements decoded (2 FLOPs each).
        var decodedKeys = 0.0
        var decodedValues = 0.0
    }

    func read(_ n: Double, ideal: Bool) -> HeadRead {
        guard n > 0 else { return HeadRead() }
        let keys = storage.keys(n), values = storage.values(n)
        let d = Double(target.headDim), g = Double(target.groupSize)
        let keyEntry = ideal ? storage.idealKeyBytes : keys.total / n
        let valueEntry = ideal ? storage.idealValueBytes : values.total / n
        var r = HeadRead()
        var keyCount = n, valueCount = n
        switch setup.sparse.kind {
        case .dense, .threshold:
            break
        case .topK(let k):
            valueCount = min(n, g * Double(k))
            r.selectionFLOPs = g * n
        case .quest(let page, let budget):
            let pages = (n / Double(page)).rounded(.up)
            r.selectionBytes = pages * 2 * d * f
            r.selectionFLOPs = pages * 3 * d * g
            keyCount = min(n, Double(budget + page))
            valueCount = keyCount
        case .blockRetrieval(let block, let reps, let top, let local, let sinks, let lru):
            let always = min(n, Double(sinks + local))
            let blocks = ((n - always) / Double(block)).rounded(.down)
            let chosen = min(Double(top), blocks) * Double(block)
            r.selectionBytes = blocks * Double(reps) * keyEntry
            r.selectionFLOPs = blocks * Double(reps) * 2 * d * g
            keyCount = always + chosen
            valueCount = keyCount
            if blocks > Double(lru) { r.hostBytes = chosen * (keyEntry + valueEntry) }
        }
        if let live = setup.live {
            if case .threshold = setup.sparse.kind {
                keyCount = n * (live.keyReadFraction ?? 1)
                valueCount = n * (live.valueReadFraction ?? 1)
            }
            if case .blockRetrieval = setup.sparse.kind, let fetched = live.hostFetchEntriesPerHead {
                r.hostBytes = min(keyCount, fetched) * (keyEntry + valueEntry)
            }
        }
        r.keyBytes = keyCount * keyEntry
        r.valueBytes = valueCount * valueEntry
        r.scored = keyCount
        r.valuesRead = valueCount
        if !ideal {
            r.decodedKeys = d * keyCount * keys.quantizedEntries / n
            r.decodedValues = d * valueCount * values.quantizedEntries / n
        }
        return r
    }

    // MARK: - Dense ops shared by decode and prefill

    /// A linear layer in every layer over `tokens` rows: its weights once, inputs and outputs per row.
    private func addLinear(_ ops: inout OpTable, _ name: String, rows: Int, cols: Int, tokens: Double) {
        let layers = Double(target.layers)
        ops.add(name, bytes: layers * (matrixBytes(rows: rows, cols: cols) + tokens * Double(rows + cols) * f),
                flops: layers * 2 * Double(rows * cols) * tokens)
    }

    /// An element-wise op in every layer over `tokens` rows (`read`, `write` elements per row).
    private func addElementwise(_ ops: inout OpTable, _ name: String, read: Double, write: Double, flops: Double,
                                weights: Double = 0, tokens: Double) {
        let layers = Double(target.layers)
        ops.add(name, bytes: layers * (weights + tokens * (read + write) * f), flops: layers * tokens * flops)
    }

    /// Embedding lookup, then each layer's input norm, q/k/v projections (and biases) and RoPE.
    private func addInputOps(_ ops: inout OpTable, tokens: Double) {
        let t = target, h = Double(t.hidden), q = Double(t.queryDim), kv = Double(t.kvDim)
        ops.add("embedding", bytes: tokens * (embeddingBytes / Double(t.vocab) + h * f))
        addElementwise(&ops, "attn_norm", read: h, write: h, flops: 4 * h, weights: h * f, tokens: tokens)
        addLinear(&ops, "q_proj", rows: t.queryDim, cols: t.hidden, tokens: tokens)
        addLinear(&ops, "k_proj", rows: t.kvDim, cols: t.hidden, tokens: tokens)
        addLinear(&ops, "v_proj", rows: t.kvDim, cols: t.hidden, tokens: tokens)
        if t.qkvBias {
            addElementwise(&ops, "qkv_bias", read: q + 2 * kv, write: q + 2 * kv, flops: q + 2 * kv, weights: (q + 2 * kv) * f, tokens: tokens)
        }
        addElementwise(&ops, "rope", read: q + kv, write: q + kv, flops: 3 * (q + kv), tokens: tokens)
    }

    /// Each layer's output projection, residuals and SwiGLU feed-forward over `tokens` rows, the
    /// final norm, and the classifier over `logitRows` rows.
    private func addOutputOps(_ ops: inout OpTable, tokens: Double, logitRows: Double) {
        let t = target, h = Double(t.hidden), ffn = Double(t.ffn)
        addLinear(&ops, "o_proj", rows: t.hidden, cols: t.queryDim, tokens: tokens)
        addElementwise(&ops, "attn_add", read: 2 * h, write: h, flops: h, tokens: tokens)
        addElementwise(&ops, "ffn_norm", read: h, write: h, flops: 4 * h, weights: h * f, tokens: tokens)
        addLinear(&ops, "gate_proj", rows: t.ffn, cols: t.hidden, tokens: tokens)
        addLinear(&ops, "up_proj", rows: t.ffn, cols: t.hidden, tokens: tokens)
        addElementwise(&ops, "swiglu", read: 2 * ffn, write: ffn, flops: 5 * ffn, tokens: tokens)
        addLinear(&ops, "down_proj", rows: t.hidden, cols: t.ffn, tokens: tokens)
        addElementwise(&ops, "ffn_add", read: 2 * h, write: h, flops: h, tokens: tokens)
        ops.add("final_norm", bytes: h * f + tokens * 2 * h * f, flops: tokens * 4 * h)
        ops.add("classifier", bytes: embeddingBytes + logitRows * (h + Double(t.vocab)) * f, flops: logitRows * 2 * h * Double(t.vocab))
    }

    // MARK: - Decode

    func decode(kept: [Double], ideal: Bool) -> PhaseCost {
        let t = target, b = Double(setup.batch)
        let q = Double(t.queryDim), g = Double(t.groupSize)
        let layers = Double(t.layers), d = Double(t.headDim)
        var ops = OpTable()
        addInputOps(&ops, tokens: b)

        // Per (layer, KV head): the new entry, the entry leaving the residual window, the reads.
        var append = 0.0, scoresBytes = 0.0, keyBytes = 0.0, valueBytes = 0.0, selectionBytes = 0.0, hostBytes = 0.0
        var qkFLOPs = 0.0, softmaxFLOPs = 0.0, pvFLOPs = 0.0, selectionFLOPs = 0.0, policyBytes = 0.0
        for n in kept {
            let r = read(n, ideal: ideal)
            keyBytes += r.keyBytes
            valueBytes += r.valueBytes
            selectionBytes += r.selectionBytes
            selectionFLOPs += r.selectionFLOPs
            hostBytes += r.hostBytes
            qkFLOPs += 2 * d * g * r.scored + 2 * r.decodedKeys
            softmaxFLOPs += 5 * g * r.scored
            pvFLOPs += 2 * d * g * r.valuesRead + 2 * r.decodedValues
            // naive: q·K writes the group's scores, softmax reads and rewrites them, P·V reads them.
            if setup.kernel == .naive { scoresBytes += 4 * g * r.scored * f }
            if ideal {
                append += storage.idealKeyBytes + storage.idealValueBytes
            } else {
                append += 2 * storage.vectorBytes + 4 + stateBytes
                if n > Double(storage.residual) {
                    for record in [storage.keyRecordBytesPerEntry, storage.valueRecordBytesPerEntry] {
                        if let record { append += storage.vectorBytes + record }
                    }
                }
                policyBytes += 2 * n * stateBytes
                if needsScores { policyBytes += setup.kernel == .naive ? g * n * f : 2 * n * 4 }
            }
        }
        ops.add("kv_append", bytes: b * append)
        if selectionBytes > 0 || selectionFLOPs > 0 { ops.add("sparse_select", bytes: b * selectionBytes, flops: b * selectionFLOPs) }
        let queries = layers * q * f, outputs = layers * q * f
        switch setup.kernel {
        case .naive:
            ops.add("qk", bytes: b * (keyBytes + queries + scoresBytes / 4), host: b * hostBytes, flops: b * qkFLOPs)
            ops.add("softmax", bytes: b * scoresBytes / 2, flops: b * softmaxFLOPs)
            ops.add("pv", bytes: b * (valueBytes + scoresBytes / 4 + outputs), flops: b * pvFLOPs)
        case .tiled:
            ops.add("attention", bytes: b * (keyBytes + valueBytes + queries + outputs), host: b * hostBytes,
                    flops: b * (qkFLOPs + softmaxFLOPs + pvFLOPs))
        }
        if policyBytes > 0 { ops.add("policy_state", bytes: b * policyBytes) }
        addOutputOps(&ops, tokens: b, logitRows: b)
        return ops.costs(device: setup.device, precision: precision)
    }

    // MARK: - Prefill

    /// A batched prefill of `context` tokens per sequence, attending over the whole prompt (eviction
    /// acts after it), writing every entry in its stored form; logits for the last token only.
    func prefill() -> PhaseCost {
        let t = target, b = Double(setup.batch), n = Double(setup.context)
        let layers = Double(t.layers), d = Double(t.headDim), heads = Double(t.heads), kvHeads = Double(t.kvHeads)
        let tokens = b * n
        var ops = OpTable()
        addInputOps(&ops, tokens: tokens)
        let stored = storage.keys(n).total + storage.values(n).total + n * (4 + stateBytes)
        ops.add("kv_append", bytes: b * layers * kvHeads * stored)
        // Causal attention: query i sees i + 1 entries, at most the window on a local layer
        // (summed over layers: `layers × pairs` for a model without local layers).
        let pairs = n * (n + 1) / 2
        let layerPairs = t.attentionSpans.reduce(0.0) { sum, span in
            guard let window = span.window.map(Double.init), window < n else { return sum + pairs }
            return sum + window * (window + 1) / 2 + (n - window) * window
        }
        let attentionFLOPs = b * heads * layerPairs * (4 * d + 5)
        switch setup.kernel {
        case .naive:
            // K and V read once per KV head; the score matrix written, read and rewritten, read.
            let entries = b * layers * kvHeads * n * 2 * d * f
            let scores = b * heads * layerPairs * f
            let io = b * layers * heads * n * d * f * 2
            ops.add("qk", bytes: entries / 2 + scores + io / 2, flops: b * heads * layerPairs * 2 * d)
            ops.add("softmax", bytes: 2 * scores, flops: b * heads * layerPairs * 5)
            ops.add("pv", bytes: entries / 2 + scores + io / 2, flops: b * heads * layerPairs * 2 * d)
        case .tiled:
            // FlashAttention-2: each query head's blocks of B_r rows stream the K/V tiles up to the
            // diagonal (on local layers only the window's tiles, in proportion to the pairs seen).
            let rows = Double(min(tileEntries, t.headDim))
            let full = (n / rows).rounded(.down)
            let streamed = rows * full * (full + 1) / 2 + (n > full * rows ? n : 0)
            ops.add("attention", bytes: b * heads * (2 * streamed * d * f * layerPairs / pairs + 2 * layers * n * d * f), flops: attentionFLOPs)
        }
        // Logits for the last token of each sequence only.
        addOutputOps(&ops, tokens: tokens, logitRows: b)
        return ops.costs(device: setup.device, precision: precision)
    }

    // MARK: - Footprint, capacity, hierarchy

    func footprint(kept: [Double]) -> KVFootprint {
        var fp = KVFootprint(entries: 0, quantizedPayload: 0, metadata: 0, fullPrecision: 0, policyState: 0, hostResident: 0, ideal: 0)
        let d = Double(target.headDim)
        for n in kept {
            let keys = storage.keys(n), values = storage.values(n)
            fp.entries += n
            fp.quantizedPayload += keys.payload + values.payload
            fp.metadata += keys.metadata + values.metadata
            fp.fullPrecision += keys.fullPrecision + values.fullPrecision
            fp.policyState += n * (4 + stateBytes)
            fp.ideal += n * (storage.idealKeyBytes + storage.idealValueBytes)
            if case .quest(let page, _) = setup.sparse.kind { fp.policyState += (n / Double(page)).rounded(.up) * 2 * d * f }
            if case .blockRetrieval(let block, _, _, let local, let sinks, let lru) = setup.sparse.kind {
                let always = min(n, Double(sinks + local))
                let past = ((n - always) / Double(block)).rounded(.down) * Double(block)
                let cached = min(past, Double(lru * block))
                // Past blocks live in host DRAM; the LRU's copies in device memory.
                fp.hostResident += (past - cached) / max(1, n) * (keys.total + values.total)
            }
        }
        // fp8 scales and nuq levels exist once entries have been quantized.
        if fp.quantizedPayload > 0 { fp.metadata += storage.calibrationBytes(layers: target.layers, kvHeads: target.kvHeads) }
        return fp
    }

    /// Decode buffers of one sequence, and one layer's scores when the kernel materializes them.
    func activations(kept: [Double]) -> Double {
        let t = target
        let buffers = Double(3 * t.hidden + t.queryDim + 2 * t.kvDim + 2 * t.ffn + t.vocab) * f
        let longest = kept.max() ?? 0
        return buffers + (setup.kernel == .naive ? Double(t.heads) * longest * f : 0)
    }

    func capacity(kept: [Double]) -> CapacityReport {
        let memory = setup.device.hbm, weights = weightBytes
        let perSequence = footprint(kept: kept).deviceResident
        let act = activations(kept: kept)
        let used = weights + Double(setup.batch) * (perSequence + act)
        let maxBatch = weights >= memory ? 0 : Int(((memory - weights) / (perSequence + act)).rounded(.down))
        func fits(_ context: Int) -> Bool {
            let k = self.kept(context: context)
            return weights + footprint(kept: k).deviceResident + activations(kept: k) <= memory
        }
        var maxContext: Int? = nil
        if fits(CapacityReport.contextSearchLimit) {
            maxContext = nil
        } else if !fits(1) {
            maxContext = 0
        } else {
            var low = 1, high = CapacityReport.contextSearchLimit
            while high - low > 1 {
                let mid = (low + high) / 2
                if fits(mid) { low = mid } else { high = mid }
            }
            maxContext = low
        }
        let t = target, n = Double(setup.context)
        let prefillBuffers = Double(setup.batch) * n * Double(3 * t.hidden + t.queryDim + 2 * t.kvDim + 2 * t.ffn) * f
        let scoreMatrix = setup.kernel == .naive ? Double(setup.batch * t.heads) * n * n * f : 0
        return CapacityReport(deviceMemory: memory, weights: weights, kvPerSequence: perSequence, activationsPerSequence: act,
                              used: used, maxBatch: maxBatch, maxContext: maxContext, prefillWorkingSet: prefillBuffers + scoreMatrix)
    }

    func hierarchy(kept: [Double]) -> [TierUsage] {
        let device = setup.device, t = target, b = Double(setup.batch)
        let d = Double(t.headDim)
        // Decode packs a KV head's query group into the tile's rows.
        let rows = Double(t.groupSize)
        let tile = Double(tileEntries)
        let sram = TierUsage(name: "SRAM (per SM)", capacity: device.sramPerSM, bandwidth: nil, items: [
            .init(label: "K/V tile (\(tileEntries) entries)", bytes: 2 * tile * d * f),
            .init(label: "query rows (\(t.groupSize))", bytes: rows * d * f),
            .init(label: "output accumulators", bytes: rows * d * 4 + 2 * rows * 4),
        ])
        let footprint = footprint(kept: kept)
        let perLayerKV = footprint.deviceResident / Double(t.layers)
        let act = activations(kept: kept)
        let l2 = TierUsage(name: "L2", capacity: device.l2, bandwidth: nil, items: [
            .init(label: "step activations", bytes: min(device.l2, b * act)),
            .init(label: "one layer's KV", bytes: min(max(0, device.l2 - b * act), b * perLayerKV)),
        ])
        let hbm = TierUsage(name: device.kind == .cpu ? "DRAM (main memory)" : device.kind == .unified ? "unified memory" : "HBM",
                            capacity: device.hbm, bandwidth: device.hbmBandwidth, items: [
            .init(label: "weights", bytes: weightBytes),
            .init(label: "KV", bytes: b * footprint.deviceResident),
            .init(label: "activations", bytes: b * act),
        ])
        let host = TierUsage(name: "host DRAM", capacity: device.hostDRAM, bandwidth: device.pcieBandwidth ?? device.hostDRAMBandwidth, items: [
            .init(label: "offloaded KV blocks", bytes: b * footprint.hostResident),
        ])
        return [sram, l2, hbm, host]
    }
}

/// Ops accumulated in order, then timed on the roofline.
struct OpTable {
    private var rows: [(name: String, bytes: Double, host: Double, flops: Double)] = []

    mutating func add(_ name: String, bytes: Double, host: Double = 0, flops: Double = 0) {
        rows.append((name, bytes, host, flops))
    }

    func costs(device: DeviceProfile, precision: DeviceProfile.Precision) -> PhaseCost {
        let peak = device.effectivePeak(precision)
        let bandwidth = device.effectiveHBMBandwidth, link = device.effectiveFetchBandwidth
        return PhaseCost(ops: rows.map { row in
            let compute = row.flops / peak, memory = row.bytes / bandwidth, host = row.host / link
            let seconds = max(compute, memory, host)
            let bound: RooflineBound = seconds == host && host > 0 ? .host : seconds == compute && compute > memory ? .compute : .memory
            return OpCost(name: row.name, bytes: row.bytes, hostBytes: row.host, flops: row.flops, seconds: seconds, bound: bound)
        })
    }
}
