import Foundation
import ArgumentParser
import KVLabApp
import KVLabEngine
import KVLabFoundation
import KVLabSession
import KVLabTUI

/// `kvlab replay`: re-execute a recorded session and verify it, or show its recorded metrics.
struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-execute a recorded session against its model and verify every token and checkpoint.",
        discussion: """
        The model is the recorded path when it holds the same file (SHA-256), else the embedded default model when it \
        is the one recorded, else --model. A mismatch stops the replay with the step, the field, the expected and the \
        observed values. Checkpoints must keep the same positions and agree bit for bit or, where another machine's \
        BLAS kernels change the last bits, within a relative 1e-4 (--strict: bit for bit only); so must every recorded \
        metric but timings (integers exactly). A recording cut before its end event (a killed writer) replays up to its \
        last complete event and is then reported. Exit status with --headless: 0 verified, 1 mismatch, 2 recording cut, \
        3 the session cannot be replayed (unreadable or invalid file, model not found).
        """)

    @Argument(help: "Session file (*.kvlab.jsonl).")
    var file: String

    @Flag(name: .long, help: "Without the workbench screen: print the re-generated text (or, with --check, only the verdict).")
    var headless = false

    @Flag(name: .long, help: "Print only the verdict (for CI): exit 0 only if everything matches.")
    var check = false

    @Flag(name: .long, help: "Show the recorded per-token metrics without running the model.")
    var playback = false

    @Flag(name: .long, help: "Checkpoints must be bit-identical (same machine and build).")
    var strict = false

    @OptionGroup var screenOptions: ScreenOptions

    /// `--model` when the model is not at the recorded path (verified by SHA-256), `--tokenizer`,
    /// `--threads` (results do not depend on it); the weights come from the session.
    @OptionGroup var modelOptions: ModelOptions

    func validate() throws {
        if modelOptions.weights != nil { throw ValidationError("--weights: a replay takes the weights from the session") }
        if modelOptions.context != nil { throw CLIError("--context: a replay takes the context from the session") }
        if check && !headless { throw ValidationError("--check prints a verdict: use it with --headless") }
        if playback, check || strict || modelOptions.model != nil {
            throw ValidationError("--playback runs no model: it takes no --check, --strict or --model")
        }
    }

    func run() throws {
        guard headless else {
            // The screen: every panel as the live workbench draws it, with a caption bar and progress.
            try ReplayScreenCommand.play(path: file, playback: playback, threads: modelOptions.threads, strict: strict,
                                         model: modelOptions.model, tokenizer: modelOptions.tokenizer, pace: .recorded,
                                         screen: screenOptions,
                                         withoutTerminal: "the replay screen needs a terminal, but standard output is not one; "
                                             + "use --headless for output to pipes and files")
            return
        }
        do {
            let reader = try SessionReader(path: file)
            if playback {
                try Self.play(reader)
            } else {
                try replay(reader)
            }
            if let note = reader.incompleteLineNote { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
            // Playback shows what a cut file holds and says so (in its listing); a replay verifies the whole recording.
            if !playback, let cut = reader.cut { throw cut }
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            throw ExitCode(ReplayStatus(error).rawValue)
        }
    }

    private func replay(_ reader: SessionReader) throws {
        let loaded = try SessionModel.load(for: reader.header, sessionPath: file, override: modelOptions.model,
                                           tokenizer: modelOptions.tokenizer)
        let replayer = try SessionReplayer(path: file, header: reader.header, model: loaded, threads: modelOptions.threads, strict: strict)
        let out = FileHandle.standardOutput
        while let record = try reader.next() {
            let event = try replayer.replay(record)
            guard !check else { continue }
            switch event {
            case .prompt(let prompt): out.write(Data(prompt.text.utf8))
            case .token(let token): out.write(Data(token.metrics.text.utf8))
            default: if let note = describe(event) { FileHandle.standardError.write(Data("\n[step \(event.step)] \(note)\n".utf8)) }
            }
        }
        let s = replayer.summary
        if check, reader.cut == nil {
            let exactness = s.checkpoints == s.exactCheckpoints ? "bit-identical" : "\(s.exactCheckpoints) bit-identical, the rest within tolerance"
            let projected = s.projectedTokens > 0 ? ", \(s.projectedTokens) projected latencies (\(s.projectionChanges) projection change(s))" : ""
            print("\(file): ok: \(s.prompts) prompt(s), \(s.tokens) tokens, \(s.knobChanges) knob change(s), "
                + "\(s.checkpoints) checkpoints (\(exactness))\(projected)")
        } else if !check {
            out.write(Data((replayer.run.finishText() + "\n").utf8))
        }
    }

    /// One line per recorded token with its metrics; knob changes and captions between them.
    private static func play(_ reader: SessionReader) throws {
        let h = reader.header
        print("\(h.model.name), \(h.settings.policy) \(h.settings.sparse) \(h.settings.kv) weights \(h.settings.weights), "
            + "ghost \(h.ghost ? "on" : "off"), recorded by kvlab \(h.kvlab)"
            + (h.projection.map { ", projected onto \($0.target) on \($0.device) at \($0.context) tokens" } ?? ""))
        let columns = ["step", "pos", "token", "latency", "KV", "entries", "NLL", "KL", "top-1", "ΔNLL", "mass kept", "projected"]
        print(columns.joined(separator: "\t"))
        while let record = try reader.next() {
            switch record.event {
            case .token(let token):
                let m = token.metrics, g = m.ghost
                let text = "\"" + m.text.replacingOccurrences(of: "\n", with: "\\n") + "\""
                let latency = String(format: "%.3f ms", Double(m.report.timings.totalNanoseconds) / 1e6)
                var cells = [String(m.step), String(m.report.position), text, latency, formatBytes(m.report.cache.total),
                             String(m.report.cacheEntries), String(format: "%.3f", m.nll)]
                if let g {
                    cells += [String(format: "%.4f", g.kl), g.top1Agrees ? "yes" : "no", String(format: "%+.3f", g.deltaNLL),
                              g.massKept.map { String(format: "%.1f%%", $0 * 100) } ?? "-"]
                } else {
                    cells += ["-", "-", "-", "-"]
                }
                cells.append(token.projectedLatencySeconds.map { String(format: "%.3f ms", $0 * 1e3) } ?? "-")
                print(cells.joined(separator: "\t"))
            case .prompt(let prompt):
                print("── step \(prompt.step): prompt, \(prompt.tokens.count) tokens" + (prompt.continuing ? " (continuing)" : ""))
            case .end(let end):
                print("── step \(end.step): end of recording (\(end.events) events)")
            default:
                if let note = describe(record.event) { print("── step \(record.event.step): \(note)") }
            }
        }
        if let cut = reader.cut { print("── recording cut after step \(cut.step): \(cut.reason)") }
    }
}

