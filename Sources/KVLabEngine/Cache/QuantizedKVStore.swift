import KVLabMethods

/// One tensor's (keys' or values') quantized entries for every (layer, KV head), in lanes of
/// records: `mixed` stores its high-bit and low-bit entries in two lanes, other methods use one. A
/// lane holds records of `tokens` entries in byte pages from a pool with a free list; each head
/// fills a lane's records 0..<count with no holes (an emptied record is refilled by the head's last
/// one in that lane), so its tail page frees as soon as it empties. A member evicted while others of
/// its record live stays in place, dead, until the record empties. Across lanes a record is named by
/// its id `record · lanes + lane`, and a member by its code `id · tokens + member`; the cache
/// maps each entry to its code.
final class QuantizedKVStore {
    /// One precision's records, and its calibration (fp8 scales, nuq levels) per scope.
    final class Lane {
        let codec: KVRecordCodec
        /// Records per page: a page holds about as many entries as an fp32 page (at least one record).
        let recordsPerPage: Int
        var pageBytes: Int { recordsPerPage * codec.recordBytes }
        let pool: PagePool<UInt8>
        private let arena = BufferArena()
        let pagesPerHead: Int
        let pageTables: UnsafeMutablePointer<Int32>
        let recordCounts: UnsafeMutablePointer<Int>
        /// Live members per (head, record); a record never holds more records than its head entries.
        let live: UnsafeMutablePointer<Int32>
        /// The read pass each record was last counted in, so a pass counts a record once.
        let stamps: UnsafeMutablePointer<UInt32>
        /// `codec.calibrationCount` floats per scope, NaN until the scope is calibrated; one unused
        /// float for formats without calibration (every scope then reads it).
        let calibration: UnsafeMutablePointer<Float>
        let calibrationFloats: Int
        /// The read pass the calibration was last counted in.
        var calibrationEpoch: UInt32 = 0

        init(codec: KVRecordCodec, headCount: Int, capacity: Int, scopeCount: Int, pools: PagePools?) {
            self.codec = codec
            recordsPerPage = max(1, PagedKVCache.pageSize / codec.tokens)
            pagesPerHead = (capacity + recordsPerPage - 1) / recordsPerPage
            let bytes = recordsPerPage * codec.recordBytes, slab = max(16, headCount)
            pool = pools?.bytes(elementsPerPage: bytes, pagesPerSlab: slab) ?? PagePool(elementsPerPage: bytes, pagesPerSlab: slab, zero: 0)
            pageTables = arena.allocate(Int32.self, count: headCount * pagesPerHead)
            recordCounts = arena.allocate(count: headCount, repeating: 0)
            live = arena.allocate(Int32.self, count: headCount * capacity)
            stamps = arena.allocate(count: headCount * capacity, repeating: 0)
            calibrationFloats = max(1, scopeCount * codec.calibrationCount)
            calibration = arena.allocate(count: calibrationFloats, repeating: codec.calibrationCount > 0 ? .nan : 1)
        }

        @inline(__always)
        func record(index: Int, _ r: Int) -> UnsafeMutableRawPointer {
            UnsafeMutableRawPointer(pool.pointer(pageTables[index * pagesPerHead + r / recordsPerPage]) + r % recordsPerPage * codec.recordBytes)
        }
    }

    let lanes: [Lane]
    /// The lanes again as stored properties, for the attention kernels (`withLane`).
    private let first: Lane
    private let second: Lane?
    /// Entries per record, the same in every lane.
    let tokens: Int
    /// Where the payload's traffic is counted (`.keys` or `.values`).
    let buffer: IOBuffer
    private let headCount: Int
    private let kvHeadCount: Int
    private let capacity: Int
    private let arena = BufferArena()
    /// Floats per vector: the head size, or the kept channels of keys pruned by `think`.
    let headDim: Int
    /// Entries of each (layer, KV head) quantized in this tensor. Apart from protected sinks
    /// before them, they are always the oldest kept entries: quantization takes entries in position
    /// order and eviction keeps the order.
    let quantizedCounts: UnsafeMutablePointer<Int>
    /// Calibration scopes: a layer (per-tensor fp8 scale, nuq levels) or a (layer, head); 0 without.
    private let scopeCount: Int
    private var epoch: UInt32 = 0
    /// `tokens × headDim` floats for rewrites.
    private let scratch: UnsafeMutablePointer<Float>
    /// `tokens × headDim` floats where the cache gathers the vectors of a record before `add`.
    let staging: UnsafeMutablePointer<Float>
    /// Where the cache gathers a scope's fp32 vectors before `calibrate`, head after head in
    /// position order, and how many of each head's (every head of the scope full at most); nuq's
    /// normalized copy of them. Empty without calibration.
    let sample: UnsafeMutablePointer<Float>
    let sampleEntries: UnsafeMutablePointer<Int>
    private let normalized: UnsafeMutablePointer<Float>

