import Foundation
import KVLabTUI

/// What the title bar shows: the model and its weights, device and target, the run state (or a
/// replay's), compare mode, the recording and the theme.
struct TitleBarView: Equatable {
    /// Whether tokens come, and how fast.
    enum RunState: Equatable {
        case paused
        /// Generating at a pace in tokens per second (nil: unpaced).
        case generating(pace: Int?)
        case idle
        /// A replay: playing, paused or ended.
        case replay(ReplayTitle)
    }

    var modelName: String
    /// The weight type's knob value (empty before the engine's first snapshot).
    var weights: String
    var device: String
    var target: String
    var runState: RunState
    var comparing: Bool
    /// The file name of the session being recorded.
    var recording: String?
    /// The colour theme's name.
    var theme: String

    init(_ state: AppState) {
        modelName = state.modelName
        weights = state.settings?.value(of: .weights) ?? ""
        device = state.device
        target = state.target
        runState = state.replay.map { .replay($0) } ?? (state.paused ? .paused : state.generating ? .generating(pace: state.pace) : .idle)
        comparing = state.compare != nil
        recording = state.recording.map { ($0 as NSString).lastPathComponent }
        theme = state.theme
    }
}

/// The title bar across the top row.
struct TitleBar {
    var view: TitleBarView
    var glyphs: GlyphSet

    func render(row: Rect, buffer: inout Buffer) {
        buffer.fill(row, with: Cell(" ", style: Style(background: .role(.selectedBackground))))
        let separator = Span(" \(glyphs.line([.left, .right])) ", style: .role(.dimText))
        // What is happening first: on a narrow screen the right end is cut.
        var spans: [Span] = [Span(" kvlab", style: .role(.title, .bold)), separator, runState]
        if view.comparing { spans += [separator, Span("compare A|B", style: .role(.warning, .bold))] }
        if let recording = view.recording {
            spans += [separator, Span("● REC ", style: .role(.error, .bold)), Span(recording, style: .role(.text))]
        }
        spans += [separator, Span(view.modelName, style: .role(.highlight)), Span(" " + view.weights, style: .role(.text)), separator,
                  Span("device ", style: .role(.dimText)), Span(view.device, style: .role(.text)), separator,
                  Span("target ", style: .role(.dimText)), Span(view.target, style: .role(.text))]
        spans += [separator, Span("theme ", style: .role(.dimText)), Span(view.theme, style: .role(.text))]
        buffer.put(Line(spans), row: row, glyphs: glyphs)
    }

    private var runState: Span {
        switch view.runState {
        case .paused: Span("paused", style: .role(.warning, .bold))
        case .generating(let pace): Span("generating " + (pace.map { "\($0) tok/s" } ?? "unpaced"), style: .role(.ok))
        case .idle: Span("idle (\(Keymap.key(for: .editPrompt)): prompt)", style: .role(.dimText))
        case .replay(let replay):
            replay.finished ? Span("replay ended", style: .role(.dimText))
                : replay.paused ? Span("replay paused", style: .role(.warning, .bold))
                : Span("replaying \(replay.speed)" + (replay.reexecutes ? "" : " (playback)"), style: .role(.ok))
        }
    }
}
