import Foundation
import GRDB
import SLAMClient
import SLAMJSON
import SLAMServer
import SLAMStore
import SLAMTesting
import Testing
import ZMQ

/// A safety net for waits on a loaded 2-core machine, never a synchronization: every wait below
/// returns as soon as its condition holds.
let waitTimeoutMs = 60_000

func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

// MARK: A server that can be restarted

/// A real server on `ipc://` endpoints in a temporary folder that the test can stop and start
/// again on the same database and endpoints (a relay restart), unlike `TestServer`.
final class RestartableServer: @unchecked Sendable {
    let directory: URL
    private(set) var config: ServerConfig
    private(set) var server: Server?
    let context: ZMQContext
    private(set) var commandsEndpoint = ""
    private(set) var eventsEndpoint = ""

    init(configure: (inout ServerConfig) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("slam-events-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var config = ServerConfig.forTests(in: directory)
        configure(&config)
        self.config = config
        context = try ZMQContext()
        try start()
    }

    var store: EventStore { server!.store }

    func start() throws {
        precondition(server == nil, "already running")
        let s = try Server(config: config)
        (commandsEndpoint, eventsEndpoint) = try s.start()
        server = s
    }

    /// Graceful stop: answers what is queued, publishes what is committed, closes.
    func stop() {
        guard let s = server else { return }
        s.stop()
        s.wait()
        server = nil
    }

    func client() throws -> SLAMClient { try SLAMClient(endpoint: commandsEndpoint, context: context) }

    /// Stops the server (clients must be closed first) and removes the folder.
    func shutdown() {
        stop()
        context.terminate()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Runs `body` against a fresh restartable server, always shutting it down.
func withServer(configure: (inout ServerConfig) -> Void = { _ in }, _ body: (RestartableServer) throws -> Void) throws {
    let server = try RestartableServer(configure: configure)
    defer { server.shutdown() }
    try body(server)
}

// MARK: Ground truth

/// Every outbox row of the store, read from the table itself.
func outbox(_ store: EventStore, category: String? = nil) throws -> [OutboxMessage] {
    try store.pool.read { db in try EventStore.readOutbox(db, afterSeq: 0, limit: Int.max / 2, category: category) }
}

/// Every event through ReadEvents, page by page (a second, wire-level ground truth).
func readEvents(_ client: SLAMClient, category: String? = nil) throws -> [JSON] {
    var out: [JSON] = []
    var after: Int64 = 0
    while true {
        var body: JSONObject = ["afterSeq": .int(after)]
        if let category { body["category"] = .string(category) }
        let r = try client.call("ReadEvents", .object(body), timeoutMs: waitTimeoutMs)
        guard r.ok, let events = r.body["events"]?.arrayValue else { throw ClientError("ReadEvents failed") }
        out.append(contentsOf: events)
        guard let last = events.last?["header"]?["seq"]?.int64Value else { return out }
        after = last
    }
}

/// The delivered events are exactly the outbox rows (of one category, or all), once each, in
/// order: same seq, topic, header and body.
func expectExactly(_ delivered: [SubscribedEvent], _ truth: [OutboxMessage], category: String? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
    #expect(!truth.isEmpty, "the ground truth is empty", sourceLocation: sourceLocation)
    #expect(delivered.map(\.seq) == truth.map(\.seq), "delivered seqs differ from the outbox's",
            sourceLocation: sourceLocation)
    if category == nil {
        #expect(delivered.map(\.seq) == (0..<delivered.count).map { Int64($0 + 1) },
                "seq is not contiguous from 1", sourceLocation: sourceLocation)
    } else {
        #expect(delivered.map(\.categorySeq) == (0..<delivered.count).map { Int64($0 + 1) },
                "categorySeq is not contiguous from 1", sourceLocation: sourceLocation)
    }
    for (d, t) in zip(delivered, truth) where d.seq == t.seq {
        #expect(d.topic == t.topic, sourceLocation: sourceLocation)
        #expect(JSON.object(d.header) == (try JSONParser.parse(t.header)), "header of seq \(d.seq)",
                sourceLocation: sourceLocation)
        #expect(d.body == (try JSONParser.parse(t.body)), "body of seq \(d.seq)", sourceLocation: sourceLocation)
        #expect(try JSONParser.parse(d.rawHeader) == JSON.object(d.header), sourceLocation: sourceLocation)
        #expect(try JSONParser.parse(d.rawBody) == d.body, sourceLocation: sourceLocation)
        #expect(d.categorySeq == t.categorySeq, sourceLocation: sourceLocation)
        if let category { #expect(d.category == category, sourceLocation: sourceLocation) }
    }
}

