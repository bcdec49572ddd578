import Foundation
import GRDB
import GRDBSQLite
import SLAMDomain
import SLAMStore

/// How a table was written.
public struct TableWrite: Sendable {
    public enum Mode: String, Sendable {
        /// Compared with the rows in place; only the differences written.
        case diff
        /// Emptied and bulk-inserted (indexes dropped and rebuilt).
        case replace
    }
    public var table: String
    public var mode: Mode
    public var rows: Int
    public var inserted: Int
    public var updated: Int
    public var deleted: Int
}

/// Writes a `ProjectionFold`'s rows into the read-model tables.
///
/// Two ways, per table:
/// - `replace`: secondary indexes dropped, table emptied, every row appended in primary-key
///   order through multi-row prepared `INSERT`s (each B-tree built by appending), indexes
///   rebuilt in one sort each. Used for an empty table, for the verify's scratch database, and
///   whenever many rows differ.
/// - `diff`: the table is read in key order beside the fold's rows (a merge) and only the rows
///   that differ are written (`INSERT OR REPLACE` or `DELETE` by key). A rebuild of read models
///   that are mostly right (the usual case: after a crash, a restore, a fix to one table) then
///   writes almost nothing, so it costs one read of each table, not a rewrite, a WAL the size of
///   the tables and a checkpoint. A table where more than a fifth of the rows differ falls back
///   to `replace` (the diff stops scanning as soon as it knows).
/// Either way the table ends up holding exactly the fold's rows. Runs inside the caller's
/// transaction.
enum ProjectionWriter {
    static let columns: [String: [String]] = [
        "users": ["user_id", "name", "balance", "history_count"],
        "user_count": ["id", "users"],
        "point_history": ["user_id", "n", "kind", "amount", "balance", "reservation_id", "at"],
        "concerts": ["concert_id", "name", "artist"],
        "schedules": ["schedule_id", "concert_id", "starts_at", "opens_at", "closes_at", "seat_count", "available", "held",
                      "sold", "sold_out", "max_seats_per_user", "sections", "queue_max_active", "queue_active_ttl",
                      "queue_waiting_ttl", "position", "reservations"],
        "seats": ["schedule_id", "number", "section", "price", "status", "reservation_id"],
        "reservations": ["reservation_id", "user_id", "schedule_id", "seat_numbers", "price", "status", "expires_at",
                         "created_at", "position"],
        "queue_tokens": ["token_id", "schedule_id", "user_id", "status", "wait_seq", "left_waiting", "joined_at", "active_until"],
        "queues": ["schedule_id", "waits", "front_removed", "active", "waiting"],
    ]
    /// The primary key is each table's first this-many columns.
    static let keyColumns: [String: Int] = [
        "users": 1, "user_count": 1, "point_history": 2, "concerts": 1, "schedules": 1, "seats": 2, "reservations": 1,
        "queue_tokens": 1, "queues": 1,
    ]

