import Foundation
@testable import SLAMBench
import SLAMClient
import SLAMDomain
import SLAMJSON
import Testing
import ZMQ

// What an audit of `slam bench`'s measurements found (2026-12-07): the publish lag's events,
// the open loop's schedule, and the closing check's reading of replies.

/// A socket of `type` bound to an `ipc://` endpoint in a new temporary folder; `remove` closes it
/// and deletes the folder.
private func bound(_ type: ZMQSocketType, _ context: ZMQContext) throws -> (socket: ZMQSocket, endpoint: String, remove: () -> Void) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let endpoint = "ipc://\(dir.path)/s"
    let socket = try context.socket(type)
    try socket.setLinger(ms: 0)
    try socket.bind(endpoint)
    return (socket, endpoint, { socket.close(); try? FileManager.default.removeItem(at: dir) })
}

/// The bench's publish lag counts the run's events only, each once. It used to count the set-up's
/// last events as well (still being published when its subscriber joined; with the relay behind at
/// the end of a large set-up, the figure was up to 60 times the run's own), duplicates twice, and
/// to say nothing of the run's events that never came.
@Suite("slam bench's publish-lag subscriber")
struct LagSubscriberTests {
    /// A started subscriber on an XPUB of the test's, once subscribed (its subscription has come
    /// in as a message), so that what is published next reaches it.
    private func subscribed(_ context: ZMQContext, runAfterSeq: Int64) throws -> (pub: ZMQSocket, lag: LagSubscriber, remove: () -> Void) {
        let (pub, endpoint, remove) = try bound(.xpub, context)
        let lag = LagSubscriber(endpoint: endpoint, scheduleId: "none", runAfterSeq: runAfterSeq)
        try lag.start(context: context)
        _ = try pub.receive()  // its subscription
        return (pub, lag, remove)
    }

    private func publish(_ pub: ZMQSocket, seq: Int64) throws {
        let at = RFC3339.format(wallMillis())
        let header = "{\"seq\":\(seq),\"type\":\"UserRegistered\",\"occurredAt\":\"\(at)\"}"
        _ = try pub.send([Array("user.UserRegistered".utf8), Array(header.utf8), Array("{}".utf8)])
    }

    @Test func onlyTheRunsEventsCountEachOnceAndThoseThatNeverCameAreCounted() throws {
        let context = try ZMQContext()
        let (pub, lag, remove) = try subscribed(context, runAfterSeq: 3)
        defer { remove() }
        // The set-up's last events (1–3), the run's (4–9), one of them again (a second delivery).
        for seq: Int64 in [1, 2, 3, 4, 5, 6, 7, 8, 6, 9] { try publish(pub, seq: seq) }
        let deadline = Date().addingTimeInterval(30)
        while lag.lastSeq < 9, Date() < deadline { usleep(1_000) }
        #expect(lag.lastSeq == 9)
        lag.stop(head: 11)  // the run's 10 and 11 never came
        #expect(lag.received == 6)
        #expect(lag.histogram.totalCount == 6)
        #expect(lag.notReceived == 2)
        #expect(lag.expiries.missing == 0, "the run's events came without a gap: unrecorded expiries were checked")
    }

    @Test func nothingReceivedChecksNoExpiry() throws {
        let context = try ZMQContext()
        let (_, lag, remove) = try subscribed(context, runAfterSeq: 0)
        defer { remove() }
        lag.stop(head: 4)
        #expect(lag.received == 0)
        #expect(lag.notReceived == 4)
        #expect(lag.expiries.missing == nil, "nothing came: whether holds went unrecorded is unknown, not none")
    }
}

/// Open loop, the threads' slots interleave: at 1,000/s on two threads, one command every
/// millisecond, not two at once every two (they used to share their slot times).
@Suite("slam bench's open-loop schedule")
struct OpenLoopScheduleTests {
    @Test(arguments: [1, 2, 3]) func slotsAreEvenlySpacedAcrossThreads(threads: Int) {
        let rate = 1_000.0, interval = 1_000_000.0 / (rate / Double(threads))
        let due = (0..<threads).flatMap { i in (0..<10).map { Driver.slotDue($0, thread: i, of: threads, interval: interval, from: 5_000) } }.sorted()
        #expect(Set(due).count == due.count, "two slots due at once: \(due)")
        for (a, b) in zip(due, due.dropFirst()) { #expect((999...1_001).contains(b - a), "\(a) → \(b)") }
        #expect(due.first == 5_000)
    }
}

/// The closing check against a server that answers with fields of the wrong type (another
/// implementation, a bug): each is a violation ("not checked"), never a silent pass. A `balance`
/// that was not an integer skipped the user, and `seats` that were not an array the whole
/// seat-map comparison, without a word (audit).
@Suite("slam bench's invariant check, against replies of the wrong shape")
struct InvariantCheckShapeTests {
    /// Runs the check for one user, `usr_1`, and schedule `sch_1` against a fake server that
    /// answers each query with its body in `bodies`.
    private func check(_ bodies: [String: String]) throws -> InvariantReport {
        let context = try ZMQContext()
        let (router, endpoint, remove) = try bound(.router, context)
        defer { remove() }
        let done = DispatchSemaphore(value: 0)
        let server = Thread {
            defer { done.signal() }
            // Four queries: GetUser, GetPointHistory and ListReservations for the one user, then GetSeatMap.
            for _ in 0..<4 {
                guard let frames = try? router.receive(), frames.count == 5,
                      let header = try? JSONParser.parse(frames[3]),
                      let type = header["type"]?.stringValue, let id = header["requestId"]?.stringValue else { return }
                let reply = #"{"requestId":"\#(id)","ok":true}"#
                _ = try? router.send([frames[0], [], Array("SLAM/1".utf8), Array(reply.utf8), Array((bodies[type] ?? "{}").utf8)])
            }
        }
        server.start()
        let client = try SLAMClient(endpoint: endpoint, context: context)
        let report = try InvariantCheck(client: client, scheduleId: "sch_1", userIds: ["usr_1"]).run()
        done.wait()
        client.close()
        return report
    }

