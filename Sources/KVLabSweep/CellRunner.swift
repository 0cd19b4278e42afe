import Foundation
import Crypto
import KVLabEngine
import KVLabFoundation
import KVLabHardware
import KVLabMethods
import KVLabRun

/// Computes cells as `kvlab eval` does (one `StreamingEvaluator` per cell, with the full-cache
/// ghost), keeping loaded models, texts and their digests between the cells of one worker.
public final class CellRunner {
    private var models: [String: (model: LoadedModel, sha256: String)] = [:]
    private var texts: [String: (content: String, sha256: String)] = [:]
    private let executor: String
    private let commit: String?
    private let machine: String

    /// `executor` names where results are computed (`local`, `slurm:JOB_TASK`) in their provenance.
    public init(executor: String) {
        self.executor = executor
        commit = Self.gitCommit()
        let host = ProcessInfo.processInfo.hostName
        machine = host + (MachineProbe.cpuName().map { " (\($0), \(ProcessInfo.processInfo.activeProcessorCount) cores)" } ?? "")
    }

    public func run(_ cell: SweepCell) throws -> SweepResult {
        let (model, modelSHA) = try load(cell)
        let (content, textSHA) = try text(cell.text)
        let config = model.config
        let eviction = try parse { () throws(MethodSpecError) in try EvictionMethod(parsing: cell.policy) }
        let sparse = try parse { () throws(MethodSpecError) in try SparseMethod(parsing: cell.sparse) }
        let quant = try parse { () throws(MethodSpecError) in try KVQuantMethod(parsing: cell.kv) }
        let kernel = try parse { () throws(MethodSpecError) in try AttentionKernel(parsing: cell.attention, headDim: config.headDim) }
        try parse { () throws(MethodSpecError) in try quant.check(headDim: config.headDim) }
        try parse { () throws(MethodSpecError) in try eviction.check(quant: quant) }
        try parse { () throws(MethodSpecError) in try eviction.check(layout: KVLayout(config: config)) }
        let probe = try parse { () throws(MethodSpecError) in try SweepProbe(parsing: cell.probe) }
        var options = EngineOptions(threads: cell.threads, weightType: try cell.weights.map(Self.weightType))
        options.attention = kernel
        let context = min(cell.tokens ?? config.contextLength, config.contextLength)
        let started = Date()
        let evaluator = StreamingEvaluator(weights: model.weights, eviction: eviction, sparse: sparse, quant: quant, withGhost: true,
                                           options: options)
        evaluator.engine.promptTexts = model.promptTexts
        let quality: CellQuality
        switch probe {
        case .perplexity:
            let input = EvaluationText(content, tokenizer: model.tokenizer)
            guard !input.tokens.isEmpty else { throw SweepError("\(cell.text): no tokens to evaluate") }
            let summary = try evaluator.evaluateChunks(input.tokens, bos: input.bos, context: context, maxChunks: cell.chunks,
                                                       prefill: cell.prefill)
            quality = Self.quality(summary: summary, probe: nil, statistics: evaluator.decodeStatistics)
        case .probe(let kind):
            let prompt: ProbePrompt
            do { prompt = try ProbePrompt.build(kind, filler: content, tokenizer: model.tokenizer, context: context) } catch let error as ProbeError {
                throw SweepError("\(cell.text): \(error.description)")
            }
            let (result, summary) = try evaluator.probeWithSummary(prompt: prompt.prompt, followUp: prompt.followUp, answer: prompt.answer)
            quality = Self.quality(summary: summary, probe: result, statistics: evaluator.decodeStatistics)
        case .suite(let name):
            quality = try runSuite(name, evaluator: evaluator, model: model, essay: content, context: context)
        }
        let live = LiveKVState(cache: evaluator.cache, positions: evaluator.engine.position,
                               lastStep: evaluator.decodeStatistics.lastLedger)
        let projections = try cell.projections.map { pair in
            try project(pair, cell: cell, model: model, eviction: eviction, sparse: sparse, quant: quant, live: live)
        }
        let statistics = evaluator.decodeStatistics
        let timing = CellTiming(stepMilliseconds: Double(statistics.nanoseconds) / Double(max(statistics.steps, 1)) / 1e6,
                                cellSeconds: Date().timeIntervalSince(started))
        let provenance = Provenance(kvlabVersion: kvlabVersion, commit: commit, modelSHA256: modelSHA, textSHA256: textSHA,
                                    machine: machine, threads: cell.threads,
                                    finished: ISO8601DateFormatter().string(from: Date()), executor: executor)
        return SweepResult(id: cell.id, cell: cell, quality: quality, projections: projections, measured: timing, provenance: provenance)
    }

