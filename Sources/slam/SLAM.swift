import ArgumentParser

@main
struct SLAM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slam",
        abstract: "SLAM: an event-sourced concert seat reservation service over ZeroMQ.",
        subcommands: [Serve.self, Call.self, Subscribe.self, ProjectionsCommand.self, Verify.self, Bench.self, DebugAppendLoad.self, DebugGenerate.self]
    )

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let (unknown, parent) = unknownHelpTopic(arguments) {
            // ArgumentParser answers `slam help nosuch` with the root's help and exit status 0,
            // which a script cannot tell from help it asked for.
            exit(withError: ValidationError("no subcommand \"\(unknown)\"; see '\(parent) --help'"))
        }
        main(arguments)
    }

    /// The first name after `help` that is not a subcommand of the one before it (`slam help
    /// projections nosuch`), with the command line of the one before it (`slam projections`).
    static func unknownHelpTopic(_ arguments: [String]) -> (name: String, parent: String)? {
        guard arguments.first == "help" else { return nil }
        var command: ParsableCommand.Type = SLAM.self
        var path = "slam"
        for name in arguments.dropFirst() where !name.hasPrefix("-") {
            guard let sub = command.configuration.subcommands.first(where: { $0._commandName == name }) else { return (name, path) }
            command = sub
            path += " " + name
        }
        return nil
    }
}