    @Test func fieldsOfTheWrongTypeAreViolations() throws {
        // A balance that is a string, seats that are an object.
        let report = try check([
            "GetUser": #"{"userId":"usr_1","name":"a","balance":"plenty"}"#,
            "GetPointHistory": #"{"entries":[]}"#,
            "ListReservations": #"{"reservations":[]}"#,
            "GetSeatMap": #"{"scheduleId":"sch_1","seats":{"1":"SOLD"}}"#,
        ])
        #expect(!report.ok)
        #expect(report.violations.contains { $0.contains("usr_1") && $0.contains("balance") }, "\(report.violations)")
        #expect(report.violations.contains { $0.contains("sch_1") && $0.contains("seats") }, "\(report.violations)")
    }

    /// A history entry the check cannot account for: a USE of no reservation (points gone that no
    /// reservation explains), a kind PROTOCOL.md does not give, an amount that is not a positive
    /// integer. Each history below adds up, numbered and balanced; the check used to pass them all.
    @Test(arguments: [
        (#"{"n":2,"kind":"USE","amount":100,"balance":900,"at":"2026-12-07T05:00:00Z"}"#, "reservationId missing"),
        (#"{"n":2,"kind":"FINE","amount":100,"balance":1100,"at":"2026-12-07T05:00:00Z"}"#, #"kind "FINE""#),
        (#"{"n":2,"kind":"CHARGE","amount":"100","balance":1000,"at":"2026-12-07T05:00:00Z"}"#, #"amount "100""#),
        (#"{"n":2,"kind":"CHARGE","amount":0,"balance":1000,"at":"2026-12-07T05:00:00Z"}"#, "amount 0"),
    ]) func historyEntriesThatCannotBeAccountedForAreViolations(entry: String, says: String) throws {
        let balance = try #require(JSONParser.parse(entry)["balance"]?.int64Value)
        let charge = #"{"n":1,"kind":"CHARGE","amount":1000,"balance":1000,"at":"2026-12-07T04:59:00Z"}"#
        let report = try check([
            "GetUser": #"{"userId":"usr_1","name":"a","balance":\#(balance)}"#,
            "GetPointHistory": #"{"entries":[\#(entry),\#(charge)]}"#,
            "ListReservations": #"{"reservations":[]}"#,
            "GetSeatMap": #"{"scheduleId":"sch_1","seats":[]}"#,
        ])
        #expect(report.violations.count == 1, "\(report.violations)")
        #expect(report.violations.first?.hasPrefix("user usr_1: history entry 2 not checked, ") == true, "\(report.violations)")
        #expect(report.violations.first?.contains(says) == true, "\(report.violations)")
    }
}

/// The report's max is the largest latency recorded, not the top of its HdrHistogram bucket
/// (three significant digits): one command of 77,001 µs printed "p99.9 77.00 max 77.06" (audit).
@Suite("slam bench's latency summary")
struct LatencySummaryTests {
    @Test func maxIsTheLargestValueRecorded() {
        var h = newHistogram()
        for v: UInt64 in [900, 1_200, 77_001] { h.recordClamped(v) }
        let s = LatencySummary(h)
        #expect(s.max == 77.001)
        #expect(s.count == 3)
    }

    /// Over no values (a subscriber that received no event) there is nothing to give: the line
    /// says "none" and the JSON's percentiles are null, not a measured-looking 0 ms.
    @Test func noValuesAreNoneNotZero() throws {
        let s = LatencySummary(newHistogram())
        #expect(s.text == "none")
        var w = JSONWriter()
        s.write(&w)
        #expect(String(decoding: w.bytes, as: UTF8.self)
                == #"{"count":0,"p50Ms":null,"p90Ms":null,"p99Ms":null,"p999Ms":null,"maxMs":null}"#)
        var h = newHistogram()
        h.recordClamped(1_500)
        #expect(LatencySummary(h).text == "p50 1.50  p90 1.50  p99 1.50  p99.9 1.50  max 1.50 ms")
    }
}

/// The report's `bench` line names the CPUs as `taskset` does, so that a 128-CPU affinity mask is
/// one short range, not 128 numbers.
@Suite("slam bench's CPU list")
struct CPUListTests {
    @Test func runsOfThreeOrMoreAreRanges() {
        #expect(BenchReport.cpuList([0]) == "0")
        #expect(BenchReport.cpuList([0, 1]) == "0,1")
        #expect(BenchReport.cpuList([3, 0, 1, 2, 5, 7, 8, 9]) == "0-3,5,7-9")
        #expect(BenchReport.cpuList(Array(0..<128)) == "0-127")
    }
}
