import KVLabMethods

/// A KV cache in fixed-size pages drawn from pools with free lists, so per-head lengths can differ
/// and evicting returns whole pages. An eviction method decides which entries stay, a sparse mode
/// which ones a step reads, a quantization method how they are stored; each can change between
/// any two steps.
///
/// The cache coordinates components, each with its own file and tests:
/// - `PageStore`: where entries live (fp32 pages, quantized records, key frames) and how they read back;
/// - the eviction method's `EvictionPolicy`, which sees each head's entries as `HeadEntries`;
/// - the sparse mode's `SparseSelector`, which lists what a decode step reads;
/// - `CacheAttention`: scoring, P·V, the tiled kernel and batched prefill over the store;
/// - `ThinKStore`: `think`'s channel pruning; `AttentionMassProbe`: the ghost's `massKept`;
/// - `StepReadLog`: what the last step read and fetched, for `entryStates`.
///
/// A decode step appends each layer's token (quantizing what leaves the residual window), then
/// attends: per KV head the selector chooses, the kernel attends, `s_t` is gathered when anything
/// needs it, and the policy evicts. Attention decodes quantized entries one at a time, so scores
/// and outputs carry the quantization error. A batched prefill attends the prompt at full
/// precision; its policy, `think` and quantization act once at its end.
public final class PagedKVCache: KVCache {
    public let layout: KVLayout
    /// Token slots per page (one SIMD16 lane per slot).
    public static let pageSize = PageStore.pageSize
    let store: PageStore
    let attention: CacheAttention
    let think: ThinKStore
    /// The last queries of each layer, for a prompt method chosen between steps (PagedKVCache+Switch.swift).
    let recent: RecentQueries
    private let probe = AttentionMassProbe()
    let log: StepReadLog
    /// Each layer's keys and values as a policy reads them (made once: decode steps do not allocate).
    let vectors: [StoredVectors]

    public private(set) var eviction: EvictionMethod
    public private(set) var sparse: SparseMethod
    public var quant: KVQuantMethod { store.quant }
    var policy: any EvictionPolicy
    private var selector: any SparseSelector
    /// What a prompt reads, whatever the sparse mode.
    private let dense = DenseSelector()
    /// End of the prompt while a batched prefill runs.
    var promptEnd: Int?
    /// The prompt's end and tokens seen while a scoring fork runs (PagedKVCache+Forks.swift).
    var beforeFork: (promptEnd: Int?, tokensSeen: Int)?
    /// The pass the method asked for to act on the sequence so far, which the engine runs next
    /// (PagedKVCache+Forks.swift); nil when none waits.
    public internal(set) var pendingSequencePass: SequencePass?
    /// Keeps every query of every layer in `vectors` whatever the method (the engine's scratch
    /// cache that recomputes a sequence's queries).
    var recordsEveryQuery = false
    /// The attention kernel, switchable between steps (a tiled kernel's SRAM holds at least
    /// `AttentionTileShape.minimumSRAMBytes`).
    public var attentionKernel: AttentionKernel = .naive {
        didSet {
            guard attentionKernel != oldValue else { return }
            attention.tiled = CacheAttention.tiledAttention(for: attentionKernel, layout: layout, entries: attention.scoreStride)
        }
    }

    /// Each layer's attention output projection, decoded (model dim × query heads·headDim), for
    /// a method that weighs values by it (kvpress's CriticalKV); the engine sets it.
    public var outputProjection: ((Int) -> [Float])? {
        didSet {
            for (layer, layerVectors) in vectors.enumerated() {
                layerVectors.projection = outputProjection.map { project in { project(layer) } }
            }
        }
    }

    /// Keep each step's `s_t` per entry (the ghost run does, so others can compare with it).
    public var recordsAttention = false
    /// Records `topAttention` at every step (`kvlab heads`' retrieval-head detection).
    public var recordsTopAttention = false {
        didSet { topAttention = Array(repeating: -1, count: layout.layerCount * layout.kvHeadCount * layout.groupSize) }
    }
    /// The position each query head (layer-major, query heads in KV-head order) attended most at
    /// the last step, ties to the older; -1 before any.
    public internal(set) var topAttention: [Int32] = []
    /// The ghost cache whose attention `massKept` is measured against.
    public var attentionReference: PagedKVCache? {
        get { probe.reference }
        set { probe.reference = newValue }
    }
    /// Share of the reference's attention at the last step that fell on entries this cache read
    /// (all it keeps under dense attention, what a sparse mode listed otherwise; mean over layers
    /// and query heads); nil without a reference.
    public var massKept: Double? { probe.massKept }

