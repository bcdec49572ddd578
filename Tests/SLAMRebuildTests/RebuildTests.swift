import Foundation
import GRDB
import SLAMDomain
@testable import SLAMProjections
import SLAMServer
import SLAMStore
import Testing

@Suite("slam projections rebuild")
struct RebuildTests {
    @Test("the fixture store exercises every read model and every status")
    func fixtureCoversTheReadModels() throws {
        let f = try Fixture.get()
        let dump = try dumpProjections(f.path)
        for table in Projector.tables { #expect(!(dump[table] ?? []).isEmpty, "table \(table) is empty") }
        let statuses = Set(try String.fetchAll(openQueue(f.path), "SELECT DISTINCT status FROM reservations"))
        #expect(statuses == ["HELD", "CONFIRMED", "EXPIRED", "RELEASED", "CANCELLED"])
        let types = Set(try String.fetchAll(openQueue(f.path), "SELECT DISTINCT type FROM events"))
        for type in ["UserRegistered", "PointsCharged", "PointsUsed", "PointsRefunded", "ConcertCreated", "ConcertScheduled",
                     "ScheduleSoldOut", "ScheduleReopened", "SeatsHeld", "ReservationConfirmed", "HoldExpired",
                     "HoldReleased", "ReservationCancelled", "QueueJoined", "QueueTokenActivated", "QueueTokenExpired",
                     "QueueLeft"] {
            #expect(types.contains(type), "no \(type) event in the fixture")
        }
        let tokenStates = Set(try String.fetchAll(openQueue(f.path),
                                                  "SELECT DISTINCT status || left_waiting FROM queue_tokens"))
        #expect(tokenStates.isSuperset(of: ["ACTIVE0", "EXPIRED0", "EXPIRED1"]))
        let queue = try Row.fetchOne(openQueue(f.path), "SELECT waits, front_removed FROM queues")
        #expect((queue?[0] as Int64?) == 6 && (queue?[1] as Int64?) ?? 0 >= 3)
    }

    @Test("a rebuild of healthy read models finds nothing to change and leaves them identical")
    func rebuildIsIdenticalToInline() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let before = try dumpProjections(copy)
        let report = try Rebuild.run(path: copy)
        #expect(try dumpProjections(copy) == before)
        #expect(report.tables.count == Projector.tables.count)
        for t in report.tables {
            #expect(t.mode == .diff && t.inserted == 0 && t.updated == 0 && t.deleted == 0, "\(t)")
        }
        #expect(report.events == (try scalar(copy, "SELECT COUNT(*) FROM events") ?? -1))
        #expect(try scalar(copy, "SELECT value FROM meta WHERE key = 'projectionsRebuiltPosition'") == String(report.headPosition))
    }

