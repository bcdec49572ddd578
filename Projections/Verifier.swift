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
    public static func run(path: String, decoders: Int? = nil, scratchDirectory: String? = nil,
                           progress: ((RebuildProgress) -> Void)? = nil) throws -> VerifyReport {
        let started = Date()
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.badDatabase, "no database at \(path)")
        }
        let folder = scratchDirectory ?? FileManager.default.temporaryDirectory.path
        let scratchPath = (folder as NSString).appendingPathComponent("slam-verify-\(UUID().uuidString).sqlite")
        defer {
            for suffix in ["", "-journal", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: scratchPath + suffix) }
        }
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
            try db.execute(sql: "ATTACH DATABASE ? AS live", arguments: [path])
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
            let migrated = try Bool.fetchOne(db, sql: """
                SELECT COUNT(*) = 1 FROM live.sqlite_master WHERE type = 'table' AND name = 'grdb_migrations'
                """) == true && (try Bool.fetchOne(db, sql: """
                SELECT COUNT(*) = 1 FROM live.grdb_migrations WHERE identifier = '0004_outbox_in_events'
                """) == true)
            guard migrated else {
                throw StoreError(.badDatabase, "\(path) is a SLAM store of an older format (outbox in its own table); "
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

            // 4. The invariants, on the live data.
            try checkSeats(db, add: add); tick()
            try checkBalances(db, add: add); tick()
            try checkOutbox(db, add: add); tick()
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

    /// Invariant 6. The outbox is the events table (an event's seq is its position, its message is
    /// built from its row), so every event is in it by construction and its seq runs with the
    /// positions (the fold's `position-gap` check). What is left to check: each category's
    /// `categorySeq` runs 1...n, and each event carries its type's category.
    private static func checkOutbox(_ db: Database, add: (Violation) -> Void) throws {
        let categories = try Row.fetchAll(db, sql: """
            SELECT category, COUNT(*), MIN(category_seq), MAX(category_seq) FROM live.events GROUP BY category ORDER BY category
            """)
        for row in categories {
            let category: String = row[0], n: Int64 = row[1], lo: Int64 = row[2], hi: Int64 = row[3]
            if n != hi || lo != 1 {
                add(Violation("outbox-gap", "outbox category \(category) has \(n) events with categorySeq \(lo)...\(hi); "
                              + "categorySeq must run 1...\(n)"))
            }
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
