import ArgumentParser

// Being written (issue work in progress); replaced by the real command.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", shouldDisplay: false)
    func run() throws { throw ValidationError("slam verify is not built yet") }
}
