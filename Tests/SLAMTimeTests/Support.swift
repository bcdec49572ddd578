import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

// Helpers for the time-rule tests: a server that can be restarted on the same database and
// endpoints, polling with a deadline (never a fixed sleep as synchronization), event reads, and
// a fold of the queue's events that checks FIFO and maxActive at every recorded step.

/// How long a poll waits before a test fails: generous, for a loaded 2-core machine.
let pollTimeout: TimeInterval = 30

struct TimeoutError: Error, CustomStringConvertible {
    let description: String
}

/// Calls `probe` until it returns a value, every few milliseconds, failing after `timeout`.
func poll<T>(_ what: String, timeout: TimeInterval = pollTimeout, _ probe: () throws -> T?) throws -> T {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if let value = try probe() { return value }
        guard Date() < deadline else { throw TimeoutError(description: "timed out after \(Int(timeout)) s waiting for \(what)") }
        usleep(10_000)
    }
}

/// Calls `probe` until it is true (see `poll`).
func pollUntil(_ what: String, timeout: TimeInterval = pollTimeout, _ probe: () throws -> Bool) throws {
    _ = try poll(what, timeout: timeout) { try probe() ? true : nil }
}

extension Reply {
    var text: String { String(decoding: rawBody, as: UTF8.self) }
}

extension JSON {
    var string: String? { stringValue }
    var int: Int64? { int64Value }
}

/// A server on a fresh database in a temporary folder with `ipc://` endpoints, which a test can
/// stop and start again on the same database and endpoints (a restart), with the same clock.
final class Harness: @unchecked Sendable {
    let directory: URL
    let clock: Clock
    private(set) var config: ServerConfig
    private(set) var server: Server?
    private(set) var commandsEndpoint = ""
    private(set) var eventsEndpoint = ""
    let context: ZMQContext
    private var clients: [SLAMClient] = []

    init(clock: Clock, configure: (inout ServerConfig) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("slam-time-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.clock = clock
        var config = ServerConfig.forTests(in: directory)
        configure(&config)
        self.config = config
        context = try ZMQContext()
        try start()
    }

    func start() throws {
        precondition(server == nil, "already running")
        let s = try Server(config: config, clock: clock)
        (commandsEndpoint, eventsEndpoint) = try s.start()
        server = s
    }

    /// Graceful stop: every queued request answered, committed, closed.
    func stop() {
        for c in clients { c.close() }
        clients = []
        server?.stop()
        server?.wait()
        server = nil
    }

    func restart() throws {
        stop()
        try start()
    }

    /// A new DEALER client; closed by `stop`.
    func client() throws -> SLAMClient {
        let c = try SLAMClient(endpoint: commandsEndpoint, context: context)
        clients.append(c)
        return c
    }

    func scenario() throws -> Scenario { Scenario(try client()) }

    func shutdown() {
        stop()
        context.terminate()
        try? FileManager.default.removeItem(at: directory)
    }
}

/// Runs `body` against a fresh harness and always shuts it down.
func withHarness(clock: Clock, configure: (inout ServerConfig) -> Void = { _ in },
                 _ body: (Harness) throws -> Void) throws {
    let h = try Harness(clock: clock, configure: configure)
    defer { h.shutdown() }
    try body(h)
}

/// A manual clock starting at the current wall time (ids and timestamps look ordinary).
func manualClock() -> ManualClock { ManualClock(SystemClock().now()) }

// MARK: Events

struct Event {
    let topic: String
    let header: JSON
    let body: JSON
    var type: String { header["type"]?.string ?? "" }
    var causationId: String { header["causationId"]?.string ?? "" }
    var position: Int64 { header["position"]?.int ?? 0 }
    var occurredAt: Millis { RFC3339.parse(header["occurredAt"]?.string ?? "") ?? 0 }
}

/// Every event of `category` (or all) through `ReadEvents`, oldest first.
func readEvents(_ s: Scenario, category: String? = nil) throws -> [Event] {
    var out: [Event] = []
    var after: Int64 = 0
    while true {
        var body: JSONObject = ["afterSeq": .int(after), "limit": 1000]
        if let category { body["category"] = .string(category) }
        let r = try s.must("ReadEvents", body)
        let events = r["events"]?.arrayValue ?? []
        if events.isEmpty { return out }
        for e in events {
            out.append(Event(topic: e["topic"]?.string ?? "", header: e["header"] ?? .null, body: e["body"] ?? .null))
            after = e["header"]?["seq"]?.int ?? after
        }
    }
}

// MARK: Queue helpers

struct TokenView: Equatable, CustomStringConvertible {
    let status: String
    let ahead: Int64
    let activeUntil: String?
    var description: String { "\(status)/\(ahead)" }
}

func queueStatus(_ s: Scenario, _ tokenId: String) throws -> TokenView {
    let b = try s.must("GetQueueStatus", ["tokenId": .string(tokenId)])
    return TokenView(status: b["status"]?.string ?? "?", ahead: b["ahead"]?.int ?? -1, activeUntil: b["activeUntil"]?.string)
}

func queueStatuses(_ s: Scenario, _ tokens: [String]) throws -> [TokenView] {
    try tokens.map { try queueStatus(s, $0) }
}

/// Checks a settled queue through `GetQueueStatus` of every token: at most `maxActive` ACTIVE;
/// the WAITING ones, in join order, have `ahead` 0, 1, 2, …; returns the views.
@discardableResult
func checkSettled(_ s: Scenario, joinOrder tokens: [String], maxActive: Int,
                  sourceLocation: SourceLocation = #_sourceLocation) throws -> [TokenView] {
    let views = try queueStatuses(s, tokens)
    let active = views.filter { $0.status == "ACTIVE" }.count
    #expect(active <= maxActive, "\(active) active of at most \(maxActive): \(views)", sourceLocation: sourceLocation)
    let aheads = views.filter { $0.status == "WAITING" }.map(\.ahead)
    #expect(aheads == (0..<Int64(aheads.count)).map { $0 }, "waiting aheads in join order: \(views)",
            sourceLocation: sourceLocation)
    for v in views where v.status == "ACTIVE" {
        #expect(v.ahead == 0 && v.activeUntil != nil, "\(v)", sourceLocation: sourceLocation)
    }
    return views
}