    static func quality(summary: EvaluationSummary, probe: ProbeResult?, statistics: DecodeStatistics) -> CellQuality {
        let steps = Double(max(statistics.steps, 1))
        var traffic: [String: Double] = [:]
        for link in IOLink.allCases where statistics.ledger.total(link) > 0 {
            traffic[link.key] = Double(statistics.ledger.total(link)) / steps
        }
        let kvRead = [IOBuffer.keys, .values, .quantMetadata].reduce(0.0) { $0 + Double(statistics.ledger.bytesRead($1)) } / steps
        let deltaNLL: Double
        if let probe {
            deltaNLL = (probe.answerNLL - (probe.ghostAnswerNLL ?? probe.answerNLL)) / Double(max(probe.answerTokens, 1))
        } else {
            deltaNLL = summary.meanNLL - (summary.ghostMeanNLL ?? summary.meanNLL)
        }
        return CellQuality(summary: summary, probe: probe, deltaNLL: deltaNLL, kl: summary.meanKL ?? 0, answered: probe?.answered,
                           meanResidentKVBytes: summary.meanResidentKVBytes,
                           peakResidentKVBytes: probe?.peakResidentKVBytes ?? summary.peakResidentKVBytes,
                           trafficPerToken: traffic, kvReadPerToken: kvRead, decodeSteps: statistics.steps)
    }

