import KVLabFoundation
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
        warnings = Self.warnings(setup: setup, capacity: capacity)
    }

    /// The longest context the setup's batch reaches in device memory; nil beyond
    /// `CapacityReport.contextSearchLimit` (the method or the target bounds the KV).
    public static func largestContext(_ setup: ProjectionSetup) -> Int? {
        ProjectionModel(setup).largestContext(batch: setup.batch)
    }

    /// "does not fit" when the batch overflows device memory, "beyond the target's context" when
    /// the context passes what the target was trained for.
    static func warnings(setup s: ProjectionSetup, capacity c: CapacityReport) -> [String] {
        var warnings: [String] = []
        if !c.fits {
            let each = s.devices > 1 ? " per device" : ""
            let limit = c.weights >= c.deviceMemory ? "the weights alone exceed it"
                : c.maxBatch == 0 ? "one sequence of this context does not fit beside the weights"
                : "at most \(c.maxBatch) sequence\(c.maxBatch == 1 ? "" : "s") of this context fit"
            warnings.append("does not fit: \(formatBytes(c.used)) needed\(each), \(s.device.name) holds \(formatBytes(c.deviceMemory)) (\(limit))")
        }
        if s.context > s.target.maxContext {
            warnings.append("beyond the target's context: \(s.context) tokens, \(s.target.name) is trained for \(s.target.maxContext)")
        }
        return warnings
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
    /// Devices the model is split over (tensor parallelism).
    let devices: Double
    /// Share of the KV cache one device holds.
    let kvShare: Double

    init(_ setup: ProjectionSetup) {
        self.setup = setup
        target = setup.target
        f = Double(setup.float.bytes)
        storage = KVStorageModel(quant: setup.quant, headDim: target.cacheKeyDim, float: setup.float, mixedHighShare: setup.live?.mixedHighShare,
                                 storesValues: target.storesValues)
        precision = setup.weights == .f32 || setup.float == .f32 ? .fp32 : .fp16
        let layout = KVLayout(layerCount: target.layers, kvHeadCount: target.cacheHeads, headDim: target.cacheKeyDim,
                              groupSize: target.cacheGroup, capacity: max(1, setup.context))
        budgets = setup.eviction.budgets(layout: layout)
        stateBytes = Double(setup.eviction.stateBytesPerEntry + (setup.quant.mixed != nil ? 4 : 0))
        var collects = false
        if case .threshold = setup.sparse.kind { collects = true }
        needsScores = setup.eviction.needsAttentionScores || setup.quant.mixed != nil || collects
        // The naive kernel has no tiles; the hierarchy view then shows what the device's SRAM would hold.
        let sram = if case .tiled(let bytes) = setup.kernel { bytes } else { Int(setup.device.sramPerSM) }
        tileEntries = AttentionTileShape(sramBytes: sram, headDim: target.cacheKeyDim, elementBytes: setup.float.bytes).entries
        devices = Double(setup.devices)
        // Tensor parallelism splits the query heads; KV heads too while there are enough of them,
        // else each device holds a copy of one (vLLM's replication), and MLA's one latent is
        // held whole on every device.
        let heads = target.cacheHeads
        kvShare = setup.devices <= 1 ? 1 : Double((heads + setup.devices - 1) / setup.devices) / Double(heads)
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
        let localLayers = (0..<target.layers).filter { target.hasKV(layer: $0) && target.attentionSpans[$0].window != nil }
        if !localLayers.isEmpty {
            let windows = Set(localLayers.compactMap { target.attentionSpans[$0].window }).sorted()
            notes.append("\(localLayers.count) of \(target.attentionLayers) layers local (window \(windows.map(String.init).joined(separator: ", "))): each keeps and attends at most its window"
                + (setup.eviction.kind == .full ? "" : "; the method's budgets act on the global layers only"))
        }
        if let m = target.latent {
            notes.append("MLA: the cache holds the \(m.kvRank)-channel latent and the \(m.ropeDim)-channel RoPE key per token and layer; decode reads it absorbed, \(target.heads) heads sharing it (prefill costed absorbed too)")
        }
        if let r = target.recurrent {
            notes.append("\(target.recurrentLayers) of \(target.layers) layers \(r.kind): a fixed state of \(r.stateElements) elements per layer and sequence (in the float format), read and written each step; no KV there and no KV method applies")
        }
        if let e = target.experts {
            notes.append("MoE: \(e.active) of \(e.count) experts per token on \(target.expertLayers) layers; a step of \(setup.batch) sequence\(setup.batch > 1 ? "s" : "") reads \(String(format: "%.1f", e.distinct(tokens: Double(setup.batch)))) distinct experts per layer (uniform routing), every expert stays in memory")
        }
        if setup.devices > 1 {
            notes.append("tensor parallel over \(setup.devices) devices: figures are per device; weights and query heads split, KV heads split while \(target.cacheHeads) allow (else copied), two all-reduces of the hidden state per layer on the interconnect")
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
                for h in 0..<target.cacheHeads {
                    let i = l * target.cacheHeads + h
                    kept[i] = min(kept[i], live.kept(layer: l, head: h, layers: target.layers, kvHeads: target.cacheHeads, context: context))
                }
            }
        }
        // Recurrent layers have no KV; local layers hold their window whatever the method (its
        // budgets act on the global layers, where the context would otherwise grow).
        let heads = target.cacheHeads
        for l in 0..<target.layers {
            let bound: Double
            if !target.hasKV(layer: l) {
                bound = 0
            } else if let window = target.attentionSpans[l].window {
                bound = min(c, Double(window))
            } else {
                continue
            }
            for h in 0..<heads { kept[l * heads + h] = bound }
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

    /// One attention layer's projections (MLA: its down- and up-projections and their norms).
    var attentionWeightBytes: Double {
        let t = target
        if let m = t.latent {
            let query = m.queryRank.map { matrixBytes(rows: $0, cols: t.hidden) + Double($0) * f + matrixBytes(rows: t.queryDim, cols: $0) }
                ?? matrixBytes(rows: t.queryDim, cols: t.hidden)
            return query + matrixBytes(rows: m.kvRank + m.ropeDim, cols: t.hidden) + Double(m.kvRank) * f
                + matrixBytes(rows: t.heads * (m.nopeDim + m.valueDim), cols: m.kvRank) + matrixBytes(rows: t.hidden, cols: t.heads * m.valueDim)
        }
        let bias = t.qkvBias ? Double(t.queryDim + 2 * t.kvDim) * f : 0
        return matrixBytes(rows: t.queryDim, cols: t.hidden) + 2 * matrixBytes(rows: t.kvDim, cols: t.hidden)
            + matrixBytes(rows: t.hidden, cols: t.queryDim) + bias
    }

    /// One recurrent layer's mixer, its parameters costed as rows of the hidden width.
    var recurrentWeightBytes: Double {
        guard let r = target.recurrent else { return 0 }
        return matrixBytes(rows: r.parameters / target.hidden, cols: target.hidden)
    }

    /// One SwiGLU of intermediate width `width`.
    func swigluBytes(_ width: Int) -> Double {
        width == 0 ? 0 : 2 * matrixBytes(rows: width, cols: target.hidden) + matrixBytes(rows: target.hidden, cols: width)
    }

    /// One MoE layer: the router, every routed expert and the shared ones.
    var expertLayerWeightBytes: Double {
        guard let e = target.experts else { return 0 }
        return matrixBytes(rows: e.count, cols: target.hidden) + Double(e.count) * swigluBytes(e.ffn) + swigluBytes(e.sharedFFN)
    }

    var embeddingBytes: Double { matrixBytes(rows: target.vocab, cols: target.hidden) }

    /// Every weight of the model (the classifier once more when untied), all experts included.
    var modelWeightBytes: Double {
        let t = target
        let layers = Double(t.attentionLayers) * attentionWeightBytes + Double(t.recurrentLayers) * recurrentWeightBytes
            + Double(t.denseFFNLayers) * swigluBytes(t.ffn) + Double(t.expertLayers) * expertLayerWeightBytes + Double(t.layers) * 2 * Double(t.hidden) * f
        return layers + embeddingBytes * (t.tiedEmbeddings ? 1 : 2) + Double(t.hidden) * f
    }

    /// The weights one device holds (its shard under tensor parallelism).
    var weightBytes: Double { modelWeightBytes / devices }

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
        let d = Double(target.cacheKeyDim), g = Double(target.cacheGroup)
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
            r.decodedValues = target.storesValues ? d * valueCount * values.quantizedEntries / n : 0
        }
        return r
    }
}