/// Folds the recorded queue events of `scheduleId` in log order and checks, after every event,
/// that at most `maxActive` tokens are active and that activations follow join order among the
/// tokens still waiting (FIFO). Returns the join order.
@discardableResult
func checkQueueLog(_ s: Scenario, scheduleId: String, maxActive: Int,
                   sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
    var joinOrder: [String] = []
    var waiting: [String] = []
    var active = Set<String>()
    var maxSeen = 0
    for e in try readEvents(s, category: "queue") where e.body["scheduleId"]?.string == scheduleId {
        let token = e.body["tokenId"]?.string ?? ""
        switch e.type {
        case "QueueJoined":
            joinOrder.append(token)
            waiting.append(token)
        case "QueueTokenActivated":
            #expect(waiting.first == token, "activation of \(token) out of join order (next in line: \(waiting.first ?? "none"))",
                    sourceLocation: sourceLocation)
            waiting.removeAll { $0 == token }
            active.insert(token)
        case "QueueTokenExpired", "QueueLeft":
            waiting.removeAll { $0 == token }
            active.remove(token)
        default:
            Issue.record("unexpected queue event \(e.type)", sourceLocation: sourceLocation)
        }
        maxSeen = max(maxSeen, active.count)
        #expect(active.count <= maxActive, "\(active.count) active after \(e.type) at position \(e.position)",
                sourceLocation: sourceLocation)
    }
    #expect(maxSeen <= maxActive, sourceLocation: sourceLocation)
    return joinOrder
}

/// A schedule with a waiting queue.
func openQueuedSchedule(_ s: Scenario, now: Millis, seats: Int = 20, maxActive: Int64, activeTtl: Int64,
                        waitingTtl: Int64) throws -> String {
    try s.openSchedule(now: now, seats: seats, extra: [
        "queue": ["maxActive": .int(maxActive), "activeTtlSeconds": .int(activeTtl), "waitingTtlSeconds": .int(waitingTtl)],
    ])
}

func join(_ s: Scenario, _ userId: String, _ scheduleId: String) throws -> JSON {
    try s.must("JoinQueue", ["userId": .string(userId), "scheduleId": .string(scheduleId)])
}

func hold(_ s: Scenario, _ userId: String, _ scheduleId: String, _ seats: [Int64], token: String? = nil) throws -> Reply {
    var body: JSONObject = ["userId": .string(userId), "scheduleId": .string(scheduleId),
                            "seatNumbers": .array(seats.map { .int($0) })]
    if let token { body["queueToken"] = .string(token) }
    return try s.call("HoldSeats", body)
}

func reservation(_ s: Scenario, _ id: String) throws -> JSON {
    try s.must("GetReservation", ["reservationId": .string(id)])
}

func seatStatuses(_ s: Scenario, _ scheduleId: String) throws -> [Int64: String] {
    let map = try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])
    var out: [Int64: String] = [:]
    for seat in map["seats"]?.arrayValue ?? [] {
        out[seat["number"]?.int ?? 0] = seat["status"]?.string
    }
    return out
}
