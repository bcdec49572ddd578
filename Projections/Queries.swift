import GRDB
import SLAMDomain
import SLAMJSON
import SLAMStore

/// The queries of PROTOCOL.md section 5, answered from the read models on a reader connection.
/// Each writes its result body straight to JSON.
public enum Queries {
    public static func getUser(_ db: Database, userId: String) throws -> [UInt8] {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT name, balance FROM users WHERE user_id = ?"),
                                         arguments: [userId]) else { throw userNotFound(userId) }
        var w = JSONWriter()
        w.beginObject(); w.field("userId", userId); w.field("name", row[0] as String); w.field("balance", row[1] as Int64); w.endObject()
        return w.bytes
    }

    public static func getPointHistory(_ db: Database, userId: String, limit: Int, before: Int64?) throws -> [UInt8] {
        try requireUser(db, userId)
        let rows = try Row.fetchAll(db.cachedStatement(sql: """
            SELECT n, kind, amount, balance, reservation_id, at FROM point_history
            WHERE user_id = ? AND n < ? ORDER BY n DESC LIMIT ?
            """), arguments: [userId, before ?? Int64.max, limit])
        var w = JSONWriter()
        w.beginObject(); w.key("entries"); w.beginArray()
        for r in rows {
            w.beginObject()
            w.field("n", r[0] as Int64); w.field("kind", r[1] as String); w.field("amount", r[2] as Int64)
            w.field("balance", r[3] as Int64)
            if let rid: String = r[4] { w.field("reservationId", rid) }
            w.field("at", RFC3339.format(r[5]))
            w.endObject()
        }
        w.endArray(); w.endObject()
        return w.bytes
    }

    public static func listSchedules(_ db: Database, concertId: String?, openAt: Millis?) throws -> [UInt8] {
        var sql = """
            SELECT s.schedule_id, s.concert_id, c.name, c.artist, s.starts_at, s.opens_at, s.closes_at, s.seat_count, s.available
            FROM schedules s JOIN concerts c ON c.concert_id = s.concert_id
            """
        var conditions: [String] = []
        var args: StatementArguments = []
        if let concertId {
            guard try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM concerts WHERE concert_id = ?"), arguments: [concertId]) != nil
            else { throw Rejection(.concertNotFound, "concert \(concertId) not found") }
            conditions.append("s.concert_id = ?"); args += [concertId]
        }
        if let openAt { conditions.append("s.opens_at <= ? AND ? <= s.closes_at"); args += [openAt, openAt] }
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        sql += " ORDER BY s.position"
        var w = JSONWriter()
        w.beginObject(); w.key("schedules"); w.beginArray()
        for r in try Row.fetchAll(db.cachedStatement(sql: sql), arguments: args) {
            w.beginObject()
            w.field("scheduleId", r[0] as String); w.field("concertId", r[1] as String)
            w.field("name", r[2] as String); w.field("artist", r[3] as String)
            w.field("startsAt", RFC3339.format(r[4])); w.field("reservationOpensAt", RFC3339.format(r[5]))
            w.field("reservationClosesAt", RFC3339.format(r[6]))
            w.field("seatCount", r[7] as Int64); w.field("available", r[8] as Int64)
            w.endObject()
        }
        w.endArray(); w.endObject()
        return w.bytes
    }

    public static func getSeatMap(_ db: Database, scheduleId: String, section: String?) throws -> [UInt8] {
        guard let counts = try Row.fetchOne(db.cachedStatement(sql: "SELECT available, held, sold FROM schedules WHERE schedule_id = ?"),
                                            arguments: [scheduleId]) else {
            throw Rejection(.scheduleNotFound, "schedule \(scheduleId) not found")
        }
        let rows: [Row]
        if let section {
            rows = try Row.fetchAll(db.cachedStatement(sql: """
                SELECT number, section, price, status FROM seats WHERE schedule_id = ? AND section = ? ORDER BY number
                """), arguments: [scheduleId, section])
        } else {
            rows = try Row.fetchAll(db.cachedStatement(sql: """
                SELECT number, section, price, status FROM seats WHERE schedule_id = ? ORDER BY number
                """), arguments: [scheduleId])
        }
        var available: Int64 = counts[0], held: Int64 = counts[1], sold: Int64 = counts[2]
        if section != nil {
            // With a section, the counts are the section's.
            available = 0; held = 0; sold = 0
            for r in rows {
                switch r[3] as String {
                case "AVAILABLE": available += 1
                case "HELD": held += 1
                default: sold += 1
                }
            }
        }
        var w = JSONWriter(capacity: 64 + rows.count * 64)
        w.beginObject()
        w.field("scheduleId", scheduleId); w.field("available", available); w.field("held", held); w.field("sold", sold)
        w.key("seats"); w.beginArray()
        for r in rows {
            w.beginObject()
            w.field("number", r[0] as Int64); w.field("section", r[1] as String); w.field("price", r[2] as Int64)
            w.field("status", r[3] as String)
            w.endObject()
        }
        w.endArray(); w.endObject()
        return w.bytes
    }

    public static func getReservation(_ db: Database, reservationId: String) throws -> [UInt8] {
        guard let r = try Row.fetchOne(db.cachedStatement(sql: reservationSQL + " WHERE reservation_id = ?"),
                                       arguments: [reservationId]) else {
            throw Rejection(.reservationNotFound, "reservation \(reservationId) not found")
        }
        var w = JSONWriter()
        writeReservation(r, &w)
        return w.bytes
    }

    public static func listReservations(_ db: Database, userId: String, limit: Int) throws -> [UInt8] {
        try requireUser(db, userId)
        let rows = try Row.fetchAll(db.cachedStatement(sql: reservationSQL + " WHERE user_id = ? ORDER BY position DESC LIMIT ?"),
                                    arguments: [userId, limit])
        var w = JSONWriter()
        w.beginObject(); w.key("reservations"); w.beginArray()
        for r in rows { writeReservation(r, &w) }
        w.endArray(); w.endObject()
        return w.bytes
    }

    /// A token's status and place. `ahead` is arithmetic on the queue's counters plus an index
    /// range over tokens that left while waiting before it (see the `queues` table), never a scan
    /// of the waiting line.
    public static func getQueueStatus(_ db: Database, tokenId: String) throws -> [UInt8] {
        guard let t = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT t.schedule_id, t.status, t.wait_seq, t.active_until, q.front_removed
            FROM queue_tokens t JOIN queues q ON q.schedule_id = t.schedule_id WHERE t.token_id = ?
            """), arguments: [tokenId]) else {
            throw Rejection(.tokenNotFound, "queue token \(tokenId) not found")
        }
        let status: String = t[1]
        var ahead: Int64 = 0
        if status == "WAITING" {
            let waitSeq: Int64 = t[2]
            let leftBefore = try Int64.fetchOne(db.cachedStatement(sql: """
                SELECT COUNT(*) FROM queue_tokens WHERE schedule_id = ? AND left_waiting = 1 AND wait_seq < ?
                """), arguments: [t[0] as String, waitSeq]) ?? 0
            ahead = max(0, waitSeq - 1 - (t[4] as Int64) - leftBefore)
        }
        var w = JSONWriter()
        w.beginObject()
        w.field("tokenId", tokenId); w.field("status", status); w.field("ahead", ahead)
        if status == "ACTIVE", let until: Int64 = t[3] { w.field("activeUntil", RFC3339.format(until)) }
        w.endObject()
        return w.bytes
    }

    public static func readEvents(_ db: Database, afterSeq: Int64, limit: Int, category: String?) throws -> [UInt8] {
        let messages = try EventStore.readOutbox(db, afterSeq: afterSeq, limit: limit, category: category)
        let head = try EventStore.heads(db).seq
        var w = JSONWriter(capacity: 128 + messages.count * 400)
        w.beginObject(); w.key("events"); w.beginArray()
        for m in messages {
            w.beginObject(); w.field("topic", m.topic); w.key("header"); w.raw(m.header); w.key("body"); w.raw(m.body); w.endObject()
        }
        w.endArray()
        w.field("headSeq", head)
        w.endObject()
        return w.bytes
    }

    /// `extra`: the server's own counters (WAL size, queue depths), appended as integer fields.
    /// `publishedSeq`: the relay's progress as the server knows it live (read before this read
    /// transaction began, so it is never above `headSeq`); the stored value, which the writer
    /// updates with its next transaction, when it is nil (no server) or behind.
    /// `settings`: the server's `synchronous` mode and whether it commits in groups (what a
    /// benchmark must say it ran with, DESIGN.md section 3), when a server asks.
    public static func getStats(_ db: Database, storeId: String, publishedSeq: Int64? = nil,
                                extra: [(String, Int64)] = [],
                                settings: (synchronous: String, groupCommit: Bool)? = nil) throws -> [UInt8] {
        let heads = try EventStore.heads(db)
        var w = JSONWriter()
        w.beginObject()
        w.field("storeId", storeId)
        w.field("position", heads.position)
        w.field("headSeq", heads.seq)
        w.field("publishedSeq", max(publishedSeq ?? 0, Int64(try EventStore.meta(db, "publishedSeq") ?? "0") ?? 0))
        w.field("commands", Int64(try EventStore.meta(db, "commands") ?? "0") ?? 0)
        // Kept as they change (migration 0006): counting the tables read them whole.
        w.field("users", try Int64.fetchOne(db, sql: "SELECT users FROM user_count WHERE id = 1") ?? 0)
        w.field("reservations", try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(reservations), 0) FROM schedules") ?? 0)
        for (k, v) in extra { w.field(k, v) }
        if let settings {
            w.field("synchronous", settings.synchronous)
            w.field("groupCommit", settings.groupCommit)
        }
        w.endObject()
        return w.bytes
    }

    // MARK: Helpers

    private static let reservationSQL = """
        SELECT reservation_id, user_id, schedule_id, seat_numbers, price, status, expires_at, created_at FROM reservations
        """

    private static func writeReservation(_ r: Row, _ w: inout JSONWriter) {
        w.beginObject()
        w.field("reservationId", r[0] as String); w.field("userId", r[1] as String); w.field("scheduleId", r[2] as String)
        w.key("seatNumbers"); w.raw(r[3] as String)
        w.field("price", r[4] as Int64); w.field("status", r[5] as String)
        w.field("expiresAt", RFC3339.format(r[6])); w.field("createdAt", RFC3339.format(r[7]))
        w.endObject()
    }

    private static func requireUser(_ db: Database, _ userId: String) throws {
        guard try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM users WHERE user_id = ?"), arguments: [userId]) != nil
        else { throw userNotFound(userId) }
    }

    private static func userNotFound(_ userId: String) -> Rejection { Rejection(.userNotFound, "user \(userId) not found") }
}
