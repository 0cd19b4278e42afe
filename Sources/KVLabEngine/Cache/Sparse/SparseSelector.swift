import KVLabMethods

/// One (layer, KV head)'s decode step as a sparse selector sees it.
struct SparseStep {
    /// The (layer, KV head): `layer · kvHeadCount + head`.
    let index: Int
    /// The query group, in the frame keys are scored in.
    let queries: UnsafePointer<Float>
    /// Slots the query may see (0..<visible).
    let visible: Int
    let position: Int
    /// Whether the selector scores what it lists into `CacheAttention.probabilities` (the naive
    /// kernel); the tiled kernel scores the listed entries in its tiles.
    let scoring: Bool
}

/// The stateful side of a sparse-attention mode: which of a head's visible entries a decode step
/// reads. The cache makes one when the mode changes (`SparseMethod.makeSelector`) and asks it once
/// per head per decode step; a prompt always runs dense. A selector lists what it reads in
/// `CacheAttention.selectedSlots` and counts the traffic of choosing (summaries, representatives,
/// host fetches); the cache counts the attention's reads of what was listed.
protocol SparseSelector: AnyObject {
    /// Whether the step reads only listed entries (every mode but dense, which lists nothing).
    var lists: Bool { get }
    /// Whether every visible key is scored to choose, and a listed entry stays masked for the
    /// query heads that did not keep it (topk).
    var scoresEveryKey: Bool { get }
    /// Whether `afterAttention` reads the step's probabilities (the tiled kernel then writes them).
    var needsProbabilities: Bool { get }
    /// Chooses, lists and (when `step.scoring`) scores the entries this step reads; returns how
    /// many it listed (for dense: `visible`).
    func select(_ step: SparseStep, attention: CacheAttention, log: StepReadLog, ledger: inout IOLedger) -> Int
    /// After attention, with the probabilities in `attention.probabilities`.
    func afterAttention(_ step: SparseStep, read: Int, attention: CacheAttention)
    /// A new sequence starts.
    func reset()
}

extension SparseSelector {
    var lists: Bool { true }
    var scoresEveryKey: Bool { false }
    var needsProbabilities: Bool { false }
    func afterAttention(_ step: SparseStep, read: Int, attention: CacheAttention) {}
    func reset() {}
}

extension SparseMethod {
    /// The selector of this mode, with fresh state, for a cache of `layout`.
    func makeSelector(layout: KVLayout) -> any SparseSelector {
        switch kind {
        case .dense: DenseSelector()
        case .topK(let k): TopKSelector(k: k)
        case .quest(let page, let budget): QuestSelector(pagesPerQuestPage: page / PageStore.pageSize, questPages: budget / page)
        case .threshold(let theta): ThresholdSelector(theta: Float(theta))
        case .blockRetrieval(let block, let reps, let top, let local, let sinks, let lru):
            BlockRetrievalSelector(BlockRetrieval(sinks: sinks, local: local, blockSize: block, representatives: reps, top: top,
                                                  lruCapacity: lru, heads: layout.layerCount * layout.kvHeadCount, capacity: layout.capacity))
        }
    }
}

/// Dense attention: every visible entry, nothing listed.
final class DenseSelector: SparseSelector {
    var lists: Bool { false }

    func select(_ step: SparseStep, attention: CacheAttention, log: StepReadLog, ledger: inout IOLedger) -> Int {
        // The tiled kernel scores in its tiles.
        if step.scoring { attention.scorePages(index: step.index, queries: step.queries, pages: 0..<((step.visible + PageStore.pageSize - 1) / PageStore.pageSize)) }
        return step.visible
    }
}
