import ArgumentParser

// Being written (issue work in progress); replaced by the real command.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", shouldDisplay: false)
    func run() throws { throw ValidationError("slam bench is not built yet") }
}
