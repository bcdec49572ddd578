import Foundation
import GRDB
import GRDBSQLite
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

@Suite("Server over real sockets: idempotency")
struct IdempotencyServerTests {
    static func historyCount(_ s: Scenario, _ userId: String) throws -> Int {
        try s.must("GetPointHistory", ["userId": .string(userId)])["entries"]!.array.count
    }

    static func balance(_ s: Scenario, _ userId: String) throws -> Int64 {
        try s.must("GetUser", ["userId": .string(userId)])["balance"]!.int!
    }

    /// Same key, same command: the recorded body and position, replayed true, executed once;
    /// key order, white space and `1.0` for `1` do not make it another command.
    @Test func replayReturnsTheRecordedReply() throws {
        try withServer { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let userId = try s.registerUser("payer")
            let key = "charge-" + UUID().uuidString

            let first = try c.call("ChargePoints", ["userId": .string(userId), "amount": 100], key: key)
            #expect(first.ok && first.replayed == false)
            #expect(first.body == ["userId": .string(userId), "balance": 100])
            let position = try #require(first.position)

            let again = try c.call("ChargePoints", ["userId": .string(userId), "amount": 100], key: key)
            #expect(again.replayed == true)
            #expect(again.ok)
            #expect(again.rawBody == first.rawBody)
            #expect(again.position == position)

            // The same JSON value spelled differently.
            let spelled = #"  { "amount" : 100.0 ,"userId":   "\#(userId)"  }  "#
            let id = try c.send("ChargePoints", body: Array(spelled.utf8), key: key)
            let respelled = try #require(try collect(c, [id])[id])
            #expect(respelled.replayed == true, "\(respelled.headerText) \(respelled.bodyText)")
            #expect(respelled.rawBody == first.rawBody)
            #expect(respelled.position == position)

            // Executed once.
            #expect(try Self.balance(s, userId) == 100)
            #expect(try Self.historyCount(s, userId) == 1)
            // A replay of a command's record does not move the store.
            #expect(try stats(s).position == position)
        }
    }

    /// A business rejection is recorded and replayed, even once the command would now succeed.
    @Test func businessRejectionReplays() throws {
        let clock = ManualClock(SystemClock().now())
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let userId = try s.registerUser("poor", charge: 100)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 5, price: 1_000)
            let held = try s.must("HoldSeats", ["userId": .string(userId), "scheduleId": .string(scheduleId), "seatNumbers": [1]])
            let payBody: JSON = ["userId": .string(userId), "reservationId": held["reservationId"]!]
            let key = "pay-" + UUID().uuidString

            let refused = try c.call("PayReservation", payBody, key: key)
            #expect(refused.code == "INSUFFICIENT_BALANCE")
            #expect(refused.replayed == false)
            let position = try #require(refused.position)

            _ = try s.must("ChargePoints", ["userId": .string(userId), "amount": 5_000])
            let replay = try c.call("PayReservation", payBody, key: key)
            #expect(replay.code == "INSUFFICIENT_BALANCE")
            #expect(replay.replayed == true)
            #expect(replay.rawBody == refused.rawBody)
            #expect(replay.position == position)
            #expect(try s.must("GetReservation", ["reservationId": held["reservationId"]!])["status"] == "HELD")
            #expect(try Self.balance(s, userId) == 5_100)