    /// Generates the suite for the model's tokenizer, answers every sample greedily with the
    /// cell's methods and scores the answers as RULER does.
    private func runSuite(_ name: String, evaluator: StreamingEvaluator, model: LoadedModel, essay: String, context: Int) throws -> CellQuality {
        let spec = try SuiteSpec.load(name)
        let tokenizer = model.tokenizer
        let samples = try SuiteGenerator.samples(spec, tokenizer: tokenizer, context: context, essay: essay)
        let prompts = samples.map { (tokens: SuiteGenerator.promptTokens($0.prompt, tokenizer: tokenizer), maxTokens: $0.tokensToGenerate) }
        let (answers, summary) = try evaluator.answer(prompts, stop: Set([tokenizer.spec.eosID].compactMap { $0 }))
        let predictions = zip(prompts, answers).map { prompt, answer in
            // Each token's text after the one before it (SentencePiece's leading space depends on it).
            var bytes: [UInt8] = [], previous = prompt.tokens.last
            for token in answer.tokens {
                bytes += tokenizer.decode(token, after: previous)
                previous = token
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        let ratios = answers.compactMap { a in a.ghostPromptKVBytes.map { 1 - Double(a.promptKVBytes) / Double(max($0, 1)) } }
        var quality = Self.quality(summary: summary, probe: nil, statistics: evaluator.decodeStatistics)
        quality.suite = SuiteScoring.score(suite: spec.name, samples: samples, predictions: predictions,
                                           compressionRatio: SuiteScoring.mean(ratios))
        return quality
    }

    private func project(_ pair: String, cell: SweepCell, model: LoadedModel, eviction: EvictionMethod, sparse: SparseMethod,
                         quant: KVQuantMethod, live: LiveKVState) throws -> CellProjection {
        let parts = pair.split(separator: "@", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw SweepError("projection '\(pair)' is not DEVICE@TARGET") }
        let device: DeviceProfile
        let target: TargetShape
        do {
            device = parts[0] == HardwareCatalog.thisMachine ? try MachineProbe.engine.profile(remeasure: false).profile
                : try HardwareCatalog.device(parts[0])
            target = parts[1] == HardwareCatalog.live
                ? TargetShape(config: model.config, tiedEmbeddings: model.weights.tiedClassifier, id: HardwareCatalog.live,
                              source: "the loaded model (\(model.path))")
                : try HardwareCatalog.target(parts[1])
        } catch let error as UnknownProfileError {
            throw SweepError("projection '\(pair)': \(error)")
        }
        try parse { () throws(MethodSpecError) in try quant.check(headDim: target.cacheKeyDim) }
        let kernel = try parse { () throws(MethodSpecError) in try AttentionKernel(parsing: cell.attention, headDim: target.cacheKeyDim) }
        let projection = Projection(ProjectionSetup(device: device, target: target, context: cell.projectContext, eviction: eviction,
                                                    quant: quant, sparse: sparse, kernel: kernel, live: live))
        return CellProjection(pair: pair, device: device.id, target: target.id, context: cell.projectContext,
                              decodeMilliseconds: projection.decodeSeconds * 1e3, ttftMilliseconds: projection.ttft * 1e3,
                              kvBytesPerSequence: projection.kv.total, maxBatch: projection.capacity.maxBatch,
                              maxContext: projection.capacity.maxContext, fits: projection.capacity.fits)
    }

    private func load(_ cell: SweepCell) throws -> (LoadedModel, String) {
        let key = cell.model + "|" + (cell.weights ?? "")
        if let cached = models[key] { return cached }
        let model: LoadedModel, path: String
        if cell.model == SweepCell.embeddedModel {
            model = try EmbeddedModel.load()
            path = model.path
        } else {
            model = try ModelLoader.load(path: cell.model, tokenizerPath: nil)
            path = cell.model
        }
        let entry = (model, try Self.sha256(path: path))
        models[key] = entry
        return entry
    }

    private func text(_ path: String) throws -> (String, String) {
        if let cached = texts[path] { return cached }
        let data = try InputFile.read(path)
        guard let content = String(data: data, encoding: .utf8) else { throw FileError(path: path, problem: "is not UTF-8 text") }
        var hash = SHA256()
        hash.update(data: data)
        let entry = (content, hash.finalizeHex())
        texts[path] = entry
        return entry
    }

    /// SHA-256 of a model file; of a directory (safetensors), of its regular files' names and digests in name order.
    static func sha256(path: String) throws -> String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            var hash = SHA256()
            for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted()
            where FileKind.of(path + "/" + name) == .regular {
                hash.update(data: Data("\(name) \(try sha256(path: path + "/" + name))\n".utf8))
            }
            return hash.finalizeHex()
        }
        let handle = try InputFile.open(path)
        defer { try? handle.close() }
        var hash = SHA256()
        while let chunk = try handle.read(upToCount: 1 << 22), !chunk.isEmpty { hash.update(data: chunk) }
        return hash.finalizeHex()
    }

    private static func weightType(_ text: String) throws -> WeightType {
        guard let type = WeightType(rawValue: text) else {
            throw SweepError("weights: '\(text)' is not one of \(WeightType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return type
    }

    /// The commit of the git checkout the running kvlab was built in (`.build/…/kvlab` inside it), if any.
    static func gitCommit() -> String? {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["git", "-C", directory, "rev-parse", "HEAD"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { return nil }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.count == 40 ? text : nil
    }

    /// A method string's error as a sweep error.
    @discardableResult
    private func parse<T>(_ body: () throws(MethodSpecError) -> T) throws(SweepError) -> T {
        do { return try body() } catch { throw SweepError(error.description) }
    }
}
