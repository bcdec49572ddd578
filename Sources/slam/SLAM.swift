import ArgumentParser
import SLAMStore

@main
struct SLAM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slam",
        abstract: "SLAM: an event-sourced concert seat reservation service over ZeroMQ.",
        subcommands: [Serve.self, Call.self, Subscribe.self, ProjectionsCommand.self, Verify.self, Bench.self, DebugAppendLoad.self, DebugGenerate.self]
    )

    static func main() {
        // Before any thread uses SQLite. A debug build (the tests' `slam`) stops here if SQLite
        // has started by now, which would leave the setting silently off.
        let configured = EventStore.configureSQLiteProcess()
        assert(configured, "SQLite started before SLAM.main: its memory statistics stay on")
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let (unknown, parent) = unknownHelpTopic(arguments) {
            // ArgumentParser answers `slam help nosuch` with the root's help and exit status 0,
            // which a script cannot tell from help it asked for.
            exit(withError: ValidationError("no subcommand \"\(unknown)\"; see '\(path(to: parent)) --help'"))
        }
        main(arguments)
    }

    /// After `help`, the first name that is not a subcommand of the command named before it
    /// (`slam help projections nosuch`), with that command. The walk stops, leaving the rest to
    /// ArgumentParser as before, at an option (its value is no command name) and at a command
    /// with no subcommands (`slam help serve extra` shows serve's help). `help` itself is
    /// ArgumentParser's own subcommand of the root.
    static func unknownHelpTopic(_ arguments: [String]) -> (name: String, parent: ParsableCommand.Type)? {
        guard arguments.first == "help" else { return nil }
        var command: ParsableCommand.Type = SLAM.self
        for name in arguments.dropFirst() {
            let subcommands = command.configuration.subcommands
            if name.hasPrefix("-") || subcommands.isEmpty || (command == SLAM.self && name == "help") { return nil }
            guard let sub = subcommands.first(where: { $0._commandName == name }) else { return (name, command) }
            command = sub
        }
        return nil
    }

    /// `slam projections` for ProjectionsCommand: the names from the root down to `command`.
    static func path(to command: ParsableCommand.Type) -> String {
        func find(_ from: ParsableCommand.Type, _ names: [String]) -> [String]? {
            let here = names + [from._commandName]
            if from == command { return here }
            for sub in from.configuration.subcommands { if let found = find(sub, here) { return found } }
            return nil
        }
        return (find(SLAM.self, []) ?? ["slam"]).joined(separator: " ")
    }
}
