import Foundation
import GRDB
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMProjections
import SLAMServer
import SLAMStore
import SLAMTesting

// A realistic store, made once by driving a real server (ManualClock: holds lapse and queue
// tokens expire when the test moves time, never by sleeping), then copied for each test.

/// The ids a test needs to corrupt the store on purpose.
struct Fixture: Sendable {
    let directory: URL
    let path: String
    let start: Millis
    /// Users: a, b, c, d, e.
    let users: [String: String]
    /// The schedule with sections VIP (1-3, 5000), Floor (4-8, 1000), Free (9-10, 0).
    let schedule: String
    /// User a's CONFIRMED reservation of seats 1 and 2 of `schedule`, price 10,000.
    let confirmed: String
    let confirmedPrice: Int64

    /// Builds the store (once per process).
    static let shared: Result<Fixture, Error> = Result { try build() }

    static func get() throws -> Fixture { try shared.get() }

    private static func build() throws -> Fixture {
        // A year ahead of the wall clock: the writer sleeps until a command comes, so time moves
        // only when the test says.
        let start = SystemClock().now() + 365 * 86_400_000
        let clock = ManualClock(start)
        let server = try TestServer(clock: clock) { $0.holdTtl = 60_000 }
        var shutDown = false
        defer { if !shutDown { server.shutdown() } }
        let client = try server.client()
        let s = Scenario(client)
        func id(_ json: JSON, _ key: String) throws -> String {
            guard let v = json[key]?.stringValue else { throw ClientError("no \(key) in \(json)") }
            return v
        }
        func hold(_ user: String, _ schedule: String, _ seats: [Int64], token: String? = nil) throws -> String {
            var body: JSONObject = ["userId": .string(user), "scheduleId": .string(schedule),
                                    "seatNumbers": .array(seats.map { .int($0) })]
            if let token { body["queueToken"] = .string(token) }
            return try id(try s.must("HoldSeats", body), "reservationId")
        }
        func pay(_ user: String, _ r: String) throws {
            _ = try s.must("PayReservation", ["userId": .string(user), "reservationId": .string(r)])
        }
        func cancel(_ user: String, _ r: String) throws {
            _ = try s.must("CancelReservation", ["userId": .string(user), "reservationId": .string(r)])
        }
        func join(_ user: String, _ schedule: String) throws -> (token: String, status: String) {
            let r = try s.must("JoinQueue", ["userId": .string(user), "scheduleId": .string(schedule)])
            return (try id(r, "tokenId"), try id(r, "status"))
        }
        func leave(_ user: String, _ token: String) throws {
            _ = try s.must("LeaveQueue", ["userId": .string(user), "tokenId": .string(token)])
        }

        var users: [String: String] = [:]
        for (name, charge) in [("a", Int64(100_000)), ("b", 50_000), ("c", 30_000), ("d", 20_000), ("e", 10_000)] {
            users[name] = try s.registerUser(name, charge: charge)
        }
        let a = users["a"]!, b = users["b"]!, c = users["c"]!, d = users["d"]!, e = users["e"]!
        _ = try s.must("ChargePoints", ["userId": .string(a), "amount": 5_000])

        // A schedule with three sections, one free.
        let schedule = try s.openSchedule(now: start, sections: [
            ["name": "VIP", "seatCount": 3, "price": 5_000],
            ["name": "Floor", "seatCount": 5, "price": 1_000],
            ["name": "Free", "seatCount": 2, "price": 0],
        ])
        let confirmed = try hold(a, schedule, [2, 1])          // held, then paid: PointsUsed 10,000
        try pay(a, confirmed)
        let released = try hold(b, schedule, [4, 5])           // released while held
        try cancel(b, released)
        let refunded = try hold(c, schedule, [6])              // paid then cancelled: PointsRefunded
        try pay(c, refunded)
        try cancel(c, refunded)
        let free = try hold(d, schedule, [9, 10])              // free seats: no PointsUsed, no refund
        try pay(d, free)
        try cancel(d, free)
        _ = try hold(e, schedule, [3])                         // lapses
        clock.advance(by: 61_000)
        let after = try hold(b, schedule, [3, 7])              // the lapsed hold's HoldExpired comes first
        try pay(b, after)
        _ = try hold(c, schedule, [8])                         // lapses later, swept

        // Sold out, then reopened.
        let small = try s.openSchedule(now: clock.now(), seats: 2, price: 100)
        let all = try hold(e, small, [1, 2])
        try cancel(e, all)
        let again = try hold(d, small, [1, 2])
        try pay(d, again)

        // A waiting queue: one active at a time.
        let queued = try s.openSchedule(now: clock.now(), seats: 5, price: 500,
                                        extra: ["queue": ["maxActive": 1, "activeTtlSeconds": 30, "waitingTtlSeconds": 600]])
        let ta = try join(a, queued)                            // ACTIVE at once
        let tb = try join(b, queued)                            // WAITING
        let tc = try join(c, queued)                            // WAITING, then leaves while waiting
        guard ta.status == "ACTIVE", tb.status == "WAITING", tc.status == "WAITING" else {
            throw ClientError("unexpected queue statuses \(ta.status) \(tb.status) \(tc.status)")
        }
        try leave(c, tc.token)
        let qr = try hold(a, queued, [1], token: ta.token)
        try pay(a, qr)
        try leave(a, ta.token)                                  // leaves while active: b admitted
        _ = try join(d, queued)                                 // waits behind b
        clock.advance(by: 31_000)                               // b's active token expires, d admitted
        _ = try join(e, queued)                                 // (after the sweep) waits behind d
        clock.advance(by: 601_000)                              // d (active) and e (waiting) expire
        _ = try s.must("ChargePoints", ["userId": .string(e), "amount": 1_000])
        _ = try join(b, queued)                                 // a second token for b
        _ = try hold(c, schedule, [8])                          // stays HELD

        client.close()
        server.shutdown(removeFiles: false)
        shutDown = true
        let path = server.directory.appendingPathComponent("slam.sqlite").path
        // The fixture lives as long as the test process; its folder goes with it.
        fixtureDirectory.withLock { $0 = server.directory.path }
        atexit {
            if let dir = fixtureDirectory.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: dir) }
        }
        return Fixture(directory: server.directory, path: path, start: start, users: users, schedule: schedule,
                       confirmed: confirmed, confirmedPrice: 10_000)
    }

    /// A copy of the store in a fresh folder (the caller removes it with `remove(copy)`).
    func copy() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-rebuild-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let target = dir.appendingPathComponent("slam.sqlite").path
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: path + suffix) {
            try FileManager.default.copyItem(atPath: path + suffix, toPath: target + suffix)
        }
        return target
    }
}

