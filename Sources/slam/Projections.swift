import ArgumentParser

// Being written (issue work in progress); replaced by the real command.
struct ProjectionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "projections", shouldDisplay: false)
    func run() throws { throw ValidationError("slam projections is not built yet") }
}
