import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMSchemas
import SLAMStore
import Testing

/// Migration 0004 folds the outbox into the events table. A store written before it (events and
/// outbox rows side by side, headers stored) must come out with the same messages, byte for byte.
@Suite("Migration 0004: the outbox in the events table")
struct MigrationTests {
    /// The events of an old store: (stream, version, type, category, body).
    static let old: [(String, Int64, String, String, String)] = [
        ("user-u1", 1, "UserRegistered", "user", #"{"userId":"u1","name":"Ann"}"#),
        ("wallet-u1", 1, "PointsCharged", "wallet", #"{"userId":"u1","amount":500,"balance":500}"#),
        ("user-u2", 1, "UserRegistered", "user", #"{"userId":"u2","name":"Bé \"quoted\""}"#),
        ("wallet-u1", 2, "PointsCharged", "wallet", #"{"userId":"u1","amount":5,"balance":505}"#),
    ]

    /// Writes a store as the writer did before migration 0004, and returns its outbox headers.
    static func writeOldStore(_ path: String, skipOutboxAt: Int64? = nil, otherBodyAt: Int64? = nil) throws -> [String] {
        let queue = try DatabaseQueue(path: path)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("0001_event_store") { db in try db.execute(sql: SLAMSchemas.sql("0001_event_store.sql")) }
        try migrator.migrate(queue)
        var headers: [String] = []
        try queue.write { db in
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('storeId', 'sto_OLD'), ('commands', '4'), ('publishedSeq', '0')")
            var categorySeqs: [String: Int64] = [:]
            for (i, e) in old.enumerated() {
                let position = Int64(i + 1)
                let occurredAt = t0 + position
                try db.execute(sql: """
                    INSERT INTO events (position, stream_id, stream_version, type, body, occurred_at, causation_id)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [position, e.0, e.1, e.2, e.4, occurredAt, "key-\(position)"])
                let categorySeq = (categorySeqs[e.3] ?? 0) + 1
                categorySeqs[e.3] = categorySeq
                // The header exactly as `StoreWriter` stored it before the migration.
                var w = JSONWriter()
                w.beginObject()
                w.field("seq", position)
                w.field("categorySeq", categorySeq)
                w.field("storeId", "sto_OLD")
                w.field("type", e.2)
                w.field("streamId", e.0)
                w.field("streamVersion", e.1)
                w.field("position", position)
                w.field("occurredAt", RFC3339.format(occurredAt))
                w.field("causationId", "key-\(position)")
                w.endObject()
                headers.append(w.string)
                if position == skipOutboxAt { continue }
                try db.execute(sql: """
                    INSERT INTO outbox (seq, category, category_seq, position, topic, header, body) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [position, e.3, categorySeq, position, e.3 + "." + e.2, w.string,
                                    position == otherBodyAt ? "{}" : e.4])
            }
        }
        try queue.close()
        return headers
    }

    @Test("an old store's outbox messages are the same after it, header for header")
    func sameMessages() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("old.sqlite")
        let headers = try Self.writeOldStore(path)
        let store = try EventStore.open(path: path)
        let messages = try allOutbox(store)
        #expect(messages.map(\.header) == headers)
        #expect(messages.map(\.seq) == [1, 2, 3, 4])
        #expect(messages.map(\.categorySeq) == [1, 1, 2, 2])
        #expect(messages.map(\.topic) == Self.old.map { $0.3 + "." + $0.2 })
        #expect(messages.map(\.body) == Self.old.map(\.4))
        #expect(try store.pool.read { db in try EventStore.categoryHeads(db) } == ["user": 2, "wallet": 2])
        #expect(try storeProblems(store) == [])
        // The writer carries on from there.
        let writer = try store.makeWriter()
        try append(store, writer, "wallet-u1", .exact(2), [event("PointsCharged", category: "wallet", "{}")])
        let last = try #require(try allOutbox(store).last)
        #expect(last.seq == 5 && last.categorySeq == 3 && last.topic == "wallet.PointsCharged")
        #expect(try storeProblems(store) == [])
    }

    enum Disagreement: CaseIterable, Sendable {
        case missingRow, otherBody
    }

    @Test("an old store whose outbox disagrees with its events is refused, and left as it was",
          arguments: Disagreement.allCases)
    func disagreementRefused(_ disagreement: Disagreement) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("old.sqlite")
        _ = try Self.writeOldStore(path, skipOutboxAt: disagreement == .missingRow ? 3 : nil,
                                   otherBodyAt: disagreement == .otherBody ? 2 : nil)
        #expect(throws: StoreError.self) { _ = try EventStore.open(path: path) }
        let queue = try DatabaseQueue(path: path)
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events") } == 4)
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") }
                == (disagreement == .missingRow ? 3 : 4))
    }
}

/// Migration 0005 puts idempotency records in the order recorded. Every record of a store written
/// before it must replay the same after it, found by its key, and the keys stay unique.
@Suite("Migration 0005: idempotency records in the order recorded")
struct IdempotencyMigrationTests {
    @Test("every record survives the migration, found by key, oldest first in the new order")
    func recordsSurvive() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("old.sqlite")
        // The store as it was before 0005: records keyed by key, created out of key order.
        let old: [(key: String, createdAt: Millis, ok: Bool, reply: String)] = [
            ("zeta", 300, true, #"{"reservationId":"res_3"}"#),
            ("alpha", 100, false, #"{"code":"SEAT_UNAVAILABLE","message":"seat 1 is \"taken\""}"#),
            ("mid", 200, true, #"{"userId":"usr_é"}"#),
        ]
        do {
            let queue = try DatabaseQueue(path: path)
            var migrator = DatabaseMigrator()
            migrator.registerMigration("0001_event_store") { db in try db.execute(sql: SLAMSchemas.sql("0001_event_store.sql")) }
            migrator.registerMigration("0004_outbox_in_events") { db in try db.execute(sql: SLAMSchemas.sql("0004_outbox_in_events.sql")) }
            try migrator.migrate(queue)
            try queue.write { db in
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('storeId', 'sto_OLD'), ('commands', '3'), ('publishedSeq', '0')")
                for r in old {
                    try db.execute(sql: """
                        INSERT INTO idempotency (key, fingerprint, ok, reply, position, created_at) VALUES (?, ?, ?, ?, ?, ?)
                        """, arguments: [r.key, "Cmd:" + r.key, r.ok, r.reply, r.createdAt / 100, r.createdAt])
                }
            }
            try queue.close()
        }
        let store = try EventStore.open(path: path)
        let writer = try store.makeWriter()
        try store.pool.write { db in
            for r in old {
                let found = try writer.idempotencyRecord(db, key: r.key)
                #expect(found == IdempotencyRecord(key: r.key, fingerprint: "Cmd:" + r.key, ok: r.ok, reply: r.reply,
                                                   position: r.createdAt / 100, createdAt: r.createdAt))
            }
            #expect(try Millis.fetchAll(db, sql: "SELECT created_at FROM idempotency ORDER BY seq") == [100, 200, 300])
            #expect(try Bool.fetchOne(db, sql: "SELECT COUNT(*) = 0 FROM sqlite_master WHERE name = 'idempotency_by_age'") == true)
        }
        #expect(throws: DatabaseError.self) {
            try store.pool.write { db in
                try writer.record(db, IdempotencyRecord(key: "mid", fingerprint: "x", ok: true, reply: "{}", position: 9, createdAt: 400))
            }
        }
        #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 250) } == 2)
    }
}
