import KVLabMethods

/// Channel pruning (`think`, `ThinK`) over the page store. Once it acts, every key of every
/// (layer, KV head) is stored with only its head's kept channels (their indices, ascending, are
/// per-head policy state in `PageStore.keptChannels`): fp32 pages then hold `keyWidth` key channels
/// beside full values (pages come from a thin pool of that size), and key records quantize vectors
/// of `keyWidth` channels. A key reads back with zeros in the pruned channels, and the fp32 kernel
/// dots the query's kept channels with the stored ones.
///
/// The store keeps each layer's last `ThinK.maxObservation` queries (their squares, summed over
/// each KV head's query group) for every method, so that `think` can act at any step. Re-storing
/// for `think` leaves quantized values as they are.
final class ThinKStore {
    private let store: PageStore
    private let arena = BufferArena()
    /// Pages and key store for keys pruned to `thinWidth` channels; nil without `think`.
    private(set) var thinPool: PagePool<Float>?
    private(set) var thinWidth = 0
    var thinKeyStore: QuantizedKVStore?
    /// Whether a `think` method still waits for its queries.
    private(set) var pending = false
    /// Per (layer, ring slot, KV head), `headDim` squares: the ring of each layer's last queries.
    private let querySquares: UnsafeMutablePointer<Float>
    /// Queries each layer has recorded since the reset (the ring's write position).
    private let recordedQueries: UnsafeMutablePointer<Int>
    /// One head's channel sums of query and key squares, and its channel scores.
    private let channelQuerySquares: UnsafeMutablePointer<Float>
    private let channelKeySquares: UnsafeMutablePointer<Float>
    private let channelScores: UnsafeMutablePointer<Float>

    init(store: PageStore, think: ThinK?) {
        self.store = store
        let layout = store.layout
        querySquares = arena.allocate(Float.self, count: layout.layerCount * ThinK.maxObservation * layout.kvHeadCount * layout.headDim)
        recordedQueries = arena.allocate(count: layout.layerCount, repeating: 0)
        channelQuerySquares = arena.allocate(Float.self, count: layout.headDim)
        channelKeySquares = arena.allocate(Float.self, count: layout.headDim)
        channelScores = arena.allocate(Float.self, count: layout.headDim)
        if let think {
            (thinWidth, thinPool, thinKeyStore) = thinStorage(for: think)
            pending = true
        }
    }

    /// Takes another store's query ring and whether `think` waits (a cache forked from a prefix).
    func copyQueries(from other: ThinKStore) {
        let layout = store.layout
        querySquares.update(from: other.querySquares, count: layout.layerCount * ThinK.maxObservation * layout.kvHeadCount * layout.headDim)
        recordedQueries.update(from: other.recordedQueries, count: layout.layerCount)
        pending = other.pending
    }

    /// Thin pages hold pruned keys: fp32 pages taken from the thin pool, and their bytes.
    var pagesInUse: Int { thinPool?.pagesInUse ?? 0 }
    var pageBytes: Int { (thinPool?.pagesInUse ?? 0) * PagedKVCache.pageBytes(headDim: store.layout.headDim, keyChannels: thinWidth) }

    /// A new sequence: every key channel again, and `think` (when on) waits for its queries.
    func reset(think: ThinK?) {
        store.keysPruned = false
        store.keyWidth = store.layout.headDim
        store.pool = store.fullPool
        store.keyStore = store.fullKeyStore
        pending = think != nil
        recordedQueries.update(repeating: 0, count: store.layout.layerCount)
    }

    /// The width, page pool and key store of keys pruned by `think`: the current ones when the
    /// width does not change (pools keep their pages from one sequence to the next), else new ones.
    private func thinStorage(for think: ThinK) -> (Int, PagePool<Float>, QuantizedKVStore?) {
        let width = think.keptChannelCount(headDim: store.layout.headDim)
        if let thinPool, thinWidth == width { return (width, thinPool, thinKeyStore) }
        return (width, PageStore.makePool(layout: store.layout, keyWidth: width, pools: store.pools),
                PageStore.makeStore(store.quant.key, .keys, width: width, quant: store.quant, layout: store.layout, pools: store.pools))
    }

