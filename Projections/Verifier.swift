import Foundation
import GRDB
import SLAMDomain
import SLAMStore

/// What `slam verify` found.
public struct VerifyReport: Sendable {
    /// The snapshot checked: the log's head position when the read transaction began.
    public var headPosition: Int64
    /// Events in the log (up to the head).
    public var events: Int64
    /// Rows compared per read-model table.
    public var rows: [String: Int]
    /// Every violation (the first few of each check; `counts` has the totals).
    public var violations: [Violation]
    /// Violations per check.
    public var counts: [String: Int]
    public var seconds: Double
    public var ok: Bool { violations.isEmpty }
}

/// `slam verify`: rebuilds every read model from the log into a scratch database with the
/// rebuild's fold, compares it row for row with the live read models, and checks the invariants
/// of DESIGN.md section 2 that the data can show.
///
/// It only reads the store and takes no lock, so it may run beside a server: everything it
/// reads of the live store comes from ONE read transaction (the scratch database's connection,
/// with the store attached as `live`, opened before the head is read), and the log is folded up
/// to that transaction's head by parallel readers (events never change once committed, so they
/// read the same events). The read models commit with their events, so the snapshot is always
/// consistent. While it runs, the server's WAL cannot be checkpointed past its snapshot, so the
/// WAL grows for that long.
public enum Verifier {
    /// A new scratch database path in `folder` (by default the temporary folder).
    public static func scratchPath(in folder: String? = nil) -> String {
        ((folder ?? FileManager.default.temporaryDirectory.path) as NSString)
            .appendingPathComponent("slam-verify-\(UUID().uuidString).sqlite")
    }

