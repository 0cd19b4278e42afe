import Foundation
import KVLabMethods

/// Names a sequence of a `BatchedEngine` (never reused within one engine).
public struct SequenceID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public static func < (a: SequenceID, b: SequenceID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "seq \(rawValue)" }
}

/// Names a shared prefix of a `BatchedEngine` (never reused within one engine).
public struct PrefixID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public static func < (a: PrefixID, b: PrefixID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "prefix \(rawValue)" }
}

/// The KV methods every sequence of a `BatchedEngine` runs: the same typed settings a
/// `PagedKVCache` takes.
public struct CacheMethods: Sendable, Hashable, CustomStringConvertible {
    public var eviction: EvictionMethod
    public var sparse: SparseMethod
    public var quant: KVQuantMethod

    public init(eviction: EvictionMethod = .full, sparse: SparseMethod = .dense, quant: KVQuantMethod = .fp32) {
        self.eviction = eviction
        self.sparse = sparse
        self.quant = quant
    }

    /// What a cache would trap on: the quantization against heads of `headDim`, the eviction
    /// method against the quantization; and a method that scores with forks (kvpress's KVzip).
    public func check(headDim: Int) throws(MethodSpecError) {
        try quant.check(headDim: headDim)
        try eviction.check(quant: quant)
        if eviction.scoresWithForks {
            throw MethodSpecError("kvpress:kvzip runs a second pass after each prompt, which batched sequences do not (use run, eval or the workbench)")
        }
    }

    public var description: String { "\(eviction) \(sparse) \(quant)" }
}

/// One sequence's share of a batched step.
public enum BatchWork: Sendable, Hashable {
    /// Decode `token` (the sequence's prompt is done) at the sequence's next position.
    case decode(SequenceID, token: Int)
    /// The next `tokens` tokens (at most) of the sequence's pending prompt (`setPrompt`): one
    /// chunk of a chunked prefill. A method that acts after every prompt token takes one a step.
    case prefill(SequenceID, tokens: Int)

    public var sequence: SequenceID {
        switch self {
        case .decode(let id, _), .prefill(let id, _): id
        }
    }
}

/// Why a `BatchedEngine` call could not run. Nothing changed when one is thrown by `step`
/// before any sequence ran (every case but `engine` from `makeRoom` on a later sequence).
public enum BatchError: Error, Equatable, CustomStringConvertible {
    case engine(SequenceID, EngineError)
    case unknownSequence(SequenceID)
    case unknownPrefix(PrefixID)
    /// The step (or admission) needs `needed` bytes of pages and the pool has `available` left.
    case poolFull(needed: Int, available: Int)
    case swappedOut(SequenceID)
    case notSwappedOut(SequenceID)
    /// Decode asked of a sequence whose prompt still has tokens to prefill.
    case promptPending(SequenceID, remaining: Int)
    /// Prefill asked of a sequence with no prompt tokens left.
    case noPromptPending(SequenceID)
    /// A sequence named twice in one step.
    case duplicateWork(SequenceID)
    /// A prompt given to a sequence that already has one pending.
    case promptAlreadyPending(SequenceID)
    /// Methods the cache cannot run (`CacheMethods.check`), or a prefix they cannot share.
    case methods(MethodSpecError)
    /// A step with no work.
    case noWork

    public var description: String {
        switch self {
        case .engine(let id, let error): "\(id): \(error)"
        case .unknownSequence(let id): "no \(id) in the engine"
        case .unknownPrefix(let id): "no \(id) in the engine"
        case .poolFull(let needed, let available): "the page pool is full: \(needed) B needed, \(available) B left"
        case .swappedOut(let id): "\(id) is swapped out to host memory (swap it in first)"
        case .notSwappedOut(let id): "\(id) is not swapped out"
        case .promptPending(let id, let remaining): "\(id) still has \(remaining) prompt tokens to prefill"
        case .noPromptPending(let id): "\(id) has no prompt tokens left to prefill"
        case .duplicateWork(let id): "\(id) appears twice in one step"
        case .promptAlreadyPending(let id): "\(id) already has a prompt pending"
        case .methods(let error): "\(error)"
        case .noWork: "a step needs at least one sequence's work"
        }
    }
}

/// What one sequence did in a batched step: its `StepReport` (its ledger holds its own KV-cache
/// traffic: appends, attention, policy, quantization; the weights are the batch's).
public struct SequenceStepReport: Sendable, Equatable {
    public var sequence: SequenceID
    public var report: StepReport
}