    /// The thin key store `method` would use, for a quantization switch; nil without thin pages.
    func thinKeyStore(for method: KVQuantMethod) -> QuantizedKVStore? {
        thinPool == nil ? nil : PageStore.makeStore(method.key, .keys, width: thinWidth, quant: method, layout: store.layout, pools: store.pools)
    }

    /// The eviction method's `think` changed from `old` to `new`. Switching it on (or changing its
    /// parameters) prunes at once, on the most recent `observation` queries (fewer when fewer were
    /// seen; at the next steps when none were). Switching it off stores the keys at full width
    /// again, but pruned channels do not come back: they read as zero, and only later keys have
    /// every channel.
    func switchThink(from old: ThinK?, to new: ThinK?, quantize: Bool, ledger: inout IOLedger) {
        guard new != old else { return }
        guard let think = new else {
            pending = false
            if store.keysPruned { storeKeys(pruning: nil, quantize: quantize, ledger: &ledger) }
            (thinWidth, thinPool, thinKeyStore) = (0, nil, nil)
            return
        }
        pending = true
        if recorded(atLeast: 1) {
            storeKeys(pruning: think, quantize: quantize, ledger: &ledger)
        } else {
            // Nothing was recorded since the reset, so nothing is pruned yet either.
            (thinWidth, thinPool, thinKeyStore) = thinStorage(for: think)
        }
    }

    /// Prunes now if `think` waits and every layer has recorded its window: `observation`
    /// queries one at a time, or at least one for a batched prompt (`wholeWindow` false), whose
    /// window was recorded at once.
    func actIfReady(_ think: ThinK?, wholeWindow: Bool, quantize: Bool, ledger: inout IOLedger) {
        guard pending, let think, recorded(atLeast: wholeWindow ? think.observation : 1) else { return }
        storeKeys(pruning: think, quantize: quantize, ledger: &ledger)
    }

    /// Whether every layer has recorded at least `queries` queries since the reset.
    private func recorded(atLeast queries: Int) -> Bool {
        (0..<store.layout.layerCount).allSatisfy { recordedQueries[$0] >= queries }
    }

    /// Records one query group's squares, summed over the group per channel, in the layer's ring
    /// (slot: the queries recorded so far, modulo the ring); `endQuery` then moves the ring on.
    @inline(__always)
    func recordQuery(_ q: UnsafePointer<Float>, layer: Int, head: Int) {
        let layout = store.layout, hd = layout.headDim, ring = ThinK.maxObservation
        let row = querySquares + ((layer * ring + recordedQueries[layer] % ring) * layout.kvHeadCount + head) * hd
        for c in 0..<hd {
            var sum: Float = 0
            for g in 0..<layout.groupSize { sum += q[g * hd + c] * q[g * hd + c] }
            row[c] = sum
        }
    }

    /// Every head of `layer` recorded its query group. Counted as traffic only while think is on
    /// (`counted`): an engine without think would not write the window.
    @inline(__always)
    func endQuery(layer: Int, counted: Bool, ledger: inout IOLedger) {
        recordedQueries[layer] += 1
        if counted { ledger.write(.activations, store.layout.kvHeadCount * store.layout.headDim * 4) }
    }

    /// Records the query window of a batched prompt's `count` tokens (only the last
    /// `ThinK.maxObservation` can stay in the ring), as the per-query path records each query.
    func recordPromptQueries(layer: Int, queries: UnsafePointer<Float>, count: Int, counted: Bool, ledger: inout IOLedger) {
        let layout = store.layout, hd = layout.headDim, tokenStride = layout.kvHeadCount * layout.groupSize * hd
        let kept = min(count, ThinK.maxObservation)
        recordedQueries[layer] += count - kept
        for t in (count - kept)..<count {
            for head in 0..<layout.kvHeadCount { recordQuery(queries + t * tokenStride + head * layout.groupSize * hd, layer: layer, head: head) }
            recordedQueries[layer] += 1
        }
        if counted { ledger.write(.activations, kept * layout.kvHeadCount * hd * 4) }
    }

