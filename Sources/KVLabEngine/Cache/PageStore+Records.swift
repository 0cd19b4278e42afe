import KVLabMethods

/// The quantized side of the page store: entries leaving the residual window move from their
/// page slots into records, evicted members leave their records, and reads are counted as stored.
///
/// The most recent `residual` entries of each (layer, KV head) stay fp32; older ones are quantized
/// tensor by tensor, in position order, `tokens` at a time for formats that group entries
/// (per-channel uniform, ggml blocks straddling short heads), so up to `tokens − 1` more wait at
/// fp32. An entry leaves its page slot when both its key and value are quantized; until then the
/// half already quantized is page slack. Traffic: quantizing reads the fp32 entry back and writes
/// the record; attention reads fp32 halves and records (payload under `.keys`/`.values`, scales
/// and zeros under `.quantMetadata`). `protect-sinks` keeps the first positions at fp32. `mixed`
/// picks a lane (high or low bits) from the `s_t` the record's entries received.
extension PageStore {
    /// The store of a method's quantized tensor (`format`) for vectors of `width` channels: one
    /// lane, or `mixed`'s high and low lanes; nil at fp32.
    static func makeStore(_ format: KVTensorFormat, _ buffer: IOBuffer, width: Int, quant: KVQuantMethod, layout: KVLayout,
                          pools: PagePools?) -> QuantizedKVStore? {
        let outliers = OutlierSplit.outlierCount(elements: width, percent: quant.outlierPercent)
        var formats = [format]
        if let mixed = quant.mixed, case .uniform(_, let axis, let group) = format {
            formats.append(.uniform(bits: mixed.lowBits, axis: axis, group: group))
        }
        let codecs = formats.compactMap { KVRecordCodec(format: $0, headDim: width, outliers: outliers, nuq: quant.nuq) }
        return codecs.isEmpty ? nil : QuantizedKVStore(lanes: codecs, buffer: buffer, layout: layout, pools: pools)
    }

    /// Whether a slot's key (or value) is a record member rather than fp32 in a page.
    @inline(__always)
    func isQuantized(key: Bool, index: Int, slot: Int) -> Bool { (key ? keyLocations : valueLocations)[index * capacity + slot] < 0 }

    /// Frees what one slot stores: its record members and its page slot.
    func release(index: Int, slot: Int, slotsInUse: Int, ledger: inout IOLedger) {
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

    /// Quantizes, tensor by tensor, the oldest fp32 entries of one head beyond the residual window,
    /// a record's worth at a time.
    func quantizeLeaving(index: Int, ledger: inout IOLedger) {
        if let store = keyStore { quantizeLeaving(index: index, store: store, locations: keyLocations, ledger: &ledger) }
        if let store = valueStore { quantizeLeaving(index: index, store: store, locations: valueLocations, ledger: &ledger) }
    }

    private func quantizeLeaving(index: Int, store: QuantizedKVStore, locations: UnsafeMutablePointer<Int32>, ledger: inout IOLedger) {
        let hd = store.headDim, base = index * capacity, tokens = store.tokens, pageSize = Self.pageSize
        let isKey = store === keyStore
        var touched = 0
        defer {
            for t in 0..<touched {
                let page = Int(touchedPages[t])
                pageMarks[page] = false
                summarize(index: index, page: page)
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

    /// Counts reading one slot's key or value: fp32 bytes, or its record once per read pass.
    @inline(__always)
    func countRead(key: Bool, index: Int, slot: Int, ledger: inout IOLedger) {
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        if location >= 0 {
            ledger.read(key ? .keys : .values, (key ? keyWidth : layout.headDim) * 4)
        } else {
            (key ? keyStore : valueStore)!.countRead(index: index, code: -1 - location, ledger: &ledger)
        }
    }

    /// Counts a dense pass over the `visible` slots: their fp32 halves and every record (all
    /// quantized entries are older than any entry a prefill hides).
    func countDenseRead(key: Bool, index: Int, visible: Int, ledger: inout IOLedger) {
        let store = key ? keyStore : valueStore
        ledger.read(key ? .keys : .values, (visible - (store?.quantizedCounts[index] ?? 0)) * (key ? keyWidth : layout.headDim) * 4)
        store?.countReadAll(index: index, ledger: &ledger)
    }

    /// Bytes one slot's key or value occupies as stored: fp32, or its share of a record.
    func storedBytes(key: Bool, index: Int, slot: Int) -> Int {
        let location = Int((key ? keyLocations : valueLocations)[index * capacity + slot])
        guard location < 0, let store = key ? keyStore : valueStore else { return (key ? keyWidth : layout.headDim) * 4 }
        return store.storedBytes(code: -1 - location)
    }

    /// Starts a read pass of both tensors (each record is then counted once).
    @inline(__always)
    func beginReads() {
        keyStore?.beginReads()
        valueStore?.beginReads()
    }
}
