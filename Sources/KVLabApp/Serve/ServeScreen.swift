import Foundation
import KVLabFoundation
import KVLabHardware
import KVLabServe
import KVLabTUI

/// What the serve view draws, taken from a session after each step: the sequences over time,
/// the pool by sequence and shared prefix, the scheduler's counts and the latencies.
public struct ServeView: Sendable {
    /// One running, waiting or swapped sequence's row.
    public struct Row: Sendable, Equatable {
        public var id: Int
        /// `prefill 40/96`, `decode 12/32`, `queued`, `swapped`.
        public var phase: String
        /// Bytes it holds alone in the pool.
        public var bytes: Int
    }

    public var modelName: String
    /// The KV methods in effect, `knob value` pairs in order.
    public var methods: [(knob: String, value: String)]
    public var preemption: PreemptionPolicy
    public var clock: String
    public var step: Int
    /// The run's clock and the measured engine time, seconds.
    public var time: Double
    public var measuredTime: Double
    public var history: [(running: Int, queue: Int)]
    public var occupancy: PoolOccupancy
    public var rows: [Row]
    public var queue: Int
    public var swapped: Int
    public var summary: ServeSummary
    /// Sequences of the requests' mean length that fit the pool under the methods in effect.
    public var fits: Int
    /// What the engine counted in the last step (nil before the first).
    public var traffic: StepTraffic?
    /// The projected device's ridge point, FLOP per byte: below it a step is memory-bound.
    public var ridge: Double
    public var paused: Bool
    public var done: Bool
    /// A message for the bottom row (an error when true).
    public var status: (text: String, isError: Bool)?

    /// The view of `session` now.
    public init(session: ServeSession, modelName: String, clock: String, paused: Bool, status: (String, Bool)?) {
        let scheduler = session.scheduler, settings = session.engine.settings
        self.modelName = modelName
        methods = [("policy", settings.value(of: .policy)), ("kv", settings.value(of: .kv)), ("sparse", settings.value(of: .sparse))]
        preemption = scheduler.options.preemption
        self.clock = clock
        step = scheduler.steps
        time = scheduler.time
        measuredTime = scheduler.measuredTime
        history = session.history
        occupancy = session.engine.occupancy
        let bytes = Dictionary(uniqueKeysWithValues: occupancy.sequences.map { ($0.id, $0.bytes) })
        rows = scheduler.running.compactMap { id in
            scheduler.progress(id).map { p in
                Row(id: id, phase: p.prefilling ? "prefill \(p.processed)/\(p.prompt + max(p.generated - 1, 0))" : "decode \(p.generated)/\(p.outputTokens)",
                    bytes: bytes[id] ?? 0)
            }
        } + scheduler.swapped.map { Row(id: $0, phase: "swapped", bytes: 0) }
        queue = scheduler.waiting.count
        swapped = scheduler.swapped.count
        summary = session.summary
        fits = session.fittingSequences
        traffic = session.engine.lastTraffic
        let device = session.clock.projector.device
        ridge = device.effectivePeak(.fp16) / max(device.effectiveHBMBandwidth, 1)
        self.paused = paused
        done = scheduler.done
        self.status = status
    }
}

/// The serve view: a title row, the sequences over time beside the figures, the pool bar, the
/// sequences, and the key hints. Every row fits the minimum size uncut: the figures take a fixed
/// width, the graph the rest.
public struct ServeScreen {
    public static let minimumSize = (width: 80, height: 24)
    /// Columns of the figures panel: the longest value (the arithmetic intensity against the
    /// ridge and the bound, 38 columns) beside the widest key.
    static let figuresWidth = 56
    /// Segment colours of successive sequences in the pool bar.
    static let sequenceRoles: [ThemeRole] = [.seriesA, .seriesB, .kvKept, .kvQuantized, .kvRetrieved, .tierKVPayload]

    public var view: ServeView
    public var glyphs: GlyphSet
    public var patterned: Bool

    public init(view: ServeView, glyphs: GlyphSet = .unicode, patterned: Bool = false) {
        self.view = view
        self.glyphs = glyphs
        self.patterned = patterned
    }

    /// The keys the view answers, with their hint words.
    static let hints: [(action: AppAction, label: String)] = [
        (.cycleEviction(forward: true), "evict"), (.budget(up: false), "budget"), (.cycleBits, "bits"), (.cycleQuant, "quant"),
        (.cycleSparse(forward: true), "sparse"), (.togglePause, "pause"), (.quit, "quit"),
    ]

