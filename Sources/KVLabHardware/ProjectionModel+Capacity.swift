import KVLabMethods

/// Resident KV, device memory capacity and the memory hierarchy of a projection.
extension ProjectionModel {
    // MARK: - Footprint, capacity, hierarchy

    func footprint(kept: [Double]) -> KVFootprint {
        var fp = KVFootprint(entries: 0, quantizedPayload: 0, metadata: 0, fullPrecision: 0, policyState: 0, hostResident: 0, ideal: 0)
        let d = Double(target.cacheKeyDim)
        for (i, n) in kept.enumerated() where target.hasKV(layer: i / target.cacheHeads) {
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
        if fp.quantizedPayload > 0 { fp.metadata += storage.calibrationBytes(layers: target.attentionLayers, kvHeads: target.cacheHeads) }
        if let r = target.recurrent { fp.recurrentState = Double(target.recurrentLayers * r.stateElements) * f }
        return fp
    }

    /// Decode buffers of one sequence, and one layer's scores when the kernel materializes them.
    func activations(kept: [Double]) -> Double {
        let t = target
        let buffers = Double(3 * t.hidden + t.queryDim + 2 * t.kvDim + 2 * t.ffn + t.vocab) * f
        let longest = kept.max() ?? 0
        return buffers + (setup.kernel == .naive ? Double(t.heads) * longest * f : 0)
    }

    /// What one device holds of a sequence's cache: its share of the KV heads and of the state.
    func deviceKV(_ fp: KVFootprint) -> Double {
        (fp.deviceResident - fp.recurrentState) * kvShare + fp.recurrentState / devices
    }

    /// The longest context `batch` sequences reach in device memory (binary search over the
    /// context); nil beyond `contextSearchLimit` (the method or the target bounds the KV).
    func largestContext(batch: Int) -> Int? {
        let memory = setup.device.hbm, weights = weightBytes, b = Double(batch)
        func fits(_ context: Int) -> Bool {
            let k = kept(context: context)
            return weights + b * (deviceKV(footprint(kept: k)) + activations(kept: k)) <= memory
        }
        if fits(CapacityReport.contextSearchLimit) { return nil }
        if !fits(1) { return 0 }
        var low = 1, high = CapacityReport.contextSearchLimit
        while high - low > 1 {
            let mid = (low + high) / 2
            if fits(mid) { low = mid } else { high = mid }
        }
        return low
    }

    func capacity(kept: [Double]) -> CapacityReport {
        let memory = setup.device.hbm, weights = weightBytes
        let perSequence = deviceKV(footprint(kept: kept))
        let act = activations(kept: kept)
        let used = weights + Double(setup.batch) * (perSequence + act)
        let maxBatch = weights >= memory ? 0 : Int(((memory - weights) / (perSequence + act)).rounded(.down))
        let maxContext = largestContext(batch: 1)
        let t = target, n = Double(setup.context)
        let prefillBuffers = Double(setup.batch) * n * Double(3 * t.hidden + t.queryDim + 2 * t.kvDim + 2 * t.ffn) * f
        let scoreMatrix = setup.kernel == .naive ? Double(setup.batch * t.heads) * n * n * f : 0
        return CapacityReport(deviceMemory: memory, weights: weights, kvPerSequence: perSequence, activationsPerSequence: act,
                              used: used, maxBatch: maxBatch, maxContext: maxContext, prefillWorkingSet: prefillBuffers + scoreMatrix)
    }

    func hierarchy(kept: [Double]) -> [TierUsage] {
        let device = setup.device, t = target, b = Double(setup.batch)
        let d = Double(t.cacheKeyDim)
        // Decode packs a KV head's query group into the tile's rows.
        let rows = Double(t.cacheGroup)
        let tile = Double(tileEntries)
        let sram = TierUsage(name: "SRAM (per SM)", capacity: device.sramPerSM, bandwidth: nil, items: [
            .init(label: "K/V tile (\(tileEntries) entries)", bytes: 2 * tile * d * f),
            .init(label: "query rows (\(t.cacheGroup))", bytes: rows * d * f),
            .init(label: "output accumulators", bytes: rows * d * 4 + 2 * rows * 4),
        ])
        let footprint = footprint(kept: kept)
        let perLayerKV = deviceKV(footprint) / Double(max(1, t.attentionLayers))
        let act = activations(kept: kept)
        let l2 = TierUsage(name: "L2", capacity: device.l2, bandwidth: nil, items: [
            .init(label: "step activations", bytes: min(device.l2, b * act)),
            .init(label: "one layer's KV", bytes: min(max(0, device.l2 - b * act), b * perLayerKV)),
        ])
        let hbm = TierUsage(name: device.kind == .cpu ? "DRAM (main memory)" : device.kind == .unified ? "unified memory" : "HBM",
                            capacity: device.hbm, bandwidth: device.hbmBandwidth, items: [
            .init(label: "weights", bytes: weightBytes),
            .init(label: "KV", bytes: b * deviceKV(footprint)),
            .init(label: "activations", bytes: b * act),
        ])
        let host = TierUsage(name: "host DRAM", capacity: device.hostDRAM, bandwidth: device.pcieBandwidth ?? device.hostDRAMBandwidth, items: [
            .init(label: "offloaded KV blocks", bytes: b * footprint.hostResident),
        ])
        return [sram, l2, hbm, host]
    }
}
