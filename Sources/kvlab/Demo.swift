import Foundation
import ArgumentParser
import KVLabApp
import KVLabCurses
import KVLabSession

/// `kvlab demo`: a scenario from sessions/demos played on the replay screen, paced for a projector.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play a demo scenario (a session with captions) on the workbench screen, paced for a projector.",
        discussion: """
        The demos ship beside the binary (and are read from sessions/demos in a checkout). Each re-executes on the \
        embedded default model and is verified as it plays. Space pauses, . or → steps, ← steps back, + and - change \
        the speed, g jumps to a step, q quits.
        """)

    @Argument(help: "The demo's name (default: the first; see --list).")
    var name: String?

    @Flag(name: .long, help: "List the demos (name and first caption) and exit.")
    var list = false

    @OptionGroup var screenOptions: ScreenOptions

    func run() throws {
        guard let directory = DemoCatalog.directory() else {
            throw CLIError("no demos: neither \(DemoCatalog.bundleName)/demos beside the binary nor sessions/demos here")
        }
        let demos = DemoCatalog.demos(in: directory)
        if list {
            for demo in demos { print("\(demo.name)\t\((try? DemoCatalog.firstCaption(of: demo.path)).flatMap { $0 } ?? "")") }
            return
        }
        guard let demo = name.map({ name in demos.first { $0.name == name } }) ?? demos.first else {
            throw CLIError("no demo '\(name ?? "")': the demos are \(demos.map(\.name).joined(separator: ", "))")
        }
        try ReplayScreenCommand.play(path: demo.path, playback: false, threads: nil, strict: false, model: nil, tokenizer: nil,
                                     pace: .demo, screen: screenOptions,
                                     withoutTerminal: "the demo screen needs a terminal, but standard output is not one; "
                                         + "kvlab demo --list lists the demos, kvlab replay FILE --headless plays one to a pipe")
    }
}

/// The replay screen on a terminal, shared by `kvlab replay` and `kvlab demo`.
enum ReplayScreenCommand {
    /// Opens the session at `path` (re-executed on its model, or played back) and plays it on the
    /// terminal until q; `withoutTerminal` is the error when standard output is not a terminal.
    static func play(path: String, playback: Bool, threads: Int?, strict: Bool, model: String?, tokenizer: String?,
                     pace: ReplayPace, screen: ScreenOptions, withoutTerminal: String) throws {
        do { try CursesTerminal.requireTerminal() } catch { throw CLIError(withoutTerminal) }
        let (catalog, themeArgument, startTheme) = try screen.startingTheme()
        let player = try makePlayer(path: path, playback: playback, threads: threads, strict: strict, model: model, tokenizer: tokenizer,
                                    themes: catalog.entries().map(\.name), theme: themeArgument)
        let terminal: CursesTerminal
        do { terminal = try CursesTerminal.openInteractive() } catch { throw CLIError("\(error)") }
        let depth = screen.color.depth(environment: ProcessInfo.processInfo.environment, terminal: terminal.colorSupport)
        let ending = ReplayControls.run(terminal: terminal, player: player, pace: pace, palette: startTheme.palette(depth: depth),
                                        glyphs: terminal.glyphs, patterned: depth == .mono || !terminal.glyphs.isUnicode)
        terminal.stop()
        if case .signal(let signal) = ending { throw ExitCode(128 + signal) }
        if let failure = player.failure { throw CLIError("replay stopped: \(failure)") }
    }

    /// A player for the session at `path`: re-executing on the recorded model (or `model`), or
    /// playing back the recorded metrics.
    static func makePlayer(path: String, playback: Bool, threads: Int?, strict: Bool, model: String?, tokenizer: String?,
                           themes: [String], theme: String) throws -> SessionPlayer {
        let reader = try SessionReader(path: path)
        let records = try reader.readAll()
        if let note = reader.incompleteLineNote { FileHandle.standardError.write(Data("note: \(note)\n".utf8)) }
        let mode: SessionPlayer.Mode = playback ? .playback : .reexecute(
            try SessionModel.load(for: reader.header, sessionPath: path, override: model, tokenizer: tokenizer), threads: threads, strict: strict)
        let projection = reader.header.projection ?? ProjectionSettings()
        let state = AppState(modelName: reader.header.model.name, choices: Choices.catalog(themes: themes),
                             device: projection.device, target: projection.target, theme: theme)
        return try SessionPlayer(path: path, header: reader.header, records: records, cut: reader.cut, mode: mode, state: state)
    }
}
