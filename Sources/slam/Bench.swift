import ArgumentParser
import Foundation
import SLAMBench
import SLAMClient
import SLAMDomain
import SLAMServer

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The ticket-rush benchmark: a load generator over ZeroMQ like any client.",
        discussion: """
            Scenario "rush": creates a concert and a schedule of --seats seats, registers and charges --users users, \
            then lets them hold 1-4 seats each (favouring the best sections), pay for most holds, cancel some and \
            leave some to expire, and hold again until the run ends (a user at its four seats cancels a paid \
            reservation now and then, so over a long run most paid seats change hands). Open loop with --rate R \
            (requests scheduled by the clock), or closed loop with --max. \
            Prints commands/s, latency percentiles, outcome counts, publish lag and the WAL's peak size, then checks \
            the invariants through the server. While it runs, a line a second on stderr: the time, the replies so far, \
            the last second's rate, the WAL's size, and the p99 and max latency of the replies since the line \
            before (a run's p99 from a few seconds of stalls or from all along). Exit status 1 when an invariant is violated, 2 when the run \
            could not be made (no server, a refused set-up) or its --json file not written, and 2 when the \
            server stopped answering after the run began (the report of what was measured is still printed and \
            written, without what the server did not answer: its counts, the invariants; 1 if the subscriber's \
            expiry checks found a violation all the same).
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
        func within<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ option: String, _ note: String = "") throws {
            guard range.contains(value) else {
                throw ValidationError("\(option) must be \(range.lowerBound) to \(range.upperBound)\(note)")
            }
        }
        try within(seats, 4...Limits.maxSeatsPerSchedule, "--seats", " (a user holds up to 4; PROTOCOL.md's largest schedule)")
        try within(users, 1...10_000_000, "--users")
        try within(connections, 1...1000, "--connections")
        try within(threads, 1...64, "--threads")
        try within(inFlight, 1...1000, "--in-flight", " (the server's reply high-water mark)")
        guard duration.isFinite, duration > 0, duration <= 86_400 else {
            throw ValidationError("--duration must be more than 0 and at most 86400 seconds")
        }
        try within(Int64(queueMaxActive), Limits.maxActiveRange, "--queue-max-active")
        guard replyTimeout.isFinite, replyTimeout >= 0.01, replyTimeout <= 60 else {
            throw ValidationError("--reply-timeout must be 0.01 to 60 seconds")
        }
        try OptionCheck.endpoint(server, option: "--server", bind: false)
        try OptionCheck.endpoint(events, option: "--events", bind: false)
        if let json { try OptionCheck.writableFile(json, option: "--json") }
        if let rate { try within(rate, 1...1_000_000, "--rate") }
    }

    func run() throws {
        var o = BenchOptions()
        o.server = server; o.events = events; o.seats = seats; o.users = users; o.queue = queue
        o.queueMaxActive = queueMaxActive; o.rate = rate; o.max = max; o.connections = Swift.max(connections, threads)
        o.inFlight = inFlight; o.duration = duration; o.threads = threads; o.replyTimeout = replyTimeout; o.json = json; o.verify = !noVerify
        o.progress = true
        let bench = RushBench(options: o) { writeStandardError($0 + "\n") }
        let report: BenchReport
        do {
            report = try bench.run()
        } catch let error as ClientError where error.timedOut {
            fail("\(error) (is a SLAM server running at \(server)?)")
        } catch {
            fail("\(error)")
        }
        print(report.text)
        if let json {
            do {
                try (report.json + "\n").write(toFile: json, atomically: true, encoding: .utf8)
            } catch {
                fail("cannot write --json \(json): \(error.localizedDescription)")
            }
        }
        if report.violated { throw ExitCode(1) }
        // Reported, but not a run made: the server's side of it is missing.
        if report.serverStoppedAnswering != nil { throw ExitCode(2) }
    }

    /// A run that could not be made or reported: exit 2, apart from an invariant's failure (1).
    private func fail(_ message: String) -> Never {
        writeStandardError("slam bench: \(message)\n")
        Foundation.exit(2)
    }
}
