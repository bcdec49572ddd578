import ArgumentParser
import Foundation
import SLAMServer
import SLAMStore

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server: commands on a ROUTER, events on a PUB.")

    @Option(help: "The SQLite database file (created if missing).")
    var db = "var/slam.sqlite"
    @Option(help: "The command endpoint (ROUTER): tcp://HOST:PORT, HOST an IP address ([::1] for IPv6), * or an interface name (no host name), PORT 0 or * for one the system picks; or ipc://PATH.")
    var commands = "tcp://127.0.0.1:5555"
    @Option(help: "The event endpoint (PUB), of the same form.")
    var events = "tcp://127.0.0.1:5556"
    @Option(name: .customLong("hold-ttl"), help: "How long a seat hold lasts, in seconds.")
    var holdTtl: Int64 = 300
    @Option(help: "SQLite synchronous mode: full (every acknowledged commit survives power loss) or normal.")
    var sync: String = "full"
    @Flag(name: .customLong("no-group-commit"), help: "One command per transaction (the baseline benchmark only).")
    var noGroupCommit = false
    @Option(name: .customLong("writer-cpu"), help: "Pin the writer thread to this CPU (default: not pinned).")
    var writerCPU: Int?
    @Option(name: .customLong("io-cpu"), help: "Pin the ROUTER's thread and ZeroMQ's threads (I/O, reaper) to this CPU (default: not pinned).")
    var ioCPU: Int?
    @Option(help: "A diagnostic: time every batch of commands and every sync of the store, and write them to this CSV file when the server stops (tools/series.py reads it).")
    var timings: String?

    /// A year: a hold's `expiresAt` stays a timestamp PROTOCOL.md's form can hold, and adding it
    /// to any time the server decides at cannot overflow.
    static let maxHoldTtl = 31_536_000

    func validate() throws {
        guard holdTtl >= 1, holdTtl <= Self.maxHoldTtl else {
            throw ValidationError("--hold-ttl must be 1 to \(Self.maxHoldTtl) seconds (a year)")
        }
        guard SyncMode(rawValue: sync) != nil else { throw ValidationError("--sync must be full or normal") }
        try OptionCheck.databasePath(db)
        if let timings { try OptionCheck.writableFile(timings, option: "--timings") }
        try OptionCheck.endpoint(commands, option: "--commands", bind: true)
        try OptionCheck.endpoint(events, option: "--events", bind: true)
        guard commands != events || commands.hasPrefix("tcp://") && (commands.hasSuffix(":*") || commands.hasSuffix(":0")) else {
            throw ValidationError("--commands and --events must differ (both are \(commands))")
        }
    }

    func run() throws {
        // SIGINT/SIGTERM: stop reading, answer what is queued, commit, checkpoint, close, exit 0.
        // Blocked before any thread starts; one that comes during start-up is taken once started.
        let signals = StopSignals()
        var config = ServerConfig()
        config.dbPath = db
        config.commandsEndpoint = commands
        config.eventsEndpoint = events
        config.holdTtl = holdTtl * 1000
        config.sync = SyncMode(rawValue: sync)!
        config.groupCommit = !noGroupCommit
        config.writerCPU = writerCPU
        config.ioCPU = ioCPU
        config.timingsPath = timings
        OpenFileLimit.raiseToHard()
        // A write to a pipe nobody reads any more (stderr piped into a process that has exited,
        // `slam serve 2>&1 | head -1`) raises SIGPIPE, which kills: the server ignores it, and the
        // log line is lost instead (libzmq's own sockets never raise it).
        signal(SIGPIPE, SIG_IGN)
        let server: Server
        let endpoints: (commands: String, events: String)
        do {
            server = try Server(config: config)
            endpoints = try server.start()
        } catch {
            writeStandardError("slam serve: \(error)\n")
            throw ExitCode(1)
        }
        signals.onSignal { server.stop() }
        print("SLAM ready commands=\(endpoints.commands) events=\(endpoints.events)")
        fflush(stdout)
        server.wait()
    }
}