    public convenience init(layout: KVLayout, eviction: EvictionMethod = .full, sparse: SparseMethod = .dense, quant: KVQuantMethod = .fp32) {
        self.init(layout: layout, eviction: eviction, sparse: sparse, quant: quant, pools: nil)
    }

    /// A cache whose pages come from `pools` when given (shared with the other caches made with
    /// them), else from pools of its own.
    init(layout: KVLayout, eviction: EvictionMethod, sparse: SparseMethod, quant: KVQuantMethod, pools: PagePools?) {
        // A last resort: callers range-check sizes first, so an overflowing layout is a bug, stopped
        // here with its numbers rather than as an arithmetic trap deep in the page store.
        // (`&+`: a capacity so large that rounding it up to a page wraps fails the check as negative.)
        let factors = [layout.layerCount, layout.kvHeadCount, layout.capacity &+ KVLayout.pageSize, layout.headDim, 2 * MemoryLayout<Float>.size]
        let bytes = factors.reduce(Optional(1)) { product, factor in
            guard let product, factor >= 0 else { return nil }
            let (result, overflow) = product.multipliedReportingOverflow(by: factor)
            return overflow ? nil : result
        }
        precondition(bytes != nil, "KV cache of \(layout.layerCount) layers × \(layout.kvHeadCount) heads × \(layout.capacity) tokens × \(layout.headDim) overflows Int")
        self.layout = layout
        store = PageStore(layout: layout, quant: quant, pools: pools)
        attention = CacheAttention(store: store)
        recent = RecentQueries(layout: layout)
        log = StepReadLog(layout: layout)
        vectors = (0..<layout.layerCount).map { [store] in StoredVectors(store: store, layer: $0) }
        self.eviction = eviction
        self.sparse = sparse
        policy = eviction.makePolicy(layout: layout)
        selector = sparse.makeSelector(layout: layout)
        think = ThinKStore(store: store, think: eviction.think)
        if eviction.think != nil || eviction.rebase { check(eviction, quant) }
    }

    /// Traps on an eviction method that does not fit the quantization (callers check first with
    /// `EvictionMethod.check(quant:)`).
    private func check(_ eviction: EvictionMethod, _ quant: KVQuantMethod) {
        do { try eviction.check(quant: quant) } catch { preconditionFailure("\(eviction) with \(quant): \(error)") }
    }

    /// Channels stored per key: the head size, or `think`'s kept count while keys are pruned.
    public var keyWidth: Int { store.keyWidth }
    /// Whether `think` has keys pruned now.
    public var keysPruned: Bool { store.keysPruned }

    /// fp32 pages currently taken from the pools.
    public var pagesInUse: Int { store.fullPool.pagesInUse + think.pagesInUse }

    /// Bytes of one fp32 page: 16 keys of `keyChannels` channels (all of them by default) and 16 values.
    public static func pageBytes(headDim: Int, keyChannels: Int? = nil) -> Int { pageSize * ((keyChannels ?? headDim) + headDim) * 4 }

