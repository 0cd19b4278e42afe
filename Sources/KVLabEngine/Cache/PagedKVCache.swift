import KVLabMethods

/// A KV cache in fixed-size pages drawn from pools with free lists, so per-head lengths can differ
/// and evicting returns whole pages. An eviction method decides which entries stay, a sparse mode
/// which ones a step reads, a quantization method how they are stored; each can change between
/// any two steps.
///
/// Storage is physical. Each (layer, KV head) numbers its entries with slots 0..<count with no
/// holes (an evicted slot is refilled by the last one); a slot is the entry's column in the step's
/// scores, and the policy sees the entries in position order through per-head arrays that map each
/// entry to its slot. A slot's key and its value each live either in an fp32 page slot or as a
/// member of a quantized record (`QuantizedKVStore`). fp32 page slots are kept without holes too,
/// so the tail page frees as soon as it empties; a page stores its 16 keys channel-major (one
/// SIMD16 step scores 16 keys without horizontal sums) and its 16 values token-major (P·V adds whole
/// value vectors). A tensor kept at fp32 keeps every entry in a page slot, and page slot = slot.
///
/// Quantization: the most recent `residual` entries of each (layer, KV head) stay fp32; older ones
/// are quantized tensor by tensor, in position order, `tokens` at a time for formats that group
/// entries (per-channel uniform, ggml blocks straddling short heads), so up to `tokens − 1` more wait
/// at fp32. An entry leaves its page slot when both its key and value are quantized; until then the
/// half already quantized is page slack. Attention decodes quantized entries one at a time into
/// scratch, so scores and outputs carry the quantization error. Traffic: an append writes the fp32
/// entry; quantizing reads it back and writes the record; attention reads fp32 halves and records
/// (payload under `.keys`/`.values`, scales and zeros under `.quantMetadata`).
///
/// Key frames (the KVQuant / RotateKV options): `key(index:slot:)` gives a key as it is scored.
/// With `prerope` keys are stored before RoPE and each read rotates the key to its position; with
/// `rotate` they are stored Hadamard-transformed and the queries are transformed alike before
/// scoring (when keys are also pre-RoPE, a read undoes the transform before applying RoPE, and the
/// queries stay as they are). Page summaries and key norms are of scored keys; `entry` gives keys
/// in the model's frame. `protect-sinks` keeps the first positions at fp32. `mixed` sums the `s_t`
/// each slot's entry receives and picks a lane (high or low bits) as a record leaves the window.
///
/// Channel pruning (`think`, `ThinK`): once it acts, every key of every (layer, KV head) is stored
/// with only its head's kept channels (their indices, ascending, are per-head policy state): fp32
/// pages then hold `keyWidth` key channels beside full values (pages come from a pool of that
/// size), and key records quantize vectors of `keyWidth` channels. A key is read back with zeros
/// in the pruned channels, and the fp32 kernel dots the query's kept channels with the stored
/// ones. The cache keeps each layer's last `ThinK.maxObservation` queries (their squares, summed
/// over each KV head's query group) so that `think` can act at any step. Re-storing for `think`
/// leaves quantized values as they are.
public final class PagedKVCache: KVCache {
    public let layout: KVLayout
    /// Token slots per page (one SIMD16 lane per slot).
    public static let pageSize = 16
    private var pageSize: Int { Self.pageSize }
    /// fp32 pages: `pageSize × keyWidth` key floats (channel-major), then `pageSize × headDim` value floats.
    private let fullPool: PagePool<Float>
    /// Pages for keys pruned to `think`'s kept channels (`thinWidth` of them); nil without `think`.
    private var thinPool: PagePool<Float>?
    private var thinWidth = 0
    /// The pool pages come from now: `thinPool` while keys are pruned.
    private var pool: PagePool<Float>
    /// Channels stored per key: the head size, or `think`'s kept count while keys are pruned.
    public private(set) var keyWidth: Int
    private let headCount: Int
    private let pagesPerHead: Int
    private let capacity: Int
    /// Per (layer, head): entries kept (= slots in use), fp32 page slots in use, page ids in order.
    private let counts: UnsafeMutablePointer<Int>
    private let pageCounts: UnsafeMutablePointer<Int>
    private let pageTables: UnsafeMutablePointer<Int32>
    /// Per (layer, head, page slot): the slot it holds.
    private let pageOwners: UnsafeMutablePointer<Int32>
    /// Per (layer, head, slot): its position, and where its key and value live: a page slot (≥ 0)
    /// or a record member `code` stored as `−1 − code` (record `code / tokens`, member `code % tokens`).
    private let slotPositions: UnsafeMutablePointer<Int32>
    private let keyLocations: UnsafeMutablePointer<Int32>
    private let valueLocations: UnsafeMutablePointer<Int32>
    /// Entries merged into each slot's entry, itself included (the `merge` modifier).
    private let mergeCounts: UnsafeMutablePointer<Float>
    /// `mixed`: the attention `Σ s_t` each slot's entry has received while the method was mixed.
    private let receivedScores: UnsafeMutablePointer<Float>
    /// Per (layer, head), in position order: what `HeadEntries` shows a policy.
    private let positions: UnsafeMutablePointer<Int32>
    private let policyScores: UnsafeMutablePointer<Float>
    private let history: UnsafeMutablePointer<UInt64>
    private let keyNorms: UnsafeMutablePointer<Float>
    private let stepScores: UnsafeMutablePointer<Float>
    private let slots: UnsafeMutablePointer<Int32>
    private let released: UnsafeMutablePointer<Int32>
    private let heads: UnsafeMutableBufferPointer<HeadEntries>
    /// Attention probabilities of one KV head's query group: groupSize rows of `scoreStride`
    /// (capacity rounded up to whole pages, so a page's 16 lanes always fit).
    private let probabilities: UnsafeMutablePointer<Float>
    private let scoreStride: Int
    private let scale: Float

    /// Per (layer, head, page of 16 slots): channel-wise key min and max (Quest's page summaries).
    private let pageMin: UnsafeMutablePointer<Float>
    private let pageMax: UnsafeMutablePointer<Float>
    /// Scratch of sparse modes: chosen slots, marks, sorted scores.
    private let selectedSlots: UnsafeMutablePointer<Int32>
    private let selectedMarks: UnsafeMutablePointer<Bool>
    private let sortScratch: UnsafeMutablePointer<Float>
    /// One key and one value gathered from a page or decoded from a record; the merge's operands.
    private let keyScratch: UnsafeMutablePointer<Float>
    private let valueScratch: UnsafeMutablePointer<Float>
    private let mergeKey: UnsafeMutablePointer<Float>
    private let mergeValue: UnsafeMutablePointer<Float>
    /// A key in its storage frame (Hadamard-transformed, before RoPE) on its way into a page or record.
    private let storedKey: UnsafeMutablePointer<Float>
    /// One query group Hadamard-transformed for `rotate`.
    private let rotatedQueries: UnsafeMutablePointer<Float>
    /// RoPE angles of every position, built when a method first stores keys before RoPE.
    private var ropeAngles: RoPEAngles?
    /// Pages of slots whose keys were just quantized (their Quest bounds are recomputed).
    private let pageMarks: UnsafeMutablePointer<Bool>
    private let touchedPages: UnsafeMutablePointer<Int32>

    public private(set) var eviction: EvictionMethod
    public private(set) var sparse: SparseMethod
    private var retrieval: BlockRetrieval?
    public private(set) var quant: KVQuantMethod
    private var policy: any EvictionPolicy
    /// Quantized keys and values; nil for a tensor kept at fp32. `keyStore` is `fullKeyStore`, or
    /// `thinKeyStore` (vectors of `thinWidth` channels) while keys are pruned; the other one is empty.
    private var keyStore: QuantizedKVStore?
    private var fullKeyStore: QuantizedKVStore?
    private var thinKeyStore: QuantizedKVStore?
    private var valueStore: QuantizedKVStore?
    /// `think`: whether keys are pruned now, and whether a `think` method still waits for its queries.
    public private(set) var keysPruned = false
    private var thinkPending = false
    /// Per (layer, head), `headDim` slots: the first `keyWidth` are its kept channels, ascending.
    private let keptChannels: UnsafeMutablePointer<Int32>
    /// Per layer, a ring of the last `ThinK.maxObservation` queries (squares summed over each KV
    /// head's query group, `kvHeadCount × headDim`), and how many it has recorded since the reset.
    private let querySquares: UnsafeMutablePointer<Float>
    private let recordedQueries: UnsafeMutablePointer<Int>
    /// One query group at its head's kept channels (the fp32 kernel's operand while keys are pruned).
    private let prunedQueries: UnsafeMutablePointer<Float>
    /// Scratch of re-storing one head: its keys and values in position order, merge counts, received
    /// scores, value locations; and per channel the window's and the keys' squares and scores.
    private let restoreKeys: UnsafeMutablePointer<Float>
    private let restoreValues: UnsafeMutablePointer<Float>
    private let restoreMerged: UnsafeMutablePointer<Float>
    private let restoreReceived: UnsafeMutablePointer<Float>
    private let restoreValueLocations: UnsafeMutablePointer<Int32>
    private let channelQuerySquares: UnsafeMutablePointer<Float>
    private let channelKeySquares: UnsafeMutablePointer<Float>
    private let channelScores: UnsafeMutablePointer<Float>
    /// End of the prompt while a batched prefill runs.
    private var promptEnd: Int?
    /// The attention kernel, switchable between steps (a tiled kernel's SRAM holds at least
    /// `AttentionTileShape.minimumSRAMBytes`).
    public var attentionKernel: AttentionKernel = .naive {
        didSet { if attentionKernel != oldValue { tiled = Self.tiledAttention(for: attentionKernel, layout: layout, entries: scoreStride) } }
    }
    /// The tiled kernel's scratch (its SRAM working set); nil for the naive kernel.
    private var tiled: TiledAttention?

    /// Keep each step's `s_t` per entry (the ghost run does, so others can compare with it).
    public var recordsAttention = false
    /// The ghost cache whose attention `massKept` is measured against.
    public weak var attentionReference: PagedKVCache?
    /// Share of the reference's attention at the last step that fell on entries this cache
    /// attended (mean over layers and query heads); nil without a reference.
    public private(set) var massKept: Double?
    private var massSum = 0.0

