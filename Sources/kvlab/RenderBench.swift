import Dispatch
import KVLabApp
import KVLabRun
import KVLabSession
import KVLabTUI

/// `kvlab bench --render`: the time to render a full frame of every widget and diff it against
/// the previous frame, as the workbench does each time something changes (no terminal needed).
struct RenderBench {
    var width: Int
    var height: Int
    var frames: Int

    func run() {
        var buffer = Buffer(width: width, height: height)
        var previous = buffer
        var renderTimes: [Double] = [], diffTimes: [Double] = [], changed: [Int] = []
        let warmUp = 20
        for frame in 0..<(frames + warmUp) {
            let start = DispatchTime.now().uptimeNanoseconds
            WidgetGallery(step: frame).render(into: &buffer)
            let rendered = DispatchTime.now().uptimeNanoseconds
            let runs = buffer.diff(from: previous)
            let diffed = DispatchTime.now().uptimeNanoseconds
            if frame >= warmUp {
                renderTimes.append(Double(rendered - start) / 1e6)
                diffTimes.append(Double(diffed - rendered) / 1e6)
                changed.append(runs.reduce(0) { $0 + $1.count })
            }
            swap(&previous, &buffer)
        }
        let totals = zip(renderTimes, diffTimes).map { $0 + $1 }
        func percentile(_ values: [Double], _ p: Double) -> Double {
            let sorted = values.sorted()
            return sorted[min(Int((Double(sorted.count) * p).rounded(.down)), sorted.count - 1)]
        }
        print("render     \(width)x\(height) frame of every widget (WidgetGallery, Unicode glyphs), \(frames) frames after \(warmUp) warm-up")
        print(String(format: "frame      %.3f ms median, %.3f ms p99 (render %.3f ms + diff %.3f ms, medians)",
                     percentile(totals, 0.5), percentile(totals, 0.99), percentile(renderTimes, 0.5), percentile(diffTimes, 0.5)))
        print("changed    \(changed.sorted()[changed.count / 2]) of \(width * height) cells per frame (median)")
    }
}

/// `kvlab bench --render --workbench`: the real workbench screen on the embedded model (frames
/// rendered from the states of consecutive tokens, and diffed), then the delay from a knob key to
/// the frame showing the engine's answer, measured in the real run loop with its engine thread
/// and an in-memory terminal.
struct WorkbenchBench {
    var width: Int
    var height: Int
    var frames: Int

    func run() throws {
        let model = try EmbeddedModel.load()
        var settings = RunSettings()
        try settings.set(.policy, to: "h2o:heavy=64,recent=64", headDim: model.config.headDim)
        try settings.set(.kv, to: "kivi:bits=2", headDim: model.config.headDim)
        let core = EngineCore(run: try LiveRun(model: model, settings: settings, ghost: true), device: ProjectionSettings.defaultDevice, target: ProjectionSettings.defaultTarget)
        let choices = Choices.catalog(themes: [])
        var state = AppState(modelName: model.config.name, choices: choices, device: ProjectionSettings.defaultDevice, target: ProjectionSettings.defaultTarget, theme: "dark")
        state.absorb(core.handle(.submit("ROMEO:")))
        var states: [AppState] = []
        for _ in 0..<300 {
            guard let snapshot = core.advance() else { break }
            state.absorb(snapshot)
            states.append(state)
        }
        var buffer = Buffer(width: width, height: height), previous = buffer
        var times: [Double] = []
        let warmUp = 20
        for frame in 0..<(frames + warmUp) {
            let start = DispatchTime.now().uptimeNanoseconds
            WorkbenchScreen(state: states[states.count - 50 + frame % 50]).render(into: &buffer)
            _ = buffer.diff(from: previous)
            if frame >= warmUp { times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6) }
            swap(&previous, &buffer)
        }
        print("workbench  \(width)x\(height) frame of the real screen (embedded model, h2o + kivi + ghost, 300 tokens), \(frames) frames after \(warmUp) warm-up")
        print(String(format: "frame      %.3f ms median, %.3f ms p99 (render + diff)", percentile(times, 0.5), percentile(times, 0.99)))

        // Key to frame: the run loop, its engine thread generating, a knob key every 200 ms.
        let fresh = try LiveRun(model: model, settings: RunSettings(), ghost: false)
        let worker = EngineWorker(core: EngineCore(run: fresh, device: ProjectionSettings.defaultDevice, target: ProjectionSettings.defaultTarget))
        defer { worker.stop() }
        worker.send(.submit("ROMEO:"))
        var script: [MemoryTerminal.ScriptedKey] = []
        for index in 0..<30 { script.append(.init(after: index == 0 ? 300 : 200, index % 10 == 9 ? .character("R") : .character(index % 2 == 0 ? "e" : "b"))) }
        script.append(.init(after: 300, .character("q")))
        let terminal = MemoryTerminal(width: width, height: height, script: script)
        var loopState = AppState(modelName: model.config.name, choices: choices, device: ProjectionSettings.defaultDevice, target: ProjectionSettings.defaultTarget, theme: "dark")
        var stats = WorkbenchStats()
        _ = Workbench.run(terminal: terminal, worker: worker, state: &loopState, palette: Theme.plain.palette(depth: .truecolor),
                          glyphs: .unicode, loadTheme: { _ in nil }, stats: &stats)
        let latencies = stats.keyToFrame
        guard !latencies.isEmpty else { throw CLIError("no knob change reached the screen") }
        print("key→frame  \(latencies.count) knob keys (e, b) while generating: \(String(format: "%.1f ms median, %.1f ms max", percentile(latencies, 0.5), latencies.max()!)) (\(stats.frames) frames drawn)")
    }

    private func percentile(_ values: [Double], _ p: Double) -> Double {
        let sorted = values.sorted()
        return sorted[min(Int((Double(sorted.count) * p).rounded(.down)), sorted.count - 1)]
    }
}