    /// Bytes taken from every pool (fp32 pages, quantized record pages, fp8 scales, nuq levels):
    /// what the residency adds up to besides policy state.
    var allocatedBytes: Int {
        let pages = store.fullPool.pagesInUse * Self.pageBytes(headDim: layout.headDim) + think.pageBytes
        return pages + [store.fullKeyStore, think.thinKeyStore, store.valueStore].reduce(0) { $0 + ($1?.allocatedBytes ?? 0) }
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
        let pageSize = Self.pageSize, keyHalf = store.keyWidth * 4, valueHalf = layout.headDim * 4
        let keyStore = store.keyStore, valueStore = store.valueStore
        let stateBytes = 4 + policy.stateBytesPerEntry + (eviction.merge ? 4 : 0) + (quant.mixed != nil ? 4 : 0)
        for index in 0..<store.headCount {
            let kept = store.counts[index], pageSlots = store.pageCounts[index]
            let keyHalves = kept - (keyStore?.quantizedCounts[index] ?? 0)
            let valueHalves = kept - (valueStore?.quantizedCounts[index] ?? 0)
            if keyStore == nil { r.fullPrecisionPayload += keyHalves * keyHalf } else { r.residualWindow += keyHalves * keyHalf }
            if valueStore == nil { r.fullPrecisionPayload += valueHalves * valueHalf } else { r.residualWindow += valueHalves * valueHalf }
            let pages = (pageSlots + pageSize - 1) / pageSize
            r.pageSlack += (pages * pageSize - pageSlots) * (keyHalf + valueHalf) + (pageSlots - keyHalves) * keyHalf
                + (pageSlots - valueHalves) * valueHalf
            r.policyState += kept * stateBytes + (store.keysPruned ? store.keyWidth * 4 : 0)
            if case .quest = sparse.kind { r.policyState += (kept + pageSize - 1) / pageSize * 2 * valueHalf }
            keyStore?.addResidency(index: index, to: &r)
            valueStore?.addResidency(index: index, to: &r)
        }
        r.quantMetadata += [store.fullKeyStore, think.thinKeyStore, store.valueStore].reduce(0) { $0 + ($1?.calibrationBytes ?? 0) }
        return r
    }

    public var batchedPrefill: Bool { policy.batchedPrefill }

    public func reset() {
        store.reset()
        // A new sequence starts with every key channel; `think` waits for its queries again.
        think.reset(think: eviction.think)
        policy = eviction.makePolicy(layout: layout)
        budgetSized = false
        tokensSeen = 0
        selector.reset()
        log.reset()
        recent.reset()
        for layerVectors in vectors { layerVectors.queries.removeAll() }
        promptEnd = nil
        pendingSequencePass = nil
        rotaryOffset = 0
        stepsSinceAct = 0
        probe.reset()
    }