    public init(layout: KVLayout, eviction: EvictionMethod = .full, sparse: SparseMethod = .dense, quant: KVQuantMethod = .fp32) {
        self.layout = layout
        let pageSize = Self.pageSize
        headCount = layout.layerCount * layout.kvHeadCount
        capacity = layout.capacity
        pagesPerHead = (layout.capacity + pageSize - 1) / pageSize
        fullPool = Self.makePool(layout: layout, keyWidth: layout.headDim)
        pool = fullPool
        keyWidth = layout.headDim
        counts = .allocate(capacity: headCount)
        counts.initialize(repeating: 0, count: headCount)
        pageCounts = .allocate(capacity: headCount)
        pageCounts.initialize(repeating: 0, count: headCount)
        pageTables = .allocate(capacity: headCount * pagesPerHead)
        let entries = headCount * capacity
        pageOwners = .allocate(capacity: entries)
        slotPositions = .allocate(capacity: entries)
        keyLocations = .allocate(capacity: entries)
        valueLocations = .allocate(capacity: entries)
        mergeCounts = .allocate(capacity: entries)
        receivedScores = .allocate(capacity: entries)
        positions = .allocate(capacity: entries)
        policyScores = .allocate(capacity: entries)
        history = .allocate(capacity: entries)
        keyNorms = .allocate(capacity: entries)
        stepScores = .allocate(capacity: entries)
        stepScores.initialize(repeating: 0, count: entries)
        slots = .allocate(capacity: entries)
        released = .allocate(capacity: layout.kvHeadCount * capacity)
        heads = .allocate(capacity: layout.kvHeadCount)
        scoreStride = pagesPerHead * pageSize
        probabilities = .allocate(capacity: layout.groupSize * scoreStride)
        scale = 1 / Float(layout.headDim).squareRoot()
        pageMin = .allocate(capacity: headCount * pagesPerHead * layout.headDim)
        pageMax = .allocate(capacity: headCount * pagesPerHead * layout.headDim)
        selectedSlots = .allocate(capacity: scoreStride)
        selectedMarks = .allocate(capacity: scoreStride)
        selectedMarks.initialize(repeating: false, count: scoreStride)
        sortScratch = .allocate(capacity: scoreStride)
        keyScratch = .allocate(capacity: layout.headDim)
        valueScratch = .allocate(capacity: layout.headDim)
        mergeKey = .allocate(capacity: layout.headDim)
        mergeValue = .allocate(capacity: layout.headDim)
        storedKey = .allocate(capacity: layout.headDim)
        rotatedQueries = .allocate(capacity: layout.groupSize * layout.headDim)
        pageMarks = .allocate(capacity: pagesPerHead)
        pageMarks.initialize(repeating: false, count: pagesPerHead)
        touchedPages = .allocate(capacity: pagesPerHead)
        keptChannels = .allocate(capacity: headCount * layout.headDim)
        querySquares = .allocate(capacity: layout.layerCount * ThinK.maxObservation * layout.kvHeadCount * layout.headDim)
        recordedQueries = .allocate(capacity: layout.layerCount)
        recordedQueries.initialize(repeating: 0, count: layout.layerCount)
        prunedQueries = .allocate(capacity: layout.groupSize * layout.headDim)
        restoreKeys = .allocate(capacity: capacity * layout.headDim)
        restoreValues = .allocate(capacity: capacity * layout.headDim)
        restoreMerged = .allocate(capacity: capacity)
        restoreReceived = .allocate(capacity: capacity)
        restoreValueLocations = .allocate(capacity: capacity)
        channelQuerySquares = .allocate(capacity: layout.headDim)
        channelKeySquares = .allocate(capacity: layout.headDim)
        channelScores = .allocate(capacity: layout.headDim)
        self.eviction = eviction
        self.sparse = sparse
        self.quant = quant
        policy = eviction.makePolicy(layout: layout)
        retrieval = Self.retrieval(for: sparse, layout: layout)
        fullKeyStore = Self.store(quant.key, .keys, width: layout.headDim, quant: quant, layout: layout)
        valueStore = Self.store(quant.value, .values, width: layout.headDim, quant: quant, layout: layout)
        keyStore = fullKeyStore
        prepareAngles(for: quant)
        if let think = eviction.think {
            check(eviction, quant)
            (thinWidth, thinPool, thinKeyStore) = thinStorage(for: think)
            thinkPending = true
        }
    }

    deinit {
        counts.deallocate()
        pageCounts.deallocate()
        pageTables.deallocate()
        for buffer in [pageOwners, slotPositions, keyLocations, valueLocations, positions, slots, released, touchedPages, keptChannels,
                       restoreValueLocations] { buffer.deallocate() }
        for buffer in [mergeCounts, receivedScores, policyScores, keyNorms, stepScores, probabilities, pageMin, pageMax, sortScratch,
                       keyScratch, valueScratch, mergeKey, mergeValue, storedKey, rotatedQueries, querySquares, prunedQueries, restoreKeys,
                       restoreValues, restoreMerged, restoreReceived, channelQuerySquares, channelKeySquares, channelScores] { buffer.deallocate() }
        recordedQueries.deallocate()
        selectedSlots.deallocate()
        selectedMarks.deallocate()
        pageMarks.deallocate()
        history.deallocate()
        heads.deallocate()
    }

    /// The store of a method's quantized tensor (`format`) for vectors of `width` channels: one
    /// lane, or `mixed`'s high and low lanes; nil at fp32.
    private static func store(_ format: KVTensorFormat, _ buffer: IOBuffer, width: Int, quant: KVQuantMethod, layout: KVLayout) -> QuantizedKVStore? {
        let outliers = OutlierSplit.outlierCount(elements: width, percent: quant.outlierPercent)
        var formats = [format]
        if let mixed = quant.mixed, case .uniform(_, let axis, let group) = format {
            formats.append(.uniform(bits: mixed.lowBits, axis: axis, group: group))
        }
        let codecs = formats.compactMap { KVRecordCodec(format: $0, headDim: width, outliers: outliers, nuq: quant.nuq) }
        return codecs.isEmpty ? nil : QuantizedKVStore(lanes: codecs, buffer: buffer, layout: layout)
    }

    /// A pool of fp32 pages holding keys of `keyWidth` channels beside full values.
    private static func makePool(layout: KVLayout, keyWidth: Int) -> PagePool<Float> {
        PagePool(elementsPerPage: pageSize * (keyWidth + layout.headDim), pagesPerSlab: max(16, layout.layerCount * layout.kvHeadCount), zero: 0)
    }

    /// The width, page pool and key store of keys pruned by `think`: the current ones when the
    /// width does not change (pools keep their pages from one sequence to the next), else new ones.
    private func thinStorage(for think: ThinK) -> (Int, PagePool<Float>, QuantizedKVStore?) {
        let width = think.keptChannelCount(headDim: layout.headDim)
        if let thinPool, thinWidth == width { return (width, thinPool, thinKeyStore) }
        return (width, Self.makePool(layout: layout, keyWidth: width), Self.store(quant.key, .keys, width: width, quant: quant, layout: layout))
    }

    /// Traps on an eviction method that does not fit the quantization (callers check first with
    /// `EvictionMethod.check(quant:)`).
    private func check(_ eviction: EvictionMethod, _ quant: KVQuantMethod) {
        do { try eviction.check(quant: quant) } catch { preconditionFailure("\(eviction) with \(quant): \(error)") }
    }

    /// Checks that a method fits the heads (callers check first: `KVQuantMethod.check(headDim:)`)
    /// and builds the RoPE angles once a method stores keys before RoPE (they stay for later switches).
    private func prepareAngles(for method: KVQuantMethod) {
        do { try method.check(headDim: layout.headDim) } catch { preconditionFailure("\(method): \(error)") }
        guard method.preRoPE, ropeAngles == nil else { return }
        ropeAngles = RoPEAngles(headDim: layout.headDim, theta: layout.ropeTheta, style: layout.ropeStyle, positions: capacity)
    }

    public func entryCount(layer: Int, head: Int) -> Int { counts[layer * layout.kvHeadCount + head] }

    /// Positions kept by one (layer, KV head), oldest first.
    public func keptPositions(layer: Int, head: Int) -> [Int] {
        let index = layer * layout.kvHeadCount + head
        return (0..<counts[index]).map { Int(positions[index * capacity + $0]) }
    }

    /// The key and value of the `entry`-th kept entry (position order) of one (layer, KV head), as
    /// attention reads them (decoded when quantized), the key in the model's frame (after RoPE,
    /// not Hadamard-transformed, zero in channels `think` pruned).
    public func entry(layer: Int, head: Int, _ entry: Int) -> (key: [Float], value: [Float]) {
        let index = layer * layout.kvHeadCount + head
        precondition(entry >= 0 && entry < counts[index], "no such entry")
        let slot = Int(slots[index * capacity + entry])
        var key = Array(UnsafeBufferPointer(start: key(index: index, slot: slot), count: layout.headDim))
        if scoresRotated { key.withUnsafeMutableBufferPointer { Hadamard.transform($0.baseAddress!, count: $0.count) } }
        return (key, Array(UnsafeBufferPointer(start: value(index: index, slot: slot), count: layout.headDim)))
    }

    /// Whether the method scores in the Hadamard frame (queries transformed): `rotate` without `prerope`.
    private var scoresRotated: Bool { quant.rotate && !quant.preRoPE }

    /// Token budget of one (layer, KV head) under the current method; nil when unbounded.
    public func budget(layer: Int, head: Int) -> Int? { policy.budget(layer: layer, head: head) }

    /// The kept key channels of one (layer, KV head), ascending, while `think` has keys pruned; nil otherwise.
    public func keptChannels(layer: Int, head: Int) -> [Int]? {
        guard keysPruned else { return nil }
        let kept = keptChannels + (layer * layout.kvHeadCount + head) * layout.headDim
        return (0..<keyWidth).map { Int(kept[$0]) }
    }

    /// fp32 pages currently taken from the pools.
    public var pagesInUse: Int { fullPool.pagesInUse + (thinPool?.pagesInUse ?? 0) }

    /// Bytes of one fp32 page: 16 keys of `keyChannels` channels (all of them by default) and 16 values.
    public static func pageBytes(headDim: Int, keyChannels: Int? = nil) -> Int { pageSize * ((keyChannels ?? headDim) + headDim) * 4 }

    /// Bytes taken from every pool (fp32 pages, quantized record pages, fp8 scales, nuq levels):
    /// what the residency adds up to besides policy state.
    var allocatedBytes: Int {
        let hd = layout.headDim
        let pages = fullPool.pagesInUse * Self.pageBytes(headDim: hd) + (thinPool?.pagesInUse ?? 0) * Self.pageBytes(headDim: hd, keyChannels: thinWidth)
        return pages + [fullKeyStore, thinKeyStore, valueStore].reduce(0) { $0 + ($1?.allocatedBytes ?? 0) }
    }

    /// Resident bytes. fp32 halves (a key or a value in a page slot) are full-precision payload
    /// when their tensor is not quantized and residual window otherwise (the window, entries waiting
    /// for their group, a prompt until its end, protected sinks); a page's unused slots and the dead
    /// half of a slot whose other half waits are page slack. Quantized records split as
    /// `QuantizedKVStore.addResidency` says; fp8 scales and nuq levels are metadata; `mixed`'s
    /// received score is 4 B of state per entry. A key half holds `keyWidth` channels; the kept
    /// channel indices of `think` are 4 B each of state per head.
    public var residency: KVResidency {
        var r = KVResidency()
        let keyHalf = keyWidth * 4, valueHalf = layout.headDim * 4
        let stateBytes = 4 + policy.stateBytesPerEntry + (eviction.merge ? 4 : 0) + (quant.mixed != nil ? 4 : 0)
        for index in 0..<headCount {
            let kept = counts[index], pageSlots = pageCounts[index]
            let keyHalves = kept - (keyStore?.quantizedCounts[index] ?? 0)
            let valueHalves = kept - (valueStore?.quantizedCounts[index] ?? 0)
            if keyStore == nil { r.fullPrecisionPayload += keyHalves * keyHalf } else { r.residualWindow += keyHalves * keyHalf }
            if valueStore == nil { r.fullPrecisionPayload += valueHalves * valueHalf } else { r.residualWindow += valueHalves * valueHalf }
            let pages = (pageSlots + pageSize - 1) / pageSize
            r.pageSlack += (pages * pageSize - pageSlots) * (keyHalf + valueHalf) + (pageSlots - keyHalves) * keyHalf
                + (pageSlots - valueHalves) * valueHalf
            r.policyState += kept * stateBytes + (keysPruned ? keyWidth * 4 : 0)
            if case .quest = sparse.kind { r.policyState += (kept + pageSize - 1) / pageSize * 2 * valueHalf }
            keyStore?.addResidency(index: index, to: &r)
            valueStore?.addResidency(index: index, to: &r)
        }
        r.quantMetadata += [fullKeyStore, thinKeyStore, valueStore].reduce(0) { $0 + ($1?.calibrationBytes ?? 0) }
        return r
    }

    public var batchedPrefill: Bool { policy.batchedPrefill }

    public func reset() {
        for index in 0..<headCount {
            let pages = (pageCounts[index] + pageSize - 1) / pageSize
            for p in 0..<pages { pool.release(pageTables[index * pagesPerHead + p]) }
            counts[index] = 0
            pageCounts[index] = 0
        }
        keyStore?.reset()
        valueStore?.reset()
        // A new sequence starts with every key channel; `think` waits for its queries again.
        keysPruned = false
        keyWidth = layout.headDim
        pool = fullPool
        keyStore = fullKeyStore
        thinkPending = eviction.think != nil
        recordedQueries.update(repeating: 0, count: layout.layerCount)
        policy = eviction.makePolicy(layout: layout)
        retrieval?.reset()
        promptEnd = nil
        massKept = nil
    }

