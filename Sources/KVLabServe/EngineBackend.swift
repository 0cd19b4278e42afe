import KVLabEngine
import KVLabHardware
import KVLabMethods
import KVLabRun
import KVLabSession

/// The real engine behind the scheduler: KVLabEngine's `BatchedEngine`, every sequence's KV in
/// one pool of a byte budget, a shared system prompt made once as a prefix and forked
/// copy-on-write, swap to host memory and drop-for-recompute. Tokens are chosen from each
/// sequence's logits by its own seeded sampler (greedy at temperature 0).
public final class EngineBackend: ServeEngine {
    public let model: LoadedModel
    public private(set) var settings: RunSettings
    public let engine: BatchedEngine
    public let poolCapacity: Int
    /// The scheduler's request ids to the engine's sequences.
    private var ids: [Int: SequenceID] = [:]
    private var samplers: [Int: Sampler] = [:]
    /// Prefixes made, by their tokens.
    private var prefixes: [[Int]: PrefixID] = [:]
    private var copiedPages = 0
    /// The live model's shape, for the life bound of a sequence under the methods.
    private let shape: TargetShape
    /// Whether a prompt runs as batched chunks under the methods (else a token a step, the method
    /// acting after each).
    private var batchedPrefill: Bool

    /// The KV footprint of a life is projected on `device` (any profile: the footprint is the
    /// live model's, whatever the device).
    private let device: DeviceProfile

    public init(model: LoadedModel, settings: RunSettings, pool: Int, device: DeviceProfile) throws {
        self.device = device
        self.model = model
        self.settings = settings
        poolCapacity = pool
        engine = try BatchedEngine(weights: model.weights,
                                   options: EngineOptions(threads: settings.threads, weightType: settings.weights, attention: settings.attention),
                                   methods: CacheMethods(eviction: settings.eviction, sparse: settings.sparse, quant: settings.quant),
                                   poolBudget: pool)
        batchedPrefill = Self.prefillsBatched(model.config, settings)
        shape = TargetShape(config: model.config, tiedEmbeddings: model.weights.tiedClassifier, id: HardwareCatalog.live, source: "the served model")
    }

    public var poolUsed: Int { engine.pool.usedBytes }
    public private(set) var lastTraffic: StepTraffic?

    public var occupancy: PoolOccupancy {
        let sequences = ids.keys.sorted().compactMap { id -> PoolOccupancy.SequenceBytes? in
            guard let sequence = ids[id], (try? engine.isSwappedOut(sequence)) == false, let bytes = try? engine.residentBytes(of: sequence) else { return nil }
            return .init(id: id, bytes: bytes.privateBytes)
        }
        let shared = engine.prefixIDs.reduce(0) { $0 + ((try? engine.residentBytes(ofPrefix: $1)) ?? 0) }
        return PoolOccupancy(sequences: sequences, shared: shared, capacity: poolCapacity)
    }

    public func bytesToAdmit(_ request: ServeRequest) -> Int {
        let prefix = sharedPrefix(of: request).flatMap { prefixes[$0] }
        let held = prefix == nil ? 0 : request.sharedPrefix
        // A new prefix is made in the pool first: its bytes count too.
        let made = request.sharedPrefix > 0 && prefix == nil ? ((try? engine.bytesToAdmit(promptTokens: request.sharedPrefix)) ?? 0) : 0
        return made + ((try? engine.bytesToAdmit(promptTokens: max(request.prompt.count - held, 1), prefix: prefix)) ?? Int.max / 4)
    }

    public func lifeBytes(_ request: ServeRequest) -> Int {
        // The whole life under the methods with a partly filled page per head and tensor, or, when
        // the prompt runs as one batched prefill (its method acts at its end), the prompt at its
        // peak if that is more.
        let life = request.prompt.count + request.outputTokens - 1
        let setup = ProjectionSetup(device: device, target: shape, weights: .f32, context: life,
                                    eviction: settings.eviction, quant: settings.quant, sparse: settings.sparse, float: .f32)
        let layout = KVLayout(config: model.config)
        let slack = 2 * layout.layerCount * layout.kvHeadCount * PagedKVCache.pageBytes(headDim: layout.headDim)
        let held = Int(Projection(setup).kv.total.rounded(.up)) + slack
        return batchedPrefill ? max(bytesToAdmit(request), held) : held
    }

    public func prefillLimit(_ id: Int) -> Int {
        guard let sequence = ids[id], let cache = try? engine.cache(sequence) else { return 1 }
        return cache.batchedPrefill ? .max : 1
    }

    /// A full-precision page for every (layer, KV head).
    public var decodeGrowth: Int { (try? engine.bytesToAdmit(promptTokens: 1)) ?? 0 }