    /// A store with one lane per codec (the same entries per record and vector length in each).
    init(lanes codecs: [KVRecordCodec], buffer: IOBuffer, layout: KVLayout, pools: PagePools? = nil) {
        precondition((1...2).contains(codecs.count) && codecs.allSatisfy { $0.tokens == codecs[0].tokens && $0.headDim == codecs[0].headDim },
                     "one or two lanes grouping entries alike")
        tokens = codecs[0].tokens
        self.buffer = buffer
        kvHeadCount = layout.kvHeadCount
        headCount = layout.layerCount * layout.kvHeadCount
        capacity = layout.capacity
        headDim = codecs[0].headDim
        let codec = codecs[0], heads = layout.layerCount * layout.kvHeadCount
        let scopes: Int
        if codec.calibrationCount == 0 {
            scopes = 0
        } else if case .fp8(_, .head) = codec.format {
            scopes = heads
        } else {
            scopes = layout.layerCount
        }
        scopeCount = scopes
        lanes = codecs.map { Lane(codec: $0, headCount: heads, capacity: layout.capacity, scopeCount: scopes, pools: pools) }
        first = lanes[0]
        second = lanes.count > 1 ? lanes[1] : nil
        quantizedCounts = arena.allocate(count: headCount, repeating: 0)
        scratch = arena.allocate(Float.self, count: tokens * headDim)
        staging = arena.allocate(Float.self, count: tokens * headDim)
        let sampleHeads = scopeCount == 0 ? 0 : scopeCount == headCount ? 1 : kvHeadCount
        let sampleFloats = sampleHeads * capacity * headDim
        sample = arena.allocate(Float.self, count: sampleFloats)
        sampleEntries = arena.allocate(Int.self, count: sampleHeads)
        normalized = arena.allocate(Float.self, count: codec.nonUniform == nil ? 0 : sampleFloats)
    }

    /// Runs `body` on lane `l` passed straight from its stored property: taking it out of `lanes`
    /// copies the reference, and that retain and release cost more than decoding a short head.
    @inline(__always)
    private func withLane<R>(_ l: Int, _ body: (Lane) -> R) -> R {
        l == 0 ? body(first) : body(second!)
    }

    /// The lane, record and member of a member's code (with one lane, no further division: this
    /// runs for every quantized key and value attention reads).
    @inline(__always)
    private func split(_ code: Int) -> (lane: Int, record: Int, member: Int) {
        let id = code / tokens, member = code - id * tokens
        return lanes.count == 1 ? (0, id, member) : (id & 1, id >> 1, member)
    }

    // MARK: - Calibration

    /// Whether entries of head `index` need their scope calibrated before they can be encoded.
    func needsCalibration(index: Int) -> Bool { scopeCount > 0 && lanes[0].calibration[scope(index) * lanes[0].codec.calibrationCount].isNaN }

    /// The heads sharing head `index`'s calibration (its layer's heads for a per-layer scope).
    func scopeHeads(index: Int) -> Range<Int> {
        scopeCount == headCount ? index..<(index + 1) : (index - index % kvHeadCount)..<(index - index % kvHeadCount + kvHeadCount)
    }