    /// Switches the eviction method between steps. The new method starts with fresh state and
    /// evicts down to its budget at once; entries already evicted do not come back. A method
    /// that acts at a prompt's end acts at once, on the sequence so far (`actOnRecentQueries`),
    /// or asks the engine for a pass first (`pendingSequencePass`).
    /// A change of `think` prunes or unprunes at once (`ThinKStore.switchThink`).
    public func setEviction(_ method: EvictionMethod, ledger: inout IOLedger) {
        check(method, quant)
        let oldThink = eviction.think
        eviction = method
        // A `ratio=` budget chosen mid-sequence takes its share of the tokens so far.
        policy = method.makePolicy(layout: layout, promptLength: tokensSeen > 0 ? tokensSeen : nil)
        budgetSized = tokensSeen > 0
        let entries = store.headCount * store.capacity
        store.policyScores.update(repeating: 0, count: entries)
        store.history.update(repeating: 0, count: entries)
        store.stepScores.update(repeating: 0, count: entries)
        for layerVectors in vectors { layerVectors.queries.removeAll() }
        stepsSinceAct = 0
        pendingSequencePass = nil
        if !actOnRecentQueries(ledger: &ledger) {
            for layer in 0..<layout.layerCount {
                applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in policy.afterAttention(layer: layer, heads: heads) }
            }
        }
        think.switchThink(from: oldThink, to: method.think, quantize: promptEnd == nil, ledger: &ledger)
    }

    /// Switches the sparse-attention mode from the next step on (memory is unchanged).
    public func setSparse(_ method: SparseMethod) {
        guard method != sparse else { return }
        sparse = method
        selector = method.makeSelector(layout: layout)
    }

    /// Switches the quantization method between steps: every kept entry is stored again from its
    /// current values (decoded ones for quantized entries: lost precision does not come back),
    /// in the new method's key frame, at fp32 within the new residual window and quantized beyond
    /// it. fp8 scales and nuq levels are calibrated anew; `mixed` scores received so far are kept.
    public func setKVQuant(_ method: KVQuantMethod, ledger: inout IOLedger) {
        guard method != quant else { return }
        check(eviction, method)
        store.prepareAngles(for: method)
        let hd = layout.headDim, capacity = store.capacity
        let newFullKeyStore = PageStore.makeStore(method.key, .keys, width: hd, quant: method, layout: layout, pools: store.pools)
        let newThinKeyStore = think.thinKeyStore(for: method)
        let newValueStore = PageStore.makeStore(method.value, .values, width: hd, quant: method, layout: layout, pools: store.pools)
        for index in 0..<store.headCount {
            let base = index * capacity
            store.beginReads()
            for i in 0..<store.counts[index] {
                let slot = Int(store.slots[base + i])
                let key = store.restoreKeys + i * hd
                key.update(from: store.key(index: index, slot: slot), count: hd)
                if store.scoresRotated { Hadamard.transform(key, count: hd) }
                store.toStorageFrame(key, index: index, rotary: Int(store.slotRotary[base + slot]), method: method)
                (store.restoreValues + i * hd).update(from: store.value(index: index, slot: slot), count: hd)
                store.restoreValueLocations[i] = 0
                store.countRead(key: true, index: index, slot: slot, ledger: &ledger)
                store.countRead(key: false, index: index, slot: slot, ledger: &ledger)
                store.restoreMerged[i] = store.mergeCounts[base + slot]
                store.restoreReceived[i] = store.receivedScores[base + slot]
            }
            store.rebuildPages(index: index, pool: store.pool, width: store.keyWidth, pruned: store.keysPruned, ledger: &ledger)
        }
        store.quant = method
        // Every entry is now in a page: the old stores' records go back to the pools (shared pools outlive them).
        for old in [store.fullKeyStore, think.thinKeyStore, store.valueStore] { old?.reset() }
        (store.fullKeyStore, think.thinKeyStore, store.valueStore) = (newFullKeyStore, newThinKeyStore, newValueStore)
        store.keyStore = store.keysPruned ? think.thinKeyStore : store.fullKeyStore
        for index in 0..<store.headCount {
            store.summarizeAll(index: index)
            if promptEnd == nil { store.quantizeLeaving(index: index, ledger: &ledger) }
        }
    }

    public var keysBeforeRoPE: Bool { quant.preRoPE }

    /// Token position minus rotary position of the next token: 0 until the cache first renumbers
    /// (PagedKVCache+Positions.swift).
    public internal(set) var rotaryOffset = 0

    /// Decode steps since the method last acted (`every`).
    var stepsSinceAct = 0

    public func beginPrefill(end: Int) { promptEnd = end }

    /// Whether the policy's `ratio=` budget was sized on this sequence's first prompt (or at a switch).
    var budgetSized = false
    /// Tokens the sequence has run through the cache (the newest position + 1).
    var tokensSeen = 0

    public func beginPrompt(end: Int) {
        guard case .ratio = eviction.sizing, !budgetSized else { return }
        budgetSized = true
        policy = eviction.makePolicy(layout: layout, promptLength: end)
    }

    /// The prompt attended at full precision; its policy acts now, then `think` on the keys it
    /// kept, then what left the residual window is quantized.
    public func endPrefill(ledger: inout IOLedger) {
        guard let end = promptEnd else { return }
        promptEnd = nil
        stepsSinceAct = 0
        for layer in 0..<layout.layerCount {
            let vectors = self.vectors[layer]
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in
                policy.finishPrefill(layer: layer, heads: heads, promptEnd: end, vectors: vectors)
            }
            vectors.moveReads(to: &ledger)
        }
        if eviction.rerotatesAtPromptEnd { rerotateKept(ledger: &ledger) }
        think.actIfReady(eviction.think, wholeWindow: false, quantize: true, ledger: &ledger)
        for index in 0..<store.headCount { store.quantizeLeaving(index: index, ledger: &ledger) }
    }

    public func append(layer: Int, position: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ledger: inout IOLedger) {
        let hd = layout.headDim
        for head in 0..<layout.kvHeadCount {
            store.makeTailPrivate(index: layer * layout.kvHeadCount + head, ledger: &ledger)
            store.append(index: layer * layout.kvHeadCount + head, position: position, rotary: rotaryPosition(position),
                         key: keys + head * hd, value: values + head * hd)
        }
        ledger.write(.keys, layout.kvHeadCount * store.keyWidth * 4)
        ledger.write(.values, layout.kvHeadCount * hd * 4)
        ledger.write(.policyState, layout.kvHeadCount * (4 + policy.stateBytesPerEntry))
        if layer == 0, position >= tokensSeen { tokensSeen = position + 1 }
        // After every head of the layer has its entry, so a per-tensor fp8 scale sees them all.
        if promptEnd == nil {
            for head in 0..<layout.kvHeadCount { store.quantizeLeaving(index: layer * layout.kvHeadCount + head, ledger: &ledger) }
        }
    }

    public func attend(layer: Int, position: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        let store = self.store, attention = self.attention, log = self.log
        let hd = layout.headDim, group = layout.groupSize, capacity = store.capacity
        let observing = promptEnd.map { position >= $0 - policy.prefillObservation } ?? false
        let accumulates = quant.mixed != nil
        // threshold decides from last step's scores, so it collects them like a scoring policy.
        let wantsScores = recordsAttention || recordsTopAttention || probe.reference != nil || observing || accumulates
            || (promptEnd == nil && (policy.needsScores || sparse.collectsScores))
        // A prompt runs dense; sparse modes choose what each decode step reads.
        let selector = promptEnd == nil ? self.selector : dense
        let listed = selector.lists, everyKey = selector.scoresEveryKey
        probe.begin(layer: layer)
        // Pruned keys (`think`) are narrower than the tiled kernel's key tiles: they run the naive kernel.
        let tiled = store.keysPruned ? nil : attention.tiled
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            // Slots are in position order until something is evicted, and nothing is during a
            // batched prefill: entries after `position` (later prompt tokens) are not visible.
            var visible = store.counts[index]
            while visible > 0, Int(store.slotPositions[index * capacity + visible - 1]) > position { visible -= 1 }
            think.recordQuery(queries + head * group * hd, layer: layer, head: head)
            let q = attention.prepare(queries: queries + head * group * hd, index: index)
            store.beginReads()
            let step = SparseStep(index: index, queries: q, visible: visible, position: position, scoring: tiled == nil)
            log.beginStep(index: index)
            let read = selector.select(step, attention: attention, log: log, ledger: &ledger)
            if listed {
                log.read(index: index, slots: attention.selectedSlots, count: read, slotPositions: store.slotPositions + index * capacity)
                probe.add(layer: layer, head: head, store: store, slots: attention.selectedSlots, count: read)
            } else {
                log.readAll(index: index)
                probe.add(layer: layer, head: head, store: store, visible: visible)
            }
            let out = output + head * group * hd
            if let tiled {
                if everyKey {
                    // Top-k's selection pass: every key read, its scores kept on chip.
                    store.countDenseRead(key: true, index: index, visible: visible, ledger: &ledger)
                    ledger.onChip(.scores, group * visible * 8)
                }
                attention.attendTiled(tiled, index: index, queries: q, visible: visible, listed: listed ? read : nil, masked: everyKey,
                                      output: out, probabilities: wantsScores || selector.needsProbabilities, ledger: &ledger)
            } else {
                // A prompt read one query at a time still holds the entries before a local layer's window.
                if promptEnd != nil, let window = layout.attentionSpans[layer].window {
                    attention.maskBefore(position: position - window, index: index, visible: visible)
                }
                attention.softmax(visible: visible)
                if listed {
                    attention.weightSelectedValues(index: index, count: read, output: out)
                } else {
                    attention.weightValues(index: index, visible: visible, output: out)
                }
                if !listed || everyKey {
                    store.countDenseRead(key: true, index: index, visible: visible, ledger: &ledger)
                } else {
                    for n in 0..<read { store.countRead(key: true, index: index, slot: Int(attention.selectedSlots[n]), ledger: &ledger) }
                }
                if !listed {
                    store.countDenseRead(key: false, index: index, visible: visible, ledger: &ledger)
                } else {
                    for n in 0..<read { store.countRead(key: false, index: index, slot: Int(attention.selectedSlots[n]), ledger: &ledger) }
                }
                // Naive attention materializes scores: written, re-read by softmax, re-read by P·V.
                ledger.write(.scores, 2 * group * visible * 4)
                ledger.read(.scores, 2 * group * visible * 4)
            }
            selector.afterAttention(step, read: read, attention: attention)
            if recordsTopAttention { noteTopAttention(index: index, visible: visible) }
            if wantsScores {
                attention.gatherStepScores(index: index, visible: visible, accumulate: accumulates)
                // The tiled kernel's second pass already wrote s_t; naive reads the probabilities back.
                if tiled == nil { ledger.read(.scores, group * visible * 4) }
                if accumulates {
                    ledger.read(.policyState, visible * 4)
                    ledger.write(.policyState, visible * 4)
                }
            }
            if observing {
                let entries = store.headEntries(index: index, count: visible)
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
        // think on mid-stream can prune at once.
        think.endQuery(layer: layer, counted: eviction.think != nil, ledger: &ledger)
        recent.record(layer: layer, first: position, queries: queries, count: 1)
        recordQueries(layer: layer, first: position, queries: queries, count: 1)
        probe.end(layer: layer, layout: layout)
        if promptEnd == nil {
            let vectors = self.vectors[layer]
            applyPolicy(layer: layer, ledger: &ledger) { policy, layer, heads in policy.afterAttention(layer: layer, heads: heads, vectors: vectors) }
            vectors.moveReads(to: &ledger)
            // Without a batched prompt, `think` acts once every layer has seen its window.
            think.actIfReady(eviction.think, wholeWindow: true, quantize: true, ledger: &ledger)
            if layer == layout.layerCount - 1, let every = eviction.every {
                stepsSinceAct += 1
                if stepsSinceAct >= every {
                    stepsSinceAct = 0
                    _ = actOnRecentQueries(ledger: &ledger)
                }
            }
        }
    }

    /// Causal attention of a prompt's queries (`positions.count` tokens × `headCount × headDim`,
    /// their entries appended, inside a batched prefill) in one pass per KV head (`PrefillAttention`).
    /// Queries whose attention the method needs (the observation window, `mixed`'s received
    /// scores, the last one for a cache that records attention) then get their probabilities and
    /// the policy's prefill hook, in position order.
    public func attend(layer: Int, positions: Range<Int>, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                       ledger: inout IOLedger) {
        guard let end = promptEnd else { preconditionFailure("batched attention runs inside a prefill (beginPrefill)") }
        let hd = layout.headDim, group = layout.groupSize, n = positions.count, rows = n * group
        let tokenStride = layout.kvHeadCount * group * hd
        // Pruned keys (`think` already acted) are read through the per-query path.
        if store.keysPruned {
            for t in 0..<n {
                attend(layer: layer, position: positions.lowerBound + t, queries: queries + t * tokenStride,
                       output: output + t * tokenStride, ledger: &ledger)
            }
            return
        }
        let store = self.store, attention = self.attention, tiled = attention.tiled, capacity = store.capacity
        let accumulates = quant.mixed != nil
        let recordsLast = recordsAttention || probe.reference != nil
        // One allocation for the call: each head's queries and output, and naive's gathered keys,
        // transposed values and scores (sized for the head with the most entries).
        var most = 0
        for head in 0..<layout.kvHeadCount { most = max(most, store.counts[layer * layout.kvHeadCount + head]) }
        // A scoring fork's queries are not the sequence's: `think` and a later switch of method never see them.
        if beforeFork == nil {
            think.recordPromptQueries(layer: layer, queries: queries, count: n, counted: eviction.think != nil, ledger: &ledger)
            recent.record(layer: layer, first: positions.lowerBound, queries: queries, count: n)
        }
        recordQueries(layer: layer, first: positions.lowerBound, queries: queries, count: n)
        let naive = CacheAttention.NaiveScratch(tokens: n, group: group, headDim: hd, entries: most)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * rows * hd + (tiled == nil ? naive.floats : 0))
        defer { scratch.deallocate() }
        let headQueries = scratch, headOutput = scratch + rows * hd
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            log.beginStep(index: index)
            log.readAll(index: index)
            // The prompt's entries are the head's last `n` slots, in position order.
            let count = store.counts[index], first = count - n
            precondition(first >= 0 && Int(store.slotPositions[index * capacity + first]) == positions.lowerBound
                         && Int(store.slotPositions[index * capacity + count - 1]) == positions.upperBound - 1,
                         "batched attention needs the prompt's entries appended in order")
            for t in 0..<n {
                let row = headQueries + t * group * hd
                row.update(from: queries + t * tokenStride + head * group * hd, count: group * hd)
                if store.scoresRotated { for g in 0..<group { Hadamard.transform(row + g * hd, count: hd) } }
            }
            let causal = CausalRows(group: group, firstVisible: first + 1, window: layout.attentionSpans[layer].window,
                                    firstPosition: positions.lowerBound, slotPositions: store.slotPositions + index * capacity)
            // After a query's probabilities are in `probabilities`: its s_t, then the policy's hook.
            let observed: (Int) -> Bool = { t in positions.lowerBound + t >= end - self.policy.prefillObservation }
            let needed: (Int) -> Bool = { t in accumulates || observed(t) || (recordsLast && t == n - 1) }
            func finish(_ t: Int, ledger: inout IOLedger) {
                let visible = causal.visible(t * group)
                attention.gatherStepScores(index: index, visible: visible, accumulate: accumulates)
                if accumulates {
                    ledger.read(.policyState, visible * 4)
                    ledger.write(.policyState, visible * 4)
                }
                if observed(t) {
                    policy.observePrefill(layer: layer, head: head, entries: store.headEntries(index: index, count: visible),
                                          queryPosition: positions.lowerBound + t, promptEnd: end)
                    ledger.read(.policyState, visible * policy.stateBytesPerEntry)
                    ledger.write(.policyState, visible * policy.stateBytesPerEntry)
                }
            }
            if let tiled {
                attention.prefillTiled(tiled, index: index, rows: rows, queries: headQueries, output: headOutput, causal: causal,
                                       needed: needed, finish: finish, ledger: &ledger)
            } else {
                attention.prefillNaive(index: index, tokens: n, queries: headQueries, output: headOutput, causal: causal,
                                       scratch: naive, at: headOutput + rows * hd, needed: needed, finish: finish, ledger: &ledger)
            }
            for t in 0..<n {
                (output + t * tokenStride + head * group * hd).update(from: headOutput + t * group * hd, count: group * hd)
            }
        }
    }

    /// Share of the last step's attention in `layer` that went to position 0 (the first token,
    /// where attention sinks form), averaged over query heads; needs `recordsAttention`.
    public func attentionOnFirstToken(layer: Int) -> Double {
        var sum: Float = 0
        for head in 0..<layout.kvHeadCount {
            let base = (layer * layout.kvHeadCount + head) * store.capacity
            if store.counts[layer * layout.kvHeadCount + head] > 0, store.positions[base] == 0 { sum += store.stepScores[base] }
        }
        return Double(sum) / Double(layout.kvHeadCount * layout.groupSize)
    }

    /// Queries kept for the policy over every layer (`EvictionPolicy.recordedQueries`).
    var recordedQueryCount: Int { vectors.reduce(0) { $0 + $1.queries.count } }

    /// Keeps the queries the policy reads (`EvictionPolicy.recordedQueries`), without the query scale.
    private func recordQueries(layer: Int, first: Int, queries: UnsafePointer<Float>, count: Int) {
        let limit = recordsEveryQuery ? Int.max : policy.recordedQueries
        guard limit > 0 else { return }
        vectors[layer].queries.append(queries, count: count, firstRotary: rotaryPosition(first), scale: layout.queryScales[layer], limit: limit)
    }

    /// Runs a policy hook on one layer's heads, then frees what it evicted.
    func applyPolicy(layer: Int, ledger: inout IOLedger,
                             _ hook: (any EvictionPolicy, Int, UnsafeMutableBufferPointer<HeadEntries>) -> Void) {
        var total = 0
        for head in 0..<layout.kvHeadCount {
            let index = layer * layout.kvHeadCount + head
            store.heads[head] = store.headEntries(index: index, count: store.counts[index])
            total += store.counts[index]
        }
        hook(policy, layer, store.heads)
        ledger.read(.policyState, total * policy.stateBytesPerEntry)
        ledger.write(.policyState, total * policy.stateBytesPerEntry)
        for head in 0..<layout.kvHeadCount {
            store.reclaim(index: layer * layout.kvHeadCount + head, entries: store.heads[head], merging: eviction.merge, ledger: &ledger)
        }
    }
}
