import Foundation
@testable import SLAMBench
import SLAMServer
import SLAMTesting
import Testing

/// The bench's check of DESIGN.md invariant 8 from its subscriber, against a server whose sweep
/// never comes (its interval an hour): holds of 300 ms that no later hold takes over are never
/// recorded as expired, though events recorded after their second has passed keep coming. The
/// bench must call that a violation. (A server that records them late: the SIGSTOP smoke test.)
@Suite("slam bench's expiry check")
struct ExpiryCheckTests {
    @Test func holdsNeverRecordedAsExpiredAreAViolation() throws {
        let server = try TestServer(configure: { $0.holdTtl = 300; $0.sweepInterval = 3_600_000 })
        defer { server.shutdown() }
        var options = BenchOptions()
        options.server = server.commandsEndpoint
        options.events = server.eventsEndpoint
        options.seats = 300
        options.users = 120
        options.rate = 300
        options.duration = 2.5
        options.progress = false
        let report = try RushBench(options: options, log: { _ in }).run()
        let missing = try #require(report.expiries.missing, "the subscriber missed events: \(report.expiries)")
        #expect(missing > 0, "\(report.expiries)")
        #expect(!report.ok)
        #expect(report.invariants?.violations.contains { $0.contains("not recorded as expired") } == true,
                "\(report.invariants?.violations ?? [])")
    }
}
