import ArgumentParser

// Being written (issue work in progress); replaced by the real command.
struct Subscribe: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "subscribe", shouldDisplay: false)
    func run() throws { throw ValidationError("slam subscribe is not built yet") }
}
