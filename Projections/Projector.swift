import GRDB
import SLAMDomain
import SLAMJSON
import SLAMStore
import Foundation

/// Folds events into the read models. Pure with respect to the log: the same events in the same
/// order give the same rows, whether applied inline by the writer or by a rebuild.
public enum Projector {
    public static let migrations = [
        Migration(id: "0002_projections", sql: ProjectionResources.sql("0002_projections.sql")),
        Migration(id: "0003_reservations_live_dropped", sql: ProjectionResources.sql("0003_reservations_live_dropped.sql")),
        Migration(id: "0006_counts_kept", sql: ProjectionResources.sql("0006_counts_kept.sql"), check: tablesFor0006),
    ]

    /// Migration 0006 reads `users`, `schedules` and `reservations`. One dropped by hand from a
    /// store of an older format (which `slam projections rebuild` is to make again) is first
    /// created as migration 0002 made it, empty, so that the migration runs; the rebuild then
    /// creates its indexes and fills it, and `slam serve` still refuses the store until then (its
    /// indexes are missing).
    static let tablesFor0006: @Sendable (Database) throws -> Void = { db in
        let sql = ProjectionResources.sql("0002_projections.sql")
        for table in ["users", "schedules", "reservations"] where try !db.tableExists(table) {
            guard let start = sql.range(of: "CREATE TABLE \(table) ("),
                  let end = sql.range(of: ";", range: start.upperBound..<sql.endIndex) else {
                throw DatabaseError(message: "migration 0002 has no CREATE TABLE \(table)")
            }
            try db.execute(sql: String(sql[start.lowerBound..<end.upperBound]))
        }
    }

    /// The read-model tables, in an order safe for deleting and rebuilding.
    public static let tables = ["users", "user_count", "point_history", "concerts", "schedules", "seats", "reservations",
                                "queue_tokens", "queues"]

    /// Applies one event to the read models. `statements` is the connection's statement cache
    /// (the writer's `StoreWriter.statements`).
    public static func apply(_ event: DomainEvent, position: Int64, occurredAt: Millis, db: Database,
                             statements: StatementCache) throws {
        let db = Target(db: db, statements: statements)
        switch event {
        case .userRegistered(let userId, let name):
            try exec(db, "INSERT INTO users (user_id, name, balance, history_count) VALUES (?, ?, 0, 0)", userId, name)
            try exec(db, "INSERT INTO user_count (id, users) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET users = users + 1")
        case .pointsCharged(let userId, let amount, let balance):
            try history(db, userId, "CHARGE", amount, balance, nil, occurredAt)
        case .pointsUsed(let userId, let amount, let balance, let reservationId):
            try history(db, userId, "USE", amount, balance, reservationId, occurredAt)
        case .pointsRefunded(let userId, let amount, let balance, let reservationId):
            try history(db, userId, "REFUND", amount, balance, reservationId, occurredAt)
        case .concertCreated(let concertId, let name, let artist):
            try exec(db, "INSERT INTO concerts (concert_id, name, artist) VALUES (?, ?, ?)", concertId, name, artist)
        case .concertScheduled(let d):
            try schedule(d, position: position, db: db)
        case .scheduleSoldOut(let scheduleId):
            try exec(db, "UPDATE schedules SET sold_out = 1 WHERE schedule_id = ?", scheduleId)
        case .scheduleReopened(let scheduleId):
            try exec(db, "UPDATE schedules SET sold_out = 0 WHERE schedule_id = ?", scheduleId)
        case .seatsHeld(let r, let expiresAt):
            try exec(db, """
                INSERT INTO reservations (reservation_id, user_id, schedule_id, seat_numbers, price, status, expires_at, created_at, position)
                VALUES (?, ?, ?, ?, ?, 'HELD', ?, ?, ?)
                """, r.reservationId, r.userId, r.scheduleId, seatList(r.seatNumbers), r.price, expiresAt, occurredAt, position)
            try seats(db, r, status: .held, reservationId: r.reservationId)
            try exec(db, """
                UPDATE schedules SET available = available - ?, held = held + ?, reservations = reservations + 1
                WHERE schedule_id = ?
                """, r.seatNumbers.count, r.seatNumbers.count, r.scheduleId)
        case .reservationConfirmed(let r):
            try setStatus(db, r, .confirmed)
            try seats(db, r, status: .sold, reservationId: r.reservationId)
            try exec(db, "UPDATE schedules SET held = held - ?, sold = sold + ? WHERE schedule_id = ?",
                     r.seatNumbers.count, r.seatNumbers.count, r.scheduleId)
        case .holdExpired(let r):
            try release(db, r, .expired, from: .held)
        case .holdReleased(let r):
            try release(db, r, .released, from: .held)
        case .reservationCancelled(let r, _):
            try release(db, r, .cancelled, from: .sold)
        case .queueJoined(let t):
            try exec(db, "INSERT OR IGNORE INTO queues (schedule_id, waits, front_removed, active, waiting) VALUES (?, 0, 0, 0, 0)",
                     t.scheduleId)
            try exec(db, "UPDATE queues SET waits = waits + 1, waiting = waiting + 1 WHERE schedule_id = ?", t.scheduleId)
            try exec(db, """
                INSERT INTO queue_tokens (token_id, schedule_id, user_id, status, wait_seq, left_waiting, joined_at)
                SELECT ?, ?, ?, 'WAITING', waits, 0, ? FROM queues WHERE schedule_id = ?
                """, t.tokenId, t.scheduleId, t.userId, occurredAt, t.scheduleId)
        case .queueTokenActivated(let t, let activeUntil):
            try exec(db, "UPDATE queue_tokens SET status = 'ACTIVE', active_until = ? WHERE token_id = ?", activeUntil, t.tokenId)
            try exec(db, """
                UPDATE queues SET front_removed = front_removed + 1, waiting = waiting - 1, active = active + 1
                WHERE schedule_id = ?
                """, t.scheduleId)
        case .queueTokenExpired(let t), .queueLeft(let t):
            let left: Bool
            if case .queueLeft = event { left = true } else { left = false }
            let lookup = try db.statement("SELECT status FROM queue_tokens WHERE token_id = ?")
            var status: String?
            if try lookup.query(t.tokenId) {
                status = lookup.text(0)
                lookup.reset()
            }
            if status == "ACTIVE" {
                try exec(db, "UPDATE queues SET active = active - 1 WHERE schedule_id = ?", t.scheduleId)
            } else if status == "WAITING" {
                try exec(db, left ? "UPDATE queues SET waiting = waiting - 1 WHERE schedule_id = ?"
                             : "UPDATE queues SET waiting = waiting - 1, front_removed = front_removed + 1 WHERE schedule_id = ?",
                         t.scheduleId)
                if left { try exec(db, "UPDATE queue_tokens SET left_waiting = 1 WHERE token_id = ?", t.tokenId) }
            }
            try exec(db, "UPDATE queue_tokens SET status = 'EXPIRED' WHERE token_id = ?", t.tokenId)
        }
    }

