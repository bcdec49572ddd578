import ArgumentParser
import Foundation
import SLAMBench
import SLAMDomain

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The ticket-rush benchmark: a load generator over ZeroMQ like any client.",
        discussion: """
            Scenario "rush": creates a concert and a schedule of --seats seats, registers and charges --users users, \
            then lets them hold 1-4 seats each (favouring the best sections), pay for most holds, cancel some and \
            leave some to expire. Open loop with --rate R (requests scheduled by the clock), or closed loop with --max. \
            Prints commands/s, latency percentiles, outcome counts, publish lag and the WAL's peak size, then checks \
            the invariants through the server. Exit status 1 when an invariant is violated.
            """
    )

    @Option(help: "The server's command endpoint.") var server = "tcp://127.0.0.1:5555"
    @Option(help: "The server's event endpoint (for publish lag).") var events = "tcp://127.0.0.1:5556"
    @Option(help: "The scenario (only \"rush\").") var scenario = "rush"
    @Option(help: "Seats in the schedule.") var seats = 50_000
    @Option(help: "Simulated users.") var users = 20_000
    @Flag(help: "Run the rush through a waiting queue.") var queue = false
    @Option(name: .customLong("queue-max-active"), help: "maxActive of the queue with --queue.") var queueMaxActive = 5_000
    @Option(help: "Open loop: commands/s offered.") var rate: Int?
    @Flag(help: "Closed loop: find the ceiling.") var max = false
    @Option(help: "DEALER connections.") var connections = 8
    @Option(name: .customLong("in-flight"), help: "Closed loop: requests outstanding per connection.") var inFlight = 32
    @Option(help: "Seconds of load after set-up.") var duration: Double = 10
    @Option(help: "Load-generating threads.") var threads = 2
    @Option(name: .customLong("reply-timeout"), help: "Seconds without a reply after which a request is sent again, the same bytes (the same request id, key and body), on the same connection; then twice as long, up to eight times, before each next try. Checked at least every 50 ms.")
    var replyTimeout: Double = 5
    @Option(help: "Also write the results as JSON to this file.") var json: String?
    @Flag(name: .customLong("no-verify"), help: "Skip the invariant checks.") var noVerify = false

    func validate() throws {
        guard scenario == "rush" else { throw ValidationError("the only scenario is rush") }
        guard (rate != nil) != max else { throw ValidationError("give either --rate R (open loop) or --max (closed loop)") }
        guard seats >= 4, users >= 1, connections >= 1, threads >= 1, inFlight >= 1, duration > 0 else {
            throw ValidationError("--seats (≥4), --users, --connections, --threads, --in-flight and --duration must be positive")
        }
        guard seats <= Limits.maxSeatsPerSchedule else {
            throw ValidationError("--seats must be at most \(Limits.maxSeatsPerSchedule) (PROTOCOL.md's largest schedule)")
        }
        guard Limits.maxActiveRange.contains(Int64(queueMaxActive)) else {
            throw ValidationError("--queue-max-active must be \(Limits.maxActiveRange.lowerBound) to \(Limits.maxActiveRange.upperBound)")
        }
        guard users <= 10_000_000, connections <= 1000, threads <= 64, inFlight <= 1000 else {
            throw ValidationError("--users (≤ 10000000), --connections (≤ 1000), --threads (≤ 64) or --in-flight (≤ 1000, the server's reply high-water mark) too large")
        }
        guard duration.isFinite, duration <= 86_400 else { throw ValidationError("--duration must be at most 86400 seconds") }
        guard replyTimeout.isFinite, replyTimeout >= 0.01, replyTimeout <= 60 else {
            throw ValidationError("--reply-timeout must be 0.01 to 60 seconds")
        }
        if let rate { guard rate >= 1, rate <= 1_000_000 else { throw ValidationError("--rate must be 1 to 1000000") } }
    }

    func run() throws {
        var o = BenchOptions()
        o.server = server; o.events = events; o.seats = seats; o.users = users; o.queue = queue
        o.queueMaxActive = queueMaxActive; o.rate = rate; o.max = max; o.connections = Swift.max(connections, threads)
        o.inFlight = inFlight; o.duration = duration; o.threads = threads; o.replyTimeout = replyTimeout; o.json = json; o.verify = !noVerify
        o.progress = true
        let bench = RushBench(options: o) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
        let report = try bench.run()
        print(report.text)
        if let json { try (report.json + "\n").write(toFile: json, atomically: true, encoding: .utf8) }
        if !report.ok { throw ExitCode(1) }
    }
}