/// How an op divides under tensor parallelism over G devices.
enum OpScope {
    /// Weights and work split G ways (projections, FFN, experts, classifier).
    case sharded
    /// Query heads split G ways; each device reads its share of the KV (`kvShare`).
    case attention
    /// Every device does it whole (norms, residual adds, all-reduces).
    case replicated
}

/// Ops accumulated in order, then timed on the roofline, per device.
struct OpTable {
    private var rows: [(name: String, bytes: Double, host: Double, link: Double, flops: Double, scope: OpScope)] = []

    mutating func add(_ name: String, bytes: Double, host: Double = 0, link: Double = 0, flops: Double = 0, scope: OpScope = .sharded) {
        rows.append((name, bytes, host, link, flops, scope))
    }

    /// Costs on one of `devices` devices holding `kvShare` of the KV.
    func costs(device: DeviceProfile, precision: DeviceProfile.Precision, devices: Double = 1, kvShare: Double = 1) -> PhaseCost {
        let peak = device.effectivePeak(precision)
        let bandwidth = device.effectiveHBMBandwidth, fetch = device.effectiveFetchBandwidth, link = device.effectiveInterconnectBandwidth
        return PhaseCost(ops: rows.map { row in
            let (byteShare, flopShare): (Double, Double) = switch row.scope {
            case .sharded: (1 / devices, 1 / devices)
            case .attention: (kvShare, 1 / devices)
            case .replicated: (1, 1)
            }
            let bytes = row.bytes * byteShare, host = row.host * byteShare, flops = row.flops * flopShare
            let compute = flops / peak, memory = bytes / bandwidth, hostTime = host / fetch, linkTime = row.link / link
            let seconds = max(compute, memory, hostTime, linkTime)
            let bound: RooflineBound = seconds == linkTime && linkTime > 0 ? .interconnect
                : seconds == hostTime && hostTime > 0 ? .host : seconds == compute && compute > memory ? .compute : .memory
            return OpCost(name: row.name, bytes: bytes, hostBytes: host, linkBytes: row.link, flops: flops, seconds: seconds, bound: bound)
        })
    }
}