/// What one batched step did.
public struct BatchReport: Sendable, Equatable {
    /// Each sequence's part, in the order the work named them.
    public var sequences: [SequenceStepReport]
    /// The whole step: every weight matrix counted once, activations of every row, and each
    /// sequence's KV traffic.
    public var ledger: IOLedger
    /// Rows that went through the weight products (decode tokens plus prefill chunk tokens).
    public var rows: Int
    /// Floating-point operations of the weight products (two per weight and row) and of attention
    /// (dense over the entries each query sees); norms and activations are left out.
    public var flops: UInt64
    public var timings: StepTimings

    /// Weight bytes the step read (once for all rows).
    public var weightBytes: UInt64 { ledger.bytesRead(.weights) }
}

/// Resident page bytes of one sequence in the shared pool.
public struct SequenceBytes: Sendable, Equatable {
    /// Pages only this sequence references.
    public var privateBytes: Int
    /// Pages it shares with a prefix (or other sequences), counted once in the pool.
    public var sharedBytes: Int
    public var totalBytes: Int { privateBytes + sharedBytes }
}

/// A llama-family decoder running many sequences at once over one page pool: each step takes
/// one decode token or one prefill chunk per sequence named, runs all their rows through each
/// weight matrix once (a matrix-vector product when there is a single row, batched products as in
/// prefill otherwise), and attends each sequence on its own `PagedKVCache`. Every sequence runs
/// the same `CacheMethods` (a change applies to all from the next step) with its own eviction,
/// quantization and sparse state. Not thread-safe: one owner thread.
///
/// A batch of one decodes bit-identically to `InferenceEngine.decode`, and a single prefill chunk
/// runs `InferenceEngine.prefill`'s products; with more rows the products sum in another order
/// (BLAS, the integer tiles), so logits agree to float rounding and greedy continuations match.
public final class BatchedEngine {
    public let weights: ModelWeights
    public var config: ModelConfig { weights.config }
    public let options: EngineOptions
    /// Tokens each sequence's cache holds at most (its context).
    public let capacity: Int
    public private(set) var methods: CacheMethods
    /// The pages of every sequence and prefix, under the byte budget.
    public let pool: SharedPagePool

    let rope: EngineRoPE
    let workers: WorkerPool
    /// Input of single-row products, quantized for the kernels of quantized weights.
    let quantized: QuantizedActivation
    var sequences: [SequenceID: SequenceState] = [:]
    var prefixes: [PrefixID: SequenceState] = [:]
    var nextSequence = 0
    var nextPrefix = 0
    /// Scratch of the steps' rows, kept from step to step and grown when a step has more rows.
    private var rowBuffers: PrefillBuffers?
    private var rowCapacity = 0

    /// A pool of `poolBudget` bytes (nil: unbounded) for sequences of up to `capacity` tokens (the
    /// model's context by default).
    public init(weights: ModelWeights, options: EngineOptions = EngineOptions(), capacity: Int? = nil,
                methods: CacheMethods = CacheMethods(), poolBudget: Int? = nil) throws(BatchError) {
        do { try methods.check(headDim: weights.config.headDim) } catch { throw .methods(error) }
        self.weights = options.weightType.map { weights.converted(to: $0) } ?? weights
        self.options = options
        self.capacity = capacity ?? weights.config.contextLength
        self.methods = methods
        pool = SharedPagePool(budget: poolBudget)
        rope = EngineRoPE(config: weights.config)
        workers = WorkerPool(threads: options.threads)
        quantized = QuantizedActivation(capacity: max(weights.config.dim, weights.config.hiddenDim))
        BLAS.useOneThread()
    }

    deinit { rowBuffers?.deallocate() }

    /// Scratch for `rows` rows (every buffer is written before it is read in a step).
    func buffers(rows: Int) -> PrefillBuffers {
        if let rowBuffers, rows <= rowCapacity { return rowBuffers }
        rowBuffers?.deallocate()
        rowCapacity = max(rows, 2 * rowCapacity)
        let buffers = PrefillBuffers(config: config, tokens: rowCapacity, angles: rope.anglesPerPosition)
        rowBuffers = buffers
        return buffers
    }

    /// The live sequences, in the order they were added.
    public var sequenceIDs: [SequenceID] { sequences.keys.sorted() }
    /// The live prefixes, in the order they were made.
    public var prefixIDs: [PrefixID] { prefixes.keys.sorted() }

    func state(_ id: SequenceID) throws(BatchError) -> SequenceState {
        guard let state = sequences[id] else { throw .unknownSequence(id) }
        return state
    }

