import ArgumentParser

/// `kvlab tour`: the workbench on the embedded model with the guided tour running.
struct TourCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tour",
        abstract: "A guided tour of the workbench on the live embedded model: one panel at a time, what it shows and the key that moves it.",
        discussion: "Each stop waits for its key (which does what it always does); Esc ends the tour, q quits. Needs a terminal.")

    @OptionGroup var screenOptions: ScreenOptions

    func run() throws {
        var workbench = try WorkbenchCommand.parse([])
        workbench.screenOptions = screenOptions
        try workbench.open(tour: true)
    }
}