    @Test("a full rebuild (every table emptied and bulk-inserted) produces the inline rows, indexes included")
    func fullRebuildIsIdenticalToInline() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let before = try dumpProjections(copy)
        let indexes: [String] = try String.fetchAll(openQueue(copy),
                                                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
        let report = try Rebuild.run(path: copy, full: true)
        #expect(report.tables.allSatisfy { $0.mode == .replace })
        #expect(try dumpProjections(copy) == before)
        #expect(try String.fetchAll(openQueue(copy),
                                    "SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name") == indexes)
        #expect(try scalar(copy, "PRAGMA integrity_check") == "ok")
    }

    @Test("emptied read models are rebuilt from the log alone")
    func rebuildFromNothing() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let before = try dumpProjections(copy)
        for table in Projector.tables { try execute(copy, "DELETE FROM \(table)") }
        _ = try Rebuild.run(path: copy)
        #expect(try dumpProjections(copy) == before)
    }

    @Test("damaged rows are repaired by writing only them")
    func rebuildRepairsDamage() throws {
        let f = try Fixture.get()
        let copy = try f.copy()
        defer { remove(copy) }
        let before = try dumpProjections(copy)
        try execute(copy, "UPDATE users SET balance = balance + 7 WHERE user_id = ?", [f.users["a"]!])
        try execute(copy, "DELETE FROM reservations WHERE reservation_id = ?", [f.confirmed])
        try execute(copy, "INSERT INTO concerts (concert_id, name, artist) VALUES ('con_BOGUS', 'x', 'y')")
        try execute(copy, "UPDATE seats SET status = 'AVAILABLE', reservation_id = NULL WHERE schedule_id = ? AND number = 1",
                    [f.schedule])
        try execute(copy, "UPDATE schedules SET reservations = 0 WHERE schedule_id = ?; UPDATE user_count SET users = 9",
                    [f.schedule])
        let report = try Rebuild.run(path: copy)
        #expect(try dumpProjections(copy) == before)
        let byTable = Dictionary(uniqueKeysWithValues: report.tables.map { ($0.table, $0) })
        #expect(byTable["users"]?.updated == 1)
        #expect(byTable["reservations"]?.inserted == 1)
        #expect(byTable["concerts"]?.deleted == 1)
        #expect(byTable["seats"]?.updated == 1)
        #expect(byTable["schedules"]?.updated == 1)
        #expect(byTable["user_count"]?.updated == 1)
        #expect(byTable["point_history"].map { $0.inserted + $0.updated + $0.deleted } == 0)
    }

    @Test("--projection NAME rebuilds only that read model's tables", arguments: ReadModel.allCases)
    func rebuildOneModel(_ model: ReadModel) throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let before = try dumpProjections(copy)
        for table in model.tables { try execute(copy, "DELETE FROM \(table)") }
        // A table of another model damaged too: a one-model rebuild must not touch it.
        let other = model == .concerts ? "users" : "concerts"
        try execute(copy, "DELETE FROM \(other)")
        let report = try Rebuild.run(path: copy, models: [model])
        #expect(report.models == [model])
        #expect(Set(report.tables.map(\.table)) == Set(model.tables))
        let after = try dumpProjections(copy)
        for table in Projector.tables where table != other { #expect(after[table] == before[table], "\(table)") }
        #expect(after[other]?.isEmpty == true)
        #expect(ReadModel.named(model.rawValue) == model)
    }

    @Test("a corrupt log is refused and nothing is written")
    func corruptLogIsRefused() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let before = try dumpProjections(copy)
        try execute(copy, "UPDATE events SET body = '{\"userId\": 5}' WHERE position = 3")
        try execute(copy, "DELETE FROM users")
        #expect(throws: FoldError.self) { try Rebuild.run(path: copy) }
        var after = try dumpProjections(copy)
        after["users"] = before["users"]
        #expect(after == before)
        #expect(try scalar(copy, "SELECT COUNT(*) FROM users") == 0)
    }

    @Test("a log with positions missing is refused, whole or one model, and nothing is written",
          arguments: [nil, ReadModel.users] as [ReadModel?])
    func logWithHolesIsRefused(_ model: ReadModel?) throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        let head: Int64 = try #require(try scalar(copy, "SELECT MAX(position) FROM events"))
        let before = try dumpProjections(copy)
        // Two holes (an audit's: a charge deleted from the log; a rebuild then took the balance with it).
        try execute(copy, "DELETE FROM events WHERE position IN (5, 9)")
        do {
            _ = try Rebuild.run(path: copy, models: model.map { [$0] } ?? ReadModel.allCases)
            Issue.record("a rebuild of a log with holes went through")
        } catch let error as FoldError {
            #expect(error.position == 5)
            #expect(error.description.contains("2 in all below the head, position \(head)"), "\(error)")
        }
        #expect(try dumpProjections(copy) == before)
    }

    @Test("a dropped read-model table and index: the server refuses the store, verify names both, a rebuild creates them again")
    func droppedTableAndIndex() throws {
        let copy = try Fixture.get().copy()
        defer { remove(copy) }
        #expect(Set(Projector.schema.filter { $0.type == "table" }.map(\.name)) == Set(Projector.tables))
        let before = try dumpProjections(copy)
        try execute(copy, "DROP TABLE seats; DROP INDEX reservations_by_user")
        // The server: refused, not half served.
        let config = serverConfig(for: copy)
        do {
            _ = try Server(config: config)
            Issue.record("a server started on a store without its seats table")
        } catch let error as ServerConfigError {
            #expect(error.description.contains("lacks read-model table seats, index reservations_by_user"), "\(error)")
            #expect(error.description.contains("slam projections rebuild"))
        }
        // verify: the table, and the index of a table that is there.
        let report = try Verifier.run(path: copy)
        #expect(report.violations.contains { $0.check == "projection-missing" && $0.message.contains("table seats does not exist") })
        #expect(report.violations.contains { $0.check == "projection-missing" && $0.message.contains("index reservations_by_user on reservations") })
        // A rebuild of another model leaves them missing; a whole one creates them again.
        _ = try Rebuild.run(path: copy, models: [.users])
        #expect(try scalar(copy, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('seats', 'reservations_by_user')") == 0)
        _ = try Rebuild.run(path: copy)
        #expect(try scalar(copy, "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('seats', 'reservations_by_user')") == 2)
        #expect(try dumpProjections(copy) == before)
        #expect(try Verifier.run(path: copy).ok)
        // SQLite's names ignore case: an index made again by hand under other capitals is there.
        try execute(copy, "DROP INDEX reservations_by_user; CREATE INDEX Reservations_By_User ON reservations (user_id, position)")
        #expect(try Verifier.run(path: copy).ok)
        // (At a time past the fixture's events, which lie a year ahead.)
        let server = try Server(config: config, clock: ManualClock(Fixture.get().start + 400 * 86_400_000))
        withExtendedLifetime(server) {}
    }

    @Test("meta damaged: a lost publishedSeq comes back at 0; one above the log's head, or a lost storeId, is refused by the server")
    func damagedMeta() throws {
        let f = try Fixture.get()
        let clock = ManualClock(f.start + 400 * 86_400_000)  // past the fixture's events, a year ahead

        let lost = try f.copy()
        defer { remove(lost) }
        try execute(lost, "DELETE FROM meta WHERE key IN ('publishedSeq', 'commands')")
        withExtendedLifetime(try Server(config: serverConfig(for: lost), clock: clock)) {}
        #expect(try scalar(lost, "SELECT value FROM meta WHERE key = 'publishedSeq'") == "0")
        #expect(try scalar(lost, "SELECT value FROM meta WHERE key = 'commands'") == "0")

        let ahead = try f.copy()
        defer { remove(ahead) }
        let head: Int64 = try #require(try scalar(ahead, "SELECT MAX(position) FROM events"))
        try execute(ahead, "DELETE FROM events WHERE position = ?; UPDATE meta SET value = ? WHERE key = 'publishedSeq'",
                    [head, String(head)])
        func expectRefused(_ path: String, saying words: String) {
            do {
                _ = try Server(config: serverConfig(for: path), clock: clock)
                Issue.record("a server started on \(path); expected a refusal saying \(words)")
            } catch {
                #expect("\(error)".contains(words), "\(error)")
            }
        }
        expectRefused(ahead, saying: "published up to seq \(head), but its log ends at \(head - 1)")

        // Its storeId lost: not taken for a new store (that failed "UNIQUE constraint failed: meta.key").
        let anonymous = try f.copy()
        defer { remove(anonymous) }
        try execute(anonymous, "DELETE FROM meta WHERE key = 'storeId'")
        expectRefused(anonymous, saying: "holds events or meta rows but no storeId")
    }

    @Test("a missing database is an error, not a new empty store")
    func missingDatabase() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("slam-none-\(UUID().uuidString).sqlite").path
        #expect(throws: StoreError.self) { try Rebuild.run(path: path) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("the fast body decoder agrees with DomainEvent.decode on every event of the fixture")
    func fastDecoderAgrees() throws {
        let rows = try Row.fetchAll(openQueue(Fixture.get().path), "SELECT type, body, position FROM events ORDER BY position")
        var fast = 0
        for row in rows {
            let type: String = row[0], body: String = row[1], position: Int64 = row[2]
            let expected = try DomainEvent.decode(type: type, body: Array(body.utf8))
            var full = EventChunk(capacity: 1)
            full.append(expected, position: position, occurredAt: 7)
            if let decoded = fastDecode(type, body, position: position) {
                fast += 1
                #expect(describe(decoded) == describe(full), "position \(position)")
            }
        }
        // Everything but ConcertScheduled takes the fast path.
        #expect(fast == rows.count - rows.filter { ($0[0] as String) == "ConcertScheduled" }.count)
        // Bodies it does not handle (escapes, spaces, floats, duplicates) are left to the full decoder.
        #expect(fastDecode("UserRegistered", #"{"userId":"usr_1","name":"caf\u00e9"}"#) == nil)
        #expect(fastDecode("UserRegistered", #"{"userId": "usr_1","name":"x"}"#) == nil)
        #expect(fastDecode("PointsCharged", #"{"userId":"usr_1","amount":1.0,"balance":1}"#) == nil)
        #expect(fastDecode("PointsCharged", #"{"userId":"usr_1","amount":1,"amount":2,"balance":1}"#) == nil)
        #expect(fastDecode("SeatsHeld", #"{"reservationId":"r","userId":"u","scheduleId":"s","seatNumbers":[1,2.5],"price":1,"expiresAt":"2026-01-01T00:00:00.000Z"}"#) == nil)
        var charged = EventChunk(capacity: 1)
        charged.append(.pointsCharged(userId: "usr_1", amount: 1, balance: 1), position: 1, occurredAt: 7)
        #expect(fastDecode("PointsCharged", #"{"userId":"usr_1","amount":1,"balance":1,"extra":"x"}"#).map(describe)
                == describe(charged))
    }

    private func fastDecode(_ type: String, _ body: String, position: Int64 = 1) -> EventChunk? {
        var decoder = FastEventDecoder()
        var chunk = EventChunk(capacity: 1)
        let code = Array(type.utf8).withUnsafeBufferPointer { FastEventDecoder.typeCode($0) }
        let ok = Array(body.utf8).withUnsafeBufferPointer {
            decoder.decode(code: code, body: $0, position: position, occurredAt: 7, into: &chunk)
        }
        return ok ? chunk : nil
    }

    /// A chunk's one event, strings resolved and hashes checked.
    private func describe(_ chunk: EventChunk) -> String {
        guard let e = chunk.events.first else { return "none" }
        func s(_ r: IdRef) -> String {
            guard let text = chunk.string(r) else { return "nil" }
            let h = Array(text.utf8).withUnsafeBufferPointer { hashBytes($0) }
            return h == r.hash ? text : "\(text)#badhash"
        }
        let seats = chunk.seats[Int(e.seatsStart)..<Int(e.seatsStart + e.seatsCount)]
        return "\(e.kind) \(e.position) \(e.occurredAt) \(s(e.s0)) \(s(e.s1)) \(s(e.s2)) \(e.n0) \(e.n1) \(Array(seats))"
    }
}

extension String {
    static func fetchAll(_ queue: DatabaseQueue, _ sql: String) throws -> [String] {
        defer { try? queue.close() }
        return try queue.read { db in try String.fetchAll(db, sql: sql) }
    }
}

extension Row {
    static func fetchAll(_ queue: DatabaseQueue, _ sql: String) throws -> [Row] {
        defer { try? queue.close() }
        return try queue.read { db in try Row.fetchAll(db, sql: sql) }
    }
    static func fetchOne(_ queue: DatabaseQueue, _ sql: String) throws -> Row? {
        defer { try? queue.close() }
        return try queue.read { db in try Row.fetchOne(db, sql: sql) }
    }
}