    /// Switches the eviction method between steps. The new method starts with fresh state and
    /// evicts down to its budget at once; entries already evicted do not come back.
    ///
    /// `think`: switching it on (or changing its parameters) prunes at once, on the most recent
    /// `observation` queries (fewer when fewer were seen; at the next steps when none were) and the
    /// keys then kept. Switching it off stores the keys at full width again, but pruned channels
    /// do not come back: they read as zero, and only later keys have every channel.
    public func setEviction(_ method: EvictionMethod, ledger: inout IOLedger) {
        check(method, quant)
        let oldThink = eviction.think
        eviction = method
        policy = method.makePolicy(layout: layout)
        let entries = headCount * capacity
        policyScores.update(repeating: 0, count: entries)
        history.update(repeating: 0, count: entries)
        stepScores.update(repeating: 0, count: entries)
        for layer in 0..<layout.layerCount {
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in policy.afterAttention(layer: layer, heads: heads) }
        }
        guard method.think != oldThink else { return }
        guard let think = method.think else {
            thinkPending = false
            if keysPruned { storeKeys(pruning: nil, ledger: &ledger) }
            (thinWidth, thinPool, thinKeyStore) = (0, nil, nil)
            return
        }
        thinkPending = true
        if recorded(atLeast: 1) {
            storeKeys(pruning: think, ledger: &ledger)
        } else {
            // Nothing was recorded since the reset, so nothing is pruned yet either.
            (thinWidth, thinPool, thinKeyStore) = thinStorage(for: think)
        }
    }

    /// Switches the sparse-attention mode from the next step on (memory is unchanged).
    public func setSparse(_ method: SparseMethod) {
        guard method != sparse else { return }
        sparse = method
        retrieval = Self.retrieval(for: method, layout: layout)
    }

    /// Block-retrieval bookkeeping (representatives, the HBM block cache), fresh for a new mode.
    private static func retrieval(for sparse: SparseMethod, layout: KVLayout) -> BlockRetrieval? {
        guard case .blockRetrieval(let block, let reps, let top, let local, let sinks, let lru) = sparse.kind else { return nil }
        return BlockRetrieval(sinks: sinks, local: local, blockSize: block, representatives: reps, top: top, lruCapacity: lru,
                              heads: layout.layerCount * layout.kvHeadCount, capacity: layout.capacity)
    }

    /// Switches the quantization method between steps: every kept entry is stored again from its
    /// current values (decoded ones for quantized entries: lost precision does not come back),
    /// in the new method's key frame, at fp32 within the new residual window and quantized beyond
    /// it. fp8 scales and nuq levels are calibrated anew; `mixed` scores received so far are kept.
    public func setKVQuant(_ method: KVQuantMethod, ledger: inout IOLedger) {
        guard method != quant else { return }
        check(eviction, method)
        prepareAngles(for: method)
        let hd = layout.headDim
        let newFullKeyStore = Self.store(method.key, .keys, width: hd, quant: method, layout: layout)
        let newThinKeyStore = thinPool == nil ? nil : Self.store(method.key, .keys, width: thinWidth, quant: method, layout: layout)
        let newValueStore = Self.store(method.value, .values, width: hd, quant: method, layout: layout)
        for index in 0..<headCount {
            let base = index * capacity
            keyStore?.beginReads()
            valueStore?.beginReads()
            for i in 0..<counts[index] {
                let slot = Int(slots[base + i])
                let key = restoreKeys + i * hd
                key.update(from: self.key(index: index, slot: slot), count: hd)
                if scoresRotated { Hadamard.transform(key, count: hd) }
                toStorageFrame(key, position: Int(positions[base + i]), method: method)
                (restoreValues + i * hd).update(from: value(index: index, slot: slot), count: hd)
                restoreValueLocations[i] = 0
                countRead(key: true, index: index, slot: slot, ledger: &ledger)
                countRead(key: false, index: index, slot: slot, ledger: &ledger)
                restoreMerged[i] = mergeCounts[base + slot]
                restoreReceived[i] = receivedScores[base + slot]
            }
            rebuildPages(index: index, pool: pool, width: keyWidth, pruned: keysPruned, ledger: &ledger)
        }
        quant = method
        (fullKeyStore, thinKeyStore, valueStore) = (newFullKeyStore, newThinKeyStore, newValueStore)
        keyStore = keysPruned ? thinKeyStore : fullKeyStore
        for index in 0..<headCount {
            for page in 0..<((counts[index] + pageSize - 1) / pageSize) { summarize(index: index, page: page, count: counts[index]) }
            if promptEnd == nil { quantizeLeaving(index: index, ledger: &ledger) }
        }
    }

    /// Whether every layer has recorded at least `queries` queries since the reset.
    private func recorded(atLeast queries: Int) -> Bool {
        (0..<layout.layerCount).allSatisfy { recordedQueries[$0] >= queries }
    }

    /// `think` acts (`pruning`) or is switched off (nil). Each head's keys are read once, as scored
    /// (zero in channels pruned before); `think` chooses the head's kept channels from them and its
    /// query window; then the keys are stored again with only those channels (all of them when
    /// switched off), fp32 values move to the new pages, quantized values stay in their records,
    /// and keys beyond the residual window are quantized again.
    private func storeKeys(pruning think: ThinK?, ledger: inout IOLedger) {
        let hd = layout.headDim
        let (width, newPool, newKeyStore) = think.map { thinStorage(for: $0) } ?? (hd, fullPool, fullKeyStore)
        for index in 0..<headCount {
            let base = index * capacity, count = counts[index]
            keyStore?.beginReads()
            for i in 0..<count {
                let slot = Int(slots[base + i])
                (restoreKeys + i * hd).update(from: key(index: index, slot: slot), count: hd)
                countRead(key: true, index: index, slot: slot, ledger: &ledger)
                let value = valueLocations[base + slot]
                if value >= 0 {
                    (restoreValues + i * hd).update(from: pageVector(index: index, slot: slot, key: false), count: hd)
                    ledger.read(.values, hd * 4)
                }
                restoreValueLocations[i] = value >= 0 ? 0 : value
                restoreMerged[i] = mergeCounts[base + slot]
                restoreReceived[i] = receivedScores[base + slot]
            }
            if let think { chooseChannels(index: index, observation: think.observation, keep: width, ledger: &ledger) }
            rebuildPages(index: index, pool: newPool, width: width, pruned: think != nil, ledger: &ledger)
            // Key norms (knorm's order) of the keys as now scored.
            let kept = keptChannels + index * hd
            for i in 0..<count {
                let key = restoreKeys + i * hd
                var norm: Float = 0
                for j in 0..<width {
                    let value = key[think == nil ? j : Int(kept[j])]
                    norm += value * value
                }
                keyNorms[base + i] = norm.squareRoot()
            }
        }
        // Every key now waits at fp32; the store that held the quantized ones starts empty.
        keyStore?.reset()
        (keyWidth, pool, keyStore, keysPruned) = (width, newPool, newKeyStore, think != nil)
        if think != nil {
            (thinWidth, thinPool, thinKeyStore) = (width, newPool, newKeyStore)
            thinkPending = false
        }
        for index in 0..<headCount {
            for page in 0..<((counts[index] + pageSize - 1) / pageSize) { summarize(index: index, page: page, count: counts[index]) }
            if promptEnd == nil { quantizeLeaving(index: index, ledger: &ledger) }
        }
    }

    /// ThinK's choice for one head, from the keys in `restoreKeys`: channel c scores
    /// `‖Q_c‖ · ‖K_c‖` over the layer's last `observation` recorded queries (fewer when fewer
    /// were recorded) and the head's keys; the best `keep` go to `keptChannels`, ascending.
    private func chooseChannels(index: Int, observation: Int, keep: Int, ledger: inout IOLedger) {
        let hd = layout.headDim, ring = ThinK.maxObservation
        let layer = index / layout.kvHeadCount, head = index % layout.kvHeadCount
        let recorded = recordedQueries[layer], window = min(observation, recorded, ring)
        channelQuerySquares.update(repeating: 0, count: hd)
        for k in (recorded - window)..<recorded {
            let row = querySquares + ((layer * ring + k % ring) * layout.kvHeadCount + head) * hd
            for c in 0..<hd { channelQuerySquares[c] += row[c] }
        }
        ledger.read(.activations, window * hd * 4)
        channelKeySquares.update(repeating: 0, count: hd)
        for i in 0..<counts[index] {
            let key = restoreKeys + i * hd
            for c in 0..<hd { channelKeySquares[c] += key[c] * key[c] }
        }
        ThinK.scoreChannels(querySquares: channelQuerySquares, keySquares: channelKeySquares, count: hd, into: channelScores)
        ThinK.selectChannels(scores: channelScores, count: hd, keep: keep, into: keptChannels + index * hd)
        ledger.write(.policyState, keep * 4)
    }

    /// Stores one head's entries again from the restore scratch (`restoreKeys`, `restoreValues`,
    /// `restoreValueLocations`: ≥ 0 for a value in `restoreValues`, else its record member), in
    /// position order: entry i in slot i and page slot i of pages from `newPool`, its key with
    /// `width` channels (the head's kept channels when `pruned`). The head's old pages go back to
    /// `pool` first.
    private func rebuildPages(index: Int, pool newPool: PagePool<Float>, width: Int, pruned: Bool, ledger: inout IOLedger) {
        let hd = layout.headDim, base = index * capacity, count = counts[index]
        let table = pageTables + index * pagesPerHead
        for p in 0..<((pageCounts[index] + pageSize - 1) / pageSize) { pool.release(table[p]) }
        let kept = keptChannels + index * hd
        var values = 0
        for i in 0..<count {
            if i % pageSize == 0 { table[i / pageSize] = newPool.acquire() }
            let page = newPool.pointer(table[i / pageSize]), lane = i % pageSize
            let key = restoreKeys + i * hd
            for j in 0..<width { page[j * pageSize + lane] = key[pruned ? Int(kept[j]) : j] }
            let value = restoreValueLocations[i]
            if value >= 0 {
                (page + pageSize * width + lane * hd).update(from: restoreValues + i * hd, count: hd)
                values += 1
            }
            slots[base + i] = Int32(i)
            slotPositions[base + i] = positions[base + i]
            pageOwners[base + i] = Int32(i)
            keyLocations[base + i] = Int32(i)
            valueLocations[base + i] = value >= 0 ? Int32(i) : value
            mergeCounts[base + i] = restoreMerged[i]
            receivedScores[base + i] = restoreReceived[i]
        }
        pageCounts[index] = count
        ledger.write(.keys, count * width * 4)
        ledger.write(.values, values * hd * 4)
    }

    /// Moves a key in the model's frame (after RoPE) into `method`'s storage frame, in place.
    private func toStorageFrame(_ key: UnsafeMutablePointer<Float>, position: Int, method: KVQuantMethod) {
        if method.preRoPE { ropeAngles!.rotate(key, position: position, inverse: true) }
        if method.rotate { Hadamard.transform(key, count: layout.headDim) }
    }

    public var keysBeforeRoPE: Bool { quant.preRoPE }

    public func beginPrefill(end: Int) { promptEnd = end }

    /// The prompt attended at full precision; its policy acts now, then `think` on the keys it
    /// kept, then what left the residual window is quantized.
    public func endPrefill(ledger: inout IOLedger) {
        guard let end = promptEnd else { return }
        promptEnd = nil
        for layer in 0..<layout.layerCount {
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in
                policy.finishPrefill(layer: layer, heads: heads, promptEnd: end)
            }
        }
        if thinkPending, let think = eviction.think, recorded(atLeast: 1) { storeKeys(pruning: think, ledger: &ledger) }
        for index in 0..<headCount { quantizeLeaving(index: index, ledger: &ledger) }
    }

    public func append(layer: Int, position: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            let count = counts[index]
            precondition(count < capacity, "KV cache capacity exceeded; the engine checks the context length first")
            let pageSlot = pageCounts[index]
            if pageSlot % pageSize == 0 { pageTables[index * pagesPerHead + pageSlot / pageSize] = pool.acquire() }
            let page = pool.pointer(pageTables[index * pagesPerHead + pageSlot / pageSize])
            let lane = pageSlot % pageSize, pageKeys = page
            // The key as stored (Hadamard-transformed for `rotate`) and as scored (after RoPE).
            var key = keys + head * hd, scored = key
            if quant.rotate {
                storedKey.update(from: key, count: hd)
                Hadamard.transform(storedKey, count: hd)
                key = UnsafePointer(storedKey)
            }
            if quant.preRoPE {
                keyScratch.update(from: scored, count: hd)
                ropeAngles!.rotate(keyScratch, position: position)
                scored = UnsafePointer(keyScratch)
            } else {
                scored = key
            }
            if keysPruned {
                // Only the kept channels are stored; the key is scored with zeros in the others
                // (`think` excludes `rotate` and `prerope`, so `key` is as scored).
                let kept = keptChannels + index * hd
                keyScratch.update(repeating: 0, count: hd)
                for j in 0..<keyWidth {
                    let c = Int(kept[j])
                    pageKeys[j * pageSize + lane] = key[c]
                    keyScratch[c] = key[c]
                }
                scored = UnsafePointer(keyScratch)
            } else {
                for c in 0..<hd { pageKeys[c * pageSize + lane] = key[c] }
            }
            let summary = (index * pagesPerHead + count / pageSize) * hd
            let first = count % pageSize == 0
            var norm: Float = 0
            for c in 0..<hd {
                norm += scored[c] * scored[c]
                pageMin[summary + c] = first ? scored[c] : min(pageMin[summary + c], scored[c])
                pageMax[summary + c] = first ? scored[c] : max(pageMax[summary + c], scored[c])
            }
            (page + pageSize * keyWidth + lane * hd).update(from: values + head * hd, count: hd)
            pageCounts[index] = pageSlot + 1
            let e = index * capacity + count
            pageOwners[index * capacity + pageSlot] = Int32(count)
            keyLocations[e] = Int32(pageSlot)
            valueLocations[e] = Int32(pageSlot)
            slotPositions[e] = Int32(position)
            mergeCounts[e] = 1
            receivedScores[e] = 0
            positions[e] = Int32(position)
            policyScores[e] = 0
            history[e] = 0
            keyNorms[e] = norm.squareRoot()
            stepScores[e] = 0
            slots[e] = Int32(count)
            counts[index] = count + 1
        }
        ledger.write(.keys, layout.kvHeadCount * keyWidth * 4)
        ledger.write(.values, layout.kvHeadCount * hd * 4)
        ledger.write(.policyState, layout.kvHeadCount * (4 + policy.stateBytesPerEntry))
        // After every head of the layer has its entry, so a per-tensor fp8 scale sees them all.
        if promptEnd == nil {
            for head in 0..<layout.kvHeadCount { quantizeLeaving(index: layer * layout.kvHeadCount + head, ledger: &ledger) }
        }
    }

    public func attend(layer: Int, position: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim, group = layout.groupSize
        let observing = promptEnd.map { position >= $0 - policy.prefillObservation } ?? false
        let accumulates = quant.mixed != nil
        // threshold decides from last step's scores, so it collects them like a scoring policy.
        let wantsScores = recordsAttention || attentionReference != nil || observing || accumulates
            || (promptEnd == nil && (policy.needsScores || sparse.collectsScores))
        // A prompt runs dense; sparse modes choose what each decode step reads.
        let mode = promptEnd == nil ? sparse.kind : .dense
        if layer == 0 { massSum = 0 }
        // Pruned keys (`think`) are narrower than the tiled kernel's key tiles: they run the naive kernel.
        let tiled = keysPruned ? nil : self.tiled
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            // Slots are in position order until something is evicted, and nothing is during a
            // batched prefill: entries after `position` (later prompt tokens) are not visible.
            var visible = counts[index]
            while visible > 0, Int(slotPositions[index * capacity + visible - 1]) > position { visible -= 1 }
            var q = queries + head * group * hd
            recordQuery(q, layer: layer, head: head)
            if keysPruned {
                let kept = keptChannels + index * hd
                for g in 0..<group {
                    for j in 0..<keyWidth { prunedQueries[g * keyWidth + j] = q[g * hd + Int(kept[j])] }
                }
            }
            if scoresRotated {
                rotatedQueries.update(from: q, count: group * hd)
                for g in 0..<group { Hadamard.transform(rotatedQueries + g * hd, count: hd) }
                q = UnsafePointer(rotatedQueries)
            }
            var read = visible
            keyStore?.beginReads()
            valueStore?.beginReads()
            // The naive kernel materializes scores as it selects; the tiled one scores in its tiles.
            let scoring = tiled == nil
            switch mode {
            case .dense:
                if scoring { scorePages(index: index, queries: q, pages: 0..<((visible + pageSize - 1) / pageSize)) }
            case .topK(let k):
                scorePages(index: index, queries: q, pages: 0..<((visible + pageSize - 1) / pageSize))
                read = keepTopK(k, visible: visible)
            case .quest(let page, let budget):
                read = scoreQuestPages(index: index, queries: q, visible: visible, pagesPerQuestPage: page / pageSize,
                                       questPages: budget / page, scoring: scoring, ledger: &ledger)
            case .threshold(let theta):
                read = scoreAboveThreshold(index: index, queries: q, visible: visible, theta: Float(theta), position: position, scoring: scoring)
            case .blockRetrieval:
                read = scoreRetrieved(index: index, queries: q, visible: visible, position: position, scoring: scoring, ledger: &ledger)
            }
            let out = output + head * group * hd
            if let tiled {
                if isTopK(mode) {
                    // Top-k's selection pass: every key read, its scores kept on chip.
                    countDenseRead(key: true, index: index, visible: visible, ledger: &ledger)
                    ledger.onChip(.scores, group * visible * 8)
                }
                attendTiled(tiled, index: index, queries: q, visible: visible, listed: mode == .dense ? nil : read,
                            masked: isTopK(mode), output: out, probabilities: wantsScores || isRetrieval(mode), ledger: &ledger)
            } else {
                for g in 0..<group { Vector.softmax(probabilities + g * scoreStride, count: visible) }
                if mode == .dense {
                    weightValues(index: index, visible: visible, output: out)
                } else {
                    weightSelectedValues(index: index, count: read, output: out)
                }
                if mode == .dense || isTopK(mode) {
                    countDenseRead(key: true, index: index, visible: visible, ledger: &ledger)
                } else {
                    for n in 0..<read { countRead(key: true, index: index, slot: Int(selectedSlots[n]), ledger: &ledger) }
                }
                if mode == .dense {
                    countDenseRead(key: false, index: index, visible: visible, ledger: &ledger)
                } else {
                    for n in 0..<read { countRead(key: false, index: index, slot: Int(selectedSlots[n]), ledger: &ledger) }
                }
                // Naive attention materializes scores: written, re-read by softmax, re-read by P·V.
                ledger.write(.scores, 2 * group * visible * 4)
                ledger.read(.scores, 2 * group * visible * 4)
            }
            if case .blockRetrieval = mode, let retrieval {
                // Attention received while read picks a block's representatives when it leaves the window.
                for n in 0..<read {
                    let slot = Int(selectedSlots[n])
                    var received: Float = 0
                    for g in 0..<group { received += probabilities[g * scoreStride + slot] }
                    retrieval.addReceived(head: index, position: Int(slotPositions[index * capacity + slot]), received)
                }
            }
            if wantsScores {
                gatherStepScores(index: index, visible: visible, accumulate: accumulates)
                // The tiled kernel's second pass already wrote s_t; naive reads the probabilities back.
                if tiled == nil { ledger.read(.scores, group * visible * 4) }
                if accumulates {
                    ledger.read(.policyState, visible * 4)
                    ledger.write(.policyState, visible * 4)
                }
            }
            if let reference = attentionReference { massSum += reference.attentionMass(layer: layer, head: head, on: self, index: index, visible: visible) }
            if observing {
                let entries = headEntries(index: index, count: visible)
                policy.observePrefill(layer: layer, head: head, entries: entries, queryPosition: position, promptEnd: promptEnd!)
                ledger.read(.policyState, visible * policy.stateBytesPerEntry)
                ledger.write(.policyState, visible * policy.stateBytesPerEntry)
            }
        }
        // The tiled kernel counts its own query and output traffic.
        if tiled == nil {
            ledger.read(.activations, layout.kvHeadCount * group * hd * 4)
            ledger.write(.activations, layout.kvHeadCount * group * hd * 4)
        }
        // The query window `think` scores channels with, kept for every method so that switching
        // think on mid-stream can prune at once; counted as traffic only while think is on (an
        // engine without think would not write it).
        recordedQueries[layer] += 1
        if eviction.think != nil { ledger.write(.activations, layout.kvHeadCount * hd * 4) }
        if attentionReference != nil, layer == layout.layerCount - 1 {
            massKept = massSum / Double(layout.layerCount * layout.kvHeadCount * group)
        }
        if promptEnd == nil {
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in policy.afterAttention(layer: layer, heads: heads) }
            // Without a batched prompt, `think` acts once every layer has seen its window.
            if thinkPending, let think = eviction.think, recorded(atLeast: think.observation) { storeKeys(pruning: think, ledger: &ledger) }
        }
    }

    /// Records the query window of a batched prompt's `count` tokens (only the last
    /// `ThinK.maxObservation` can stay in the ring), as the per-query path records each query.
    private func recordPromptQueries(layer: Int, queries: UnsafePointer<Float>, count: Int, ledger: inout IOLedger) {
        let hd = layout.headDim, tokenStride = layout.kvHeadCount * layout.groupSize * hd
        let kept = min(count, ThinK.maxObservation)
        recordedQueries[layer] += count - kept
        for t in (count - kept)..<count {
            for head in 0..<layout.kvHeadCount { recordQuery(queries + t * tokenStride + head * layout.groupSize * hd, layer: layer, head: head) }
            recordedQueries[layer] += 1
        }
        if eviction.think != nil { ledger.write(.activations, kept * layout.kvHeadCount * hd * 4) }
    }

    /// Records one query group's squares, summed over the group per channel, in the layer's ring
    /// (slot: the queries recorded so far, modulo the ring).
    @inline(__always)
    private func recordQuery(_ q: UnsafePointer<Float>, layer: Int, head: Int) {
        let hd = layout.headDim, ring = ThinK.maxObservation
        let row = querySquares + ((layer * ring + recordedQueries[layer] % ring) * layout.kvHeadCount + head) * hd
        for c in 0..<hd {
            var sum: Float = 0
            for g in 0..<layout.groupSize { sum += q[g * hd + c] * q[g * hd + c] }
            row[c] = sum
        }
    }

    private func isTopK(_ mode: SparseMethod.Kind) -> Bool {
        if case .topK = mode { return true }
        return false
    }

    private func isRetrieval(_ mode: SparseMethod.Kind) -> Bool {
        if case .blockRetrieval = mode { return true }
        return false
    }

    /// Scaled q·k of the query group for every slot of `pages`, each key read once for the whole
    /// group since GQA shares it. fp32 keys: 16 keys per SIMD step, channel by channel (page slot
    /// = slot). Quantized or pre-RoPE keys: slot by slot, each decoded or rotated once.
    private func scorePages(index: Int, queries q: UnsafePointer<Float>, pages: some Sequence<Int>) {
        let hd = layout.headDim
        guard keyStore == nil && !quant.preRoPE else {
            for page in pages {
                for slot in (page * pageSize)..<min(counts[index], (page + 1) * pageSize) {
                    scoreSlot(index: index, queries: q, slot: slot)
                }
            }
            return
        }
        // Locals: the cache's variables are read once, not at every page.
        let table = pageTables + index * pagesPerHead, pool = self.pool, width = keyWidth
        // While keys are pruned, the queries' kept channels (gathered by `attend`).
        let queries = keysPruned ? UnsafePointer(prunedQueries) : q, queryStride = keysPruned ? width : hd
        for page in pages {
            let keys = UnsafeRawPointer(pool.pointer(table[page]))
            for g in 0..<layout.groupSize {
                let query = queries + g * queryStride
                var acc = SIMD16<Float>()
                for c in 0..<width {
                    acc += query[c] * keys.loadUnaligned(fromByteOffset: c * pageSize * 4, as: SIMD16<Float>.self)
                }
                UnsafeMutableRawPointer(probabilities + g * scoreStride + page * pageSize).storeBytes(of: acc * scale, as: SIMD16<Float>.self)
            }
        }
    }

    /// Sets every visible score of the group to a value softmax turns into 0.
    private func maskScores(visible: Int) {
        for g in 0..<layout.groupSize { (probabilities + g * scoreStride).update(repeating: Self.masked, count: visible) }
    }

    private static let masked = -Float.greatestFiniteMagnitude

    /// topk: each query head keeps its `k` best scores; returns how many slots any head kept
    /// (listed in `selectedSlots`, the values P·V then reads).
    private func keepTopK(_ k: Int, visible: Int) -> Int {
        guard k < visible else {
            for i in 0..<visible { selectedSlots[i] = Int32(i) }
            return visible
        }
        for i in 0..<visible { selectedMarks[i] = false }
        for g in 0..<layout.groupSize {
            let row = probabilities + g * scoreStride
            sortScratch.update(from: row, count: visible)
            let kth = Self.kthLargest(sortScratch, count: visible, k: k)
            var above = 0
            for i in 0..<visible where row[i] > kth { above += 1 }
            // Ties at the k-th score keep the older slots, so exactly k survive.
            var ties = k - above
            for i in 0..<visible {
                if row[i] > kth || (row[i] == kth && ties > 0) {
                    if row[i] == kth { ties -= 1 }
                    selectedMarks[i] = true
                } else {
                    row[i] = Self.masked
                }
            }
        }
        var n = 0
        for i in 0..<visible where selectedMarks[i] {
            selectedSlots[n] = Int32(i)
            n += 1
        }
        return n
    }

    /// The k-th largest of `count` values (1-based), by in-place quickselect: the standard
    /// library's sort allocates, and decode steps must not.
    static func kthLargest(_ values: UnsafeMutablePointer<Float>, count: Int, k: Int) -> Float {
        var low = 0, high = count - 1
        let target = k - 1
        while low < high {
            let pivot = values[(low + high) / 2]
            var i = low, j = high
            while i <= j {
                while values[i] > pivot { i += 1 }
                while values[j] < pivot { j -= 1 }
                if i <= j {
                    (values[i], values[j]) = (values[j], values[i])
                    i += 1
                    j -= 1
                }
            }
            if target <= j { high = j } else if target >= i { low = i } else { break }
        }
        return values[target]
    }

    /// Quest: bound each page's best score by its keys' channel-wise min and max, score only the
    /// top pages (and the newest one) unless the tiled kernel scores them (`scoring` false);
    /// returns the slots read, listed in `selectedSlots`.
    private func scoreQuestPages(index: Int, queries q: UnsafePointer<Float>, visible: Int, pagesPerQuestPage: Int,
                                 questPages: Int, scoring: Bool, ledger: inout IOLedger) -> Int {
        let hd = layout.headDim
        let physicalPages = (visible + pageSize - 1) / pageSize
        let groups = (physicalPages + pagesPerQuestPage - 1) / pagesPerQuestPage
        if scoring { maskScores(visible: visible) }
        guard groups > 0 else { return 0 }
        for quest in 0..<groups {
            var bound = -Float.infinity
            for page in (quest * pagesPerQuestPage)..<min(physicalPages, (quest + 1) * pagesPerQuestPage) {
                let lo = pageMin + (index * pagesPerHead + page) * hd, hi = pageMax + (index * pagesPerHead + page) * hd
                var sum: Float = 0
                for g in 0..<layout.groupSize {
                    let query = q + g * hd
                    for c in 0..<hd { sum += max(query[c] * lo[c], query[c] * hi[c]) }
                }
                bound = max(bound, sum)
            }
            sortScratch[quest] = bound
        }
        ledger.read(.policyState, physicalPages * 2 * hd * 4)
        // The newest page always; then the best bounds (ties: the older page).
        let newest = groups - 1
        for quest in 0..<groups { selectedMarks[quest] = quest == newest }
        var chosen = 1
        while chosen < min(questPages + 1, groups) {
            var best = -1
            for quest in 0..<groups where !selectedMarks[quest] && (best < 0 || sortScratch[quest] > sortScratch[best]) { best = quest }
            selectedMarks[best] = true
            chosen += 1
        }
        var n = 0
        for quest in 0..<groups where selectedMarks[quest] {
            let pages = (quest * pagesPerQuestPage)..<min(physicalPages, (quest + 1) * pagesPerQuestPage)
            if scoring { scorePages(index: index, queries: q, pages: pages) }
            for slot in (pages.lowerBound * pageSize)..<min(visible, pages.upperBound * pageSize) {
                selectedSlots[n] = Int32(slot)
                n += 1
            }
        }
        // Lanes past the last visible slot of the newest page are not entries.
        for g in 0..<layout.groupSize where scoring {
            for slot in visible..<(physicalPages * pageSize) { probabilities[g * scoreStride + slot] = Self.masked }
        }
        return n
    }

    /// Block retrieval: the sinks and the local window always; of the past blocks, the `top` whose
    /// representative keys score highest (group-summed q·k, best representative). A block not in
    /// the HBM block cache is fetched from host DRAM (counted on the DRAM→HBM link). The chosen
    /// entries are scored unless the tiled kernel scores them (`scoring` false).
    private func scoreRetrieved(index: Int, queries q: UnsafePointer<Float>, visible: Int, position: Int,
                                scoring: Bool, ledger: inout IOLedger) -> Int {
        guard let retrieval, case .blockRetrieval(_, let reps, let top, _, _, _) = sparse.kind else { return 0 }
        let hd = layout.headDim, base = index * capacity
        let kept = positions + base
        if scoring { maskScores(visible: visible) }
        retrieval.beginStep()
        retrieval.formBlocks(head: index, at: position, kept: kept, count: visible)
        func groupScore(slot: Int) -> Float {
            let key = key(index: index, slot: slot)
            var sum: Float = 0
            for g in 0..<layout.groupSize {
                let query = q + g * hd
                var dot: Float = 0
                for c in 0..<hd { dot += query[c] * key[c] }
                sum += dot
            }
            return sum * scale
        }
        // Logical index of a kept position (entries are in position order), or nil if evicted.
        func find(_ position: Int32) -> Int? {
            var low = 0, high = visible
            while low < high {
                let mid = (low + high) / 2
                if kept[mid] < position { low = mid + 1 } else { high = mid }
            }
            return low < visible && kept[low] == position ? low : nil
        }
        let past = retrieval.pastBlocks(at: position)
        for b in 0..<past {
            let representatives = retrieval.representatives(head: index, block: b)
            var best = -Float.infinity
            for r in 0..<reps where representatives[r] >= 0 {
                guard let i = find(representatives[r]) else { continue }
                let slot = Int(slots[base + i])
                best = max(best, groupScore(slot: slot))
                countRead(key: true, index: index, slot: slot, ledger: &ledger)
            }
            sortScratch[b] = best
            selectedMarks[b] = false
        }
        // The best blocks with any representative left; ties go to the older block.
        for _ in 0..<min(top, past) {
            var choice = -1
            for b in 0..<past where !selectedMarks[b] && sortScratch[b] > -Float.infinity
                && (choice < 0 || sortScratch[b] > sortScratch[choice]) { choice = b }
            guard choice >= 0 else { break }
            selectedMarks[choice] = true
        }
        var n = 0
        for i in 0..<visible {
            let p = Int(kept[i])
            let slot = Int(slots[base + i])
            if !retrieval.alwaysRead(p, at: position) {
                let b = retrieval.block(of: p)!
                guard selectedMarks[b] else { continue }
                // First member of a chosen block this step: a miss brings every kept member over.
                if sortScratch[b] != .infinity {
                    sortScratch[b] = .infinity
                    if retrieval.touch(head: index, block: b) {
                        var keyBytes = 0, valueBytes = 0
                        for j in i..<visible where retrieval.block(of: Int(kept[j])) == b {
                            keyBytes += storedBytes(key: true, index: index, slot: Int(slots[base + j]))
                            valueBytes += storedBytes(key: false, index: index, slot: Int(slots[base + j]))
                        }
                        ledger.fetch(.keys, keyBytes)
                        ledger.fetch(.values, valueBytes)
                    }
                }
            }
            if scoring { scoreSlot(index: index, queries: q, slot: slot) }
            selectedSlots[n] = Int32(slot)
            n += 1
        }
        return n
    }

    /// Scaled q·k of each query head of the group for one slot (read or decoded once).
    private func scoreSlot(index: Int, queries q: UnsafePointer<Float>, slot: Int) {
        let hd = layout.headDim
        let key = key(index: index, slot: slot)
        for g in 0..<layout.groupSize {
            let query = q + g * hd
            var dot: Float = 0
            for c in 0..<hd { dot += query[c] * key[c] }
            probabilities[g * scoreStride + slot] = dot * scale
        }
    }

    /// Bytes one slot's key or value occupies as stored: fp32, or its share of a record.
    private func storedBytes(key: Bool, index: Int, slot: Int) -> Int {
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        guard location < 0, let store = key ? keyStore : valueStore else { return (key ? keyWidth : layout.headDim) * 4 }
        return store.storedBytes(code: -1 - location)
    }

    /// threshold: read only entries whose `s_t` last step reached `theta` (and the new entry),
    /// scored here unless the tiled kernel scores them (`scoring` false).
    private func scoreAboveThreshold(index: Int, queries q: UnsafePointer<Float>, visible: Int, theta: Float, position: Int,
                                     scoring: Bool) -> Int {
        let base = index * capacity
        if scoring { maskScores(visible: visible) }
        var n = 0
        for i in 0..<visible where stepScores[base + i] >= theta || Int(positions[base + i]) == position {
            let slot = Int(slots[base + i])
            if scoring { scoreSlot(index: index, queries: q, slot: slot) }
            selectedSlots[n] = Int32(slot)
            n += 1
        }
        return n
    }

    /// P·V over every visible slot. fp32 values: up to 32 channels of the output at a time kept in
    /// registers (four 8-channel slices), so each page's value rows are read once per 32 channels
    /// (page slot = slot); each channel sums its slots in order. Quantized values: slot by slot,
    /// each decoded once.
    private func weightValues(index: Int, visible: Int, output: UnsafeMutablePointer<Float>) {
        guard valueStore == nil else { return accumulateValues(index: index, count: visible, output: output) { $0 } }
        let hd = layout.headDim
        let table = pageTables + index * pagesPerHead, pool = self.pool, valueOffset = pageSize * keyWidth
        for g in 0..<layout.groupSize {
            let p = probabilities + g * scoreStride
            let out = output + g * hd
            for block in stride(from: 0, to: hd, by: 32) {
                // Whole 8-channel slices of this block, then single channels past the last one.
                let slices = min(32, hd - block) / 8, single = slices < 4 ? min(32, hd - block) - slices * 8 : 0
                var a0 = SIMD8<Float>(), a1 = a0, a2 = a0, a3 = a0, rest = a0
                var first = 0, page = 0
                while first < visible {
                    let values = UnsafeRawPointer(pool.pointer(table[page]) + valueOffset + block)
                    for slot in 0..<min(pageSize, visible - first) {
                        let weight = p[first + slot], row = slot * hd * 4
                        if slices == 4 {
                            a0 += weight * values.loadUnaligned(fromByteOffset: row, as: SIMD8<Float>.self)
                            a1 += weight * values.loadUnaligned(fromByteOffset: row + 32, as: SIMD8<Float>.self)
                            a2 += weight * values.loadUnaligned(fromByteOffset: row + 64, as: SIMD8<Float>.self)
                            a3 += weight * values.loadUnaligned(fromByteOffset: row + 96, as: SIMD8<Float>.self)
                        } else {
                            if slices > 0 { a0 += weight * values.loadUnaligned(fromByteOffset: row, as: SIMD8<Float>.self) }
                            if slices > 1 { a1 += weight * values.loadUnaligned(fromByteOffset: row + 32, as: SIMD8<Float>.self) }
                            if slices > 2 { a2 += weight * values.loadUnaligned(fromByteOffset: row + 64, as: SIMD8<Float>.self) }
                            for c in 0..<single { rest[c] += weight * values.load(fromByteOffset: row + (slices * 8 + c) * 4, as: Float.self) }
                        }
                    }
                    first += pageSize
                    page += 1
                }
                let o = UnsafeMutableRawPointer(out + block)
                if slices > 0 { o.storeBytes(of: a0, as: SIMD8<Float>.self) }
                if slices > 1 { o.storeBytes(of: a1, toByteOffset: 32, as: SIMD8<Float>.self) }
                if slices > 2 { o.storeBytes(of: a2, toByteOffset: 64, as: SIMD8<Float>.self) }
                if slices > 3 { o.storeBytes(of: a3, toByteOffset: 96, as: SIMD8<Float>.self) }
                for c in 0..<single { out[block + slices * 8 + c] = rest[c] }
            }
        }
    }

    /// P·V over the slots in `selectedSlots` only (what a sparse mode reads).
    private func weightSelectedValues(index: Int, count: Int, output: UnsafeMutablePointer<Float>) {
        accumulateValues(index: index, count: count, output: output) { Int(self.selectedSlots[$0]) }
    }

    /// P·V over the slots `slot(0) … slot(count − 1)`, each value read (or decoded) once for the group.
    @inline(__always)
    private func accumulateValues(index: Int, count: Int, output out: UnsafeMutablePointer<Float>, slot: (Int) -> Int) {
        let hd = layout.headDim
        out.update(repeating: 0, count: layout.groupSize * hd)
        for n in 0..<count {
            let s = slot(n)
            let value = value(index: index, slot: s)
            for g in 0..<layout.groupSize {
                let weight = probabilities[g * scoreStride + s]
                let o = out + g * hd
                for c in 0..<hd { o[c] += weight * value[c] }
            }
        }
    }

    /// `s_t(j) = Σ_h p_h(j)` over the query group, in position order; `accumulate` also adds it
    /// to each slot's received score (`mixed`).
    private func gatherStepScores(index: Int, visible: Int, accumulate: Bool) {
        let out = stepScores + index * capacity
        let slotOf = slots + index * capacity
        let received = receivedScores + index * capacity
        for i in 0..<visible {
            let slot = Int(slotOf[i])
            var sum: Float = 0
            for g in 0..<layout.groupSize { sum += probabilities[g * scoreStride + slot] }
            out[i] = sum
            if accumulate { received[slot] += sum }
        }
    }

    /// Share of the last step's attention in `layer` that went to position 0 (the first token,
    /// where attention sinks form), averaged over query heads; needs `recordsAttention`.
    public func attentionOnFirstToken(layer: Int) -> Double {
        var sum: Float = 0
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            if counts[index] > 0, positions[index * capacity] == 0 { sum += stepScores[index * capacity] }
        }
        return Double(sum) / Double(layout.kvHeadCount * layout.groupSize)
    }

    /// The reference's last `s_t` summed over the positions `other` attended in one head.
    private func attentionMass(layer: Int, head: Int, on other: PagedKVCache, index otherIndex: Int, visible: Int) -> Double {
        let index = layer * layout.kvHeadCount + head
        let count = counts[index]
        let mine = positions + index * capacity
        let theirs = other.positions + otherIndex * other.capacity
        // Both lists are in position order: one merge pass.
        var i = 0, sum: Float = 0
        for j in 0..<visible {
            let p = theirs[j]
            while i < count, mine[i] < p { i += 1 }
            if i < count, mine[i] == p { sum += stepScores[index * capacity + i] }
        }
        return Double(sum)
    }

    private func headEntries(index: Int, count: Int) -> HeadEntries {
        let base = index * capacity
        return HeadEntries(count: count, groupSize: layout.groupSize, positions: positions + base, scores: policyScores + base,
                           history: history + base, keyNorms: keyNorms + base, stepScores: stepScores + base,
                           slots: slots + base, released: released + (index % layout.kvHeadCount) * capacity)
    }

    /// Runs a policy hook on one layer's heads, then frees what it evicted.
    private func applyPolicy(layer: Int, ledger: inout IOLedger,
                             _ hook: (any EvictionPolicy, Int, UnsafeMutableBufferPointer<HeadEntries>) -> Void) {
        var total = 0
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            heads[head] = headEntries(index: index, count: counts[index])
            total += counts[index]
        }
        hook(policy, layer, heads)
        ledger.read(.policyState, total * policy.stateBytesPerEntry)
        ledger.write(.policyState, total * policy.stateBytesPerEntry)
        for head in 0..<layout.kvHeadCount {
            reclaim(index: layer * layout.kvHeadCount + head, entries: heads[head], ledger: &ledger)
        }
    }

    /// Frees the storage of the slots a policy released (merging first when asked) and refills
    /// each with the last slot.
    private func reclaim(index: Int, entries: HeadEntries, ledger: inout IOLedger) {
        guard entries.releasedCount > 0 else { return }
        let base = index * capacity
        // Highest slot first: each freed slot is then refilled from a tail slot that is live.
        let freed = UnsafeMutableBufferPointer(start: entries.released, count: entries.releasedCount)
        freed.insertionSort(by: >)
        if eviction.merge { for slot in freed { merge(slot: Int(slot), index: index, entries: entries, ledger: &ledger) } }
        var count = counts[index]
        for freedSlot in freed {
            let slot = Int(freedSlot), last = count - 1
            release(index: index, slot: slot, slotsInUse: count, ledger: &ledger)
            if slot != last {
                let from = base + last, to = base + slot
                slotPositions[to] = slotPositions[from]
                keyLocations[to] = keyLocations[from]
                valueLocations[to] = valueLocations[from]
                mergeCounts[to] = mergeCounts[from]
                receivedScores[to] = receivedScores[from]
                let pageSlot = Int(max(keyLocations[to], valueLocations[to]))
                if pageSlot >= 0 { pageOwners[base + pageSlot] = Int32(slot) }
                for i in 0..<entries.count where slots[base + i] == Int32(last) {
                    slots[base + i] = Int32(slot)
                    break
                }
            }
            count -= 1
            if count % pageSize != 0 { summarize(index: index, page: last / pageSize, count: count) }
            if slot < count { summarize(index: index, page: slot / pageSize, count: count) }
        }
        counts[index] = count
    }

    /// Frees what one slot stores: its record members and its page slot.
    private func release(index: Int, slot: Int, slotsInUse: Int, ledger: inout IOLedger) {
        let key = Int(keyLocations[index * capacity + slot]), value = Int(valueLocations[index * capacity + slot])
        if key < 0 { removeMember(-1 - key, store: keyStore!, locations: keyLocations, index: index, slotsInUse: slotsInUse, ledger: &ledger) }
        if value < 0 { removeMember(-1 - value, store: valueStore!, locations: valueLocations, index: index, slotsInUse: slotsInUse, ledger: &ledger) }
        if key >= 0 || value >= 0 { releasePageSlot(index: index, max(key, value), ledger: &ledger) }
    }

    /// Drops a record member; when its record empties and the last record moves into its place,
    /// the slots below `slotsInUse` holding members of the moved record are re-pointed.
    private func removeMember(_ code: Int, store: QuantizedKVStore, locations: UnsafeMutablePointer<Int32>, index: Int,
                              slotsInUse: Int, ledger: inout IOLedger) {
        let tokens = store.tokens, base = index * capacity
        store.remove(index: index, code: code, ledger: &ledger) { from, to in
            for s in base..<(base + slotsInUse) where locations[s] < 0 && Int(-1 - locations[s]) / tokens == from {
                locations[s] = Int32(-1 - (to * tokens + Int(-1 - locations[s]) % tokens))
            }
        }
    }

    /// Frees page slot `pageSlot`, refilled by the last page slot (whose slot is re-pointed).
    private func releasePageSlot(index: Int, _ pageSlot: Int, ledger: inout IOLedger) {
        let hd = layout.headDim
        let table = pageTables + index * pagesPerHead
        let last = pageCounts[index] - 1
        if pageSlot != last {
            let from = pool.pointer(table[last / pageSize]), to = pool.pointer(table[pageSlot / pageSize])
            let a = last % pageSize, b = pageSlot % pageSize
            for c in 0..<keyWidth { to[c * pageSize + b] = from[c * pageSize + a] }
            (to + pageSize * keyWidth + b * hd).update(from: from + pageSize * keyWidth + a * hd, count: hd)
            let owner = pageOwners[index * capacity + last]
            pageOwners[index * capacity + pageSlot] = owner
            let slot = index * capacity + Int(owner)
            // Only live halves count as traffic; a dead half moves along unread.
            if keyLocations[slot] == Int32(last) {
                keyLocations[slot] = Int32(pageSlot)
                ledger.read(.keys, keyWidth * 4)
                ledger.write(.keys, keyWidth * 4)
            }
            if valueLocations[slot] == Int32(last) {
                valueLocations[slot] = Int32(pageSlot)
                ledger.read(.values, hd * 4)
                ledger.write(.values, hd * 4)
            }
        }
        pageCounts[index] = last
        if last % pageSize == 0 { pool.release(table[last / pageSize]) }
    }

    /// Quantizes, tensor by tensor, the oldest fp32 entries of one head beyond the residual window,
    /// a record's worth at a time.
    private func quantizeLeaving(index: Int, ledger: inout IOLedger) {
        if let store = keyStore { quantizeLeaving(index: index, store: store, locations: keyLocations, ledger: &ledger) }
        if let store = valueStore { quantizeLeaving(index: index, store: store, locations: valueLocations, ledger: &ledger) }
    }

    private func quantizeLeaving(index: Int, store: QuantizedKVStore, locations: UnsafeMutablePointer<Int32>, ledger: inout IOLedger) {
        let hd = store.headDim, base = index * capacity, tokens = store.tokens
        let isKey = store === keyStore
        var touched = 0
        defer {
            for t in 0..<touched {
                let page = Int(touchedPages[t])
                pageMarks[page] = false
                summarize(index: index, page: page, count: counts[index])
            }
        }
        // Protected sinks stay fp32, ahead of the quantized entries.
        var sinks = 0
        while sinks < counts[index], Int(positions[base + sinks]) < quant.protectedSinks { sinks += 1 }
        while counts[index] - quant.residual - sinks - store.quantizedCounts[index] >= tokens {
            // fp8 scales and nuq levels are calibrated when their scope's first entries leave the
            // window, from every vector held at fp32 in the scope then: the leaving entries and the
            // window (with a batched prompt, the whole prompt: nuq fits on the prompt's keys and
            // values; without one, on the first entries to be quantized and the window after them).
            // Later fp8 values beyond the scale saturate.
            if store.needsCalibration(index: index) {
                var n = 0
                for (h, head) in store.scopeHeads(index: index).enumerated() {
                    let first = n
                    for i in 0..<counts[head] {
                        let slot = Int(slots[head * capacity + i])
                        guard locations[head * capacity + slot] >= 0 else { continue }
                        (store.sample + n * hd).update(from: pageVector(index: head, slot: slot, key: isKey), count: hd)
                        n += 1
                    }
                    store.sampleEntries[h] = n - first
                }
                store.calibrate(index: index)
            }
            let first = sinks + store.quantizedCounts[index]
            for m in 0..<tokens {
                (store.staging + m * hd).update(from: pageVector(index: index, slot: Int(slots[base + first + m]), key: isKey), count: hd)
                ledger.read(store.buffer, hd * 4)
            }
            // mixed: the high lane if any entry of the record received enough attention.
            var lane = 0
            if let mixed = quant.mixed {
                lane = 1
                for m in 0..<tokens where receivedScores[base + Int(slots[base + first + m])] >= Float(mixed.threshold) { lane = 0 }
            }
            let record = store.add(index: index, lane: lane, ledger: &ledger)
            for m in 0..<tokens {
                let slot = Int(slots[base + first + m])
                let pageSlot = Int(locations[base + slot])
                locations[base + slot] = Int32(-1 - (record * tokens + m))
                if keyLocations[base + slot] < 0 && valueLocations[base + slot] < 0 { releasePageSlot(index: index, pageSlot, ledger: &ledger) }
                // Quest's page bounds must hold for the decoded keys.
                if isKey && !pageMarks[slot / pageSize] {
                    pageMarks[slot / pageSize] = true
                    touchedPages[touched] = Int32(slot / pageSize)
                    touched += 1
                }
            }
        }
    }

    /// The fp32 key (its `keyWidth` stored channels, gathered into `keyScratch`) or value (in its
    /// page) of a slot held in a page.
    @inline(__always)
    private func pageVector(index: Int, slot: Int, key: Bool) -> UnsafePointer<Float> {
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        let page = pool.pointer(pageTables[index * pagesPerHead + location / pageSize]), lane = location % pageSize
        guard key else { return UnsafePointer(page + pageSize * keyWidth + lane * layout.headDim) }
        for c in 0..<keyWidth { keyScratch[c] = page[c * pageSize + lane] }
        return UnsafePointer(keyScratch)
    }

    /// A slot's key as attention scores it: gathered from its page or decoded into `keyScratch`,
    /// spread over every channel (zero in the pruned ones) while `think` has keys pruned, then,
    /// when stored before RoPE, brought back from the Hadamard frame and rotated to its position.
    @inline(__always)
    private func key(index: Int, slot: Int) -> UnsafePointer<Float> {
        let location = Int(keyLocations[index * capacity + slot])
        if location < 0 {
            keyStore!.decode(index: index, code: -1 - location, into: keyScratch)
        } else {
            _ = pageVector(index: index, slot: slot, key: true)
        }
        if keysPruned {
            // Kept channels ascend, so channel j's value moves up to kept[j] ≥ j: from the top down
            // nothing is overwritten before it is read.
            let kept = keptChannels + index * layout.headDim
            var j = keyWidth - 1
            for c in stride(from: layout.headDim - 1, through: 0, by: -1) {
                if j >= 0, Int(kept[j]) == c {
                    keyScratch[c] = keyScratch[j]
                    j -= 1
                } else {
                    keyScratch[c] = 0
                }
            }
        }
        if quant.preRoPE {
            if quant.rotate { Hadamard.transform(keyScratch, count: layout.headDim) }
            ropeAngles!.rotate(keyScratch, position: Int(slotPositions[index * capacity + slot]))
        }
        return UnsafePointer(keyScratch)
    }

    /// A slot's value as attention reads it: in its page, or decoded into `valueScratch`.
    @inline(__always)
    private func value(index: Int, slot: Int) -> UnsafePointer<Float> {
        let location = Int(valueLocations[index * capacity + slot])
        guard location < 0 else { return pageVector(index: index, slot: slot, key: false) }
        valueStore!.decode(index: index, code: -1 - location, into: valueScratch)
        return UnsafePointer(valueScratch)
    }

    /// Stores a new key (as scored) or value for a slot: into its page, or by re-encoding its record.
    private func write(_ vector: UnsafePointer<Float>, key: Bool, index: Int, slot: Int, ledger: inout IOLedger) {
        let hd = layout.headDim
        var vector = vector
        if key && keysPruned {
            let kept = keptChannels + index * hd
            for j in 0..<keyWidth { storedKey[j] = vector[Int(kept[j])] }
            vector = UnsafePointer(storedKey)
        }
        if key && quant.preRoPE {
            storedKey.update(from: vector, count: hd)
            ropeAngles!.rotate(storedKey, position: Int(slotPositions[index * capacity + slot]), inverse: true)
            if quant.rotate { Hadamard.transform(storedKey, count: hd) }
            vector = UnsafePointer(storedKey)
        }
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        guard location >= 0 else {
            (key ? keyStore : valueStore)!.rewrite(index: index, code: -1 - location, with: vector, ledger: &ledger)
            return
        }
        let page = pool.pointer(pageTables[index * pagesPerHead + location / pageSize]), lane = location % pageSize
        if key {
            for c in 0..<keyWidth { page[c * pageSize + lane] = vector[c] }
        } else {
            (page + pageSize * keyWidth + lane * hd).update(from: vector, count: hd)
        }
        ledger.write(key ? .keys : .values, (key ? keyWidth : hd) * 4)
    }

    /// Counts reading one slot's key or value: fp32 bytes, or its record once per read pass.
    @inline(__always)
    private func countRead(key: Bool, index: Int, slot: Int, ledger: inout IOLedger) {
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        if location >= 0 {
            ledger.read(key ? .keys : .values, (key ? keyWidth : layout.headDim) * 4)
        } else {
            (key ? keyStore : valueStore)!.countRead(index: index, code: -1 - location, ledger: &ledger)
        }
    }

    /// Counts a dense pass over the `visible` slots: their fp32 halves and every record (all
    /// quantized entries are older than any entry a prefill hides).
    private func countDenseRead(key: Bool, index: Int, visible: Int, ledger: inout IOLedger) {
        let store = key ? keyStore : valueStore
        ledger.read(key ? .keys : .values, (visible - (store?.quantizedCounts[index] ?? 0)) * (key ? keyWidth : layout.headDim) * 4)
        store?.countReadAll(index: index, ledger: &ledger)
    }

    /// Recomputes one page's key min/max over its live slots (keys as attention reads them).
    private func summarize(index: Int, page: Int, count: Int) {
        let hd = layout.headDim
        let lanes = min(pageSize, count - page * pageSize)
        guard lanes > 0 else { return }
        let lo = pageMin + (index * pagesPerHead + page) * hd, hi = pageMax + (index * pagesPerHead + page) * hd
        let first = key(index: index, slot: page * pageSize)
        lo.update(from: first, count: hd)
        hi.update(from: first, count: hd)
        for lane in 1..<lanes {
            let key = key(index: index, slot: page * pageSize + lane)
            for c in 0..<hd {
                lo[c] = min(lo[c], key[c])
                hi[c] = max(hi[c], key[c])
            }
        }
    }

    /// CaM/D2O merge: the evicted entry in `slot` is averaged into the kept entry whose key is
    /// most cosine-similar, weighted by how many entries that one already holds. A quantized
    /// target's record is re-encoded with the merged vectors.
    private func merge(slot: Int, index: Int, entries: HeadEntries, ledger: inout IOLedger) {
        guard entries.count > 0 else { return }
        let hd = layout.headDim, base = index * capacity
        keyStore?.beginReads()
        valueStore?.beginReads()
        mergeKey.update(from: key(index: index, slot: slot), count: hd)
        countRead(key: true, index: index, slot: slot, ledger: &ledger)
        var evictedNorm: Float = 0
        for c in 0..<hd { evictedNorm += mergeKey[c] * mergeKey[c] }
        evictedNorm = evictedNorm.squareRoot()
        var best = 0, bestSimilarity = -Float.infinity
        for i in 0..<entries.count {
            let s = Int(slots[base + i])
            let key = key(index: index, slot: s)
            countRead(key: true, index: index, slot: s, ledger: &ledger)
            var dot: Float = 0
            for c in 0..<hd { dot += key[c] * mergeKey[c] }
            let similarity = dot / max(keyNorms[base + i] * evictedNorm, .leastNormalMagnitude)
            if similarity > bestSimilarity {
                best = i
                bestSimilarity = similarity
            }
        }
        let target = Int(slots[base + best])
        let n = mergeCounts[base + target]
        let targetKey = key(index: index, slot: target)
        var norm: Float = 0
        for c in 0..<hd {
            mergeKey[c] = (n * targetKey[c] + mergeKey[c]) / (n + 1)
            norm += mergeKey[c] * mergeKey[c]
        }
        mergeValue.update(from: value(index: index, slot: slot), count: hd)
        let targetValue = value(index: index, slot: target)
        for c in 0..<hd { mergeValue[c] = (n * targetValue[c] + mergeValue[c]) / (n + 1) }
        countRead(key: false, index: index, slot: slot, ledger: &ledger)
        countRead(key: false, index: index, slot: target, ledger: &ledger)
        write(mergeKey, key: true, index: index, slot: target, ledger: &ledger)
        write(mergeValue, key: false, index: index, slot: target, ledger: &ledger)
        keyNorms[base + best] = norm.squareRoot()
        mergeCounts[base + target] = n + 1
        summarize(index: index, page: target / pageSize, count: counts[index])
    }

    // MARK: - Batched and tiled attention

    /// The tiled kernel's scratch for `kernel` (tiles of at most a head's `entries`); nil for naive.
    private static func tiledAttention(for kernel: AttentionKernel, layout: KVLayout, entries: Int) -> TiledAttention? {
        guard case .tiled(let bytes) = kernel else { return nil }
        return TiledAttention(sramBytes: bytes, headDim: layout.headDim, maxEntries: entries, rows: layout.groupSize)
    }

    /// Most floats of scores naive batched attention materializes at once (64 MiB): longer
    /// prompts run in chunks of query tokens, each reading the keys and values again.
    static let naiveScoreFloats = 1 << 24

    /// The layout of naive batched attention's scratch for a head of up to `entries` entries:
    /// gathered keys, transposed values, then the score rows of one chunk of query tokens.
    struct NaiveScratch {
        let entries: Int
        /// Score row stride (whole 16-lane chunks, as softmax needs).
        let rowStride: Int
        let chunkTokens: Int
        let floats: Int

        init(tokens: Int, group: Int, headDim: Int, entries: Int) {
            self.entries = entries
            rowStride = (entries + 15) / 16 * 16
            chunkTokens = max(1, min(tokens, PagedKVCache.naiveScoreFloats / (group * rowStride)))
            floats = 2 * entries * headDim + chunkTokens * group * rowStride
        }
    }

    /// Causal attention of a prompt's queries (`positions.count` tokens × `headCount × headDim`,
    /// their entries appended, inside a batched prefill) in one pass per KV head: the naive kernel
    /// materializes the scores of all queries (keys and values read once, scores and probabilities
    /// written and read back), the tiled one runs query blocks against key/value tiles. Queries
    /// whose attention the method needs (the observation window, `mixed`'s received scores, the
    /// last one for a cache that records attention) then get their probabilities and the policy's
    /// prefill hook, in position order.
    public func attend(layer: Int, positions: Range<Int>, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                       ledger: inout IOLedger) {
        guard let end = promptEnd else { preconditionFailure("batched attention runs inside a prefill (beginPrefill)") }
        // Pruned keys (`think` already acted) are read through the per-query path.
        if keysPruned {
            let tokenStride = layout.kvHeadCount * layout.groupSize * layout.headDim
            for t in 0..<positions.count {
                attend(layer: layer, position: positions.lowerBound + t, queries: queries + t * tokenStride,
                       output: output + t * tokenStride, ledger: &ledger)
            }
            return
        }
        let hd = layout.headDim, group = layout.groupSize, n = positions.count, rows = n * group
        let tokenStride = layout.kvHeadCount * group * hd
        let accumulates = quant.mixed != nil
        let recordsLast = recordsAttention || attentionReference != nil
        // One allocation for the call: each head's queries and output, and naive's gathered keys,
        // transposed values and scores (sized for the head with the most entries).
        var most = 0
        for head in 0..<layout.kvHeadCount { most = max(most, counts[layer * layout.kvHeadCount + head]) }
        recordPromptQueries(layer: layer, queries: queries, count: n, ledger: &ledger)
        let naive = NaiveScratch(tokens: n, group: group, headDim: hd, entries: most)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * rows * hd + (tiled == nil ? naive.floats : 0))
        defer { scratch.deallocate() }
        let headQueries = scratch, headOutput = scratch + rows * hd
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            // The prompt's entries are the head's last `n` slots, in position order.
            let count = counts[index], first = count - n
            precondition(first >= 0 && Int(slotPositions[index * capacity + first]) == positions.lowerBound
                         && Int(slotPositions[index * capacity + count - 1]) == positions.upperBound - 1,
                         "batched attention needs the prompt's entries appended in order")
            for t in 0..<n {
                let row = headQueries + t * group * hd
                row.update(from: queries + t * tokenStride + head * group * hd, count: group * hd)
                if scoresRotated { for g in 0..<group { Hadamard.transform(row + g * hd, count: hd) } }
            }
            let causal = CausalRows(group: group, firstVisible: first + 1)
            // After a query's probabilities are in `probabilities`: its s_t, then the policy's hook.
            let observed: (Int) -> Bool = { t in positions.lowerBound + t >= end - self.policy.prefillObservation }
            let needed: (Int) -> Bool = { t in accumulates || observed(t) || (recordsLast && t == n - 1) }
            func finish(_ t: Int, ledger: inout IOLedger) {
                let visible = causal.visible(t * group)
                gatherStepScores(index: index, visible: visible, accumulate: accumulates)
                if accumulates {
                    ledger.read(.policyState, visible * 4)
                    ledger.write(.policyState, visible * 4)
                }
                if observed(t) {
                    policy.observePrefill(layer: layer, head: head, entries: headEntries(index: index, count: visible),
                                          queryPosition: positions.lowerBound + t, promptEnd: end)
                    ledger.read(.policyState, visible * policy.stateBytesPerEntry)
                    ledger.write(.policyState, visible * policy.stateBytesPerEntry)
                }
            }
            if let tiled {
                prefillTiled(tiled, index: index, rows: rows, queries: headQueries, output: headOutput, causal: causal,
                             needed: needed, finish: finish, ledger: &ledger)
            } else {
                prefillNaive(index: index, tokens: n, queries: headQueries, output: headOutput, causal: causal,
                             scratch: naive, at: headOutput + rows * hd, needed: needed, finish: finish, ledger: &ledger)
            }
            for t in 0..<n {
                (output + t * tokenStride + head * group * hd).update(from: headOutput + t * group * hd, count: group * hd)
            }
        }
    }

    /// Naive batched attention of one KV head: keys (row-major) and values (transposed) gathered,
    /// S = Q·Kᵀ and O = P·V as BLAS products, softmax over each row's causal prefix (the rest of
    /// the row zeroed). Traffic per chunk of queries: K and V once; scores written by the product,
    /// read and rewritten as probabilities by softmax, read by P·V.
    private func prefillNaive(index: Int, tokens n: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                              causal: CausalRows, scratch: NaiveScratch, at base: UnsafeMutablePointer<Float>,
                              needed: (Int) -> Bool, finish: (Int, inout IOLedger) -> Void, ledger: inout IOLedger) {
        let hd = layout.headDim, group = layout.groupSize, rows = n * group
        let entries = causal.visible(rows - 1)
        let rowStride = scratch.rowStride, chunk = scratch.chunkTokens
        let keys = base, valuesT = base + scratch.entries * hd, scores = base + 2 * scratch.entries * hd
        for slot in 0..<entries {
            (keys + slot * hd).update(from: key(index: index, slot: slot), count: hd)
            let v = value(index: index, slot: slot)
            for c in 0..<hd { valuesT[c * entries + slot] = v[c] }
        }
        var start = 0
        while start < n {
            let chunkTokens = min(chunk, n - start), firstRow = start * group, chunkRows = chunkTokens * group
            countDenseRead(key: true, index: index, visible: entries, ledger: &ledger)
            countDenseRead(key: false, index: index, visible: entries, ledger: &ledger)
            BLAS.multiplyTransposed(m: chunkRows, n: entries, k: hd, a: queries + firstRow * hd, lda: hd,
                                    b: keys, ldb: hd, c: scores, ldc: rowStride)
            for r in 0..<chunkRows {
                let row = scores + r * rowStride, visible = causal.visible(firstRow + r)
                for i in 0..<visible { row[i] *= scale }
                Vector.softmax(row, count: visible)
                for i in visible..<entries { row[i] = 0 }
            }
            ledger.write(.scores, 2 * chunkRows * entries * 4)
            ledger.read(.scores, 2 * chunkRows * entries * 4)
            BLAS.multiplyTransposed(m: chunkRows, n: hd, k: entries, a: scores, lda: rowStride, b: valuesT, ldb: entries,
                                    c: output + firstRow * hd, ldc: hd)
            for t in start..<(start + chunkTokens) where needed(t) {
                let visible = causal.visible(t * group)
                for g in 0..<group {
                    (probabilities + g * scoreStride).update(from: scores + ((t - start) * group + g) * rowStride, count: visible)
                }
                ledger.read(.scores, group * visible * 4)
                finish(t, &ledger)
            }
            start += chunkTokens
        }
        ledger.read(.activations, rows * hd * 4)
        ledger.write(.activations, rows * hd * 4)
    }

    /// Tiled batched attention of one KV head (every visible slot listed, rows token-major), then a
    /// second pass over the keys for each query whose probabilities are needed.
    private func prefillTiled(_ kernel: TiledAttention, index: Int, rows: Int, queries: UnsafePointer<Float>,
                              output: UnsafeMutablePointer<Float>, causal: CausalRows, needed: (Int) -> Bool,
                              finish: (Int, inout IOLedger) -> Void, ledger: inout IOLedger) {
        let group = layout.groupSize
        tiledPass(kernel, index: index, queries: queries, rows: rows, entries: causal.visible(rows - 1), causal: causal,
                  dense: true, masked: false, output: output, ledger: &ledger)
        for t in 0..<(rows / group) where needed(t) {
            writeProbabilities(kernel, index: index, rows: (t * group)..<((t + 1) * group), queries: queries,
                               visible: causal.visible(t * group), listed: nil, ledger: &ledger)
            finish(t, &ledger)
        }
    }

    /// One pass of the tiled kernel for one head: `rows` query rows against its first `entries`
    /// slots (or the listed ones when not `dense`), the tiles' loads counted with the kernel's traffic.
    private func tiledPass(_ kernel: TiledAttention, index: Int, queries: UnsafePointer<Float>, rows: Int, entries: Int,
                           causal: CausalRows, dense: Bool, masked: Bool, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        var tiles = IOLedger()
        keyStore?.beginReads()
        valueStore?.beginReads()
        kernel.attend(rows: rows, output: output, entries: entries, causal: causal,
                      load: { self.loadTile(kernel, index: index, entries: $0, dense: dense, values: true, ledger: &tiles) },
                      score: { self.scoreTile(kernel, index: index, queries: queries, rows: $0, entries: $1, dense: dense, masked: masked,
                                              into: $2, stride: $3) },
                      accumulate: { self.accumulateTile(kernel, index: index, rows: $0.count, entries: $1, dense: dense, weights: $2,
                                                        stride: $3, into: $4) },
                      ledger: &ledger)
        ledger.add(tiles)
    }

    /// One decode query group through the tiled kernel over the first `visible` slots, or the
    /// `listed` slots of `selectedSlots` (top-k's dropped entries masked per query head); with
    /// `probabilities`, a second pass leaves each query head's probabilities in `probabilities`.
    private func attendTiled(_ kernel: TiledAttention, index: Int, queries q: UnsafePointer<Float>, visible: Int, listed: Int?,
                             masked: Bool, output: UnsafeMutablePointer<Float>, probabilities wanted: Bool, ledger: inout IOLedger) {
        let group = layout.groupSize, entries = listed ?? visible, dense = listed == nil
        tiledPass(kernel, index: index, queries: q, rows: group, entries: entries, causal: CausalRows(group: group, firstVisible: entries),
                  dense: dense, masked: masked, output: output, ledger: &ledger)
        if wanted {
            writeProbabilities(kernel, index: index, rows: 0..<group, queries: q, visible: visible, listed: listed, masked: masked,
                               ledger: &ledger)
        }
    }

    /// The kernel's second pass for one token's query group (`rows` of the last `attend`): its
    /// probabilities over the listed entries into `probabilities` (0 for visible entries not
    /// read), counted as re-reading the keys and writing the group sums s_t per entry.
    private func writeProbabilities(_ kernel: TiledAttention, index: Int, rows: Range<Int>, queries: UnsafePointer<Float>,
                                    visible: Int, listed: Int?, masked: Bool = false, ledger: inout IOLedger) {
        let entries = listed ?? visible, dense = listed == nil
        // Top-k's masks live in `probabilities` until the pass has read them.
        if !masked { for g in 0..<layout.groupSize { (probabilities + g * scoreStride).update(repeating: 0, count: visible) } }
        var tiles = IOLedger()
        keyStore?.beginReads()
        kernel.probabilities(rows: rows, entries: entries,
                             loadKeys: { self.loadTile(kernel, index: index, entries: $0, dense: dense, values: false, ledger: &tiles) },
                             score: { self.scoreTile(kernel, index: index, queries: queries, rows: $0, entries: $1, dense: dense,
                                                     masked: masked, into: $2, stride: $3) },
                             emit: { group, tile, p, stride in
                                 for g in group {
                                     for (n, e) in tile.enumerated() {
                                         let slot = dense ? e : Int(self.selectedSlots[e])
                                         self.probabilities[g * self.scoreStride + slot] = p[(g - group.lowerBound) * stride + n]
                                     }
                                 }
                             },
                             ledger: &ledger)
        if masked {
            for g in 0..<layout.groupSize {
                for i in 0..<visible where probabilities[g * scoreStride + i] == Self.masked { probabilities[g * scoreStride + i] = 0 }
            }
        }
        ledger.add(tiles)
        ledger.write(.policyState, entries * 4)
    }

    /// Whether tiles of a dense list can score keys in place: fp32 keys in pages, as scored.
    private var keysInPlace: Bool { keyStore == nil && !quant.preRoPE }

    /// Brings a tile of listed entries on chip: fp32 keys and values of a dense list are read in
    /// place from their pages, others gathered or decoded into the kernel's tiles; counts their
    /// stored bytes (a quantized record once per pass).
    private func loadTile(_ kernel: TiledAttention, index: Int, entries tile: Range<Int>, dense: Bool, values: Bool,
                          ledger: inout IOLedger) {
        let hd = layout.headDim
        if dense && keysInPlace {
            ledger.read(.keys, tile.count * hd * 4)
        } else {
            for (n, e) in tile.enumerated() {
                let slot = dense ? e : Int(selectedSlots[e])
                (kernel.keyTile + n * hd).update(from: key(index: index, slot: slot), count: hd)
                countRead(key: true, index: index, slot: slot, ledger: &ledger)
            }
        }
        guard values else { return }
        if dense && valueStore == nil {
            ledger.read(.values, tile.count * hd * 4)
        } else {
            for (n, e) in tile.enumerated() {
                let slot = dense ? e : Int(selectedSlots[e])
                (kernel.valueTile + n * hd).update(from: value(index: index, slot: slot), count: hd)
                countRead(key: false, index: index, slot: slot, ledger: &ledger)
            }
        }
    }

    /// Scaled q·k of query rows `rows` for a tile's entries (row `b` of the block at `s + b·stride`):
    /// 16 keys per SIMD step from their pages when in place, else from the kernel's key tile.
    /// `masked`: entries top-k dropped for a query head (its row of `probabilities`) are masked.
    private func scoreTile(_ kernel: TiledAttention, index: Int, queries q: UnsafePointer<Float>, rows: Range<Int>, entries tile: Range<Int>,
                           dense: Bool, masked: Bool, into s: UnsafeMutablePointer<Float>, stride: Int) {
        let hd = layout.headDim
        if dense && keysInPlace {
            let table = pageTables + index * pagesPerHead
            for page in (tile.lowerBound / pageSize)...((tile.upperBound - 1) / pageSize) {
                let keys = UnsafeRawPointer(pool.pointer(table[page]))
                let first = max(tile.lowerBound, page * pageSize), last = min(tile.upperBound, (page + 1) * pageSize)
                for (b, r) in rows.enumerated() {
                    let query = q + r * hd
                    var acc = SIMD16<Float>()
                    for c in 0..<hd { acc += query[c] * keys.loadUnaligned(fromByteOffset: c * pageSize * 4, as: SIMD16<Float>.self) }
                    acc *= scale
                    let row = s + b * stride + (first - tile.lowerBound)
                    if last - first == pageSize {
                        UnsafeMutableRawPointer(row).storeBytes(of: acc, as: SIMD16<Float>.self)
                    } else {
                        for slot in first..<last { row[slot - first] = acc[slot - page * pageSize] }
                    }
                }
            }
        } else {
            TiledAttention.score(keys: kernel.keyTile, count: tile.count, queries: q + rows.lowerBound * hd, rows: rows.count, headDim: hd,
                                 scale: scale, into: s, stride: stride)
        }
        guard masked else { return }
        for (b, r) in rows.enumerated() {
            for (n, e) in tile.enumerated() where probabilities[r * scoreStride + Int(selectedSlots[e])] == Self.masked {
                s[b * stride + n] = TiledAttention.masked
            }
        }
    }

    /// Σ weight · value over a tile's entries for `rows` rows (row `b`'s weights at `w + b·stride`),
    /// values read in place from their pages for a dense fp32 list, else from the kernel's value tile.
    private func accumulateTile(_ kernel: TiledAttention, index: Int, rows: Int, entries tile: Range<Int>, dense: Bool,
                                weights w: UnsafePointer<Float>, stride: Int, into out: UnsafeMutablePointer<Float>) {
        let hd = layout.headDim
        out.update(repeating: 0, count: rows * hd)
        guard dense && valueStore == nil else {
            TiledAttention.weigh(values: kernel.valueTile, count: tile.count, weights: w, rows: rows, stride: stride, headDim: hd, into: out)
            return
        }
        // A page holds its values token-major: each page's share of the tile is contiguous.
        let table = pageTables + index * pagesPerHead
        var e = tile.lowerBound
        while e < tile.upperBound {
            let lane = e % pageSize, count = min(pageSize - lane, tile.upperBound - e)
            TiledAttention.weigh(values: pool.pointer(table[e / pageSize]) + (pageSize + lane) * hd, count: count,
                                 weights: w + (e - tile.lowerBound), rows: rows, stride: stride, headDim: hd, into: out)
            e += count
        }
    }
}