    public func bytesNeeded(_ work: [ServeWork]) -> Int {
        (try? engine.bytesNeeded(for: work.map(batchWork))) ?? Int.max / 4
    }

    public func start(_ request: ServeRequest) throws -> Int {
        if ids[request.id] != nil { return 0 }
        samplers[request.id] = sampler(for: request)
        guard let head = sharedPrefix(of: request) else {
            let sequence = engine.addSequence()
            ids[request.id] = sequence
            try engine.setPrompt(sequence, tokens: request.prompt)
            return 0
        }
        let prefix: PrefixID
        if let made = prefixes[head] {
            prefix = made
        } else {
            prefix = try engine.makePrefix(head)
            prefixes[head] = prefix
        }
        let sequence = try engine.fork(from: prefix)
        ids[request.id] = sequence
        try engine.setPrompt(sequence, tokens: Array(request.prompt[head.count...]))
        return head.count
    }

    public func step(_ work: [ServeWork]) throws -> ServeStepResult {
        let report = try engine.step(work.map(batchWork))
        lastTraffic = StepTraffic(report)
        var tokens: [Int: Int] = [:]
        for item in work where item.samples {
            let logits = try engine.logits(ids[item.id]!)
            tokens[item.id] = logits.withUnsafeBufferPointer { samplers[item.id]!.sample($0) }
        }
        let copies = engine.pool.copiedPages - copiedPages
        copiedPages = engine.pool.copiedPages
        return ServeStepResult(tokens: tokens, nanoseconds: report.timings.totalNanoseconds, copies: copies)
    }

    public func swapOut(_ id: Int) throws -> Int {
        let sequence = ids[id]!
        try engine.swapOut(sequence)
        return try engine.hostBytes(of: sequence)
    }

    public func swapIn(_ id: Int) throws -> Int {
        let bytes = try engine.hostBytes(of: ids[id]!)
        try engine.swapIn(ids[id]!)
        return bytes
    }

    public func swappedBytes(_ id: Int) -> Int { (try? engine.hostBytes(of: ids[id]!)) ?? 0 }

    public func drop(_ id: Int) throws { try engine.drop(ids[id]!) }

    public func finish(_ id: Int) throws {
        if let sequence = ids.removeValue(forKey: id) { try engine.removeSequence(sequence) }
        samplers[id] = nil
    }

    public func apply(_ change: SettingChange) throws {
        var next = settings
        try next.set(change, headDim: model.config.headDim)
        switch change {
        case .eviction, .sparse, .quant:
            try engine.setMethods(CacheMethods(eviction: next.eviction, sparse: next.sparse, quant: next.quant))
            batchedPrefill = Self.prefillsBatched(model.config, next)
        case .weights, .attention:
            throw MethodSpecError("serve changes the KV methods (policy, kv, sparse) live; \(change.knob.rawValue) is set when it starts")
        }
        settings = next
    }

    /// Whether a cache with `settings`' methods takes a prompt as one batched prefill.
    private static func prefillsBatched(_ config: ModelConfig, _ settings: RunSettings) -> Bool {
        PagedKVCache(layout: KVLayout(config: config), eviction: settings.eviction, sparse: settings.sparse, quant: settings.quant).batchedPrefill
    }

    private func sharedPrefix(of request: ServeRequest) -> [Int]? {
        request.sharedPrefix > 0 ? Array(request.prompt.prefix(request.sharedPrefix)) : nil
    }

    private func batchWork(_ item: ServeWork) -> BatchWork {
        item.decode ? .decode(ids[item.id]!, token: item.tokens[0]) : .prefill(ids[item.id]!, tokens: item.tokens.count)
    }

    /// Each sequence samples from its own generator, seeded from the run's seed and its id.
    private func sampler(for request: ServeRequest) -> Sampler {
        var settings = settings.sampler
        settings.seed &+= UInt64(request.id)
        return Sampler(settings: settings, vocabularySize: model.config.vocabSize)
    }
}

extension ServeSession {
    /// A session of `requests` on `model` with a pool of `pool` bytes, the clock projecting each
    /// step on `clock`'s device and target.
    public convenience init(model: LoadedModel, settings: RunSettings, pool: Int, requests: [ServeRequest], options: SchedulerOptions,
                            clock: ProjectionSettings, recorder: ServeRecorder?) throws {
        let projector = try SessionProjector(settings: clock, model: model)
        let engine = try EngineBackend(model: model, settings: settings, pool: pool, device: projector.device)
        let projected = ProjectedClock(projector: projector, settings: settings)
        self.init(scheduler: Scheduler(requests: requests, backend: engine, clock: projected, options: options), engine: engine,
                  clock: projected, recorder: recorder)
    }
}
