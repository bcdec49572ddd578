import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
@testable import SLAMServer
import SLAMStore
import Testing
import ZMQ

/// The relay on its own, without a server: a store with events appended directly, the relay's
/// PUB socket on an `ipc://` endpoint in a temporary folder, and a SUB connected and subscribed
/// to everything before the relay starts (probes are published until one arrives, so nothing the
/// relay sends is lost to the subscription still joining).
final class RelayFixture {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-relay-\(UUID().uuidString)")
    let store: EventStore
    let context: ZMQContext
    let sub: ZMQSocket
    let relay: Relay
    let events: Int

    /// `heads`: what the writer last told the relay (default: every event appended).
    init(events: Int, pageSize: Int, retryInterval: Millis = 100, heads: (seq: Int64, categories: [String: Int64])? = nil,
         before: (EventStore) throws -> Void = { _ in }) throws {
        self.events = events
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        store = try EventStore.open(path: dir.appendingPathComponent("relay.sqlite").path)
        let writer = try store.makeWriter()
        try store.pool.write { db in
            let new = (1...events).map { i in
                NewEvent(type: "Tested", category: "test", body: Array("{\"i\":\(i)}".utf8), occurredAt: 1_700_000_000_000,
                         causationId: "key-\(i)")
            }
            try writer.append(db, streamId: "stream-1", expected: .any, events: new)
            writer.close()
        }
        try before(store)
        context = try ZMQContext()
        let pub = try context.socket(.pub)
        try pub.setLinger(ms: 0)
        let endpoint = "ipc://" + dir.appendingPathComponent("events").path
        try pub.bind(endpoint)
        sub = try context.socket(.sub)
        try sub.setLinger(ms: 0)
        try sub.connect(endpoint)
        try sub.subscribe("")
        try sub.setReceiveTimeout(ms: 50)
        while try sub.receive() == nil { _ = try pub.send([Array("$probe".utf8)], dontWait: true) }
        try sub.setReceiveTimeout(ms: Int32(replyTimeoutMs))
        relay = Relay(store: store, socket: pub, published: Shared(0), heads: heads ?? (Int64(events), ["test": Int64(events)]),
                      pageSize: pageSize, retryInterval: retryInterval)
        relay.start()
    }

    /// The next message the relay published (probes skipped): its topic, and its header.
    func next() throws -> (topic: String, header: JSON) {
        while true {
            let frames = try #require(try sub.receive(), "nothing published")
            let topic = String(decoding: frames[0], as: UTF8.self)
            if topic == "$probe" { continue }
            return (topic, try JSONParser.parse(frames[1]))
        }
    }

    func close() {
        relay.stop()
        sub.close()
        context.terminate()
        try? store.pool.close()
        try? FileManager.default.removeItem(at: dir)
    }
}

@Suite("The outbox relay")
struct RelayTests {
    /// A backlog of several pages (pages of 2 here; of 1,000 in the server, and a store
    /// generated offline is millions of events behind) does not hold back the heartbeat: the one
    /// due goes out after the first page, then the rest of the backlog follows in seq order.
    @Test func aHeartbeatDueGoesOutBetweenPagesOfABacklog() throws {
        let f = try RelayFixture(events: 5, pageSize: 2)
        defer { f.close() }
        var got: [String] = []
        for _ in 0..<6 {
            let (topic, header) = try f.next()
            got.append(topic == "$heartbeat" ? "heartbeat \(header["headSeq"]?.int64Value ?? -1)"
                                             : "seq \(header["seq"]?.int64Value ?? -1)")
        }
        #expect(got == ["seq 1", "seq 2", "heartbeat 5", "seq 3", "seq 4", "seq 5"])
    }

    /// The relay can read past the heads the writer last gave it (a commit whose wake-up has not
    /// come yet); a heartbeat then names what it has sent, for `headSeq` and for each category
    /// (it raised only `headSeq`): a heartbeat must never say less than a subscriber has already
    /// received.
    @Test func aHeartbeatNamesWhatTheRelaySentPastTheHeadsItWasGiven() throws {
        let f = try RelayFixture(events: 5, pageSize: 2, heads: (0, [:]))
        defer { f.close() }
        var beat: JSON?
        while beat == nil {
            let (topic, header) = try f.next()
            if topic == "$heartbeat" { beat = header }
        }
        #expect(beat?["headSeq"]?.int64Value == 2, "\(String(describing: beat))")
        #expect(beat?["categories"]?["test"]?.int64Value == 2, "\(String(describing: beat))")
    }

    /// While reading the outbox fails (here the events table is renamed away), heartbeats still go
    /// out every second, naming the head the writer reported, and the relay tries again only
    /// `retryInterval` later (a minute here) or with the next heartbeat, not at each commit's
    /// wake-up (fifty here); once the table is back it publishes everything, from seq 1.
    @Test func aFailingReadNeitherSilencesHeartbeatsNorSpins() throws {
        let f = try RelayFixture(events: 3, pageSize: 1000, retryInterval: 60_000) { store in
            try store.pool.write { db in try db.execute(sql: "ALTER TABLE events RENAME TO events_away") }
        }
        defer { f.close() }
        let first = try f.next()
        #expect(first.topic == "$heartbeat" && first.header["headSeq"]?.int64Value == 3, "\(first)")
        for _ in 0..<50 { f.relay.notify(headSeq: 3, categories: ["test": 3]) }
        let second = try f.next()
        #expect(second.topic == "$heartbeat", "\(second)")
        let failures = f.relay.readFailures.get()
        #expect(failures >= 2 && failures <= 3, "\(failures) failed reads: one at the start, one at each heartbeat")

        try f.store.pool.write { db in try db.execute(sql: "ALTER TABLE events_away RENAME TO events") }
        var seqs: [Int64] = []
        while seqs.count < 3 {
            let (topic, header) = try f.next()
            if topic != "$heartbeat" { seqs.append(header["seq"]?.int64Value ?? -1) }
        }
        #expect(seqs == [1, 2, 3])
    }
}