    /// `think` acts (`pruning`) or is switched off (nil). Each head's keys are read once, as scored
    /// (zero in channels pruned before); `think` chooses the head's kept channels from them and its
    /// query window; then the keys are stored again with only those channels (all of them when
    /// switched off), fp32 values move to the new pages, quantized values stay in their records,
    /// and keys beyond the residual window are quantized again (when `quantize`: not in a prompt).
    private func storeKeys(pruning think: ThinK?, quantize: Bool, ledger: inout IOLedger) {
        let store = self.store, hd = store.layout.headDim, capacity = store.capacity
        let (width, newPool, newKeyStore) = think.map { thinStorage(for: $0) } ?? (hd, store.fullPool, store.fullKeyStore)
        for index in 0..<store.headCount {
            let base = index * capacity, count = store.counts[index]
            store.keyStore?.beginReads()
            for i in 0..<count {
                let slot = Int(store.slots[base + i])
                (store.restoreKeys + i * hd).update(from: store.key(index: index, slot: slot), count: hd)
                store.countRead(key: true, index: index, slot: slot, ledger: &ledger)
                let value = store.valueLocations[base + slot]
                if value >= 0 {
                    (store.restoreValues + i * hd).update(from: store.pageVector(index: index, slot: slot, key: false), count: hd)
                    ledger.read(.values, hd * 4)
                }
                store.restoreValueLocations[i] = value >= 0 ? 0 : value
                store.restoreMerged[i] = store.mergeCounts[base + slot]
                store.restoreReceived[i] = store.receivedScores[base + slot]
            }
            if let think { chooseChannels(index: index, observation: think.observation, keep: width, ledger: &ledger) }
            store.rebuildPages(index: index, pool: newPool, width: width, pruned: think != nil, ledger: &ledger)
            // Key norms (knorm's order) of the keys as now scored.
            let kept = store.keptChannels + index * hd
            for i in 0..<count {
                let key = store.restoreKeys + i * hd
                var norm: Float = 0
                for j in 0..<width {
                    let value = key[think == nil ? j : Int(kept[j])]
                    norm += value * value
                }
                store.keyNorms[base + i] = norm.squareRoot()
            }
        }
        // Every key now waits at fp32; the store that held the quantized ones starts empty.
        store.keyStore?.reset()
        (store.keyWidth, store.pool, store.keyStore, store.keysPruned) = (width, newPool, newKeyStore, think != nil)
        if think != nil {
            (thinWidth, thinPool, thinKeyStore) = (width, newPool, newKeyStore)
            pending = false
        }
        for index in 0..<store.headCount {
            store.summarizeAll(index: index)
            if quantize { store.quantizeLeaving(index: index, ledger: &ledger) }
        }
    }

    /// ThinK's choice for one head, from the keys in `restoreKeys`: channel c scores
    /// `‖Q_c‖ · ‖K_c‖` over the layer's last `observation` recorded queries (fewer when fewer
    /// were recorded) and the head's keys; the best `keep` go to `keptChannels`, ascending.
    private func chooseChannels(index: Int, observation: Int, keep: Int, ledger: inout IOLedger) {
        let layout = store.layout, hd = layout.headDim, ring = ThinK.maxObservation
        let layer = index / layout.kvHeadCount, head = index % layout.kvHeadCount
        let recorded = recordedQueries[layer], window = min(observation, recorded, ring)
        channelQuerySquares.update(repeating: 0, count: hd)
        for k in (recorded - window)..<recorded {
            let row = querySquares + ((layer * ring + k % ring) * layout.kvHeadCount + head) * hd
            for c in 0..<hd { channelQuerySquares[c] += row[c] }
        }
        ledger.read(.activations, window * hd * 4)
        channelKeySquares.update(repeating: 0, count: hd)
        for i in 0..<store.counts[index] {
            let key = store.restoreKeys + i * hd
            for c in 0..<hd { channelKeySquares[c] += key[c] * key[c] }
        }
        ThinK.scoreChannels(querySquares: channelQuerySquares, keySquares: channelKeySquares, count: hd, into: channelScores)
        ThinK.selectChannels(scores: channelScores, count: hd, keep: keep, into: store.keptChannels + index * hd)
        ledger.write(.policyState, keep * 4)
    }
}
