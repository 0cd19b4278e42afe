/// What a policy's scoring pass needs from the loaded model's tokenizer: the text it feeds is
/// text (kvpress's KVzip asks the model to repeat the prompt), so the engine's owner encodes it.
public struct PromptTexts: Sendable {
    /// A text's token ids without BOS (transformers' `add_special_tokens=False`).
    public let encode: @Sendable (String) -> [Int]
    /// The chat template's text before and after a user turn's content (the assistant's turn
    /// opened, thinking off); nil for a model without a template.
    public let userTurn: (prefix: String, suffix: String)?
    /// Why the model's chat template gives no user turn (kvlab cannot render it, or the content
    /// does not come out whole): a policy must then stop rather than feed its text bare, as
    /// kvpress would not.
    public let problem: String?

    public init(encode: @escaping @Sendable (String) -> [Int], userTurn: (prefix: String, suffix: String)?, problem: String? = nil) {
        self.encode = encode
        self.userTurn = userTurn
        self.problem = problem
    }
}

/// What a policy acting on the sequence so far (chosen between decode steps, or `+every`) needs
/// the engine to run first: the cache then waits for it (`PagedKVCache.pendingSequencePass`).
public enum SequencePass: Sendable, Equatable {
    /// Its scoring forks, planned from the sequence's tokens as the prompt (`ForkScoringPolicy`).
    case forks
    /// Every token's queries, recomputed by running the sequence's tokens as a prompt in a
    /// scratch cache (kvpress's NonCausalAttn, Compactor, ExpectedAttention read them all).
    case promptQueries
}

/// A policy that scores a prompt's entries by running more tokens after it, each run a fork of
/// the sequence whose entries are dropped afterwards (kvpress's KVzip). The engine runs the forks
/// through every layer between the prompt and its `finishPrefill`: the fork's tokens attend to
/// the whole cache and to each other, as a continuation would; the cache keeps their queries for
/// the policy (`recordedQueries` must cover a fork), calls `observeFork` per layer with the
/// prompt's entries and the fork's, then frees the fork's entries and forgets its queries. On the
/// sequence so far the prompt is the sequence's tokens from position 0, with its entries that
/// are kept now: the forks run after the newest, and the policy scores and drops only those.
package protocol ForkScoringPolicy: EvictionPolicy {
    /// The forks to run after a prompt of `tokens` at positions `first…`, each its token ids;
    /// empty for none. Called once per prompt, before its `finishPrefill`.
    func forks(prompt tokens: [Int], first: Int, texts: PromptTexts) -> [[Int]]
    /// Fork `index` ran through every layer: `heads` holds the prompt's kept entries and then
    /// the fork's (positions from `forkStart`), `vectors.queries` the fork's queries.
    func observeFork(_ index: Int, layer: Int, heads: UnsafeMutableBufferPointer<HeadEntries>, forkStart: Int, vectors: any EntryVectors)
}
