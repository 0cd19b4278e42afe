import Dispatch
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