// MARK: Commands

/// A scripted session touching every kind of event but the queue's: users and points, a concert
/// and schedules, holds, a payment, a release, a cancellation with refund, a sell-out and a
/// reopening. Returns the number of commands sent.
@discardableResult
func scriptedSession(_ client: SLAMClient, round: Int = 0) throws -> Int {
    let s = Scenario(client)
    let now = nowMillis()
    let alice = try s.registerUser("alice \(round)", charge: 50_000)
    let bob = try s.registerUser("bob \(round)", charge: 20_000)
    let schedule = try s.openSchedule(now: now, seats: 10, price: 1000)
    let held = try s.must("HoldSeats", ["userId": .string(alice), "scheduleId": .string(schedule), "seatNumbers": [1, 2]])
    let r1 = held["reservationId"]!.stringValue!
    _ = try s.must("PayReservation", ["userId": .string(alice), "reservationId": .string(r1)])
    let r2 = try s.must("HoldSeats", ["userId": .string(bob), "scheduleId": .string(schedule), "seatNumbers": [3]])["reservationId"]!.stringValue!
    _ = try s.must("CancelReservation", ["userId": .string(bob), "reservationId": .string(r2)])  // released
    _ = try s.must("CancelReservation", ["userId": .string(alice), "reservationId": .string(r1)])  // refunded
    // A two-seat schedule: sold out, then reopened.
    let small = try s.openSchedule(now: now, seats: 2, price: 500)
    let r3 = try s.must("HoldSeats", ["userId": .string(bob), "scheduleId": .string(small), "seatNumbers": [1, 2]])["reservationId"]!.stringValue!
    _ = try s.must("PayReservation", ["userId": .string(bob), "reservationId": .string(r3)])
    _ = try s.must("CancelReservation", ["userId": .string(bob), "reservationId": .string(r3)])
    return 16
}

/// `n` RegisterUser commands, pipelined on one connection; waits for every reply.
func registerMany(_ client: SLAMClient, _ n: Int, prefix: String = "fan") throws {
    var pending = Set<String>()
    for i in 0..<n {
        pending.insert(try client.send("RegisterUser", .object(["name": .string("\(prefix) \(i)")]), key: UUID().uuidString))
        // Keep the pipeline bounded so the server's queue never answers OVERLOADED.
        while pending.count >= 256 { try receiveOne(client, &pending) }
    }
    while !pending.isEmpty { try receiveOne(client, &pending) }
}

private func receiveOne(_ client: SLAMClient, _ pending: inout Set<String>) throws {
    guard let r = try client.receive(timeoutMs: waitTimeoutMs) else { throw ClientError("no reply within \(waitTimeoutMs) ms") }
    guard let id = r.requestId, pending.remove(id) != nil else { return }
    guard r.ok else { throw ClientError("RegisterUser failed: \(String(decoding: r.rawBody, as: UTF8.self))") }
}

/// The store's head seq and the relay's published seq, from GetStats.
func heads(_ client: SLAMClient) throws -> (headSeq: Int64, publishedSeq: Int64) {
    let b = try client.call("GetStats", timeoutMs: waitTimeoutMs).body
    return (b["headSeq"]!.int64Value!, b["publishedSeq"]!.int64Value!)
}

// MARK: A subscriber on its own thread

/// Runs a `Subscriber` on a thread of its own (its sockets live there), recording what it
/// delivers; the test thread waits on a condition the subscriber thread signals, with a timeout.
final class SubscriberThread: @unchecked Sendable {
    struct Snapshot {
        var events: [SubscribedEvent] = []
        var stats = SubscriberStats()
        var checkpoint: Int64 = 0
        var categoryCheckpoint: Int64?
        var storeId: String?
        /// The seq the handler is blocked at (see `blockAt`), if any.
        var blockedAt: Int64?
        var error: Error?
        var finished = false
        var lastSeq: Int64 { events.last?.seq ?? 0 }
    }