    // MARK: Helpers

    /// The connection and its statement cache.
    struct Target {
        let db: Database
        let statements: StatementCache
        @inline(__always) func statement(_ sql: StaticString) throws -> RawStatement { try statements.statement(db, sql) }
    }

    @inline(__always)
    static func exec<each V: SQLBindable>(_ db: Target, _ sql: StaticString, _ values: repeat each V) throws {
        try db.statement(sql).execute(repeat each values)
    }

    private static func history(_ db: Target, _ userId: String, _ kind: String, _ amount: Int64, _ balance: Int64,
                                _ reservationId: String?, _ at: Millis) throws {
        try exec(db, "UPDATE users SET balance = ?, history_count = history_count + 1 WHERE user_id = ?", balance, userId)
        try exec(db, """
            INSERT INTO point_history (user_id, n, kind, amount, balance, reservation_id, at)
            SELECT ?, history_count, ?, ?, ?, ?, ? FROM users WHERE user_id = ?
            """, userId, kind, amount, balance, reservationId, at, userId)
    }

    private static func schedule(_ d: ScheduleDefinition, position: Int64, db: Target) throws {
        var w = JSONWriter()
        w.beginArray()
        for s in d.sections {
            w.beginObject(); w.field("name", s.name); w.field("seatCount", s.seatCount); w.field("price", s.price); w.endObject()
        }
        w.endArray()
        try exec(db, """
            INSERT INTO schedules (schedule_id, concert_id, starts_at, opens_at, closes_at, seat_count, available, held, sold,
              sold_out, max_seats_per_user, sections, queue_max_active, queue_active_ttl, queue_waiting_ttl, position,
              reservations)
            VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, ?, ?, ?, 0)
            """, d.scheduleId, d.concertId, d.startsAt, d.reservationOpensAt, d.reservationClosesAt, d.seatCount,
                  d.seatCount, d.maxSeatsPerUser, w.string, d.queue?.maxActive, d.queue?.activeTtlSeconds,
                  d.queue?.waitingTtlSeconds, position)
        let insert = try db.statement("""
            INSERT INTO seats (schedule_id, number, section, price, status) VALUES (?, ?, ?, ?, 'AVAILABLE')
            """)
        var number = 1
        for s in d.sections {
            for _ in 0..<s.seatCount {
                try insert.execute(d.scheduleId, number, s.name, s.price)
                number += 1
            }
        }
        if d.queue != nil {
            try exec(db, "INSERT OR IGNORE INTO queues (schedule_id, waits, front_removed, active, waiting) VALUES (?, 0, 0, 0, 0)",
                     d.scheduleId)
        }
    }

