import CKVLabKernels
import Glibc
import KVLabFoundation
import KVLabMethods
import Synchronization

/// A row-major `rows × cols` weight matrix held in memory in its storage type (f32, f16, bf16 or a
/// ggml block type), so resident bytes and the bytes a kernel reads are those of that type.
public final class WeightMatrix: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    public let type: WeightType
    /// The encoded bytes, immutable after init (hence safe to share across threads): 64-byte
    /// aligned memory of this matrix's own, or a model file's mapped bytes used in place.
    let storage: UnsafeMutableRawPointer
    public let byteCount: Int
    /// What keeps mapped bytes alive; nil when `storage` is this matrix's own allocation.
    private let mapping: AnyObject?
    /// The decode kernels' interleaved copy (`ckv_pack`: q4_0 and q4_K with whole 8-row groups),
    /// made on first use by a product, so that the load's checks and matrices used only for row
    /// lookups (token embeddings) never make one.
    private let packing = Mutex(PackedCopy())

    /// Whether the bytes are a mapped file's, used in place (resident only as the file's pages).
    public var isMapped: Bool { mapping != nil }

    /// Bytes of one row.
    public var rowBytes: Int { type.byteCount(elements: cols) }
    public var elementCount: Int { rows * cols }

    /// Wraps already-encoded bytes (as read from a file): used in place while `mapping` keeps them
    /// alive (read by the kernels from the mapped file, so resident once), else copied.
    init(rows: Int, cols: Int, type: WeightType, encoded bytes: UnsafeRawBufferPointer, mapping: AnyObject? = nil) throws {
        guard rows > 0, cols > 0 else { throw FormatError("tensor has an empty dimension (\(rows)×\(cols))") }
        guard type.canStore(rowLength: cols) else {
            throw FormatError("\(type.rawValue) needs rows that are a multiple of \(type.blockSize) elements, got \(cols)")
        }
        let (elements, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard !overflow else { throw FormatError("tensor of \(rows)×\(cols) elements is too large") }
        let expected = type.byteCount(elements: elements)
        guard bytes.count == expected else {
            throw FormatError("tensor data is \(bytes.count) bytes, expected \(expected) for \(rows)×\(cols) \(type.rawValue)")
        }
        self.rows = rows
        self.cols = cols
        self.type = type
        self.byteCount = expected
        // BLAS reads f32 matrices as floats: in place only at a float's alignment.
        if let mapping, Int(bitPattern: bytes.baseAddress!) % MemoryLayout<Float>.alignment == 0 {
            self.storage = UnsafeMutableRawPointer(mutating: bytes.baseAddress!)
            self.mapping = mapping
        } else {
            self.storage = UnsafeMutableRawPointer.allocate(byteCount: max(expected, 1), alignment: 64)
            storage.copyMemory(from: bytes.baseAddress!, byteCount: expected)
            self.mapping = nil
        }
    }

    /// Encodes float values into `type` (rounding exactly as ggml does).
    public convenience init(rows: Int, cols: Int, values: UnsafeBufferPointer<Float>, type: WeightType) {
        self.init(uninitializedRows: rows, cols: cols, type: type)
        encodeRows(from: values)
    }

    public convenience init(rows: Int, cols: Int, values: [Float], type: WeightType = .f32) {
        self.init(uninitializedRows: rows, cols: cols, type: type)
        values.withUnsafeBufferPointer { encodeRows(from: $0) }
    }

    private func encodeRows(from values: UnsafeBufferPointer<Float>) {
        precondition(values.count == rows * cols && type.canStore(rowLength: cols))
        for r in 0..<rows {
            BlockCodec.encode(values.baseAddress! + r * cols, count: cols, as: type, into: storage + r * rowBytes)
        }
    }

    private init(uninitializedRows rows: Int, cols: Int, type: WeightType) {
        self.rows = rows
        self.cols = cols
        self.type = type
        self.byteCount = type.byteCount(elements: rows * cols)
        self.storage = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
        self.mapping = nil
    }

    deinit {
        if mapping == nil { storage.deallocate() }
        packing.withLock { $0.bytes?.deallocate() }
    }

    /// Whether products read this matrix through an interleaved copy (`packedBytes`).
    var isPackable: Bool { ckv_can_pack(Int32(type.ggmlTypeID), Int32(rows)) != 0 }

    /// The interleaved copy the products read, made on the first call. A mapped matrix's own pages
    /// are then released (`MADV_DONTNEED`: the file's bytes stay in the page cache and come back
    /// on a later read, e.g. a row lookup or a writer), so the copy takes their place in memory
    /// instead of doubling it; an allocated matrix keeps both.
    func packedBytes() -> UnsafeRawPointer {
        packing.withLock { copy in
            if let bytes = copy.bytes { return UnsafeRawPointer(bytes) }
            let bytes = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: 64)
            ckv_pack(Int32(type.ggmlTypeID), storage, Int32(rows), Int32(cols), rowBytes, bytes)
            copy.bytes = bytes
            releaseMappedPages()
            return UnsafeRawPointer(bytes)
        }
    }

    /// Drops a mapped matrix's pages from the process (the whole pages inside its bytes; a later
    /// read faults them back from the page cache); nothing for a matrix in memory of its own.
    func releaseMappedPages() {
        releaseMappedPages(from: 0, to: byteCount)
    }

    /// Gives back the pages a lookup of row `r` of a mapped matrix mapped: a page fault on a file
    /// maps the cached pages around it too (the kernel's fault-around, 64 KiB by default), so a
    /// table read a row at a time (the token embedding) would otherwise stay resident in 64 KiB
    /// pieces.
    func releaseMappedPages(aroundRow r: Int) {
        let window = 64 << 10, address = Int(bitPattern: storage)
        let first = (address + r * rowBytes) / window * window, last = (address + (r + 1) * rowBytes + window - 1) / window * window
        releaseMappedPages(from: max(first - address, 0), to: min(last - address, byteCount))
    }

    /// The whole pages inside bytes [from, to) of a mapped matrix.
    private func releaseMappedPages(from: Int, to: Int) {
        guard mapping != nil else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE))), address = Int(bitPattern: storage)
        let start = (address + from + page - 1) / page * page, end = (address + to) / page * page
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    }

    /// The encoded bytes, as they would be written to a file.
    public var encodedBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: byteCount) }

    /// Pointer to the encoded bytes of row `r`.
    @inline(__always)
    func row(_ r: Int) -> UnsafeRawPointer { UnsafeRawPointer(storage + r * rowBytes) }

    /// Decodes row `r` into `dst` (cols floats).
    public func decodeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        // f16 through F16C: the codec's value-at-a-time decode cost a batched product on f16
        // weights more than the reads the batch saves.
        if type == .f16 {
            ckv_decode_f16(row(r), Int32(cols), dst)
        } else {
            BlockCodec.decode(row(r), count: cols, as: type, into: dst)
        }
    }

    /// All values as floats (for conversion, tests and writers; not for the hot path).
    public func decodedValues() -> [Float] {
        [Float](unsafeUninitializedCapacity: elementCount) { buffer, initialized in
            for r in 0..<rows { decodeRow(r, into: buffer.baseAddress! + r * cols) }
            initialized = elementCount
        }
    }

    /// The same matrix stored as `target`; rows whose length is not a whole number of `target`
    /// blocks take llama.cpp's fallback type instead (`WeightType.storing(rowLength:)`).
    public func converted(to target: WeightType) -> WeightMatrix {
        let chosen = target.storing(rowLength: cols)
        if chosen == type { return self }
        return WeightMatrix(rows: rows, cols: cols, values: decodedValues(), type: chosen)
    }

    /// The matrix with its rows reordered: row `i` of the result is row `order[i]` of this one.
    func permutingRows(_ order: [Int]) -> WeightMatrix {
        let result = WeightMatrix(uninitializedRows: rows, cols: cols, type: type)
        for (i, source) in order.enumerated() {
            (result.storage + i * rowBytes).copyMemory(from: row(source), byteCount: rowBytes)
        }
        return result
    }

    /// Rows `range` as a matrix of their own (a copy): how Phi-3's fused qkv and gate-up
    /// projections become the separate matrices the engine multiplies.
    func slicingRows(_ range: Range<Int>) -> WeightMatrix {
        let result = WeightMatrix(uninitializedRows: range.count, cols: cols, type: type)
        result.storage.copyMemory(from: row(range.lowerBound), byteCount: range.count * rowBytes)
        return result
    }

    /// Whether every value is finite (NaN or infinite weights are rejected at load).
    func allFinite() -> Bool {
        var scratch = [Float](repeating: 0, count: cols)
        return scratch.withUnsafeMutableBufferPointer { buffer in
            for r in 0..<rows {
                decodeRow(r, into: buffer.baseAddress!)
                for v in buffer where !v.isFinite { return false }
            }
            return true
        }
    }
}

/// A matrix's interleaved copy, once made (owned by the matrix, freed with it).
private struct PackedCopy: @unchecked Sendable {
    var bytes: UnsafeMutableRawPointer?
}