    private let condition = NSCondition()
    private var state = Snapshot()
    private var stopRequested = false
    private var gateSeq: Int64?
    private var gateOpen = true
    private let subscriber: Subscriber
    /// The handler throws (as a crashing consumer would) when it gets this seq; the event is not
    /// recorded and the run ends.
    private let failAt: Int64?
    /// Likewise, at the handler's `failAtCount`-th event (1-based).
    private let failAtCount: Int?
    private let slowMicroseconds: UInt32

    init(_ subscriber: Subscriber, failAt: Int64? = nil, failAtCount: Int? = nil, slowMicroseconds: UInt32 = 0) {
        self.subscriber = subscriber
        self.failAt = failAt
        self.failAtCount = failAtCount
        self.slowMicroseconds = slowMicroseconds
    }

    /// Makes the handler wait, when it gets `seq`, until `release()`.
    func blockAt(_ seq: Int64) {
        condition.lock()
        gateSeq = seq
        gateOpen = false
        condition.unlock()
    }

    func release() {
        condition.lock()
        gateOpen = true
        condition.broadcast()
        condition.unlock()
    }

    func start() {
        let t = Thread { [self] in
            do {
                try subscriber.run(until: { [self] in self.publishAndCheckStop() }, pollTimeoutMs: 20) { [self] event in
                    try self.handle(event)
                }
            } catch {
                condition.lock()
                state.error = error
                condition.unlock()
            }
            condition.lock()
            copyState()
            state.finished = true
            condition.broadcast()
            condition.unlock()
            subscriber.close()
        }
        t.name = "test-subscriber"
        t.start()
    }

    private func copyState() {
        state.stats = subscriber.stats
        state.checkpoint = subscriber.checkpoint
        state.categoryCheckpoint = subscriber.categoryCheckpoint
        state.storeId = subscriber.storeId
    }

    /// Called by the subscriber's loop often: publishes its counters for the test thread.
    private func publishAndCheckStop() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        copyState()
        condition.broadcast()
        return stopRequested
    }

    private func handle(_ event: SubscribedEvent) throws {
        if event.seq == failAt { throw ClientError("the consumer failed at seq \(event.seq)") }
        condition.lock()
        if let n = failAtCount, state.events.count + 1 == n {
            condition.unlock()
            throw ClientError("the consumer failed at its event \(n) (seq \(event.seq))")
        }
        if event.seq == gateSeq {
            state.blockedAt = event.seq
            condition.broadcast()
            while !gateOpen { condition.wait() }
            state.blockedAt = nil
        }
        state.events.append(event)
        copyState()
        condition.broadcast()
        condition.unlock()
        if slowMicroseconds > 0 { usleep(slowMicroseconds) }
    }

    var snapshot: Snapshot {
        condition.lock()
        defer { condition.unlock() }
        return state
    }

    /// Waits until `predicate` holds (true) or the timeout passes (false).
    @discardableResult
    func wait(timeoutMs: Int = waitTimeoutMs, until predicate: (Snapshot) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(Double(timeoutMs) / 1000)
        condition.lock()
        defer { condition.unlock() }
        while !predicate(state) {
            if state.finished { return predicate(state) }
            if !condition.wait(until: deadline) { return predicate(state) }
        }
        return true
    }

    /// Waits until every event up to `seq` is delivered (the checkpoint reaches it).
    @discardableResult
    func waitForCheckpoint(_ seq: Int64, timeoutMs: Int = waitTimeoutMs) -> Bool {
        wait(timeoutMs: timeoutMs) { $0.checkpoint >= seq }
    }

    /// Asks the run to end and waits for it; returns the final state.
    @discardableResult
    func stop() -> Snapshot {
        condition.lock()
        stopRequested = true
        gateOpen = true
        condition.broadcast()
        while !state.finished { condition.wait() }
        let s = state
        condition.unlock()
        return s
    }
}