    public func render(into buffer: inout Buffer) {
        buffer.reset()
        let area = buffer.area
        guard area.width >= Self.minimumSize.width, area.height >= Self.minimumSize.height else {
            buffer.put(Line("terminal too small: \(area.width)×\(area.height); serve needs \(Self.minimumSize.width)×\(Self.minimumSize.height)",
                            style: .role(.warning), alignment: .center), row: area.row(area.height / 2), glyphs: glyphs)
            return
        }
        title(area.row(0), &buffer)
        let body = Rect(x: 0, y: 1, width: area.width, height: area.height - 2)
        let bands = Layout(.vertical, [.percentage(45), .length(5), .fill(1)], spacing: -1).split(body)
        let top = Layout(.horizontal, [.fill(1), .length(Self.figuresWidth)], spacing: -1).split(bands[0])
        timeline(top[0], &buffer)
        figures(top[1], &buffer)
        pool(bands[1], &buffer)
        sequences(bands[2], &buffer)
        bottom(area.row(area.height - 1), &buffer)
    }

    /// The state and the methods first; the preemption policy and the model while they fit.
    private func title(_ row: Rect, _ buffer: inout Buffer) {
        let state = view.done ? "done" : view.paused ? "paused" : "serving"
        var title = Line([Span(" kvlab serve ", style: .role(.title, .bold)), Span(state, style: .role(view.paused ? .warning : .ok))]
            + view.methods.map { Span(" · \($0.knob) \($0.value)") })
        for optional in [" · preempt \(view.preemption.rawValue)", " · \(view.modelName)"] where title.width + optional.count <= row.width {
            title.spans.append(Span(optional))
        }
        buffer.put(title, row: row, glyphs: glyphs)
    }

