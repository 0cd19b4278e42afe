/// One tensor's (keys' or values') quantized entries for every (layer, KV head): records of
/// `codec.tokens` entries in byte pages from a pool with a free list. Each head fills records
/// 0..<count with no holes (an emptied record is refilled by the head's last one), so its tail page
/// frees as soon as it empties. A member evicted while others of its record live stays in place,
/// dead, until the record empties. The cache maps each entry to its record and member.
final class QuantizedKVStore {
    let codec: KVRecordCodec
    /// Where the payload's traffic is counted (`.keys` or `.values`).
    let buffer: IOBuffer
    /// Records per page: a page holds about as many entries as an fp32 page (at least one record).
    let recordsPerPage: Int
    var pageBytes: Int { recordsPerPage * codec.recordBytes }
    private let pool: PagePool<UInt8>
    private let headCount: Int
    private let kvHeadCount: Int
    private let capacity: Int
    private let pagesPerHead: Int
    private let pageTables: UnsafeMutablePointer<Int32>
    private let recordCounts: UnsafeMutablePointer<Int>
    /// Live members per (head, record); a record never holds more records than its head entries.
    private let live: UnsafeMutablePointer<Int32>
    /// Entries of each (layer, KV head) quantized in this tensor. They are always the oldest kept
    /// entries: quantization takes entries in position order and eviction keeps the order.
    let quantizedCounts: UnsafeMutablePointer<Int>
    /// fp8 scales per scope (a layer for a per-tensor scale, a (layer, head) for per-head); NaN
    /// until the scope's first entries are quantized.
    private let scales: UnsafeMutablePointer<Float>
    private let scopeCount: Int
    /// The read pass each record was last counted in, so a pass counts a record once.
    private let stamps: UnsafeMutablePointer<UInt32>
    private var epoch: UInt32 = 0
    private var scaleEpoch: UInt32 = 0
    /// `tokens × headDim` floats for decoding blocks that straddle entries and for rewrites.
    private let scratch: UnsafeMutablePointer<Float>
    /// `tokens × headDim` floats where the cache gathers the vectors of a record before `add`.
    let staging: UnsafeMutablePointer<Float>

    init(codec: KVRecordCodec, buffer: IOBuffer, layout: KVLayout) {
        self.codec = codec
        self.buffer = buffer
        recordsPerPage = max(1, PagedKVCache.pageSize / codec.tokens)
        kvHeadCount = layout.kvHeadCount
        headCount = layout.layerCount * layout.kvHeadCount
        capacity = layout.capacity
        pagesPerHead = (capacity + recordsPerPage - 1) / recordsPerPage
        pool = PagePool(elementsPerPage: recordsPerPage * codec.recordBytes, pagesPerSlab: max(16, headCount), zero: 0)
        pageTables = .allocate(capacity: headCount * pagesPerHead)
        recordCounts = .allocate(capacity: headCount)
        recordCounts.initialize(repeating: 0, count: headCount)
        quantizedCounts = .allocate(capacity: headCount)
        quantizedCounts.initialize(repeating: 0, count: headCount)
        live = .allocate(capacity: headCount * capacity)
        stamps = .allocate(capacity: headCount * capacity)
        stamps.initialize(repeating: 0, count: headCount * capacity)
        if case .fp8(_, let scope) = codec.format {
            scopeCount = scope == .tensor ? layout.layerCount : headCount
        } else {
            scopeCount = 0
        }
        scales = .allocate(capacity: scopeCount)
        scales.initialize(repeating: .nan, count: scopeCount)
        scratch = .allocate(capacity: codec.tokens * codec.headDim)
        staging = .allocate(capacity: codec.tokens * codec.headDim)
    }

    deinit {
        pageTables.deallocate()
        recordCounts.deallocate()
        quantizedCounts.deallocate()
        live.deallocate()
        stamps.deallocate()
        scales.deallocate()
        scratch.deallocate()
        staging.deallocate()
    }