/// The exit status of `kvlab replay --headless` when it does not verify a whole recording (which
/// exits 0), one per way a replay can fail, for scripts and CI (README, Sessions).
enum ReplayStatus: Int32 {
    /// A re-executed event differs from the recorded one.
    case mismatch = 1
    /// Every event the file holds verified, but the recording was cut before its end.
    case cut = 2
    /// The session could not be replayed: an unreadable or invalid file, a missing model, an event
    /// that cannot be applied.
    case cannotReplay = 3

    init(_ error: any Error) {
        switch error {
        case is ReplayMismatch: self = .mismatch
        case is RecordingCut: self = .cut
        default: self = .cannotReplay
        }
    }
}

/// `kvlab export`: a session's per-token metrics in another format.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a session: per-token metrics as CSV, or the replayed screen as an asciinema v2 cast.",
        discussion: """
        --asciicast re-executes the session on its model (verified as kvlab replay does; --playback draws the recorded \
        metrics without it) and writes a frame after every token and caption: the cells that changed, as ANSI text.
        """)

    @Argument(help: "Session file (*.kvlab.jsonl).")
    var file: String

    @Flag(name: .long, help: "CSV: one row per token, with the knob values, ghost state and caption in effect.")
    var csv = false

    @Option(name: .long, help: "Write an asciinema v2 cast of the replayed screen to this file.")
    var asciicast: String?

    @Flag(name: .long, help: "Cast: draw the recorded metrics without running the model.")
    var playback = false

    @Option(name: .long, help: "Cast: milliseconds per token, 0 to 3600000 (default: 125, the demo's pace; a token's recorded latency is a few ms).")
    var pace: Double?

    @Option(name: .long, help: "Cast: milliseconds each caption is held before the next token, 0 to 3600000 (default: 3000, the demo's).")
    var captionHold: Double?

    @Option(name: .long, help: "Cast: screen size COLUMNSxROWS (default: the recorded terminal, at least 80x26).")
    var size: String?

    @Option(name: .long, help: "Cast: colours, truecolor or 256.")
    var color: String = "truecolor"

    @Option(name: .long, help: "Cast: colour theme, a name from kvlab themes list or a theme file.")
    var theme: String?

    func run() throws {
        if let asciicast { return try cast(to: asciicast) }
        guard csv else { throw CLIError("choose a format: --csv or --asciicast FILE") }
        let reader = try SessionReader(path: file)
        var table = SessionCSV(header: reader.header)
        var text = table.headerRow + "\n"
        while let record = try reader.next() {
            if let row = table.row(for: record.event) { text += row + "\n" }
        }
        FileHandle.standardOutput.write(Data(text.utf8))
        if let note = reader.incompleteLineNote { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        if let cut = reader.cut { FileHandle.standardError.write(Data("note: \(cut)\n".utf8)) }
    }
}