    /// Calibrates head `index`'s scope in every lane from the vectors the cache gathered in `sample`
    /// (`sampleEntries` of each head of the scope).
    ///
    /// fp8 scales follow vLLM's `calc_kv_scales` on its first batch: amax/200 for keys and amax/100
    /// for values (its K_/V_SCALE_CONSTANT), which leaves e4m3 (max 448) 2.24× and 4.48× headroom
    /// for later, larger values; 1 when the sample is all zero. nuq levels are Lloyd's on the
    /// sample's normalized values (`KVRecordCodec.normalizedSample`), stored as fp16.
    func calibrate(index: Int) {
        guard scopeCount > 0 else { return }
        let heads = scopeHeads(index: index).count
        let entries = (0..<heads).reduce(0) { $0 + sampleEntries[$1] }
        for lane in lanes {
            let codec = lane.codec
            let target = lane.calibration + scope(index) * codec.calibrationCount
            if let nonUniform = codec.nonUniform {
                // Head by head, so per-channel groups form as they will when the entries are quantized.
                var count = 0, offset = 0
                for h in 0..<heads {
                    count += codec.normalizedSample(sample + offset * headDim, entries: sampleEntries[h], into: normalized + count)
                    offset += sampleEntries[h]
                }
                withUnsafeTemporaryAllocation(of: UInt16.self, capacity: nonUniform.levelCount) { bits in
                    nonUniform.fitLevels(UnsafeMutableBufferPointer(start: normalized, count: count), into: bits.baseAddress!)
                    for j in 0..<nonUniform.levelCount { target[j] = Half.toFloat(bits[j]) }
                }
            } else {
                let absMax = FP8Format.absMax(sample, count: entries * headDim)
                let range: Float = buffer == .keys ? 200 : 100
                target[0] = absMax.isFinite && absMax > 0 ? absMax / range : 1
            }
        }
    }

    @inline(__always)
    private func scope(_ index: Int) -> Int { scopeCount == headCount ? index : index / kvHeadCount }

    @inline(__always)
    private func calibration(_ lane: Lane, _ index: Int) -> UnsafePointer<Float> {
        UnsafePointer(lane.calibration + (scopeCount > 0 ? scope(index) * lane.codec.calibrationCount : 0))
    }

    // MARK: - Records

    /// Encodes the `tokens` vectors in `staging` (token-major) as a new record of head `index` in
    /// `lane`, every member live, and returns its id.
    func add(index: Int, lane l: Int, ledger: inout IOLedger) -> Int {
        let lane = lanes[l]
        let r = lane.recordCounts[index]
        if r % lane.recordsPerPage == 0 { lane.pageTables[index * lane.pagesPerHead + r / lane.recordsPerPage] = lane.pool.acquire() }
        lane.codec.encode(staging, calibration: calibration(lane, index), into: lane.record(index: index, r))
        lane.live[index * capacity + r] = Int32(tokens)
        lane.recordCounts[index] = r + 1
        quantizedCounts[index] += tokens
        ledger.write(buffer, lane.codec.payloadBytes)
        ledger.write(.quantMetadata, lane.codec.metadataBytes)
        return r * lanes.count + l
    }

    /// Decodes member `code` into `destination`.
    @inline(__always)
    func decode(index: Int, code: Int, into destination: UnsafeMutablePointer<Float>) {
        let (l, r, member) = split(code)
        withLane(l) { lane in
            lane.codec.decode(lane.record(index: index, r), member: member, calibration: calibration(lane, index), into: destination)
        }
    }

    /// Re-encodes a record with one member's vector replaced (the other members are re-encoded
    /// from their decoded values, so their precision is lost once more).
    func rewrite(index: Int, code: Int, with vector: UnsafePointer<Float>, ledger: inout IOLedger) {
        let (l, r, member) = split(code)
        let lane = lanes[l], codec = lane.codec, bytes = lane.record(index: index, r), calibration = calibration(lane, index)
        codec.decodeAll(bytes, calibration: calibration, into: scratch)
        (scratch + member * headDim).update(from: vector, count: headDim)
        codec.encode(scratch, calibration: calibration, into: bytes)
        ledger.read(buffer, codec.payloadBytes)
        ledger.read(.quantMetadata, codec.metadataBytes)
        ledger.write(buffer, codec.payloadBytes)
        ledger.write(.quantMetadata, codec.metadataBytes)
    }

    /// Marks a member evicted. When its record empties, the head's last record of that lane moves
    /// into its place and `relocate(from, to)` (record ids) lets the cache re-point its members.
    func remove(index: Int, code: Int, ledger: inout IOLedger, relocate: (_ from: Int, _ to: Int) -> Void) {
        let (l, r, _) = split(code)
        let lane = lanes[l]
        quantizedCounts[index] -= 1
        lane.live[index * capacity + r] -= 1
        guard lane.live[index * capacity + r] == 0 else { return }
        let last = lane.recordCounts[index] - 1
        if r != last {
            let codec = lane.codec
            lane.record(index: index, r).copyMemory(from: lane.record(index: index, last), byteCount: codec.recordBytes)
            lane.live[index * capacity + r] = lane.live[index * capacity + last]
            relocate(last * lanes.count + l, r * lanes.count + l)
            ledger.read(buffer, codec.payloadBytes)
            ledger.read(.quantMetadata, codec.metadataBytes)
            ledger.write(buffer, codec.payloadBytes)
            ledger.write(.quantMetadata, codec.metadataBytes)
        }
        lane.recordCounts[index] = last
        if last % lane.recordsPerPage == 0 { lane.pool.release(lane.pageTables[index * lane.pagesPerHead + last / lane.recordsPerPage]) }
    }