    /// Writes `tables` of `schema` to hold exactly the fold's rows. `allowDiff: false` always
    /// replaces. With `readers` (the database's path and a thread count), the diffs read the
    /// tables on that many read-only connections at once, before anything is written (so they
    /// see what `db`'s transaction sees); the writes then go through `db`. `progress(rows)` is
    /// called as rows are emitted.
    @discardableResult
    static func write(_ f: ProjectionFold, tables: [String], db: Database, schema: String = "main", allowDiff: Bool,
                      recreateIndexes: Bool, readers: (path: String, threads: Int)? = nil,
                      progress: ((Int) -> Void)? = nil) throws -> [TableWrite] {
        let counter = Counter(progress)
        var results: [TableWrite] = []
        var empty: [String: Bool] = [:]
        for table in tables {
            empty[table] = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM (SELECT 1 FROM \(schema).\(table) LIMIT 1)") == 0
        }
        // 1. Compare (reads only).
        var diffs: [String: TableDiff] = [:]
        if allowDiff {
            let candidates = tables.filter { !empty[$0]! }.sorted { f.rowCount($0) > f.rowCount($1) }
            func diff(_ table: String, _ rdb: Database) throws -> TableDiff {
                var t = Trace("diff \(table)")
                let d = try TableDiff(rdb, schema: schema, table: table, columns: columns[table]!,
                                      keyColumns: keyColumns[table]!, expectedRows: f.rowCount(table))
                var local = 0
                try emit(table, f, into: d) {
                    local += 1
                    if local & 0x3FFF == 0 { counter.add(0x4000) }
                }
                t.mark("\(f.rowCount(table)) rows: \(d.inserted) missing, \(d.updated) different, \(d.deleted) extra"
                       + (d.overflowed ? " (overflowed)" : ""))
                return d
            }
            if let readers, readers.threads > 1, candidates.count > 1 {
                let lock = NSLock()
                var next = 0
                var failure: Error?
                DispatchQueue.concurrentPerform(iterations: min(readers.threads, candidates.count)) { _ in
                    do {
                        var config = Configuration()
                        config.readonly = true
                        let queue = try DatabaseQueue(path: readers.path, configuration: config)
                        try queue.read { rdb in
                            while true {
                                lock.lock()
                                guard failure == nil, next < candidates.count else { lock.unlock(); return }
                                let table = candidates[next]
                                next += 1
                                lock.unlock()
                                let d = try diff(table, rdb)
                                lock.lock(); diffs[table] = d; lock.unlock()
                            }
                        }
                        try queue.close()
                    } catch {
                        lock.lock(); failure = failure ?? error; lock.unlock()
                    }
                }
                if let failure { throw failure }
            } else {
                for table in candidates { diffs[table] = try diff(table, db) }
            }
        }
        // 2. Write.
        for table in tables {
            var t = Trace("write \(table)")
            let rows = f.rowCount(table)
            if let d = diffs[table], !d.overflowed {
                if !d.upserts.isEmpty {
                    let upsert = try UpsertSink(db, table: "\(schema).\(table)", columns: columns[table]!, ordinals: d.upserts)
                    try emit(table, f, into: upsert) {}
                }
                try d.applyDeletes(db)
                t.mark("applied \(d.inserted) inserts, \(d.updated) updates, \(d.deleted) deletes")
                results.append(TableWrite(table: table, mode: .diff, rows: rows, inserted: d.inserted, updated: d.updated,
                                          deleted: d.deleted))
                continue
            }
            var local = 0
            try replace(table, f, db: db, schema: schema, empty: empty[table]!, recreateIndexes: recreateIndexes, tick: {
                local += 1
                if local & 0x3FFF == 0 { counter.add(0x4000) }
            })
            t.mark("replaced \(rows) rows")
            results.append(TableWrite(table: table, mode: .replace, rows: rows, inserted: rows, updated: 0, deleted: 0))
        }
        counter.flush()
        return results
    }