    // MARK: - Scales

    /// Whether entries of head `index` need their fp8 scale fixed before they can be encoded.
    func needsScale(index: Int) -> Bool { scopeCount > 0 && scales[scope(index)].isNaN }

    /// The heads sharing head `index`'s scale (its layer's heads for a per-tensor scale).
    func scopeHeads(index: Int) -> Range<Int> {
        scopeCount == headCount ? index..<(index + 1) : (index - index % kvHeadCount)..<(index - index % kvHeadCount + kvHeadCount)
    }

    /// Fixes the fp8 scale of head `index`'s scope from the largest magnitude of its sample, as
    /// vLLM's `calc_kv_scales` does from its first batch: amax/200 for keys and amax/100 for values
    /// (its K_/V_SCALE_CONSTANT), which leaves e4m3 (max 448) 2.24× and 4.48× headroom for later,
    /// larger values; 1 when the sample is all zero.
    func fixScale(index: Int, absMax: Float) {
        guard scopeCount > 0 else { return }
        let range: Float = buffer == .keys ? 200 : 100
        scales[scope(index)] = absMax.isFinite && absMax > 0 ? absMax / range : 1
    }

    @inline(__always)
    private func scope(_ index: Int) -> Int { scopeCount == headCount ? index : index / kvHeadCount }

    @inline(__always)
    private func scale(_ index: Int) -> Float { scopeCount > 0 ? scales[scope(index)] : 1 }

    // MARK: - Records

    /// Encodes the `codec.tokens` vectors in `staging` (token-major) as a new record of head
    /// `index`, every member live, and returns its number.
    func add(index: Int, ledger: inout IOLedger) -> Int {
        let r = recordCounts[index]
        if r % recordsPerPage == 0 { pageTables[index * pagesPerHead + r / recordsPerPage] = pool.acquire() }
        codec.encode(staging, scale: scale(index), into: record(index: index, r))
        live[index * capacity + r] = Int32(codec.tokens)
        recordCounts[index] = r + 1
        quantizedCounts[index] += codec.tokens
        ledger.write(buffer, codec.payloadBytes)
        ledger.write(.quantMetadata, codec.metadataBytes)
        return r
    }

    /// Decodes member `code % tokens` of record `code / tokens` into `destination`.
    @inline(__always)
    func decode(index: Int, code: Int, into destination: UnsafeMutablePointer<Float>) {
        codec.decode(record(index: index, code / codec.tokens), member: code % codec.tokens, scale: scale(index),
                     into: destination, scratch: scratch)
    }

    /// Re-encodes a record with one member's vector replaced (the other members are re-encoded
    /// from their decoded values, so their precision is lost once more).
    func rewrite(index: Int, code: Int, with vector: UnsafePointer<Float>, ledger: inout IOLedger) {
        let bytes = record(index: index, code / codec.tokens)
        codec.decodeAll(bytes, scale: scale(index), into: scratch)
        (scratch + code % codec.tokens * codec.headDim).update(from: vector, count: codec.headDim)
        codec.encode(scratch, scale: scale(index), into: bytes)
        ledger.read(buffer, codec.payloadBytes)
        ledger.read(.quantMetadata, codec.metadataBytes)
        ledger.write(buffer, codec.payloadBytes)
        ledger.write(.quantMetadata, codec.metadataBytes)
    }

    /// Marks a member evicted. When its record empties, the head's last record moves into its
    /// place and `relocate(from, to)` lets the cache re-point that record's members.
    func remove(index: Int, code: Int, ledger: inout IOLedger, relocate: (_ from: Int, _ to: Int) -> Void) {
        let r = code / codec.tokens
        quantizedCounts[index] -= 1
        live[index * capacity + r] -= 1
        guard live[index * capacity + r] == 0 else { return }
        let last = recordCounts[index] - 1
        if r != last {
            record(index: index, r).copyMemory(from: record(index: index, last), byteCount: codec.recordBytes)
            live[index * capacity + r] = live[index * capacity + last]
            relocate(last, r)
            ledger.read(buffer, codec.payloadBytes)
            ledger.read(.quantMetadata, codec.metadataBytes)
            ledger.write(buffer, codec.payloadBytes)
            ledger.write(.quantMetadata, codec.metadataBytes)
        }
        recordCounts[index] = last
        if last % recordsPerPage == 0 { pool.release(pageTables[index * pagesPerHead + last / recordsPerPage]) }
    }

