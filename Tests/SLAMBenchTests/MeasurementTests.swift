import Foundation
@testable import SLAMBench
import SLAMClient
import SLAMDomain
import SLAMJSON
import Testing
import ZMQ

// What an audit of `slam bench`'s measurements found (2026-12-07): the publish lag's events,
// the open loop's schedule, and the closing check's reading of replies.

/// The bench's publish lag counts the run's events only, each once. It used to count the set-up's
/// last events as well (still being published when its subscriber joined; with the relay behind at
/// the end of a large set-up, the figure was up to 60 times the run's own), duplicates twice, and
/// to say nothing of the run's events that never came.
@Suite("slam bench's publish-lag subscriber")
struct LagSubscriberTests {
    /// An XPUB, so that the test knows when the subscriber has subscribed (its subscription comes
    /// in as a message) before it publishes.
    private func publisher(_ context: ZMQContext) throws -> (ZMQSocket, String, URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lag-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let endpoint = "ipc://\(dir.path)/e"
        let pub = try context.socket(.xpub)
        try pub.setLinger(ms: 0)
        try pub.bind(endpoint)
        return (pub, endpoint, dir)
    }

    private func publish(_ pub: ZMQSocket, seq: Int64) throws {
        let at = RFC3339.format(wallMillis())
        let header = "{\"seq\":\(seq),\"type\":\"UserRegistered\",\"occurredAt\":\"\(at)\"}"
        _ = try pub.send([Array("user.UserRegistered".utf8), Array(header.utf8), Array("{}".utf8)])
    }

    @Test func onlyTheRunsEventsCountEachOnceAndThoseThatNeverCameAreCounted() throws {
        let context = try ZMQContext()
        let (pub, endpoint, dir) = try publisher(context)
        defer { pub.close(); try? FileManager.default.removeItem(at: dir) }
        let lag = LagSubscriber(endpoint: endpoint, scheduleId: "none", runAfterSeq: 3)
        try lag.start(context: context)
        _ = try pub.receive()  // its subscription
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
        let (pub, endpoint, dir) = try publisher(context)
        defer { pub.close(); try? FileManager.default.removeItem(at: dir) }
        let lag = LagSubscriber(endpoint: endpoint, scheduleId: "none", runAfterSeq: 0)
        try lag.start(context: context)
        _ = try pub.receive()
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
    @Test func fieldsOfTheWrongTypeAreViolations() throws {
        let context = try ZMQContext()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("shape-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let endpoint = "ipc://\(dir.path)/c"
        let router = try context.socket(.router)
        try router.setLinger(ms: 0)
        try router.bind(endpoint)
        // The bodies by query: a balance that is a string, seats that are an object.
        let bodies = [
            "GetUser": #"{"userId":"usr_1","name":"a","balance":"plenty"}"#,
            "GetPointHistory": #"{"entries":[]}"#,
            "ListReservations": #"{"reservations":[]}"#,
            "GetSeatMap": #"{"scheduleId":"sch_1","seats":{"1":"SOLD"}}"#,
        ]
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
        router.close()
        #expect(!report.ok)
        #expect(report.violations.contains { $0.contains("usr_1") && $0.contains("balance") }, "\(report.violations)")
        #expect(report.violations.contains { $0.contains("sch_1") && $0.contains("seats") }, "\(report.violations)")
    }
}