    /// Rows emitted, from any thread, reported in steps of 16,384.
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var total = 0
        private let progress: ((Int) -> Void)?
        init(_ progress: ((Int) -> Void)?) { self.progress = progress }
        func add(_ n: Int) {
            guard let progress else { return }
            lock.lock()
            total += n
            let now = total
            lock.unlock()
            progress(now)
        }
        func flush() {
            lock.lock(); let now = total; lock.unlock()
            progress?(now)
        }
    }

    private static func replace(_ table: String, _ f: ProjectionFold, db: Database, schema: String, empty: Bool,
                                recreateIndexes: Bool, tick: () -> Void) throws {
        let indexes = try Row.fetchAll(db, sql: """
            SELECT name, sql FROM \(schema).sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = ?
            """, arguments: [table]).map { (name: $0[0] as String, sql: $0[1] as String) }
        for index in indexes { try db.execute(sql: "DROP INDEX \(schema).\(index.name)") }
        if !empty { try db.execute(sql: "DELETE FROM \(schema).\(table)") }
        let b = try BatchInserter(db, table: "\(schema).\(table)", columns: columns[table]!)
        try emit(table, f, into: b) { tick() }
        if recreateIndexes {
            // The stored text names no schema; it is only ever replayed on `main`.
            for index in indexes { try db.execute(sql: index.sql) }
        }
    }

    /// Emits the rows of `table` into `sink`, in primary-key order (SQLite's: text keys by
    /// their bytes, integers ascending), calling `rowDone` after each, then `sink.finish()`.
    /// Text points into the fold's arena, which stays put meanwhile.
    static func emit<S: RowSink>(_ table: String, _ f: ProjectionFold, into b: S, rowDone: () -> Void) throws {
        try f.arena.withUnsafeBufferPointer { a in
            @inline(__always) func t(_ r: Ref) {
                if r.isNil { b.null() } else { b.text(UnsafeBufferPointer(rebasing: a[r.off..<(r.off + Int(r.len))])) }
            }
            @inline(__always) func key(_ r: Ref) -> UnsafeBufferPointer<UInt8> {
                UnsafeBufferPointer(rebasing: a[r.off..<(r.off + Int(max(r.len, 0)))])
            }
            @inline(__always) func row() throws { try b.endRow(); rowDone() }
            switch table {
            case "users":
                try f.users.withUnsafeBufferPointer { users in
                    for i in order(users.count, { key(users[$0].id) }) {
                        let u = users[i]
                        t(u.id); t(u.name); b.int(u.balance); b.int(u.historyCount)
                        try row()
                    }
                }
            case "user_count":
                if !f.users.isEmpty {
                    b.int(1); b.int(Int64(f.users.count))
                    try row()
                }
            case "point_history":
                try f.users.withUnsafeBufferPointer { users in
                    try f.history.withUnsafeBufferPointer { history in
                        // Counting sort: each user's entries are n = 1...historyCount, users in key order.
                        var offset = [Int](repeating: 0, count: users.count)
                        var next = 0
                        for u in order(users.count, { key(users[$0].id) }) {
                            offset[u] = next
                            next += Int(users[u].historyCount)
                        }
                        var placed = [Int32](repeating: -1, count: next)
                        for h in 0..<history.count {
                            let slot = offset[Int(history[h].user)] + Int(history[h].n) - 1
                            if slot >= 0 && slot < placed.count { placed[slot] = Int32(h) }
                        }
                        for h in placed where h >= 0 {
                            let e = history[Int(h)]
                            t(users[Int(e.user)].id); b.int(e.n); b.text(ProjectionFold.historyKindNames[Int(e.kind)])
                            b.int(e.amount); b.int(e.balance); t(e.reservationId); b.int(e.at)
                            try row()
                        }
                    }
                }
            case "concerts":
                let concerts = f.concerts
                for i in order(concerts.count, { key(concerts[$0].id) }) {
                    let c = concerts[i]
                    t(c.id); t(c.name); t(c.artist)
                    try row()
                }
            case "schedules":
                let schedules = f.schedules
                for i in order(schedules.count, { key(schedules[$0].id) }) {
                    let c = schedules[i]
                    t(c.id); t(c.concertId); b.int(c.startsAt); b.int(c.opensAt); b.int(c.closesAt)
                    b.int(c.seatCount); b.int(c.available); b.int(c.held); b.int(c.sold); b.int(c.soldOut)
                    b.int(c.maxSeatsPerUser); t(c.sections); b.int(c.queueMaxActive); b.int(c.queueActiveTtl)
                    b.int(c.queueWaitingTtl); b.int(c.position); b.int(c.reservations)
                    try row()
                }
            case "seats":
                let schedules = f.schedules
                for i in order(schedules.count, { key(schedules[$0].id) }) {
                    let c = schedules[i]
                    try c.seatStatus.withUnsafeBufferPointer { status in
                        try c.seatReservation.withUnsafeBufferPointer { owner in
                            var number = 1
                            for section in c.sectionList {
                                for _ in 0..<max(section.seatCount, 0) {
                                    t(c.id); b.int(number); t(section.name); b.int(section.price)
                                    b.text(ProjectionFold.seatStatusNames[Int(status[number - 1])])
                                    t(owner[number - 1])
                                    try row()
                                    number += 1
                                }
                            }
                        }
                    }
                }
            case "reservations":
                try f.reservations.withUnsafeBufferPointer { reservations in
                    for i in order(reservations.count, { key(reservations[$0].id) }) {
                        let r = reservations[i]
                        t(r.id); t(r.userId); t(r.scheduleId); t(r.seatNumbers); b.int(r.price)
                        b.text(ProjectionFold.reservationStatusNames[Int(r.status)]); b.int(r.expiresAt); b.int(r.createdAt)
                        b.int(r.position)
                        try row()
                    }
                }
            case "queue_tokens":
                try f.tokens.withUnsafeBufferPointer { tokens in
                    for i in order(tokens.count, { key(tokens[$0].id) }) {
                        let k = tokens[i]
                        t(k.id); t(k.scheduleId); t(k.userId); b.text(ProjectionFold.tokenStatusNames[Int(k.status)])
                        b.int(k.waitSeq); b.int(k.leftWaiting); b.int(k.joinedAt); b.int(k.activeUntil)
                        try row()
                    }
                }
            case "queues":
                let queues = f.queues
                for i in order(queues.count, { key(queues[$0].scheduleId) }) {
                    let q = queues[i]
                    t(q.scheduleId); b.int(q.waits); b.int(q.frontRemoved); b.int(q.active); b.int(q.waiting)
                    try row()
                }
            default:
                throw RawSQLiteError(code: SQLITE_MISUSE, message: "unknown read-model table \(table)", sql: "")
            }
            try b.finish()
        }
    }

    /// Row indexes in key order, by the keys' bytes (SQLite's BINARY order): the identity when
    /// the rows already are (ids sort by creation time, so they nearly always are).
    static func order(_ count: Int, _ key: (Int) -> UnsafeBufferPointer<UInt8>) -> [Int] {
        var sorted = true
        if count > 1 {
            for i in 1..<count where bytesCompare(key(i - 1), key(i)) >= 0 {
                sorted = false
                break
            }
        }
        if sorted { return Array(0..<count) }
        return (0..<count).sorted { bytesCompare(key($0), key($1)) < 0 }
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
