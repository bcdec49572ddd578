import ArgumentParser

@main
struct SLAM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slam",
        abstract: "SLAM: an event-sourced concert seat reservation service over ZeroMQ.",
        subcommands: [Serve.self, Call.self, Subscribe.self, ProjectionsCommand.self, Verify.self, Bench.self, DebugAppendLoad.self, DebugGenerate.self]
    )
}
