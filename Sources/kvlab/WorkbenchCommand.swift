import Foundation
import ArgumentParser
import KVLabApp
import KVLabCurses
import KVLabHardware
import KVLabRun
import KVLabSession
import KVLabTUI

/// `kvlab` (or `kvlab workbench`): the full-screen workbench on a live model.
struct WorkbenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workbench",
        abstract: "Open the full-screen workbench (the default command): generate live and switch KV methods with single keys.",
        discussion: "Press ? in the workbench for its keys. Needs a terminal; `kvlab run` does the same headlessly.",
        aliases: ["tui"])

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup var kvOptions: KVOptions

    @OptionGroup var samplerOptions: SamplerOptions

    @Option(name: .long, help: "Device profile the projection uses (see kvlab project --list).")
    var device: String = ProjectionSettings.defaultDevice

    @Option(name: .long, help: "Target model shape the projection uses (see kvlab project --list), or 'live'.")
    var target: String = ProjectionSettings.defaultTarget

    @OptionGroup var screenOptions: ScreenOptions

    @Option(name: .long, help: "Prompt to start generating with at once (empty: wait for i).")
    var prompt = "ROMEO:\n"

    @Flag(name: .long, help: "Start with the full-cache ghost running (quality panel).")
    var ghost = false

    @Option(name: .long, help: "A kvlab sweep store (sweep run --store DIR) whose results for this model p draws as a Pareto view, the live settings as a dot.")
    var sweep: String?

    @Flag(name: .long, help: "Print the keymap as Markdown (the README's) and exit.")
    var keymap = false

    func run() throws {
        if keymap {
            print(Keymap.table.markdown(), terminator: "")
            return
        }
        try open(tour: false)
    }

    /// Opens the workbench, with the guided tour running when `tour` is true.
    func open(tour: Bool) throws {
        // Before the terminal and the model: a wrong store is a one-line error at once.
        let pareto = try sweep.map { directory in
            do { return try ParetoSweep(store: directory, model: modelOptions.model) } catch { throw CLIError("--sweep: \(error)") }
        }
        do { try CursesTerminal.requireTerminal() } catch { throw CLIError("\(error)") }
        do { _ = try HardwareCatalog.device(device) } catch { throw CLIError("--device: \(error)") }
        if target != HardwareCatalog.live { do { _ = try HardwareCatalog.target(target) } catch { throw CLIError("--target: \(error)") } }
        let (catalog, themeArgument, startTheme) = try screenOptions.startingTheme()

        let model = try modelOptions.load()
        let settings = try kvOptions.runSettings(model: model, modelOptions: modelOptions, sampler: samplerOptions.settings)
        let run = try LiveRun(model: model, settings: settings, ghost: ghost)
        var state = AppState(modelName: model.config.name, choices: Choices.catalog(themes: catalog.entries().map(\.name)),
                             device: device, target: target, theme: ThemeCatalog.name(ofFile: catalog.path(named: themeArgument) ?? themeArgument))
        state.pareto = pareto
        let worker = EngineWorker(core: EngineCore(run: run, device: device, target: target,
                                                         modelPath: modelOptions.model, tokenizerPath: modelOptions.tokenizer))
        defer { worker.stop() }

        let terminal: CursesTerminal
        do { terminal = try CursesTerminal.openInteractive() } catch { throw CLIError("\(error)") }
        let depth = screenOptions.color.depth(environment: ProcessInfo.processInfo.environment, terminal: terminal.colorSupport)
        state.patterned = depth == .mono || !terminal.glyphs.isUnicode
        if tour { state.tour = Tour() }
        var stats = WorkbenchStats()
        worker.send(.pause(false))  // a first snapshot: the knobs and projection before any prompt
        if !prompt.isEmpty { worker.send(.submit(prompt)); state.promptHistory.append(prompt) }
        let ending = Workbench.run(terminal: terminal, worker: worker, state: &state, palette: startTheme.palette(depth: depth),
                                   glyphs: terminal.glyphs,
                                   loadTheme: { name in (try? loadTheme(name, catalog: catalog).theme)?.palette(depth: depth) },
                                   stats: &stats)
        terminal.stop()
        if case .signal(let signal) = ending { throw ExitCode(128 + signal) }
    }
}

/// The curses terminal is the workbench's real terminal (KVLabApp does not import curses).
extension CursesTerminal: WorkbenchTerminal {}