    /// Frees everything and forgets the calibration (a new sequence).
    func reset() {
        for lane in lanes {
            for index in 0..<headCount {
                let pages = (lane.recordCounts[index] + lane.recordsPerPage - 1) / lane.recordsPerPage
                for p in 0..<pages { lane.pool.release(lane.pageTables[index * lane.pagesPerHead + p]) }
                lane.recordCounts[index] = 0
            }
            if lane.codec.calibrationCount > 0 { lane.calibration.update(repeating: .nan, count: lane.calibrationFloats) }
        }
        quantizedCounts.update(repeating: 0, count: headCount)
    }

    // MARK: - Reads and residency

    /// Starts a read pass (one kernel over one head): each record is then counted once.
    func beginReads() {
        epoch &+= 1
        if epoch == 0 {
            for lane in lanes { lane.stamps.update(repeating: 0, count: headCount * capacity) }
            epoch = 1
        }
    }

    /// Counts the read of the record holding member `code` (and its lane's calibration) unless this
    /// pass already read it: a member's codes are interleaved with its record's, so the kernel reads the record.
    @inline(__always)
    func countRead(index: Int, code: Int, ledger: inout IOLedger) {
        let (l, r, _) = split(code)
        withLane(l) { lane in
            let stamp = lane.stamps + index * capacity + r
            guard stamp.pointee != epoch else { return }
            stamp.pointee = epoch
            ledger.read(buffer, lane.codec.payloadBytes)
            ledger.read(.quantMetadata, lane.codec.metadataBytes)
            countCalibrationRead(lane, ledger: &ledger)
        }
    }

    /// Counts the read of every record of head `index` (a dense pass).
    func countReadAll(index: Int, ledger: inout IOLedger) {
        for lane in lanes {
            let records = lane.recordCounts[index]
            guard records > 0 else { continue }
            ledger.read(buffer, records * lane.codec.payloadBytes)
            ledger.read(.quantMetadata, records * lane.codec.metadataBytes)
            countCalibrationRead(lane, ledger: &ledger)
        }
    }

    private func countCalibrationRead(_ lane: Lane, ledger: inout IOLedger) {
        guard scopeCount > 0, lane.calibrationEpoch != epoch else { return }
        lane.calibrationEpoch = epoch
        ledger.read(.quantMetadata, lane.codec.calibrationBytes)
    }

    /// Bytes one member occupies as stored: its share of its record.
    func storedBytes(code: Int) -> Int {
        let recordBytes = lanes[split(code).lane].codec.recordBytes
        return (recordBytes + tokens - 1) / tokens
    }

    /// Adds head `index`'s records: payload of live members, metadata of every record, and as
    /// page slack the unused records of each lane's last page and the dead members' share of each
    /// record's payload (`payload × dead / tokens`, rounded down; the rest stays payload).
    func addResidency(index: Int, to r: inout KVResidency) {
        for lane in lanes {
            let codec = lane.codec, records = lane.recordCounts[index]
            let pages = (records + lane.recordsPerPage - 1) / lane.recordsPerPage
            r.pageSlack += (pages * lane.recordsPerPage - records) * codec.recordBytes
            r.quantMetadata += records * codec.metadataBytes
            for i in 0..<records {
                let dead = codec.payloadBytes * (tokens - Int(lane.live[index * capacity + i])) / tokens
                r.pageSlack += dead
                r.quantizedPayload += codec.payloadBytes - dead
            }
        }
    }

    /// Bytes of the calibration fixed so far (fp32 fp8 scales, fp16 nuq levels).
    var calibrationBytes: Int {
        guard scopeCount > 0 else { return 0 }
        return lanes.reduce(0) { total, lane in
            let count = lane.codec.calibrationCount
            return total + (0..<scopeCount).reduce(0) { $0 + (lane.calibration[$1 * count].isNaN ? 0 : lane.codec.calibrationBytes) }
        }
    }

    /// Bytes taken from the pools, calibration included: what the residency of this store adds up to.
    var allocatedBytes: Int { lanes.reduce(0) { $0 + $1.pool.pagesInUse * $1.pageBytes } + calibrationBytes }
}
