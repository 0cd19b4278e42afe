/// Tokens one sequence takes in a step: a prompt chunk (or a chunk of what it recomputes), or
/// the one token it generated last.
public struct ServeWork: Sendable, Equatable {
    /// The sequence (its request's id).
    public var id: Int
    /// Its tokens from position `start` on.
    public var tokens: [Int]
    /// Position of the first of them.
    public var start: Int
    /// Whether it decodes its last generated token (else it prefills).
    public var decode: Bool
    /// Whether the step chooses its next token (a decode, or the chunk that ends a new prompt).
    public var samples: Bool

    public init(id: Int, tokens: [Int], start: Int, decode: Bool, samples: Bool) {
        self.id = id
        self.tokens = tokens
        self.start = start
        self.decode = decode
        self.samples = samples
    }
}

/// What a step did, as the scheduler needs it.
public struct ServeStepResult: Sendable, Equatable {
    /// The next token of each sequence whose work sampled, by id.
    public var tokens: [Int: Int]
    /// Wall time of the step as measured on this machine.
    public var nanoseconds: UInt64
    /// Copy-on-write copies of shared pages the step made (a private change to a shared page).
    public var copies: Int

    public init(tokens: [Int: Int], nanoseconds: UInt64, copies: Int = 0) {
        self.tokens = tokens
        self.nanoseconds = nanoseconds
        self.copies = copies
    }
}

/// Pool bytes by holder.
public struct PoolOccupancy: Sendable, Equatable, Codable {
    /// Bytes each resident sequence holds alone, by id (ascending).
    public var sequences: [SequenceBytes]
    /// Bytes of shared prefix pages, counted once.
    public var shared: Int
    /// The pool's budget.
    public var capacity: Int

    public struct SequenceBytes: Sendable, Equatable, Codable {
        public var id: Int
        public var bytes: Int

        public init(id: Int, bytes: Int) {
            self.id = id
            self.bytes = bytes
        }
    }

    public init(sequences: [SequenceBytes], shared: Int, capacity: Int) {
        self.sequences = sequences
        self.shared = shared
        self.capacity = capacity
    }

    /// Bytes in use.
    public var used: Int { sequences.reduce(shared) { $0 + $1.bytes } }
}

/// What the scheduler needs of a batched engine whose sequences keep their KV in one page pool
/// of a fixed byte budget. The scheduler decides who runs and how much; the backend runs the
/// model, owns the pages (shared prefixes copy-on-write) and moves them to host DRAM and back.
public protocol ServeBackend: AnyObject {
    /// The pool's budget in bytes.
    var poolCapacity: Int { get }
    /// Bytes the pool holds now, shared pages once.
    var poolUsed: Int { get }
    /// The pool's bytes by holder.
    var occupancy: PoolOccupancy { get }
    /// At most the pool bytes `request`'s prompt takes to run (its pages at their peak), pages of
    /// a shared prefix already in the pool counted as free.
    func bytesToAdmit(_ request: ServeRequest) -> Int
    /// At most the pool bytes `request`'s sequence holds at its largest, prompt and every output
    /// token under the KV methods in effect (what the wait policy reserves).
    func lifeBytes(_ request: ServeRequest) -> Int
    /// The most prompt tokens a started sequence takes in one step: 1 under a method that acts
    /// after every token (its prompt runs a token a step), else no limit.
    func prefillLimit(_ id: Int) -> Int
    /// At most the bytes of new pages one decode token takes in a sequence (a page for every
    /// layer and KV head, and the records its quantization may start).
    var decodeGrowth: Int { get }
    /// At most the bytes of new pages `work` takes (started, resident sequences only).
    func bytesNeeded(_ work: [ServeWork]) -> Int
    /// Registers a sequence (its prompt's tokens come in `step`s); returns how many of its first
    /// tokens the backend already holds (a shared prefix), or 0. A sequence dropped earlier
    /// starts again from its first token.
    func start(_ request: ServeRequest) throws -> Int
    /// One batched forward pass over every work item.
    func step(_ work: [ServeWork]) throws -> ServeStepResult
    /// Moves a sequence's private pages to host DRAM; returns their bytes.
    func swapOut(_ id: Int) throws -> Int
    /// Brings a swapped sequence's pages back; returns their bytes.
    func swapIn(_ id: Int) throws -> Int
    /// Bytes a swapped sequence needs to come back.
    func swappedBytes(_ id: Int) -> Int
    /// Frees a sequence's pages (it starts again from its first token later).
    func drop(_ id: Int) throws
    /// Frees a finished sequence.
    func finish(_ id: Int) throws
}
