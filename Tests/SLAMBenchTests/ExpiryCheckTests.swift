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
        #expect(report.violated)
        #expect(report.invariants?.violations.contains { $0.contains("not recorded as expired") } == true,
                "\(report.invariants?.violations ?? [])")
    }

    /// The server expires a hold once its `expiresAt` has passed; one recorded at that instant or
    /// before took a hold that could still be paid for. The check used to time only lateness.
    @Test func anExpiryRecordedAtOrBeforeItsExpiresAtIsAViolation() {
        var e = ExpiryLateness()
        e.record("res_on_time", lateMs: 180)
        e.record("res_late", lateMs: 1_400)
        #expect(e.early == 0 && e.late == 1)
        e.record("res_at", lateMs: 0)
        e.record("res_before", lateMs: -250)
        #expect(e.timed == 4 && e.early == 2 && e.maxMs == 1_400)
        #expect(e.violations().contains("2 hold expiries recorded at or before their expiresAt, while the hold could still be paid for "
                                      + "(DESIGN.md invariant 8; Schemas/README.md choice 34)"), "\(e.violations())")
        #expect(e.violations().contains("hold res_before expired 250 ms before its expiresAt"), "\(e.violations())")
        #expect(e.violations().contains("hold res_at expired at its expiresAt"), "\(e.violations())")
        // The latest of expiries all early is the latest of them, not 0.
        var allEarly = ExpiryLateness()
        allEarly.record("res_a", lateMs: -30)
        allEarly.record("res_b", lateMs: -10)
        #expect(allEarly.maxMs == -10 && allEarly.early == 2)
        // And the report says so, where it said "recorded at most -10 ms after their expiresAt".
        #expect(report(allEarly).text.contains("2 of the run's holds expired (HoldExpired after their SeatsHeld), every one recorded "
                                     + "before its expiresAt, the latest 10 ms before, 0 more than"), "\(report(allEarly).text)")
        // The latest exactly at its expiresAt: early too, not "at most 0 ms after".
        var atTheirTime = allEarly
        atTheirTime.record("res_c", lateMs: 0)
        #expect(report(atTheirTime).text.contains("every one recorded at or before its expiresAt, the latest at it, 0 more than"),
                "\(report(atTheirTime).text)")
    }

    /// A report of a run whose only measurement is `expiries`.
    private func report(_ expiries: ExpiryLateness) -> BenchReport {
        BenchReport(options: BenchOptions(), setupSeconds: 0, seconds: 1, outcomes: Outcomes(),
                    latency: LatencySummary(newHistogram()), publishLag: LatencySummary(newHistogram()),
                    eventsReceived: expiries.timed, eventsNotReceived: 0, holdsExpired: expiries.timed, expiries: expiries,
                    walPeakBytes: 0, commandsExecuted: Int64(expiries.timed), repliesDropped: 0, synchronous: "FULL",
                    groupCommit: true)
    }
}