            // With a fresh key the payment goes through.
            let paid = try c.call("PayReservation", payBody, key: "pay-" + UUID().uuidString)
            #expect(paid.ok && paid.body["balance"] == 4_100)
        }
    }

    /// Same key, another command: IDEMPOTENCY_KEY_REUSED, nothing executed. No key on a
    /// command: IDEMPOTENCY_KEY_REQUIRED.
    @Test func reusedAndMissingKeys() throws {
        try withServer { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let userId = try s.registerUser("reuser")
            let key = "k-" + UUID().uuidString
            let first = try c.call("ChargePoints", ["userId": .string(userId), "amount": 100], key: key)
            #expect(first.ok)
            let before = try stats(s)

            let otherAmount = try c.call("ChargePoints", ["userId": .string(userId), "amount": 200], key: key)
            #expect(otherAmount.code == "IDEMPOTENCY_KEY_REUSED")
            #expect(otherAmount.replayed == false)
            let extraField = try c.call("ChargePoints", ["userId": .string(userId), "amount": 100, "note": "x"], key: key)
            #expect(extraField.code == "IDEMPOTENCY_KEY_REUSED")
            let otherType = try c.call("RegisterUser", ["name": "someone"], key: key)
            #expect(otherType.code == "IDEMPOTENCY_KEY_REUSED")

            let noKey = try c.call("ChargePoints", ["userId": .string(userId), "amount": 100])
            #expect(noKey.code == "IDEMPOTENCY_KEY_REQUIRED")
            #expect(noKey.replayed == false)

            #expect(try stats(s) == before)
            #expect(try Self.balance(s, userId) == 100)
            #expect(try Self.historyCount(s, userId) == 1)
            // The original still replays.
            let replay = try c.call("ChargePoints", ["userId": .string(userId), "amount": 100], key: key)
            #expect(replay.replayed == true && replay.rawBody == first.rawBody)
        }
    }

    /// Checks a pair of replies to the same command sent twice at once.
    static func checkDuplicatePair(_ a: Reply, _ b: Reply) {
        #expect(a.ok && b.ok, "\(a.bodyText) / \(b.bodyText)")
        #expect(a.rawBody == b.rawBody)
        #expect(a.position == b.position)
        #expect([a.replayed, b.replayed].filter { $0 == true }.count == 1, "\(a.headerText) / \(b.headerText)")
        #expect([a.replayed, b.replayed].filter { $0 == false }.count == 1)
    }

    /// The same key sent twice back to back, on one connection and on two: executed once.
    @Test func concurrentDuplicatesExecuteOnce() throws {
        try withServer { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let other = try ts.client()
            defer { other.close() }
            let userId = try s.registerUser("dup")

            // One DEALER, back to back.
            let key1 = "dup1-" + UUID().uuidString
            let body1: JSON = ["userId": .string(userId), "amount": 300]
            let a = try c.send("ChargePoints", body1, key: key1)
            let b = try c.send("ChargePoints", body1, key: key1)
            let pair = try collect(c, [a, b])
            Self.checkDuplicatePair(pair[a]!, pair[b]!)
            #expect(pair[a]!.body["balance"] == 300)
            #expect(try Self.balance(s, userId) == 300)
            #expect(try Self.historyCount(s, userId) == 1)

            // Two sockets.
            let key2 = "dup2-" + UUID().uuidString
            let body2: JSON = ["userId": .string(userId), "amount": 50]
            let x = try c.send("ChargePoints", body2, key: key2)
            let y = try other.send("ChargePoints", body2, key: key2)
            let rx = try #require(try collect(c, [x])[x])
            let ry = try #require(try collect(other, [y])[y])
            Self.checkDuplicatePair(rx, ry)
            #expect(rx.body["balance"] == 350)
            #expect(try Self.balance(s, userId) == 350)
            let history = try s.must("GetPointHistory", ["userId": .string(userId)])["entries"]!.array
            #expect(history.map { $0["amount"]!.int! } == [50, 300])
        }
    }

    /// An idempotency record survives a restart of the server on the same database.
    @Test func recordSurvivesRestart() throws {
        let ts = try TestServer()
        var stopped = false
        defer { if !stopped { ts.shutdown() } }
        let key = "restart-" + UUID().uuidString
        let first: Reply
        do {
            let c = try ts.client()
            defer { c.close() }
            first = try c.call("RegisterUser", ["name": "Durable"], key: key)
            #expect(first.ok && first.replayed == false)
        }
        ts.shutdown(removeFiles: false)
        stopped = true
        defer { try? FileManager.default.removeItem(at: ts.directory) }

        try withRestartedServer(config: ts.server.config) { c in
            let replay = try c.call("RegisterUser", ["name": "Durable"], key: key, timeoutMs: replyTimeoutMs)
            #expect(replay.replayed == true)
            #expect(replay.rawBody == first.rawBody)
            #expect(replay.position == first.position)
            let st = try stats(Scenario(c))
            #expect(st.users == 1)
            #expect(st.commands == 1)
            let userId = try #require(first.body["userId"]?.string)
            #expect(try Scenario(c).must("GetUser", ["userId": .string(userId)])["name"] == "Durable")
        }
    }
}

/// DESIGN.md section 3: a command whose writes fail rolls back only its savepoint. A trigger
/// (installed through the server's own writer connection) aborts the users projection's insert
/// for one name; that command is answered INTERNAL and not recorded, the others pipelined around
/// it (many in its batch) commit, seq stays contiguous, and once the fault is gone a retry with
/// the same key executes.
@Suite("Server over real sockets: a failing command")
struct FailingCommandTests {
    @Test func aFailingCommandIsRolledBackAlone() throws {
        try withServer { ts in
            let c = try ts.client()
            defer { c.close() }
            try ts.server.store.pool.write { db in
                try db.execute(sql: """
                    CREATE TRIGGER inject_fault BEFORE INSERT ON users WHEN NEW.name = 'boom'
                    BEGIN SELECT RAISE(ABORT, 'injected fault'); END
                    """)
            }
            let headBefore = try c.call("GetStats").body["headSeq"]?.int64Value ?? -1
            // Pipelined in one burst, so that the writer finds many of them waiting with the
            // faulty one and takes them in its batch.
            var ids: [String: String] = [:]
            for n in 0..<60 {
                let name = n == 30 ? "boom" : "fan\(n)"
                ids[try c.send("RegisterUser", ["name": .string(name)], key: "fault-\(n)")] = name
            }
            var replies: [String: Reply] = [:]
            while replies.count < ids.count {
                let r = try #require(try c.receive(), "a reply for every request")
                replies[ids[r.requestId ?? ""] ?? "?"] = r
            }
            let boom = try #require(replies["boom"])
            #expect(boom.code == "INTERNAL" && boom.replayed == false && boom.position == nil, "\(boom.body)")
            #expect(replies.filter { $0.key != "boom" }.allSatisfy { $0.value.ok }, "every other command committed")

            let events = try c.call("ReadEvents", ["afterSeq": .int(headBefore), "limit": 1000]).body["events"]?.arrayValue ?? []
            #expect(events.count == 59)
            let seqs = events.compactMap { $0["header"]?["seq"]?.int64Value }
            #expect(seqs == Array((headBefore + 1)...(headBefore + 59)), "seq contiguous across the rolled-back command")
            #expect(!events.contains { $0["body"]?["name"]?.stringValue == "boom" })

            try ts.server.store.pool.write { db in try db.execute(sql: "DROP TRIGGER inject_fault") }
            let retry = try c.call("RegisterUser", ["name": "boom"], key: "fault-30")
            #expect(retry.ok && retry.replayed == false, "not recorded: the retry executes")
        }
    }

