import Foundation
import KVLabMethods

/// Settings of an engine that can change between runs.
public struct EngineOptions: Sendable {
    /// Threads for matrix products (results do not depend on it).
    public var threads: Int
    /// Storage type for weight matrices; nil keeps what the file had.
    public var weightType: WeightType?
    /// The attention kernel; nil keeps the cache's.
    public var attention: AttentionKernel?

    public init(threads: Int = 1, weightType: WeightType? = nil, attention: AttentionKernel? = nil) {
        self.threads = threads
        self.weightType = weightType
        self.attention = attention
    }
}

/// Why a step could not run.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    case contextFull(limit: Int)
    case invalidToken(Int, vocabularySize: Int)
    case emptyInput
    /// The method feeds text of its own (kvpress's KVzip) and the engine has no tokenizer
    /// (`promptTexts`), or the model's chat template cannot wrap that text: why.
    case noPromptTexts(String)

    public var description: String {
        switch self {
        case .contextFull(let limit): "the context is full (\(limit) tokens)"
        case .invalidToken(let token, let size): "token id \(token) is outside the vocabulary (0..<\(size))"
        case .emptyInput: "no tokens to process"
        case .noPromptTexts(let why): why
        }
    }
}

/// Runs a llama-family decoder on the CPU: fp32 activations, weights read in their storage
/// type, prefill as batched BLAS products, decode as SIMD matrix-vector products with no heap
/// allocation, the KV cache behind the `KVCache` protocol. Not thread-safe: one owner thread.
public final class InferenceEngine {
    public private(set) var weights: ModelWeights
    public var config: ModelConfig { weights.config }
    public let cache: any KVCache
    public private(set) var options: EngineOptions
    /// Position of the next token.
    public private(set) var position = 0
    /// The tokens run so far, position i's at i: what a method acting on the sequence so far
    /// runs the model on again (`SequencePass`).
    public private(set) var sequence: [Int] = []
    /// The model's tokenizer for a method that feeds text of its own (kvpress's KVzip); nil: none.
    public var promptTexts: PromptTexts?

    private let rope: EngineRoPE
    private let buffers: DecodeBuffers
    /// Splits the decode products' rows over `options.threads` threads.
    private let pool: WorkerPool
    /// Traffic of the last step (or prefill) per layer, outside the layers, and of the cache's
    /// appends and attention over all layers; filled in place, so decode does not allocate.
    private let layerLedgers: UnsafeMutableBufferPointer<IOLedger>
    /// The embedding row, final norm and classifier, and the cache's end-of-prompt work of the
    /// last step: with every `layerLedger`, the step's ledger.
    public private(set) var unlayeredLedger = IOLedger()
    /// What the KV cache counted in the last step over every layer (appends, quantization,
    /// attention, policies): the traffic the attention kernel decides.
    public private(set) var attentionLedger = IOLedger()