    /// A new cache on the shared pool running the current methods.
    func makeCache() -> PagedKVCache {
        let cache = PagedKVCache(layout: KVLayout(config: config, capacity: capacity), eviction: methods.eviction, sparse: methods.sparse,
                                 quant: methods.quant, pools: pool.pools)
        if let attention = options.attention { cache.attentionKernel = attention }
        return cache
    }

    /// Switches every sequence's (and prefix's) methods from the next step on; returns the traffic
    /// the switch cost (re-stores, evictions), summed over the sequences. A swapped-out sequence
    /// switches when it is swapped in.
    @discardableResult
    public func setMethods(_ new: CacheMethods) throws(BatchError) -> IOLedger {
        do { try new.check(headDim: config.headDim) } catch { throw .methods(error) }
        methods = new
        var ledger = IOLedger()
        for state in sequences.values.sorted(by: { $0.id < $1.id }) + prefixes.values.sorted(by: { $0.id < $1.id }) where state.swapped == nil {
            applyMethods(to: state.cache, ledger: &ledger)
        }
        return ledger
    }

    /// Brings a cache to the engine's methods.
    func applyMethods(to cache: PagedKVCache, ledger: inout IOLedger) {
        if cache.eviction != methods.eviction { cache.setEviction(methods.eviction, ledger: &ledger) }
        cache.setSparse(methods.sparse)
        cache.setKVQuant(methods.quant, ledger: &ledger)
    }

    // MARK: - Sequences

    /// A new, empty sequence (position 0, no pages yet).
    public func addSequence() -> SequenceID {
        let id = SequenceID(nextSequence)
        nextSequence += 1
        sequences[id] = SequenceState(id: id, cache: makeCache())
        return id
    }

    /// Ends a sequence: its pages go back to the pool (shared ones once nothing else holds them).
    public func removeSequence(_ id: SequenceID) throws(BatchError) {
        discard(try state(id))
        sequences[id] = nil
    }

    /// Gives a sequence a prompt to prefill from its current position, chunk by chunk through
    /// `.prefill` work; the whole prompt must fit the sequence's context.
    public func setPrompt(_ id: SequenceID, tokens: [Int]) throws(BatchError) {
        let state = try state(id)
        guard state.swapped == nil else { throw .swappedOut(id) }
        guard state.pending.isEmpty else { throw .promptAlreadyPending(id) }
        guard !tokens.isEmpty else { throw .engine(id, .emptyInput) }
        for token in tokens where token < 0 || token >= config.vocabSize {
            throw .engine(id, .invalidToken(token, vocabularySize: config.vocabSize))
        }
        guard state.cache.hasRoom(position: state.position, count: tokens.count) else {
            throw .engine(id, .contextFull(limit: capacity))
        }
        state.pending = tokens
        state.promptEnd = state.position + tokens.count
        state.cache.beginPrompt(end: state.position + tokens.count)
    }

    /// Prompt tokens of a sequence still to prefill.
    public func pendingPromptTokens(_ id: SequenceID) throws(BatchError) -> Int { try state(id).pending.count }

    /// Position of a sequence's next token.
    public func position(_ id: SequenceID) throws(BatchError) -> Int { try state(id).position }

    /// Every token a sequence has run through the model so far (prompt and decoded inputs).
    public func tokens(_ id: SequenceID) throws(BatchError) -> [Int] { try state(id).history }

    /// A sequence's cache (its methods' per-head state, entries, residency).
    public func cache(_ id: SequenceID) throws(BatchError) -> PagedKVCache { try state(id).cache }

    /// A sequence's logits after its last step (vocabulary size; empty before its first).
    public func logits(_ id: SequenceID) throws(BatchError) -> [Float] { try state(id).logits }

    /// A sequence's report of its last step.
    public func lastReport(_ id: SequenceID) throws(BatchError) -> StepReport? { try state(id).lastReport }
}

/// One sequence (or prefix) of a `BatchedEngine`.
final class SequenceState {
    let id: SequenceID
    let cache: PagedKVCache
    var position = 0
    /// Prompt tokens not yet prefilled, and where the prompt ends while it runs.
    var pending: [Int] = []
    var promptEnd: Int?
    /// Whether the cache is inside a batched prompt (`beginPrefill`) whose end has not run: a
    /// prompt between chunks, or a prefix and its forks waiting for the rest of their prompt.
    var inPrompt = false
    var history: [Int] = []
    var logits: [Float] = []
    var lastReport: StepReport?
    /// The sequence's pages while they are in host memory.
    var swapped: SwappedPages?
    /// The prefix it was forked from.
    var prefix: PrefixID?

    init(id: SequenceID, cache: PagedKVCache) {
        self.id = id
        self.cache = cache
    }
}