    private static func seats(_ db: Target, _ r: ReservationRef, status: SeatStatus, reservationId: String?) throws {
        let update = try db.statement("UPDATE seats SET status = ?, reservation_id = ? WHERE schedule_id = ? AND number = ?")
        for n in r.seatNumbers { try update.execute(status.rawValue, reservationId, r.scheduleId, n) }
    }

    private static func setStatus(_ db: Target, _ r: ReservationRef, _ status: ReservationStatus) throws {
        try exec(db, "UPDATE reservations SET status = ? WHERE reservation_id = ?", status.rawValue, r.reservationId)
    }

    /// The schedule counters a released seat leaves.
    enum Counter { case held, sold }

    /// A reservation ends: its seats are AVAILABLE again. `from` is the schedule counter they leave.
    private static func release(_ db: Target, _ r: ReservationRef, _ status: ReservationStatus, from: Counter) throws {
        try setStatus(db, r, status)
        try seats(db, r, status: .available, reservationId: nil)
        switch from {
        case .held:
            try exec(db, "UPDATE schedules SET available = available + ?, held = held - ? WHERE schedule_id = ?",
                     r.seatNumbers.count, r.seatNumbers.count, r.scheduleId)
        case .sold:
            try exec(db, "UPDATE schedules SET available = available + ?, sold = sold - ? WHERE schedule_id = ?",
                     r.seatNumbers.count, r.seatNumbers.count, r.scheduleId)
        }
    }

    static func seatList(_ seats: [Int]) -> String {
        var w = JSONWriter(capacity: 32)
        w.beginArray()
        for n in seats { w.value(n) }
        w.endArray()
        return w.string
    }
}

/// The SQL files shipped with this target.
enum ProjectionResources {
    static func sql(_ name: String) -> String {
        guard let url = Bundle.module.url(forResource: "sql/" + name, withExtension: nil),
              let text = try? String(contentsOf: url, encoding: .utf8) else {
            fatalError("SLAMProjections: resource sql/\(name) is missing from the bundle")
        }
        return text
    }
}

/// A table or index of the read models, as the migrations create it.
public struct ReadModelSchemaObject: Equatable, Sendable {
    public let type: String   // "table" or "index"
    public let name: String
    public let table: String
    public let sql: String
}

extension Projector {
    /// Every read-model table and index as `migrations` make them (read from a scratch in-memory
    /// database they are run on), tables first.
    public static let schema: [ReadModelSchemaObject] = {
        do {
            let scratch = try DatabaseQueue()
            return try scratch.write { db in
                try db.execute(sql: migrations.map(\.sql).joined(separator: "\n"))
                return try Row.fetchAll(db, sql: """
                    SELECT type, name, tbl_name, sql FROM sqlite_master
                    WHERE type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type = 'index', rowid
                    """).map { ReadModelSchemaObject(type: $0[0], name: $0[1], table: $0[2], sql: $0[3]) }
            }
        } catch {
            preconditionFailure("the read-model migrations do not run on an empty database: \(error)")
        }
    }()

    /// The read-model tables and indexes missing from `db`'s schema `name` (dropped by hand, or
    /// damage), of `tables` only when given. `slam serve` refuses to start without them (a
    /// dropped table half-worked: the commands that touch it failed `INTERNAL`); `slam
    /// projections rebuild` creates them again.
    public static func missingSchema(_ db: Database, schema name: String = "main",
                                     tables: Set<String>? = nil) throws -> [ReadModelSchemaObject] {
        // SQLite's names ignore ASCII case: an index made again by hand as Reservations_By_User is there.
        let present = Set(try String.fetchAll(db, sql: "SELECT lower(name) FROM \(name).sqlite_master WHERE type IN ('table', 'index')"))
        return schema.filter { !present.contains($0.name.lowercased()) && (tables?.contains($0.table) ?? true) }
    }
}
