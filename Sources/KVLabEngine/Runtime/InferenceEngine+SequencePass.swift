import KVLabMethods

/// A method that acts at a prompt's end, acting on the sequence so far (chosen between decode
/// steps, or `+every`) where it needs the model run again first (`SequencePass`: kvpress's
/// KVzip, NonCausalAttn, Compactor, ExpectedAttention).
extension InferenceEngine {
    /// Why a method that feeds text of its own cannot plan its forks.
    var noPromptTexts: EngineError {
        .noPromptTexts(promptTexts?.problem.map { "the eviction method wraps text of its own in the model's chat template (kvpress:kvzip): \($0)" }
            ?? "the eviction method feeds text of its own (kvpress:kvzip) and this engine has no tokenizer")
    }

    /// Switches the cache's eviction method between steps (`PagedKVCache.setEviction`): a method
    /// that acts at a prompt's end acts at once on the sequence so far, after the pass it needs
    /// (`SequencePass`). Its traffic goes to `ledger`; the cache is unchanged when it throws.
    public func setEviction(_ method: EvictionMethod, ledger: inout IOLedger) throws(EngineError) {
        guard let paged = cache as? PagedKVCache else { preconditionFailure("setEviction needs the paged cache") }
        // A method that feeds text of its own is refused without the tokenizer, before anything changes.
        if method.makePolicy(layout: cache.layout).sequencePass == .forks, promptTexts == nil || promptTexts?.problem != nil {
            throw noPromptTexts
        }
        paged.setEviction(method, ledger: &ledger)
        var outside = IOLedger(), attention = IOLedger(), total = IOLedger(), timings = StepTimings()
        try runSequencePass(outside: &outside, attention: &attention, total: &total, timings: &timings)
        ledger.add(total)
        ledger.add(outside)
    }

    /// Runs the pass the cache's method waits for over the sequence so far, then lets it act.
    /// `.forks`: the method's scoring forks, planned with the sequence's tokens as the prompt, run
    /// after the newest entry and leave nothing behind, as after a prompt. `.promptQueries`: the
    /// sequence runs as a prompt in a scratch cache (full attention, outside the live cache's
    /// pages) for every token's queries. Skipped, keeping everything, when the forks do not fit
    /// the context after the sequence, or the sequence is longer than the context.
    func runSequencePass(outside: inout IOLedger, attention: inout IOLedger, total: inout IOLedger,
                                 timings: inout StepTimings) throws(EngineError) {
        guard let pass = cache.pendingSequencePass, let paged = cache as? PagedKVCache else { return }
        let end = sequence.count
        var queries: [RecordedQueries]?
        switch pass {
        case .forks:
            guard let forks = cache.scoringForks(prompt: sequence, first: 0, texts: promptTexts) else {
                paged.skipSequencePass()
                throw noPromptTexts
            }
            for fork in forks {
                try check(tokens: fork, adding: fork.count)
                guard cache.hasRoom(position: end, count: fork.count), cache.rotaryPosition(end) + fork.count <= cache.layout.capacity else {
                    paged.skipSequencePass()
                    return
                }
            }
            for (index, fork) in forks.enumerated() {
                cache.beginFork(end: end + fork.count)
                runLayers(fork, from: end, outside: &outside, attention: &attention, total: &total, timings: &timings).deallocate()
                var forkEnd = IOLedger()
                cache.endFork(index, start: end, ledger: &forkEnd)
                attention.add(forkEnd)
                outside.add(forkEnd)
            }
        case .promptQueries:
            guard end <= cache.layout.capacity else {
                paged.skipSequencePass()
                return
            }
            let scratch = PagedKVCache(layout: cache.layout)
            scratch.recordsEveryQuery = true
            let engine = InferenceEngine(weights: weights, options: EngineOptions(threads: options.threads, attention: attentionKernel), cache: scratch)
            let report = try engine.prefill(sequence).report
            outside.add(report.ledger)
            timings.add(report.timings)
            queries = scratch.vectors.map(\.queries)
        }
        var ledger = IOLedger()
        paged.finishSequencePass(end: end, queries: queries, ledger: &ledger)
        attention.add(ledger)
        outside.add(ledger)
    }
}