    /// SQLite rolls a whole transaction back on some errors, even in a read (an I/O error, a full
    /// disk). Simulated here: the clock, asked for the time by the writer inside the batch's
    /// transaction, rolls it back on the writer's connection, behind GRDB's back. The command then
    /// goes on; it must not start a transaction of its own and commit alone (it did: answered
    /// INTERNAL, yet its user and its idempotency record committed, so its retry replayed ok).
    /// Now the batch fails: nothing committed, and the retry executes.
    @Test func aTransactionSQLiteRolledBackCommitsNothingAfter() throws {
        let clock = RollbackTrapClock()
        try withServer(clock: clock) { ts in
            let c = try ts.client()
            defer { c.close() }
            let before = try #require(try c.call("GetStats").body["users"]?.int64Value)
            clock.handle.set(ts.server.store.pool.writeWithoutTransaction { db in db.sqliteConnection })
            let failed = try c.call("RegisterUser", ["name": "rolled back"], key: "trap-1")
            #expect(failed.code == "INTERNAL", "\(failed.body)")
            #expect(clock.sprung.get(), "the trap was not sprung")
            #expect(try c.call("GetStats").body["users"]?.int64Value == before, "nothing committed")
            let retry = try c.call("RegisterUser", ["name": "rolled back"], key: "trap-1")
            #expect(retry.ok && retry.replayed == false, "\(retry.body)")
        }
    }

    /// A batch that fails as a whole, whose heads then cannot be re-read either: with `meta`
    /// renamed away, the batch's own write of the command count fails (rolling back the user it
    /// appended, which the writer's heads had already counted) and so does the re-read, at the
    /// count (it reads the positions first, and they come back). The next batch re-reads the
    /// heads first: the count the server reports is that of the commands committed, and the
    /// next command appends right after the last committed event, with no gap in seq.
    @Test func theNextBatchReReadsHeadsAFailedBatchCouldNot() throws {
        try withServer { ts in
            let c = try ts.client()
            defer { c.close() }
            let first = try c.call("RegisterUser", ["name": "first"], key: "stale-0")
            let head = try #require(first.position, "\(first.body)")
            let commands = try #require(try c.call("GetStats").body["commands"]?.int64Value)
            try ts.server.store.pool.write { db in try db.execute(sql: "ALTER TABLE meta RENAME TO meta_away") }
            let failed = try c.call("RegisterUser", ["name": "lost"], key: "stale-1")
            #expect(failed.code == "INTERNAL" && failed.replayed == false, "\(failed.body)")
            try ts.server.store.pool.write { db in try db.execute(sql: "ALTER TABLE meta_away RENAME TO meta") }

            let next = try c.call("RegisterUser", ["name": "second"], key: "stale-2")
            #expect(next.ok && next.position == head + 1, "\(next.body) at \(next.position ?? -1), head was \(head)")
            let retry = try c.call("RegisterUser", ["name": "lost"], key: "stale-1")
            #expect(retry.ok && retry.replayed == false && retry.position == head + 2, "\(retry.body)")
            let events = try c.call("ReadEvents", ["afterSeq": .int(head - 1), "limit": 10]).body["events"]?.arrayValue ?? []
            #expect(events.compactMap { $0["header"]?["seq"]?.int64Value } == [head, head + 1, head + 2])
            #expect(events.compactMap { $0["body"]?["name"]?.stringValue } == ["first", "second", "lost"])
            let stats = try c.call("GetStats").body
            #expect(stats["headSeq"]?.int64Value == head + 2)
            #expect(stats["commands"]?.int64Value == commands + 2, "the failed batch's command is not counted")
        }
    }
}

/// A clock that, once armed with the writer's connection, rolls back the transaction that
/// connection is in the first time it is asked for the time inside one (the writer, deciding a
/// command; nothing else uses that connection), as SQLite does on an I/O error.
final class RollbackTrapClock: Clock, @unchecked Sendable {
    let handle = Shared<OpaquePointer?>(nil)
    let sprung = Shared(false)
    func now() -> Millis {
        if let h = handle.get(), sqlite3_get_autocommit(h) == 0 {
            handle.set(nil)
            sprung.set(sqlite3_exec(h, "ROLLBACK", nil, nil, nil) == SQLITE_OK)
        }
        return SystemClock().now()
    }
}