    /// Removes the scratch database at `path` and SQLite's files beside it: at the end of a run,
    /// and from `slam verify`'s stop signals.
    public static func removeScratch(_ path: String) {
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(path + suffix) }
    }

    /// `scratchPath`: the scratch database's path (a caller that may be stopped mid-run removes
    /// it then, `removeScratch`); by default a new name in the temporary folder.
    public static func run(path: String, decoders: Int? = nil, scratchPath: String? = nil,
                           progress: ((RebuildProgress) -> Void)? = nil) throws -> VerifyReport {
        let started = Date()
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.badDatabase, "no database at \(path)")
        }
        try EventStore.inspectForReading(path: path, migrations: Projector.migrations)
        let scratchPath = scratchPath ?? Self.scratchPath()
        defer { removeScratch(scratchPath) }
        var config = Configuration()
        config.label = "slam-verify-scratch"
        let scratch = try DatabaseQueue(path: scratchPath, configuration: config)
        defer { try? scratch.close() }

        return try scratch.inDatabase { db -> VerifyReport in
            try db.execute(sql: "PRAGMA journal_mode = OFF")
            try db.execute(sql: "PRAGMA synchronous = OFF")
            try db.execute(sql: "PRAGMA cache_size = -1048576")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            try db.execute(sql: Projector.migrations.map(\.sql).joined(separator: "\n"))
            do {
                try db.execute(sql: "ATTACH DATABASE ? AS live", arguments: [path])
            } catch let error as DatabaseError {
                // As `slam projections rebuild` says it, not as SQLite's "error 26 … while executing".
                throw StoreError(.badDatabase, "cannot open \(path): \(error.message ?? "\(error)")")
            }
            defer { try? db.execute(sql: "DETACH DATABASE live") }

            var violations: [Violation] = []
            var counts: [String: Int] = [:]
            func add(_ v: Violation) {
                counts[v.check, default: 0] += 1
                if counts[v.check]! <= 50 { violations.append(v) }
            }

            try db.execute(sql: "BEGIN DEFERRED")
            defer { try? db.execute(sql: "ROLLBACK") }
            // The first read of `live` fixes the snapshot everything below sees.
            guard try Bool.fetchOne(db, sql: "SELECT COUNT(*) = 1 FROM live.sqlite_master WHERE type = 'table' AND name = 'events'") == true
            else { throw StoreError(.badDatabase, "\(path) is not a SLAM store (it has no events table)") }
            // The checks read the tables as this build's migrations leave them (verify migrates
            // nothing: it only reads the store).
            let applied = try Bool.fetchOne(db, sql: """
                SELECT COUNT(*) = 1 FROM live.sqlite_master WHERE type = 'table' AND name = 'grdb_migrations'
                """) == true ? Set(try String.fetchAll(db, sql: "SELECT identifier FROM live.grdb_migrations")) : []
            let notApplied = (EventStore.migrations + Projector.migrations).map(\.id).filter { !applied.contains($0) }
            guard notApplied.isEmpty else {
                throw StoreError(.badDatabase, "\(path) is a SLAM store of an older format (migrations "
                                 + "\(notApplied.joined(separator: ", ")) not applied); "
                                 + "`slam projections rebuild` or `slam serve` migrates it, then verify it")
            }
            let head = try Int64.fetchOne(db, sql: "SELECT MAX(position) FROM live.events") ?? 0

            // 1. The fold, with the event-level checks.
            let fold = ProjectionFold(checks: true, strict: false)
            let foldStart = Date()
            try Rebuild.foldLog(path: path, through: head, types: nil, into: fold, decoders: decoders) { done in
                progress?(RebuildProgress(phase: .fold, done: done, total: head, elapsed: Date().timeIntervalSince(foldStart)))
            }
            fold.finish()
            if fold.lastPosition != head, head > 0 {
                add(Violation("position-gap", "the last event read is at position \(fold.lastPosition) but the head is \(head)"))
            }
            for v in fold.violations { add(v) }
            for (check, n) in fold.violationCounts.sorted(by: { $0.key < $1.key }) where n > fold.violationLimitPerCheck {
                counts[check, default: 0] += n - fold.violationLimitPerCheck
                violations.append(Violation(check, "... and \(n - fold.violationLimitPerCheck) more \(check) violations"))
            }
            let events = fold.applied + Int64(fold.violationCounts["undecodable-event"] ?? 0)

            // 2. The rebuilt read models, into the scratch database.
            let counts0 = fold.rowCounts()
            let totalRows = Int64(counts0.values.reduce(0, +))
            let writeStart = Date()
            try ProjectionWriter.write(fold, tables: Projector.tables, db: db, schema: "main", allowDiff: false,
                                       recreateIndexes: false) { rows in
                progress?(RebuildProgress(phase: .write, done: Int64(rows), total: totalRows,
                                          elapsed: Date().timeIntervalSince(writeStart)))
            }

            // 3. Row for row against the live read models.
            let checkStart = Date()
            var step: Int64 = 0
            let steps = Int64(Projector.tables.count + 4)
            func tick() {
                step += 1
                progress?(RebuildProgress(phase: .check, done: step, total: steps, elapsed: Date().timeIntervalSince(checkStart)))
            }
            for table in Projector.tables {
                try compare(table, db: db, add: add)
                tick()
            }
            // Indexes too (a missing table is named above): the expiry sweep, for one, reads held
            // reservations through a partial index, never a scan.
            let missing = try Projector.missingSchema(db, schema: "live")
            let missingTables = Set(missing.filter { $0.type == "table" }.map(\.name))
            for index in missing where index.type == "index" && !missingTables.contains(index.table) {
                add(Violation("projection-missing", "the read-model index \(index.name) on \(index.table) does not exist in the store"))
            }

            // 4. The invariants, on the live data (those of a read-model table that is missing,
            // already a violation, are skipped).
            let present = Set(try String.fetchAll(db, sql: "SELECT name FROM live.sqlite_master WHERE type = 'table'"))
            func have(_ tables: String...) -> Bool { tables.allSatisfy(present.contains) }
            if have("reservations") { try checkSeats(db, add: add) }
            tick()
            if have("users", "point_history") { try checkBalances(db, add: add) }
            if have("users", "user_count") { try checkUserCount(db, add: add) }
            tick()
            try checkOutbox(db, add: add); tick()
            if have("schedules", "seats", "reservations", "queues", "queue_tokens") { try checkReadModels(db, add: add) }
            try checkMeta(db, head: head, add: add)
            try checkIdempotency(db, head: head, add: add)
            tick()

            DispatchQueue.global(qos: .utility).async { withExtendedLifetime(fold) {} }
            return VerifyReport(headPosition: head, events: events, rows: counts0, violations: violations, counts: counts,
                                seconds: Date().timeIntervalSince(started))
        }
    }

    // MARK: Row-for-row comparison

    private static func columns(_ db: Database, schema: String, table: String) throws -> [(name: String, pk: Int)] {
        try Row.fetchAll(db, sql: "SELECT name, pk FROM pragma_table_info(?, ?) ORDER BY cid", arguments: [table, schema])
            .map { ($0[0], $0[1]) }
    }

    private static func compare(_ table: String, db: Database, add: (Violation) -> Void) throws {
        let expected = try columns(db, schema: "main", table: table)
        let actual = try columns(db, schema: "live", table: table)
        guard !actual.isEmpty else {
            add(Violation("projection-missing", "the read-model table \(table) does not exist in the store"))
            return
        }
        guard expected.map(\.name) == actual.map(\.name) else {
            add(Violation("projection-schema", "table \(table) has columns \(actual.map(\.name)); expected \(expected.map(\.name))"))
            return
        }
        let keys = expected.filter { $0.pk > 0 }.sorted { $0.pk < $1.pk }.map(\.name)
        let values = expected.filter { $0.pk == 0 }.map(\.name)
        let on = keys.map { "l.\($0) = s.\($0)" }.joined(separator: " AND ")
        func keyText(_ row: Row, offset: Int = 0) -> String {
            keys.enumerated().map { "\($0.element)=\(show(row[offset + $0.offset]))" }.joined(separator: " ")
        }
        // Missing and different rows: one pass over the rebuilt rows, each looked up by key.
        let differs = values.map { "s.\($0) IS NOT l.\($0)" }.joined(separator: " OR ")
        let select = (keys.map { "s.\($0)" } + ["l.\(keys[0]) IS NULL"] + values.flatMap { ["s.\($0)", "l.\($0)"] })
            .joined(separator: ", ")
        let sql = "SELECT \(select) FROM main.\(table) s LEFT JOIN live.\(table) l ON \(on) WHERE l.\(keys[0]) IS NULL"
            + (values.isEmpty ? "" : " OR \(differs)")
        var missing = 0
        let cursor = try Row.fetchCursor(db, sql: sql)
        while let row = try cursor.next() {
            let key = keyText(row)
            if row[keys.count] as Bool {
                missing += 1
                add(Violation("projection-missing", "\(table) row \(key) is missing from the store; the log gives it"))
            } else {
                var diffs: [String] = []
                for (i, name) in values.enumerated() {
                    let e: DatabaseValue = row[keys.count + 1 + 2 * i]
                    let a: DatabaseValue = row[keys.count + 2 + 2 * i]
                    if e != a { diffs.append("\(name) is \(show(a)), the log gives \(show(e))") }
                }
                add(Violation("projection-different", "\(table) row \(key) differs from the log: " + diffs.joined(separator: "; ")))
            }
        }
        // Extra rows: only looked for when the counts say there are some.
        let rebuilt = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM main.\(table)") ?? 0
        let live = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM live.\(table)") ?? 0
        if live != rebuilt - missing {
            let sql = "SELECT \(keys.map { "l.\($0)" }.joined(separator: ", ")) FROM live.\(table) l "
                + "WHERE NOT EXISTS (SELECT 1 FROM main.\(table) s WHERE \(on))"
            let extra = try Row.fetchCursor(db, sql: sql)
            while let row = try extra.next() {
                add(Violation("projection-extra", "\(table) row \(keyText(row)) is in the store but the log gives no such row"))
            }
        }
    }

    private static func show(_ v: DatabaseValue) -> String {
        switch v.storage {
        case .null: return "NULL"
        case .int64(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return "'\(s)'"
        case .blob(let b): return "blob(\(b.count) bytes)"
        }
    }

    // MARK: Invariants on the live data

    /// Invariant 1: no seat in two live (HELD or CONFIRMED) reservations of one schedule.
    private static func checkSeats(_ db: Database, add: (Violation) -> Void) throws {
        let rows = try Row.fetchCursor(db, sql: """
            SELECT r.schedule_id, CAST(j.value AS INTEGER) AS seat, group_concat(r.reservation_id || ' (' || r.status || ')', ', ')
            FROM live.reservations r, json_each(r.seat_numbers) j
            WHERE r.status IN ('HELD', 'CONFIRMED')
            GROUP BY r.schedule_id, seat HAVING COUNT(*) > 1
            ORDER BY r.schedule_id, seat
            """)
        while let row = try rows.next() {
            add(Violation("doubled-seat", "seat \(row[1] as Int64) of schedule \(row[0] as String) has two live reservations: "
                          + (row[2] as String)))
        }
    }

    /// Invariant 2 on the read models: no balance below 0, each balance the sum of its history.
    private static func checkBalances(_ db: Database, add: (Violation) -> Void) throws {
        let negative = try Row.fetchCursor(db, sql: "SELECT user_id, balance FROM live.users WHERE balance < 0")
        while let row = try negative.next() {
            add(Violation("negative-balance", "user \(row[0] as String) has balance \(row[1] as Int64)"))
        }
        let rows = try Row.fetchCursor(db, sql: """
            SELECT u.user_id, u.balance, u.history_count, h.total, h.entries FROM live.users u
            LEFT JOIN (SELECT user_id, SUM(CASE kind WHEN 'USE' THEN -amount ELSE amount END) AS total, COUNT(*) AS entries,
                              MAX(n) AS last
                       FROM live.point_history GROUP BY user_id) h ON h.user_id = u.user_id
            WHERE u.balance IS NOT COALESCE(h.total, 0) OR u.history_count IS NOT COALESCE(h.entries, 0)
            """)
        while let row = try rows.next() {
            let user: String = row[0]
            let balance: Int64 = row[1], count: Int64 = row[2]
            let total: Int64 = row[3] ?? 0, entries: Int64 = row[4] ?? 0
            if balance != total {
                add(Violation("balance-history", "user \(user) has balance \(balance) but the sum of its point history "
                              + "(charges and refunds minus uses, \(entries) entries) is \(total)"))
            } else {
                add(Violation("balance-history", "user \(user) counts \(count) history entries but has \(entries)"))
            }
        }
        let orphans = try Row.fetchCursor(db, sql: """
            SELECT DISTINCT h.user_id FROM live.point_history h WHERE NOT EXISTS (SELECT 1 FROM live.users u WHERE u.user_id = h.user_id)
            """)
        while let row = try orphans.next() {
            add(Violation("balance-history", "point history of user \(row[0] as String), who does not exist"))
        }
    }

    /// `user_count` is the number of users (GetStats' `users`), and has no row while there are none.
    private static func checkUserCount(_ db: Database, add: (Violation) -> Void) throws {
        let row = try Row.fetchOne(db, sql: """
            SELECT (SELECT COUNT(*) FROM live.user_count), (SELECT users FROM live.user_count WHERE id = 1),
                   (SELECT COUNT(*) FROM live.users)
            """)!
        let rows: Int64 = row[0], counted: Int64? = row[1], users: Int64 = row[2]
        if counted != (users == 0 ? nil : users) || rows != (users == 0 ? 0 : 1) {
            add(Violation("user-count", "user_count says \(counted.map(String.init) ?? "nothing") (\(rows) rows) "
                          + "but there are \(users) users"))
        }
    }

    /// The read models against each other. The comparison with the fold shows that they are
    /// what the log gives; a log the fold takes may still describe an impossible state (a seat
    /// freed by a release that did not own it, a reservation confirmed twice, a token activated
    /// beyond `maxActive`), and then the read models disagree among themselves.
    private static func checkReadModels(_ db: Database, add: (Violation) -> Void) throws {
        // A schedule's counters are its seats by status, adding up to its seat count; it is sold
        // out exactly when none is available.
        let schedules = try Row.fetchCursor(db, sql: """
            SELECT s.schedule_id, s.seat_count, s.available, s.held, s.sold, s.sold_out,
                   COALESCE(c.n, 0), COALESCE(c.a, 0), COALESCE(c.h, 0), COALESCE(c.so, 0)
            FROM live.schedules s LEFT JOIN (
                SELECT schedule_id, COUNT(*) AS n, SUM(status = 'AVAILABLE') AS a, SUM(status = 'HELD') AS h,
                       SUM(status = 'SOLD') AS so
                FROM live.seats GROUP BY schedule_id) c ON c.schedule_id = s.schedule_id
            WHERE s.seat_count IS NOT COALESCE(c.n, 0) OR s.available IS NOT COALESCE(c.a, 0) OR s.held IS NOT COALESCE(c.h, 0)
               OR s.sold IS NOT COALESCE(c.so, 0) OR s.sold_out IS NOT (s.available = 0)
            """)
        while let r = try schedules.next() {
            add(Violation("schedule-counts", "schedule \(r[0] as String) counts \(r[1] as Int64) seats, \(r[2] as Int64) available, "
                          + "\(r[3] as Int64) held, \(r[4] as Int64) sold, sold out \(r[5] as Int64); its seat map has "
                          + "\(r[6] as Int64) seats, \(r[7] as Int64) available, \(r[8] as Int64) held, \(r[9] as Int64) sold"))
        }
        // A schedule counts the reservations held on it once it existed (GetStats adds them up).
        let held = try Row.fetchCursor(db, sql: """
            SELECT s.schedule_id, s.reservations, COALESCE(c.n, 0) FROM live.schedules s
            LEFT JOIN (SELECT r.schedule_id, COUNT(*) AS n FROM live.reservations r
                       JOIN live.schedules o ON o.schedule_id = r.schedule_id AND r.position > o.position
                       GROUP BY r.schedule_id) c
                   ON c.schedule_id = s.schedule_id
            WHERE s.reservations IS NOT COALESCE(c.n, 0)
            """)
        while let r = try held.next() {
            add(Violation("schedule-counts", "schedule \(r[0] as String) counts \(r[1] as Int64) reservations held on it; "
                          + "the reservations table has \(r[2] as Int64) made on it"))
        }
        // A HELD seat names a HELD reservation, a SOLD seat a CONFIRMED one, of its schedule and
        // holding it; an AVAILABLE seat names none.
        let seats = try Row.fetchCursor(db, sql: """
            SELECT schedule_id, number, status, reservation_id, reservation_status, holds FROM (
                SELECT s.schedule_id, s.number, s.status, s.reservation_id, r.status AS reservation_status,
                       r.schedule_id AS reservation_schedule,
                       EXISTS (SELECT 1 FROM json_each(r.seat_numbers) j WHERE j.value = s.number) AS holds
                FROM live.seats s LEFT JOIN live.reservations r ON r.reservation_id = s.reservation_id)
            WHERE CASE status
                WHEN 'AVAILABLE' THEN reservation_id IS NOT NULL
                ELSE reservation_status IS NULL OR reservation_status IS NOT (CASE status WHEN 'HELD' THEN 'HELD' ELSE 'CONFIRMED' END)
                     OR reservation_schedule IS NOT schedule_id OR NOT holds
            END
            """)
        while let r = try seats.next() {
            let schedule: String = r[0], number: Int64 = r[1], status: String = r[2]
            let reservation: String? = r[3], reservationStatus: String? = r[4]
            let text = reservation.map { id in
                reservationStatus.map { "\(id) (\($0)\(r[5] as Bool ? "" : ", without this seat"))" } ?? "\(id), which does not exist"
            } ?? "no reservation"
            add(Violation("seat-owner", "seat \(number) of schedule \(schedule) is \(status) and names \(text)"))
        }
        // Every seat of a live reservation names it back.
        let live = try Row.fetchCursor(db, sql: """
            SELECT r.reservation_id, r.status, CAST(j.value AS INTEGER), s.status, s.reservation_id
            FROM live.reservations r, json_each(r.seat_numbers) j
            LEFT JOIN live.seats s ON s.schedule_id = r.schedule_id AND s.number = j.value
            WHERE r.status IN ('HELD', 'CONFIRMED') AND s.reservation_id IS NOT r.reservation_id
            """)
        while let r = try live.next() {
            let seatText = (r[3] as String?).map { "is \($0)" + ((r[4] as String?).map { " for \($0)" } ?? "") } ?? "does not exist"
            add(Violation("seat-owner", "reservation \(r[0] as String) (\(r[1] as String)) holds seat \(r[2] as Int64), which "
                          + seatText))
        }
        // A queue's counters are its tokens by status, and no more are active than it admits.
        let queues = try Row.fetchCursor(db, sql: """
            SELECT q.schedule_id, q.active, q.waiting, COALESCE(t.a, 0), COALESCE(t.w, 0), s.queue_max_active
            FROM live.queues q LEFT JOIN live.schedules s ON s.schedule_id = q.schedule_id
            LEFT JOIN (SELECT schedule_id, SUM(status = 'ACTIVE') AS a, SUM(status = 'WAITING') AS w
                       FROM live.queue_tokens GROUP BY schedule_id) t ON t.schedule_id = q.schedule_id
            WHERE q.active IS NOT COALESCE(t.a, 0) OR q.waiting IS NOT COALESCE(t.w, 0) OR s.queue_max_active IS NULL
               OR q.active > s.queue_max_active
            """)
        while let r = try queues.next() {
            add(Violation("queue-counts", "the queue of schedule \(r[0] as String) counts \(r[1] as Int64) active and "
                          + "\(r[2] as Int64) waiting; its tokens: \(r[3] as Int64) active, \(r[4] as Int64) waiting; "
                          + "maxActive \((r[5] as Int64?).map(String.init) ?? "none (no queue)")"))
        }
        // First in, first out: no token admitted (it has an `activeUntil`) from behind one still
        // waiting; and one live token per user and schedule.
        let order = try Row.fetchCursor(db, sql: """
            SELECT schedule_id, MAX(CASE WHEN active_until IS NOT NULL THEN wait_seq END) AS admitted,
                   MIN(CASE WHEN status = 'WAITING' THEN wait_seq END) AS waiting
            FROM live.queue_tokens GROUP BY schedule_id HAVING admitted > waiting
            """)
        while let r = try order.next() {
            add(Violation("queue-order", "the queue of schedule \(r[0] as String) admitted its token \(r[1] as Int64) while token "
                          + "\(r[2] as Int64), ahead of it, still waits"))
        }
        let doubled = try Row.fetchCursor(db, sql: """
            SELECT schedule_id, user_id, group_concat(token_id, ', ') FROM live.queue_tokens WHERE status IN ('WAITING', 'ACTIVE')
            GROUP BY schedule_id, user_id HAVING COUNT(*) > 1
            """)
        while let r = try doubled.next() {
            add(Violation("queue-order", "user \(r[1] as String) has more than one live token in the queue of schedule "
                          + "\(r[0] as String): \(r[2] as String)"))
        }
    }

    /// Invariants 4 and 5 as far as the store shows them: a command's recorded reply names the
    /// position of its last event, so every event caused by a key with a record (records older
    /// than the retention are pruned) is at or before that position, the event there is the
    /// key's own, and a refused command (`ok` false) caused none. A command executed twice, or a
    /// record pointing at another command's event, breaks one of these. Every record's position
    /// is within the log. And a key's events, recorded or not, come from one execution within the
    /// retention (below).
    private static func checkIdempotency(_ db: Database, head: Int64, add: (Violation) -> Void) throws {
        let events = try Row.fetchCursor(db, sql: """
            SELECT e.position, e.type, e.causation_id, i.ok, i.position, x.causation_id
            FROM live.events e JOIN live.idempotency i ON i.key = e.causation_id
            LEFT JOIN live.events x ON x.position = i.position
            WHERE e.causation_id NOT LIKE 'system:%'
              AND (i.ok = 0 OR i.position < e.position OR x.causation_id IS NOT e.causation_id)
            """)
        while let r = try events.next() {
            let position: Int64 = r[0], type: String = r[1], key: String = r[2], ok: Bool = r[3], recorded: Int64 = r[4]
            let why = !ok ? "its record says the command was refused"
                : recorded < position ? "its record names position \(recorded), before it (executed again?)"
                : "its record names position \(recorded), an event of \((r[5] as String?) ?? "no command")"
            add(Violation("idempotency", "\(type) at position \(position) was caused by key \(key), but " + why))
        }
        let outside = try Row.fetchCursor(db, sql: "SELECT key, position FROM live.idempotency WHERE position NOT BETWEEN 0 AND ?",
                                          arguments: [head])
        while let r = try outside.next() {
            add(Violation("idempotency", "the record of key \(r[0] as String) names position \(r[1] as Int64), outside the log (1...\(head))"))
        }
        // A key executed twice: every event of one execution has its batch's time, so two times
        // of one key less than the retention apart are two executions (a record lost, then the
        // command sent again: an audit deleted one, and the retry charged twice while this check
        // passed). After the retention a key may name a new command; each pair of its times in
        // turn is compared, so a use a day earlier hides nothing.
        let twice = try Row.fetchCursor(db, sql: """
            SELECT key, before, t, beforePosition, position FROM (
                SELECT key, t, position, LAG(t) OVER w AS before, LAG(position) OVER w AS beforePosition
                FROM (SELECT causation_id AS key, occurred_at AS t, MIN(position) AS position FROM live.events
                      WHERE causation_id NOT LIKE 'system:%' GROUP BY causation_id, occurred_at)
                WINDOW w AS (PARTITION BY key ORDER BY t))
            WHERE before IS NOT NULL AND t - before < ?
            """, arguments: [idempotencyRetention])
        while let r = try twice.next() {
            let key: String = r[0], first: Int64 = r[1], second: Int64 = r[2], p1: Int64 = r[3], p2: Int64 = r[4]
            add(Violation("idempotency", "key \(key) was executed more than once: events from position \(p1) at "
                          + "\(RFC3339.format(first)) and from position \(p2) at \(RFC3339.format(second)), within the "
                          + "retention of \(idempotencyRetention / 3_600_000) h"))
        }
    }

    /// PROTOCOL.md section 3's retention (the server's default, `ServerConfig.idempotencyRetention`):
    /// within it a key names one command.
    static let idempotencyRetention: Millis = 24 * 3600 * 1000

    /// `meta`: the store's id, and the counters a restarted server starts from: the relay
    /// republishes from `publishedSeq`, which past the head would leave events unpublished.
    private static func checkMeta(_ db: Database, head: Int64, add: (Violation) -> Void) throws {
        let meta = Dictionary(try Row.fetchAll(db, sql: "SELECT key, value FROM live.meta").map { ($0[0] as String, $0[1] as String?) },
                              uniquingKeysWith: { a, _ in a })
        if (meta["storeId"] ?? nil)?.isEmpty ?? true { add(Violation("meta", "meta has no storeId")) }
        let published = (meta["publishedSeq"] ?? nil).flatMap { Int64($0) }
        if published.map({ !(0...head).contains($0) }) ?? true {
            add(Violation("meta", "meta's publishedSeq is \((meta["publishedSeq"] ?? nil) ?? "missing"); it must be 0 to the head, \(head)"))
        }
        let commands = (meta["commands"] ?? nil).flatMap { Int64($0) }
        if commands.map({ $0 < 0 }) ?? true {
            add(Violation("meta", "meta's commands is \((meta["commands"] ?? nil) ?? "missing"); it must be a count"))
        }
    }

    /// `seq` runs 1...n within each `group` (a count and the bounds), and each number's successor
    /// comes later in the log (a lookup in the unique index on (group, seq), no sort).
    private static func numbering(_ db: Database, group: String, seq: String, add: (Violation) -> Void,
                                  gap: (String, Int64, Int64, Int64) -> String, order: (String, Int64, Int64, Int64) -> String,
                                  checks: (gap: String, order: String)) throws {
        let groups = try Row.fetchCursor(db, sql: """
            SELECT \(group), COUNT(*), MIN(\(seq)), MAX(\(seq)) FROM live.events GROUP BY \(group)
            HAVING MIN(\(seq)) != 1 OR MAX(\(seq)) != COUNT(*) ORDER BY \(group)
            """)
        while let r = try groups.next() { add(Violation(checks.gap, gap(r[0], r[1], r[2], r[3]))) }
        let disorder = try Row.fetchCursor(db, sql: """
            SELECT a.\(group), b.\(seq), b.position, a.position FROM live.events a
            JOIN live.events b ON b.\(group) = a.\(group) AND b.\(seq) = a.\(seq) + 1
            WHERE b.position <= a.position
            """)
        while let r = try disorder.next() { add(Violation(checks.order, order(r[0], r[1], r[2], r[3]))) }
    }

    /// Invariant 6. The outbox is the events table (an event's seq is its position, its message is
    /// built from its row), so every event is in it by construction and its seq runs with the
    /// positions (the fold's `position-gap` check). What is left to check: each category's
    /// `categorySeq` and each stream's versions run 1...n in position order, positions start at 1,
    /// and each event carries its type's category.
    private static func checkOutbox(_ db: Database, add: (Violation) -> Void) throws {
        // Each category's categorySeq, and each stream's versions, run 1...n (distinct: unique
        // indexes) in position order: a subscriber of one category sees the log's order.
        try numbering(db, group: "category", seq: "category_seq", add: add,
                      gap: { "outbox category \($0) has \($1) events with categorySeq \($2)...\($3); categorySeq must run 1...\($1)" },
                      order: { "category \($0): categorySeq \($1) is at position \($2), before the one before it at \($3)" },
                      checks: ("outbox-gap", "outbox-order"))
        try numbering(db, group: "stream_id", seq: "stream_version", add: add,
                      gap: { "stream \($0) has \($1) events with versions \($2)...\($3); they must run 1...\($1)" },
                      order: { "stream \($0): version \($1) is at position \($2), before the one before it at \($3)" },
                      checks: ("stream-version", "stream-version"))
        // Positions are 1...head: none below 1 (the log's readers start after 0 and would never
        // deliver it) and as many as the head.
        if let r = try Row.fetchOne(db, sql: "SELECT MIN(position), COUNT(*), MAX(position) FROM live.events"),
           let lo = r[0] as Int64?, lo != 1 || (r[1] as Int64) != (r[2] as Int64) {
            add(Violation("position-gap", "positions run \(lo)...\(r[2] as Int64) over \(r[1] as Int64) events; they must run 1...n"))
        }
        let pairs = try Row.fetchAll(db, sql: "SELECT DISTINCT type, category FROM live.events")
        for row in pairs {
            let type: String = row[0], category: String = row[1]
            guard let expected = DomainEvent.categoryOfType[type], expected != category else { continue }
            let first = try Int64.fetchOne(db, sql: "SELECT MIN(position) FROM live.events WHERE type = ? AND category = ?",
                                           arguments: [type, category]) ?? 0
            add(Violation("outbox-mismatch", "\(type) events are in category \(category), not \(expected) "
                          + "(the first at position \(first))"))
        }
    }
}
