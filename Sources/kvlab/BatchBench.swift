import Foundation
import KVLabEngine
import KVLabFoundation
import KVLabMethods

/// `kvlab bench --batch N`: one decode step of N sequences together (`BatchedEngine`, every weight
/// read once for all of them) against N steps of one sequence each on the same engine.
struct BatchBench {
    let model: LoadedModel
    let options: EngineOptions
    let methods: CacheMethods
    let batch: Int
    /// Decode steps per run, prompt tokens per sequence, runs (the median is reported).
    let steps: Int
    let promptTokens: Int
    let runs: Int

    func run() throws {
        let c = model.config
        let steps = min(self.steps, c.contextLength - promptTokens)
        guard steps >= 1 else { throw CLIError("--prompt-tokens: \(promptTokens) leaves no room to decode in the model's \(c.contextLength)-token context") }
        var together: [Double] = [], apart: [Double] = []
        var togetherLedger = IOLedger(), apartLedger = IOLedger()
        for run in 0...runs {
            // Fresh sequences with distinct prompts for each run and mode (prefill is not timed).
            for batched in [true, false] {
                let engine = try BatchedEngine(weights: model.weights, options: options, methods: methods)
                let ids = (0..<batch).map { _ in engine.addSequence() }
                for id in ids {
                    try engine.setPrompt(id, tokens: (0..<promptTokens).map { ($0 * 7919 + 17 + id.rawValue * 131) % c.vocabSize })
                }
                try engine.step(ids.map { .prefill($0, tokens: promptTokens) })
                var next = try ids.map { try LogitStatistics(engine.logits($0)).argmax }
                var ledger = IOLedger()
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<steps {
                    if batched {
                        ledger.add(try engine.step(zip(ids, next).map { .decode($0, token: $1) }).ledger)
                    } else {
                        for (id, token) in zip(ids, next) { ledger.add(try engine.step([.decode(id, token: token)]).ledger) }
                    }
                    next = try ids.map { try LogitStatistics(engine.logits($0)).argmax }
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                guard run > 0 else { continue }  // run 0 warms caches and page pools
                if batched {
                    together.append(seconds / Double(steps))
                    togetherLedger = ledger
                } else {
                    apart.append(seconds / Double(steps))
                    apartLedger = ledger
                }
            }
        }
        let tokens = Double(steps * batch)
        func traffic(_ ledger: IOLedger) -> String {
            let kv = ledger.bytesRead(.keys) + ledger.bytesRead(.values)
            return "weights read per token \(formatBytes(Int(Double(ledger.bytesRead(.weights)) / tokens))), KV read per token \(formatBytes(Int(Double(kv) / tokens)))"
        }
        let a = median(together), b = median(apart)
        print("model      \(c.name) (\(model.format.rawValue), \(c.parameterCount(tiedClassifier: model.weights.tiedClassifier)) parameters)")
        print("threads    \(options.threads) (OpenBLAS \(BLAS.threadCount)); KV methods \(methods)")
        print("batch      \(batch) sequences, \(promptTokens)-token prompts, \(steps) decode steps per run, median of \(runs) runs")
        print(String(format: "batch-%d step      %9.3f ms  %7.0f tok/s   ", batch, a * 1e3, Double(batch) / a) + traffic(togetherLedger))
        print(String(format: "%d batch-1 steps   %9.3f ms  %7.0f tok/s   ", batch, b * 1e3, Double(batch) / b) + traffic(apartLedger))
        print(String(format: "speedup    %.2f× (min/max batched %.3f/%.3f ms, apart %.3f/%.3f ms)", b / a, together.min()! * 1e3,
                     together.max()! * 1e3, apart.min()! * 1e3, apart.max()! * 1e3))
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

extension LogitStatistics {
    init(_ logits: [Float]) { self = logits.withUnsafeBufferPointer { LogitStatistics($0.baseAddress!, count: $0.count) } }
}
