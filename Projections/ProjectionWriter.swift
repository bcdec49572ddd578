import Foundation
import GRDB
import SLAMDomain

/// Writes a `ProjectionFold`'s rows into read-model tables in bulk: secondary indexes dropped
/// first (and rebuilt in one sort at the end, when asked), tables emptied, then every row in
/// primary-key order through prepared statements, so each B-tree is built by appending.
/// Runs inside the caller's transaction.
enum ProjectionWriter {
    /// Replaces the rows of `tables` in `schema` ("main", or an attached scratch database) with
    /// the fold's. `progress(rowsWritten)` is called every 65,536 rows.
    static func write(_ f: ProjectionFold, tables: [String], db: Database, schema: String = "main",
                      recreateIndexes: Bool, progress: ((Int) -> Void)? = nil) throws {
        let quoted = tables.map { "'\($0)'" }.joined(separator: ", ")
        let indexes = try Row.fetchAll(db, sql: """
            SELECT name, sql FROM \(schema).sqlite_master
            WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (\(quoted))
            """).map { (name: $0[0] as String, sql: $0[1] as String) }
        var t = Trace("write")
        for index in indexes { try db.execute(sql: "DROP INDEX \(schema).\(index.name)") }
        for table in tables { try db.execute(sql: "DELETE FROM \(schema).\(table)") }
        t.mark("drop+delete")

        var written = 0
        @inline(__always) func tick() {
            written += 1
            if written & 0xFFFF == 0 { progress?(written) }
        }
        let wanted = Set(tables)
        if wanted.contains("users") {
            let s = try RawStatement(db, "INSERT INTO \(schema).users (user_id, name, balance, history_count) VALUES (?, ?, ?, ?)")
            for i in order(f.users, \.id) {
                let u = f.users[i]
                s.bind(1, u.id); s.bind(2, u.name); s.bind(3, u.balance); s.bind(4, u.historyCount)
                try s.run(); tick()
            }
        }
        if wanted.contains("point_history") {
            let s = try RawStatement(db, """
                INSERT INTO \(schema).point_history (user_id, n, kind, amount, balance, reservation_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            // Counting sort: each user's entries are n = 1...historyCount, users in key order.
            let userOrder = order(f.users, \.id)
            var offset = [Int](repeating: 0, count: f.users.count)
            var next = 0
            for u in userOrder {
                offset[u] = next
                next += Int(f.users[u].historyCount)
            }
            var placed = [Int32](repeating: -1, count: next)
            for (h, entry) in f.history.enumerated() {
                let slot = offset[Int(entry.user)] + Int(entry.n) - 1
                if slot >= 0 && slot < placed.count { placed[slot] = Int32(h) }
            }
            for h in placed where h >= 0 {
                let e = f.history[Int(h)]
                s.bind(1, f.users[Int(e.user)].id); s.bind(2, e.n); s.bind(3, ProjectionFold.historyKindNames[Int(e.kind)])
                s.bind(4, e.amount); s.bind(5, e.balance); s.bind(6, e.reservationId); s.bind(7, e.at)
                try s.run(); tick()
            }
        }
        if wanted.contains("concerts") {
            let s = try RawStatement(db, "INSERT INTO \(schema).concerts (concert_id, name, artist) VALUES (?, ?, ?)")
            for i in order(f.concerts, \.id) {
                let c = f.concerts[i]
                s.bind(1, c.id); s.bind(2, c.name); s.bind(3, c.artist)
                try s.run(); tick()
            }
        }
        let scheduleOrder = (wanted.contains("schedules") || wanted.contains("seats")) ? order(f.schedules, \.id) : []
        if wanted.contains("schedules") {
            let s = try RawStatement(db, """
                INSERT INTO \(schema).schedules (schedule_id, concert_id, starts_at, opens_at, closes_at, seat_count, available, held,
                  sold, sold_out, max_seats_per_user, sections, queue_max_active, queue_active_ttl, queue_waiting_ttl, position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for i in scheduleOrder {
                let c = f.schedules[i]
                s.bind(1, c.id); s.bind(2, c.concertId); s.bind(3, c.startsAt); s.bind(4, c.opensAt); s.bind(5, c.closesAt)
                s.bind(6, c.seatCount); s.bind(7, c.available); s.bind(8, c.held); s.bind(9, c.sold); s.bind(10, c.soldOut)
                s.bind(11, c.maxSeatsPerUser); s.bind(12, c.sections); s.bind(13, c.queueMaxActive); s.bind(14, c.queueActiveTtl)
                s.bind(15, c.queueWaitingTtl); s.bind(16, c.position)
                try s.run(); tick()
            }
        }
        if wanted.contains("seats") {
            let s = try RawStatement(db, """
                INSERT INTO \(schema).seats (schedule_id, number, section, price, status, reservation_id) VALUES (?, ?, ?, ?, ?, ?)
                """)
            for i in scheduleOrder {
                let c = f.schedules[i]
                var number = 1
                for section in c.sectionList {
                    for _ in 0..<max(section.seatCount, 0) {
                        s.bind(1, c.id); s.bind(2, number); s.bind(3, section.name); s.bind(4, section.price)
                        s.bind(5, ProjectionFold.seatStatusNames[Int(c.seatStatus[number - 1])])
                        s.bind(6, c.seatReservation[number - 1])
                        try s.run(); tick()
                        number += 1
                    }
                }
            }
        }
        if wanted.contains("reservations") {
            let s = try RawStatement(db, """
                INSERT INTO \(schema).reservations (reservation_id, user_id, schedule_id, seat_numbers, price, status, expires_at,
                  created_at, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for i in order(f.reservations, \.id) {
                let r = f.reservations[i]
                s.bind(1, r.id); s.bind(2, r.userId); s.bind(3, r.scheduleId); s.bind(4, r.seatNumbers); s.bind(5, r.price)
                s.bind(6, ProjectionFold.reservationStatusNames[Int(r.status)]); s.bind(7, r.expiresAt); s.bind(8, r.createdAt)
                s.bind(9, r.position)
                try s.run(); tick()
            }
        }
        if wanted.contains("queue_tokens") {
            let s = try RawStatement(db, """
                INSERT INTO \(schema).queue_tokens (token_id, schedule_id, user_id, status, wait_seq, left_waiting, joined_at,
                  active_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            for i in order(f.tokens, \.id) {
                let t = f.tokens[i]
                s.bind(1, t.id); s.bind(2, t.scheduleId); s.bind(3, t.userId); s.bind(4, ProjectionFold.tokenStatusNames[Int(t.status)])
                s.bind(5, t.waitSeq); s.bind(6, t.leftWaiting); s.bind(7, t.joinedAt); s.bind(8, t.activeUntil)
                try s.run(); tick()
            }
        }
        if wanted.contains("queues") {
            let s = try RawStatement(db, """
                INSERT INTO \(schema).queues (schedule_id, waits, front_removed, active, waiting) VALUES (?, ?, ?, ?, ?)
                """)
            for i in order(f.queues, \.scheduleId) {
                let q = f.queues[i]
                s.bind(1, q.scheduleId); s.bind(2, q.waits); s.bind(3, q.frontRemoved); s.bind(4, q.active); s.bind(5, q.waiting)
                try s.run(); tick()
            }
        }
        progress?(written)
        t.mark("insert \(written) rows")
        if recreateIndexes {
            for index in indexes {
                // The stored text names no schema; it is only ever replayed on `main`.
                try db.execute(sql: index.sql)
            }
            t.mark("indexes")
        }
    }

    /// Row indexes in key order: the identity when the rows already are (ids sort by creation
    /// time, so they nearly always are), else a sort.
    static func order<T>(_ rows: [T], _ key: KeyPath<T, String>) -> [Int] {
        var sorted = true
        if rows.count > 1 {
            for i in 1..<rows.count where !(rows[i - 1][keyPath: key] < rows[i][keyPath: key]) {
                sorted = false
                break
            }
        }
        if sorted { return Array(rows.indices) }
        return rows.indices.sorted { rows[$0][keyPath: key] < rows[$1][keyPath: key] }
    }
}

/// Phase timings on stderr when `SLAM_REBUILD_TRACE` is set (benchmarks and tuning).
struct Trace {
    static let enabled = ProcessInfo.processInfo.environment["SLAM_REBUILD_TRACE"] != nil
    let label: String
    var last = Date()
    var lastCPU = Trace.cpu()
    init(_ label: String) { self.label = label }
    mutating func mark(_ what: String) {
        guard Trace.enabled else { return }
        let now = Date(), cpu = Trace.cpu()
        FileHandle.standardError.write(Data(("[\(label)] \(what): \(String(format: "%.3f", now.timeIntervalSince(last))) s wall, "
            + "\(String(format: "%.3f", cpu - lastCPU)) s cpu (process)\n").utf8))
        last = now
        lastCPU = cpu
    }
    /// CPU seconds used by the calling thread so far.
    static func threadCPU() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
    static func note(_ text: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
    /// CPU seconds used by the whole process so far (user + system).
    static func cpu() -> Double {
        var u = rusage()
        getrusage(Int32(RUSAGE_SELF.rawValue), &u)
        return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6
    }
}