extension Export {
    /// The smallest cast: the workbench's minimum plus the caption bar and progress line.
    static let minimumCastSize = (width: WorkbenchScreen.minimumSize.width, height: WorkbenchScreen.minimumSize.height + ReplayScreen.extraRows)

    private func cast(to output: String) throws {
        if csv { throw CLIError("--csv and --asciicast: choose one format") }
        // Refused before the replay, not after it.
        do { _ = try OutputFile.target(output) } catch let error as FileError { throw CLIError(error.description) }
        let depth: ColorDepth
        switch color {
        case "truecolor": depth = .truecolor
        case "256": depth = .palette256
        default: throw CLIError("--color: '\(color)' is not one of truecolor, 256")
        }
        for (option, value) in [("--pace", pace), ("--caption-hold", captionHold)] as [(String, Double?)] {
            guard let value else { continue }
            guard OptionRange.milliseconds.contains(value) else {
                throw CLIError("\(option): expected milliseconds from 0 to \(Int(OptionRange.milliseconds.upperBound)), got \(value)")
            }
        }
        let (catalog, themeArgument, startTheme) = try ScreenOptions.startingTheme(theme)
        let palette = startTheme.palette(depth: depth)
        let player = try ReplayScreenCommand.makePlayer(path: file, playback: playback, threads: nil, strict: false, model: nil, tokenizer: nil,
                                                        themes: catalog.entries().map(\.name), theme: themeArgument)
        var width = max(player.header.ui?.columns ?? 100, Self.minimumCastSize.width)
        var height = max(player.header.ui?.rows ?? 32, Self.minimumCastSize.height)
        if let size {
            let parts = size.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2, parts[0] >= Self.minimumCastSize.width, parts[1] >= Self.minimumCastSize.height, parts[0] <= 1000, parts[1] <= 1000 else {
                throw CLIError("--size: expected COLUMNSxROWS of at least \(Self.minimumCastSize.width)x\(Self.minimumCastSize.height), got '\(size)'")
            }
            (width, height) = (parts[0], parts[1])
        }
        let text = SessionCast.render(player, width: width, height: height, palette: palette,
                                      tokenMilliseconds: pace ?? ReplayPace.demo.fixedTokenMilliseconds,
                                      captionHoldMilliseconds: captionHold ?? ReplayPace.demo.captionHoldMilliseconds)
        if let failure = player.failure { throw CLIError("replay stopped: \(failure)") }
        do { try OutputFile.write(Data(text.utf8), to: output) } catch let error as FileError { throw CLIError(error.description) }
        print("\(output): \(player.step) tokens, \(text.split(separator: "\n").count - 1) frames, \(width)x\(height)")
        if !player.reexecutes {
            FileHandle.standardError.write(Data(("note: a --playback cast has no KV map or projection (sessions record neither); "
                + "without --playback the cast re-executes the session on its model and shows both\n").utf8))
        }
    }
}
