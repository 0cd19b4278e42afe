import KVLabMethods

/// Keys and values of every (layer, KV head), and the attention that reads them: all the forward
/// pass sees of the cache, so it never branches on a method. `PagedKVCache` is the one conformer;
/// methods (eviction, quantization, sparse reads) are its components, switchable between steps.
public protocol KVCache: AnyObject {
    var layout: KVLayout { get }
    /// What the cache occupies now.
    var residency: KVResidency { get }
    /// Entries currently kept by one (layer, KV head).
    func entryCount(layer: Int, head: Int) -> Int
    /// Drops every entry (a new sequence).
    func reset()
    /// Whether `append` takes keys before RoPE: the cache then applies it (at each key's position)
    /// when attention reads them. Decided by the method, so it may change between steps.
    var keysBeforeRoPE: Bool { get }
    /// The position RoPE gives the token at `position` (queries and keys): the position itself
    /// until the cache renumbers its entries to go past the context (`makeRoom`).
    func rotaryPosition(_ position: Int) -> Int
    /// Whether `count` tokens from `position` fit: every head has room for them and their rotary
    /// positions stay inside the context, renumbering if need be.
    func hasRoom(position: Int, count: Int) -> Bool
    /// Makes room for `count` tokens from `position` before they run (renumbering the kept
    /// entries when the method asks for it or the context is full), or throws `contextFull`.
    func makeRoom(position: Int, count: Int, ledger: inout IOLedger) throws(EngineError)
    /// Appends one token's keys and values (`kvHeadCount × headDim` each, keys after RoPE unless
    /// `keysBeforeRoPE`) to every KV head of `layer`.
    func append(layer: Int, position: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, ledger: inout IOLedger)
    /// Whether a prompt may run as one batched prefill; when false the engine feeds it one
    /// decode step at a time, so the method acts after every token as the protocol defines.
    var batchedPrefill: Bool { get }
    /// A prompt of the positions before `end` starts, batched or one step at a time: a method
    /// whose budget is a `ratio=` takes its share of `end` tokens, on a sequence's first prompt.
    func beginPrompt(end: Int)
    /// A batched prefill of the positions before `end` starts (appends, then attends per query).
    func beginPrefill(end: Int)
    /// The batched prefill finished: methods that act once per prompt act now.
    func endPrefill(ledger: inout IOLedger)
    /// Causal attention of `queries` (`headCount × headDim`, RoPE applied, at `position`) over
    /// the kept entries of `layer` at positions ≤ `position`, written to `output` (same shape).
    /// Outside a batched prefill the cache's method then updates its state and evicts.
    func attend(layer: Int, position: Int, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger)
    /// Causal attention of a batched prefill's consecutive `positions` at once (`positions.count`
    /// rows of `headCount × headDim`, their entries already appended): each query sees the kept
    /// entries at positions up to its own.
    func attend(layer: Int, positions: Range<Int>, queries: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, ledger: inout IOLedger)
    /// Token runs the method scores a prompt of `tokens` from `first` with, each on a fork of the
    /// sequence (`ForkScoringPolicy`): none for most methods; nil when it needs `texts` and there are none.
    func scoringForks(prompt tokens: [Int], first: Int, texts: PromptTexts?) -> [[Int]]?
    /// A fork of the positions before `end` runs next, inside the prompt's batched prefill or a
    /// pass over the sequence so far.
    func beginFork(end: Int)
    /// Fork `index`, from `start`, ran through every layer: the method reads it, its entries go.
    func endFork(_ index: Int, start: Int, ledger: inout IOLedger)
    /// What the method, chosen between steps or due under `+every`, needs run over the sequence
    /// so far before it acts (`SequencePass`); nil when nothing waits.
    var pendingSequencePass: SequencePass? { get }
    /// The attention kernel (naive or tiled); it may change between steps.
    var attentionKernel: AttentionKernel { get set }
}

extension KVCache {
    /// A cache whose methods never fork.
    public func scoringForks(prompt tokens: [Int], first: Int, texts: PromptTexts?) -> [[Int]]? { [] }
    public func beginFork(end: Int) { preconditionFailure("this cache runs no forks") }
    public func endFork(_ index: Int, start: Int, ledger: inout IOLedger) { preconditionFailure("this cache runs no forks") }
    public var pendingSequencePass: SequencePass? { nil }
}