    private func timeline(_ area: Rect, _ buffer: inout Buffer) {
        let last = view.history.last
        let frame = WorkbenchScreen.block("Sequences over time", glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        // The counts in the graph's colours, then the step and the clock, over the graph.
        let lines = [Line([Span("running \(last?.running ?? 0)", style: .role(.seriesA)), Span(" · peak \(view.summary.counters.peakRunning)")]),
                     Line("queued \(last?.queue ?? 0)", style: .role(.seriesB)),
                     Line("step \(view.step) · \(format(seconds: view.time))", style: .role(.dimText))]
        guard inner.height > lines.count else { return }
        for (index, line) in lines.enumerated() { buffer.put(line, row: inner.row(index), glyphs: glyphs) }
        let high = Double(max(view.history.map { max($0.running, $0.queue) }.max() ?? 1, 1))
        LineGraph(series: [.init(view.history.map { Double($0.queue) }, style: .role(.seriesB)),
                           .init(view.history.map { Double($0.running) }, style: .role(.seriesA))],
                  range: 0...high, glyphs: glyphs)
            .render(area: Rect(x: inner.x, y: inner.y + lines.count, width: inner.width, height: inner.height - lines.count), buffer: &buffer)
    }

    private func figures(_ area: Rect, _ buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Figures", right: Line(view.clock, style: .role(.dimText)), glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let s = view.summary, c = s.counters
        func pair(_ p: Percentiles?) -> String { p.map { "\(format(seconds: $0.p50)) / \(format(seconds: $0.p99))" } ?? "–" }
        let rows: [KeyValueTable.Row] = [
            .init("tokens/s", "\(format(s.tokensPerSecond)) projected · \(format(s.measuredTokensPerSecond)) here"),
        ] + traffic + [
            .init("TTFT p50/p99", "\(pair(s.ttft)) · here \(pair(s.measuredTTFT))"),
            .init("TPOT p50/p99", "\(pair(s.tpot)) · here \(pair(s.measuredTPOT))"),
            .init("finished", "\(s.finished)/\(s.requests) · \(s.generatedTokens) tokens · rejected \(s.rejected)"),
            .init("preemptions", "\(c.preemptions) · swapped \(formatBytes(c.swappedBytes, .compact)) · recomputed \(c.recomputedTokens) tok"),
        ]
        KeyValueTable(rows, glyphs: glyphs).render(area: frame.inner(area).inset(horizontal: 1), buffer: &buffer)
    }

    /// The last step's counted traffic per token and its arithmetic intensity at its batch, against the ridge.
    private var traffic: [KeyValueTable.Row] {
        let ridge = String(format: "ridge %.0f", view.ridge)
        guard let t = view.traffic else { return [.init("per token", "–"), .init("AI", "– · \(ridge)")] }
        let bound = t.intensity < view.ridge ? "memory-bound" : "compute-bound"
        return [.init("per token", "W \(formatBytes(t.weightBytesPerToken, .compact)) · KV \(formatBytes(t.kvBytesPerToken, .compact))"),
                .init("AI @ batch \(t.sequences)", String(format: "%.2f F/B · ", t.intensity) + "\(ridge) · \(bound)")]
    }

    private func pool(_ area: Rect, _ buffer: inout Buffer) {
        let o = view.occupancy
        let frame = WorkbenchScreen.block("Pool", right: Line("\(formatBytes(o.used)) of \(formatBytes(o.capacity))", style: .role(.dimText)),
                                          glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard inner.height >= 2 else { return }
        var segments = [CapacityBar.Segment(Double(o.shared), .role(.tierKVMetadata))]
        for (index, sequence) in o.sequences.enumerated() {
            segments.append(.init(Double(sequence.bytes), .role(Self.sequenceRoles[index % Self.sequenceRoles.count])))
        }
        CapacityBar(segments: segments, capacity: Double(o.capacity), patterned: patterned, glyphs: glyphs).render(area: inner.row(0), buffer: &buffer)
        let perSequence = o.sequences.isEmpty ? 0 : o.sequences.reduce(0) { $0 + $1.bytes } / o.sequences.count
        buffer.put(Line([Span("shared prefix \(formatBytes(o.shared))", style: .role(.tierKVMetadata)),
                         Span(" · CoW copies \(view.summary.counters.copies) · \(o.sequences.count) sequences, \(formatBytes(perSequence)) each")]),
                   row: inner.row(1), glyphs: glyphs)
        guard inner.height >= 3 else { return }
        buffer.put(Line([Span("fit for a whole life: "), Span("\(view.fits)", style: .role(.highlight, .bold)),
                         Span(" · queued \(view.queue) · swapped \(view.swapped)")]), row: inner.row(2), glyphs: glyphs)
    }

    private func sequences(_ area: Rect, _ buffer: inout Buffer) {
        let frame = WorkbenchScreen.block("Sequences", glyphs: glyphs)
        frame.render(area: area, buffer: &buffer)
        let inner = frame.inner(area).inset(horizontal: 1)
        guard !inner.isEmpty else { return }
        let width = 28, columns = max(inner.width / width, 1)
        for (index, row) in view.rows.prefix(columns * inner.height).enumerated() {
            let x = inner.x + index / inner.height * width, y = inner.y + index % inner.height
            let role = row.phase == "swapped" ? ThemeRole.warning : Self.sequenceRoles[(view.occupancy.sequences.firstIndex { $0.id == row.id } ?? 0)
                % Self.sequenceRoles.count]
            buffer.put(Line([Span(glyphs.isUnicode ? "■ " : "# ", style: .role(role)), Span("#\(row.id) \(row.phase)"),
                             Span(" \(formatBytes(row.bytes, .compact))", style: .role(.dimText))]),
                       row: Rect(x: x, y: y, width: width - 1, height: 1), glyphs: glyphs)
        }
    }

    private func bottom(_ row: Rect, _ buffer: inout Buffer) {
        if let status = view.status {
            buffer.put(Line(" " + status.text, style: .role(status.isError ? .error : .highlight)), row: row, glyphs: glyphs)
            return
        }
        var spans: [Span] = []
        for hint in Self.hints {
            let key = hint.action == .budget(up: false) ? Keymap.keys(of: hint.action, separator: " ") : Keymap.key(for: hint.action)
            spans.append(Span(" " + (key == " " ? "space" : key), style: .role(.key, .bold)))
            spans.append(Span(" " + hint.label, style: .role(.dimText)))
        }
        buffer.put(Line(spans), row: row, glyphs: glyphs)
    }

    private func format(_ value: Double) -> String { value >= 100 ? String(Int(value.rounded())) : String(format: "%.1f", value) }

    /// Three significant figures at most, the unit unspaced: `1.39s`, `189ms`, `5.8ms`, `950µs`.
    private func format(seconds: Double) -> String {
        seconds >= 1 ? String(format: "%.2fs", seconds) : seconds >= 0.01 ? String(format: "%.0fms", seconds * 1e3)
            : seconds >= 1e-3 ? String(format: "%.1fms", seconds * 1e3) : String(format: "%.0fµs", seconds * 1e6)
    }
}