private let fixtureDirectory = Locked<String?>(nil)

final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

func remove(_ copy: String) {
    try? FileManager.default.removeItem(atPath: (copy as NSString).deletingLastPathComponent)
}

/// A server's settings for the store `copy` (of `Fixture.copy()`): its endpoints in the copy's
/// own folder, which `remove(copy)` removes.
func serverConfig(for copy: String) -> ServerConfig {
    ServerConfig.forTests(in: URL(fileURLWithPath: copy).deletingLastPathComponent())
}

/// Every read-model table, every row in key order, every column.
typealias Dump = [String: [[DatabaseValue]]]

func dumpProjections(_ path: String) throws -> Dump {
    let queue = try openQueue(path)
    defer { try? queue.close() }
    return try queue.read { db in
        var out: Dump = [:]
        for table in Projector.tables {
            let keys = try Row.fetchAll(db, sql: "SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
                                        arguments: [table]).map { $0[0] as String }
            out[table] = try Row.fetchAll(db, sql: "SELECT * FROM \(table) ORDER BY \(keys.joined(separator: ", "))")
                .map { row in row.databaseValues.map { $0 } }
        }
        return out
    }
}

/// Runs SQL on a store file (for corrupting it on purpose).
func execute(_ path: String, _ sql: String, _ arguments: StatementArguments = []) throws {
    let queue = try openQueue(path)
    defer { try? queue.close() }
    try queue.write { db in try db.execute(sql: sql, arguments: arguments) }
}

func scalar<T: DatabaseValueConvertible>(_ path: String, _ sql: String, _ arguments: StatementArguments = []) throws -> T? {
    let queue = try openQueue(path)
    defer { try? queue.close() }
    return try queue.read { db in try T.fetchOne(db, sql: sql, arguments: arguments) }
}

/// Appends events through the real store writer with the inline projections, as a server's
/// writer would (a buggy one, when the events break an invariant).
/// (A `system:` causation by default: these stand for a buggy writer's events, not a client's
/// command, so verify's checks of a key's executions leave them alone; `causation` names a key.)
func appendInline(_ path: String, _ events: [DomainEvent], at occurredAt: Millis,
                  causation: String = "system:test-corrupt") throws {
    let store = try EventStore.open(path: path, sync: .full, migrations: Projector.migrations, readers: 2)
    let writer = try store.makeWriter()
    defer {
        writer.close()
        try? store.pool.close()
    }
    try store.pool.write { db in
        for event in events {
            let version = try writer.version(db, of: event.streamId)
            let positions = try writer.append(db, streamId: event.streamId, expected: .exact(version),
                                              events: [NewEvent(event, occurredAt: occurredAt, causationId: causation)])
            try Projector.apply(event, position: positions[0], occurredAt: occurredAt, db: db, statements: writer.statements)
        }
    }
}

/// The `slam` executable (see `TestBinaries.slam()`).
func slamBinary() throws -> String {
    guard let path = TestBinaries.slam() else {
        throw ClientError("no slam binary found above \(CommandLine.arguments[0]); build it or set SLAM_BIN")
    }
    return path
}

struct Run {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs `slam` with arguments and waits for it (its output is read to the end first, so a
/// full pipe never blocks it). One still running after `safetyNetSeconds` is sent SIGTERM, so
/// that a command that would wait for ever (a check missing, a server looked for) fails its test
/// instead of hanging it: a safety net for a loaded machine, never a synchronization.
func runSlam(_ arguments: [String], safetyNetSeconds: Double = 120) throws -> Run {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try slamBinary())
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    DispatchQueue.global().asyncAfter(deadline: .now() + safetyNetSeconds) {
        if process.isRunning { process.terminate() }
    }
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
        errBox.data = err.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    let errData = errBox.data
    return Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
               stderr: String(decoding: errData, as: UTF8.self))
}

/// A connection to a test's database file that waits for locks rather than failing at once: the
/// shared fixture is read by tests running in parallel, and a connection closing on it may hold a
/// lock for a moment (the last one checkpoints the WAL).
func openQueue(_ path: String) throws -> DatabaseQueue {
    var config = Configuration()
    config.busyMode = .timeout(10)
    return try DatabaseQueue(path: path, configuration: config)
}