    /// Frees every record of head `index`.
    func removeAll(index: Int) {
        let pages = (recordCounts[index] + recordsPerPage - 1) / recordsPerPage
        for p in 0..<pages { pool.release(pageTables[index * pagesPerHead + p]) }
        recordCounts[index] = 0
        quantizedCounts[index] = 0
    }

    /// Frees everything and forgets the scales (a new sequence).
    func reset() {
        for index in 0..<headCount { removeAll(index: index) }
        scales.update(repeating: .nan, count: scopeCount)
    }

    @inline(__always)
    private func record(index: Int, _ r: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(pool.pointer(pageTables[index * pagesPerHead + r / recordsPerPage]) + r % recordsPerPage * codec.recordBytes)
    }

    // MARK: - Reads and residency

    /// Starts a read pass (one kernel over one head): each record is then counted once.
    func beginReads() {
        epoch &+= 1
        if epoch == 0 {
            stamps.update(repeating: 0, count: headCount * capacity)
            epoch = 1
        }
    }

    /// Counts the read of the record holding member `code` (and the fp8 scale) unless this pass
    /// already read it: a member's codes are interleaved with its record's, so the kernel reads the record.
    @inline(__always)
    func countRead(index: Int, code: Int, ledger: inout IOLedger) {
        let stamp = stamps + index * capacity + code / codec.tokens
        guard stamp.pointee != epoch else { return }
        stamp.pointee = epoch
        ledger.read(buffer, codec.payloadBytes)
        ledger.read(.quantMetadata, codec.metadataBytes)
        countScaleRead(ledger: &ledger)
    }

    /// Counts the read of every record of head `index` (a dense pass).
    func countReadAll(index: Int, ledger: inout IOLedger) {
        let records = recordCounts[index]
        guard records > 0 else { return }
        ledger.read(buffer, records * codec.payloadBytes)
        ledger.read(.quantMetadata, records * codec.metadataBytes)
        countScaleRead(ledger: &ledger)
    }

    private func countScaleRead(ledger: inout IOLedger) {
        guard scopeCount > 0, scaleEpoch != epoch else { return }
        scaleEpoch = epoch
        ledger.read(.quantMetadata, 4)
    }

    /// Adds head `index`'s records: payload of live members, metadata of every record, and as
    /// page slack the unused records of its last page and the dead members' share of each
    /// record's payload (`payload × dead / tokens`, rounded down; the rest stays payload).
    func addResidency(index: Int, to r: inout KVResidency) {
        let records = recordCounts[index]
        let pages = (records + recordsPerPage - 1) / recordsPerPage
        r.pageSlack += (pages * recordsPerPage - records) * codec.recordBytes
        r.quantMetadata += records * codec.metadataBytes
        for i in 0..<records {
            let dead = codec.payloadBytes * (codec.tokens - Int(live[index * capacity + i])) / codec.tokens
            r.pageSlack += dead
            r.quantizedPayload += codec.payloadBytes - dead
        }
    }

    /// Bytes of the fp8 scales fixed so far (fp32 each).
    var scaleBytes: Int { (0..<scopeCount).reduce(0) { $0 + (scales[$1].isNaN ? 0 : 4) } }

    /// Bytes taken from the pool, scales included: what the residency of this store adds up to.
    var allocatedBytes: Int { pool.pagesInUse * pageBytes + scaleBytes }
}