    /// Logits after the last step (vocabulary size).
    public var logits: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: buffers.logits, count: config.vocabSize) }

    public init(weights: ModelWeights, options: EngineOptions = EngineOptions(), cache: (any KVCache)? = nil) {
        self.weights = options.weightType.map { weights.converted(to: $0) } ?? weights
        self.options = options
        self.cache = cache ?? PagedKVCache(layout: KVLayout(config: weights.config))
        rope = EngineRoPE(config: weights.config)
        buffers = DecodeBuffers(config: weights.config, angles: rope.anglesPerPosition)
        pool = WorkerPool(threads: options.threads)
        layerLedgers = .allocate(capacity: weights.config.layerCount)
        layerLedgers.initialize(repeating: IOLedger())
        if let attention = options.attention { self.cache.attentionKernel = attention }
        BLAS.useOneThread()
        // Decoded when a method asks (at most once per layer and compression), from the weights of the moment.
        (self.cache as? PagedKVCache)?.outputProjection = { [weak self] layer in
            self?.weights.layers[layer].attentionOutput.decodedValues() ?? []
        }
    }

    deinit { layerLedgers.deallocate() }

    /// The last step's traffic in layer `layer`: its projections, feed-forward, cache and attention.
    public func layerLedger(_ layer: Int) -> IOLedger { layerLedgers[layer] }

    /// The attention kernel the cache runs.
    public var attentionKernel: AttentionKernel { cache.attentionKernel }

    /// Switches the attention kernel (naive, or tiled for an SRAM size) from the next step on.
    public func setAttentionKernel(_ kernel: AttentionKernel) {
        cache.attentionKernel = kernel
        options.attention = kernel
    }

    /// Changes the weight storage type (converting from the current weights) for the next steps.
    public func setWeightType(_ type: WeightType) {
        setWeights(weights, as: type)
    }

    /// Replaces the weights for the next steps with `source` (the same model) stored as `type`, or
    /// as `source` stores them when nil. Converting from the file's weights each time means that
    /// precision lost by an earlier, coarser type comes back.
    public func setWeights(_ source: ModelWeights, as type: WeightType?) {
        precondition(source.config == config, "setWeights needs weights of the same model")
        weights = type.map { source.converted(to: $0) } ?? source
        options.weightType = type
    }

    /// Starts a new sequence.
    public func reset() {
        cache.reset()
        position = 0
        sequence.removeAll()
    }

    // MARK: - Decode

    /// One token at the current position; logits are then available in `logits`.
    @discardableResult
    public func decode(_ token: Int) throws(EngineError) -> StepReport {
        try check(tokens: CollectionOfOne(token), adding: 1)
        let start = DispatchTime.now().uptimeNanoseconds
        var outside = IOLedger(), attention = IOLedger(), total = IOLedger()
        try makeRoom(count: 1, outside: &outside, attention: &attention)
        sequence.append(token)
        var timings = StepTimings()
        let c = config, b = buffers
        let x = b.x
        weights.embed(token, into: x)
        outside.read(.weights, weights.tokenEmbedding.rowBytes)
        rope.fill(position: cache.rotaryPosition(position), cos: b.cos, sin: b.sin)
        for (l, layer) in weights.layers.enumerated() {
            var ledger = IOLedger(), cacheLedger = IOLedger()
            var t0 = DispatchTime.now().uptimeNanoseconds
            layer.attentionNorm.withUnsafeBufferPointer { Ops.rmsNorm(x, $0.baseAddress!, b.xb, count: c.dim, eps: c.rmsEps) }
            MatVec.multiply(.init(layer.query, into: b.q), .init(layer.key, into: b.k), .init(layer.value, into: b.v),
                            input: b.xb, scratch: b.quantized, pool: pool, ledger: &ledger)
            weights.finishProjections(layer, queryScale: rope.queryScales[l], keysBeforeRoPE: cache.keysBeforeRoPE, q: b.q, k: b.k, v: b.v, cos: b.cos + rope.offset(layer: l), sin: b.sin + rope.offset(layer: l))
            var t1 = DispatchTime.now().uptimeNanoseconds
            timings.projectionNanoseconds += t1 - t0
            cache.append(layer: l, position: position, keys: b.k, values: b.v, ledger: &cacheLedger)
            cache.attend(layer: l, position: position, queries: b.q, output: b.attention, ledger: &cacheLedger)
            t0 = DispatchTime.now().uptimeNanoseconds
            timings.attentionNanoseconds += t0 - t1
            MatVec.multiply(.init(layer.attentionOutput, into: b.xb), input: b.attention, scratch: b.quantized, pool: pool, ledger: &ledger)
            weights.postNorm(layer.postAttentionNorm, b.xb, rows: 1)
            Ops.add(x, b.xb, count: c.dim)
            t1 = DispatchTime.now().uptimeNanoseconds
            timings.projectionNanoseconds += t1 - t0
            layer.ffnNorm.withUnsafeBufferPointer { Ops.rmsNorm(x, $0.baseAddress!, b.xb, count: c.dim, eps: c.rmsEps) }
            MatVec.multiply(.init(layer.ffnGate, into: b.hidden), .init(layer.ffnUp, into: b.hidden2),
                            input: b.xb, scratch: b.quantized, pool: pool, ledger: &ledger)
            Ops.gate(b.hidden, b.hidden2, count: c.hiddenDim, activation: c.activation)
            MatVec.multiply(.init(layer.ffnDown, into: b.xb), input: b.hidden, scratch: b.quantized, pool: pool, ledger: &ledger)
            weights.postNorm(layer.postFFNNorm, b.xb, rows: 1)
            Ops.add(x, b.xb, count: c.dim)
            timings.feedForwardNanoseconds += DispatchTime.now().uptimeNanoseconds - t1
            ledger.add(cacheLedger)
            attention.add(cacheLedger)
            layerLedgers[l] = ledger
            total.add(ledger)
        }
        // `+every` fell due in the last layer for a method that needs the model run again.
        try runSequencePass(outside: &outside, attention: &attention, total: &total, timings: &timings)
        let t0 = DispatchTime.now().uptimeNanoseconds
        classify(x, scratch: b.xb, ledger: &outside)
        return finish(.decode, count: 1, token: token, start: start, classifierStart: t0, timings: &timings, outside: outside,
                      attention: attention, total: &total)
    }

    // MARK: - Prefill

    /// Processes `tokens` from the current position as batched matrix products; logits are then
    /// those after the last token. With `allLogits`, every position's logits are returned
    /// (tokens × vocabulary, row-major), e.g. for perplexity. A cache whose method must act
    /// after every token gets the prompt one decode step at a time instead.
    @discardableResult
    public func prefill(_ tokens: [Int], allLogits: Bool = false) throws(EngineError) -> (report: StepReport, logits: [Float]) {
        try check(tokens: tokens, adding: tokens.count)
        // The whole prompt must fit, even when it then runs one step at a time.
        guard cache.hasRoom(position: position, count: tokens.count) else { throw .contextFull(limit: cache.layout.capacity) }
        cache.beginPrompt(end: position + tokens.count)
        guard cache.batchedPrefill else { return try stepwisePrefill(tokens, allLogits: allLogits) }
        // A method that scores the prompt with forks after it (kvpress's KVzip) plans them now, so
        // that a context too small for them fails before anything runs.
        guard let forks = cache.scoringForks(prompt: tokens, first: position, texts: promptTexts) else { throw noPromptTexts }
        for fork in forks {
            try check(tokens: fork, adding: fork.count)
            // The prompt's entries are not in the cache yet: the fork needs room beside them.
            guard cache.hasRoom(position: position, count: tokens.count + fork.count) else { throw .contextFull(limit: cache.layout.capacity) }
        }
        let start = DispatchTime.now().uptimeNanoseconds
        var outside = IOLedger(), attention = IOLedger(), total = IOLedger()
        try makeRoom(count: tokens.count, outside: &outside, attention: &attention)
        sequence += tokens
        var timings = StepTimings()
        let c = config, n = tokens.count
        cache.beginPrefill(end: position + n)
        for l in 0..<c.layerCount { layerLedgers[l] = IOLedger() }
        let batch = runLayers(tokens, from: position, outside: &outside, attention: &attention, total: &total, timings: &timings)
        defer { batch.deallocate() }
        // Each fork runs on top of the prompt's entries and leaves only the method's scores.
        for (index, fork) in forks.enumerated() {
            cache.beginFork(end: position + n + fork.count)
            runLayers(fork, from: position + n, outside: &outside, attention: &attention, total: &total, timings: &timings).deallocate()
            var forkEnd = IOLedger()
            cache.endFork(index, start: position + n, ledger: &forkEnd)
            attention.add(forkEnd)
            outside.add(forkEnd)
        }
        // The prompt's policy acts over every layer at once: counted outside the layers.
        var promptEnd = IOLedger()
        cache.endPrefill(ledger: &promptEnd)
        attention.add(promptEnd)
        outside.add(promptEnd)
        let t0 = DispatchTime.now().uptimeNanoseconds
        var all: [Float] = []
        if allLogits {
            weights.normRows(batch.x, weights.outputNorm, into: batch.xb, rows: n)
            all = [Float](unsafeUninitializedCapacity: n * c.vocabSize) { buffer, count in
                MatMul.multiply(batch.xb, rows: n, weights.output, into: buffer.baseAddress!, scratch: batch.weightScratch, pool: pool, ledger: &outside)
                weights.capLogits(buffer.baseAddress!, rows: n)
                count = n * c.vocabSize
            }
            all.withUnsafeBufferPointer { buffers.logits.update(from: $0.baseAddress! + (n - 1) * c.vocabSize, count: c.vocabSize) }
        } else {
            classify(batch.x + (n - 1) * c.dim, scratch: batch.xb, ledger: &outside)
        }
        let report = finish(.prefill, count: n, token: tokens[n - 1], start: start, classifierStart: t0, timings: &timings,
                            outside: outside, attention: attention, total: &total)
        return (report, all)
    }

    /// The final norm and the classifier of one hidden state into `buffers.logits`.
    private func classify(_ hidden: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>, ledger: inout IOLedger) {
        weights.outputNorm.withUnsafeBufferPointer { Ops.rmsNorm(hidden, $0.baseAddress!, scratch, count: config.dim, eps: config.rmsEps) }
        MatVec.multiply(.init(weights.output, into: buffers.logits), input: scratch, scratch: buffers.quantized, pool: pool, ledger: &ledger)
        weights.capLogits(buffers.logits, rows: 1)
    }

    /// Closes a step of `count` tokens run through the layers: its timings and ledgers kept for
    /// the panels, its report made, the position advanced.
    private func finish(_ phase: Phase, count: Int, token: Int, start: UInt64, classifierStart: UInt64, timings: inout StepTimings,
                        outside: IOLedger, attention: IOLedger, total: inout IOLedger) -> StepReport {
        let end = DispatchTime.now().uptimeNanoseconds
        timings.classifierNanoseconds = end - classifierStart
        timings.totalNanoseconds = end - start
        unlayeredLedger = outside
        attentionLedger = attention
        total.add(outside)
        let report = makeReport(phase: phase, first: position, count: count, token: token, timings: timings, ledger: total)
        position += count
        return report
    }

    /// Embeds `tokens` at positions from `first` and runs them through every layer as one batch
    /// (appending their entries, attending inside a batched prefill); returns the batch, whose
    /// `x` holds the last hidden states, for the caller to deallocate.
    func runLayers(_ tokens: [Int], from first: Int, outside: inout IOLedger, attention: inout IOLedger, total: inout IOLedger,
                           timings: inout StepTimings) -> PrefillBuffers {
        let c = config, n = tokens.count
        let angles = rope.anglesPerPosition
        let batch = PrefillBuffers(config: c, tokens: n, angles: angles)
        let rotary = cache.rotaryPosition(first)
        for (t, token) in tokens.enumerated() {
            weights.embed(token, into: batch.x + t * c.dim)
            outside.read(.weights, weights.tokenEmbedding.rowBytes)
            rope.fill(position: rotary + t, cos: batch.cos + t * angles, sin: batch.sin + t * angles)
        }
        for (l, layer) in weights.layers.enumerated() {
            var ledger = IOLedger(), cacheLedger = IOLedger()
            var t0 = DispatchTime.now().uptimeNanoseconds
            weights.normRows(batch.x, layer.attentionNorm, into: batch.xb, rows: n)
            MatMul.multiply(batch.xb, rows: n, [(layer.query, batch.q), (layer.key, batch.k), (layer.value, batch.v)],
                            scratch: batch.weightScratch, pool: pool, ledger: &ledger)
            let offset = rope.offset(layer: l)
            for t in 0..<n {
                weights.finishProjections(layer, queryScale: rope.queryScales[l], keysBeforeRoPE: cache.keysBeforeRoPE, q: batch.q + t * c.queryDim, k: batch.k + t * c.kvDim, v: batch.v + t * c.kvDim,
                                  cos: batch.cos + t * angles + offset, sin: batch.sin + t * angles + offset)
            }
            var t1 = DispatchTime.now().uptimeNanoseconds
            timings.projectionNanoseconds += t1 - t0
            for t in 0..<n {
                cache.append(layer: l, position: first + t, keys: batch.k + t * c.kvDim, values: batch.v + t * c.kvDim, ledger: &cacheLedger)
            }
            cache.attend(layer: l, positions: first..<(first + n), queries: batch.q, output: batch.attention, ledger: &cacheLedger)
            t0 = DispatchTime.now().uptimeNanoseconds
            timings.attentionNanoseconds += t0 - t1
            MatMul.multiply(batch.attention, rows: n, layer.attentionOutput, into: batch.xb, scratch: batch.weightScratch, pool: pool, ledger: &ledger)
            weights.postNorm(layer.postAttentionNorm, batch.xb, rows: n)
            Ops.add(batch.x, batch.xb, count: n * c.dim)
            t1 = DispatchTime.now().uptimeNanoseconds
            timings.projectionNanoseconds += t1 - t0
            weights.normRows(batch.x, layer.ffnNorm, into: batch.xb, rows: n)
            MatMul.multiply(batch.xb, rows: n, [(layer.ffnGate, batch.hidden), (layer.ffnUp, batch.hidden2)],
                            scratch: batch.weightScratch, pool: pool, ledger: &ledger)
            // Each token's gate on the pool too: between two parallel products, a serial pass
            // would leave the other threads waiting.
            pool.run { share, shares in
                let first = n * share / shares, last = n * (share + 1) / shares
                Ops.gate(batch.hidden + first * c.hiddenDim, batch.hidden2 + first * c.hiddenDim, count: (last - first) * c.hiddenDim,
                         activation: c.activation)
            }
            MatMul.multiply(batch.hidden, rows: n, layer.ffnDown, into: batch.xb, scratch: batch.weightScratch, pool: pool, ledger: &ledger)
            weights.postNorm(layer.postFFNNorm, batch.xb, rows: n)
            Ops.add(batch.x, batch.xb, count: n * c.dim)
            timings.feedForwardNanoseconds += DispatchTime.now().uptimeNanoseconds - t1
            ledger.add(cacheLedger)
            attention.add(cacheLedger)
            layerLedgers[l].add(ledger)
            total.add(ledger)
        }
        return batch
    }

    private func stepwisePrefill(_ tokens: [Int], allLogits: Bool) throws(EngineError) -> (report: StepReport, logits: [Float]) {
        let start = DispatchTime.now().uptimeNanoseconds
        let first = position
        var ledger = IOLedger(), outside = IOLedger(), attention = IOLedger()
        var layers = [IOLedger](repeating: IOLedger(), count: config.layerCount)
        var timings = StepTimings()
        var all: [Float] = []
        if allLogits { all.reserveCapacity(tokens.count * config.vocabSize) }
        for token in tokens {
            let step = try decode(token)
            ledger.add(step.ledger)
            outside.add(unlayeredLedger)
            attention.add(attentionLedger)
            for l in layers.indices { layers[l].add(layerLedgers[l]) }
            timings.add(step.timings)
            if allLogits { all.append(contentsOf: logits) }
        }
        for l in layers.indices { layerLedgers[l] = layers[l] }
        unlayeredLedger = outside
        attentionLedger = attention
        timings.totalNanoseconds = DispatchTime.now().uptimeNanoseconds - start
        return (makeReport(phase: .prefill, first: first, count: tokens.count, token: tokens[tokens.count - 1],
                           timings: timings, ledger: ledger), all)
    }

    func check<C: Collection>(tokens: C, adding count: Int) throws(EngineError) where C.Element == Int {
        guard count > 0 else { throw .emptyInput }
        for token in tokens where token < 0 || token >= config.vocabSize {
            throw .invalidToken(token, vocabularySize: config.vocabSize)
        }
    }

    /// The cache's room for `count` tokens at the current position; renumbering its entries is
    /// cache work outside the layers.
    private func makeRoom(count: Int, outside: inout IOLedger, attention: inout IOLedger) throws(EngineError) {
        var ledger = IOLedger()
        try cache.makeRoom(position: position, count: count, ledger: &ledger)
        outside.add(ledger)
        attention.add(ledger)
    }

    /// Whether `count` more tokens fit the cache now (renumbering it past the context if its
    /// method bounds it).
    public func hasRoom(for count: Int = 1) -> Bool { cache.hasRoom(position: position, count: count) }

    /// Entries kept over every (layer, KV head).
    public var cacheEntries: Int {
        var entries = 0
        for l in 0..<cache.layout.layerCount {
            for h in 0..<cache.layout.kvHeadCount { entries += cache.entryCount(layer: l, head: h) }
        }
        return entries
    }

    private func makeReport(phase: Phase, first: Int, count: Int, token: Int, timings: StepTimings, ledger: IOLedger) -> StepReport {
        let summary = LogitStatistics(buffers.logits, count: config.vocabSize)
        let entries = cacheEntries
        return StepReport(phase: phase, position: first, tokenCount: count, token: token,
                          top: TopToken(id: summary.argmax, logProbability: summary.maxLogProbability),
                          entropy: summary.entropy, timings: timings, ledger: ledger, cache: cache.residency,
                          cacheEntries: entries)
    }
}
