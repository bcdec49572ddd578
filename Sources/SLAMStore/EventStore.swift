import CWalBuffer
import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMSchemas

/// A migration: SQL text applied once, in order, identified by a name that never changes.
public struct Migration: Sendable {
    public var id: String
    public var sql: String
    /// Runs first, in the migration's transaction: throws to refuse a database the SQL would
    /// migrate wrongly.
    public var check: (@Sendable (Database) throws -> Void)?
    public init(id: String, sql: String, check: (@Sendable (Database) throws -> Void)? = nil) {
        self.id = id
        self.sql = sql
        self.check = check
    }
}

/// The SQLite event store: a `DatabasePool` in WAL mode whose single writer appends events to
/// streams, writes the outbox and idempotency records in the same transaction, and whose readers
/// serve everything else.
public final class EventStore: @unchecked Sendable {
    public let pool: DatabasePool
    public let path: String
    /// Identifies this store for its whole life (PROTOCOL.md section 7's `storeId`).
    public let storeId: String

    /// Every migration of this build, the read models' (`Projector.migrations`) included, by id: a
    /// store is of a newer SLAM when it has one past all of these, whichever part of this build
    /// opens it (`slam debug-append-load` opens a store with the store's own migrations only).
    /// `Tests/SLAMRebuildTests` checks that it lists exactly the migrations there are.
    public static let buildMigrationIds = ["0001_event_store", "0002_projections", "0003_reservations_live_dropped",
                                           "0004_outbox_in_events", "0005_idempotency_in_order", "0006_counts_kept"]

    /// SQLite's settings for a whole SLAM process, made before any thread uses SQLite (the `slam`
    /// executable's `main` does): its memory statistics off (`slam_sqlite_memstatus_off`: 7% fewer
    /// instructions per command in the writer's code, counted with cachegrind). Returns false,
    /// changing nothing, once SQLite has started in the process.
    @discardableResult
    public static func configureSQLiteProcess() -> Bool { slam_sqlite_memstatus_off() == 0 }

    /// The store's own migrations; projections and others add theirs after.
    public static let migrations = [
        Migration(id: "0001_event_store", sql: SLAMSchemas.sql("0001_event_store.sql")),
        Migration(id: "0004_outbox_in_events", sql: SLAMSchemas.sql("0004_outbox_in_events.sql"), check: outboxAgreesWithEvents),
        Migration(id: "0005_idempotency_in_order", sql: SLAMSchemas.sql("0005_idempotency_in_order.sql")),
    ]

    /// Before the outbox is folded into the events table (migration 0004), the two must say the
    /// same: one outbox row per event at seq = position, with the event's topic and body (the
    /// header is rebuilt from the event, so a disagreement would otherwise vanish unseen).
    @Sendable static func outboxAgreesWithEvents(_ db: Database) throws {
        let events = try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0
        let rows = try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0
        let agreeing = try Int64.fetchOne(db, sql: """
            SELECT COUNT(*) FROM events e JOIN outbox o ON o.seq = e.position
            WHERE o.position = e.position AND o.topic = o.category || '.' || e.type AND o.body = e.body
            """) ?? 0
        guard events == rows, rows == agreeing else {
            throw StoreError(.badDatabase, "the outbox (\(rows) rows) and the events (\(events)) disagree: \(agreeing) rows match "
                             + "their event; not migrating (migration 0004 folds the outbox into the events)")
        }
    }

    /// Opens (creating if needed, with its folder) the database at `path` and migrates it.
    /// `synchronous` is set on the writer connection after GRDB has configured it, since
    /// `DatabasePool` sets NORMAL on its connections and a value set earlier would be lost.
    /// `mustExist`: refuse (`badDatabase`) a path with no store yet, rather than create one.
    public static func open(path: String, sync: SyncMode = .full, migrations extra: [Migration] = [],
                            readers: Int = 4, mustExist: Bool = false) throws -> EventStore {
        try inspect(path: path, known: (migrations + extra).map(\.id), mustExist: mustExist)
        let folder = (path as NSString).deletingLastPathComponent
        if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
        // Every connection of the process goes through the WAL-buffering VFS (one write per
        // transaction instead of two per page; see Sources/CWalBuffer).
        let vfs = slam_walbuffer_register()
        guard vfs == 0 else {
            throw DatabaseError(resultCode: ResultCode(rawValue: vfs), message: "cannot register the WAL-buffering SQLite VFS")
        }
        var config = Configuration()
        config.maximumReaderCount = readers
        config.busyMode = .timeout(5)
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
        } catch let error as DatabaseError {
            throw storeError(error, "cannot open \(path)")
        }
        var migrator = DatabaseMigrator()
        for m in migrations + extra {
            migrator.registerMigration(m.id) { db in
                try m.check?(db)
                try db.execute(sql: m.sql)
            }
        }
        do {
            try migrator.migrate(pool)
        } catch let error as DatabaseError {
            throw storeError(error, "cannot migrate \(path)")
        }
        let storeId: String
        do {
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = \(sync.pragmaValue)") }
            storeId = try pool.write { db -> String in
                let id: String
                if let stored = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'storeId'") {
                    id = stored
                } else {
                    // No storeId: a new store, unless it holds anything already (its storeId row
                    // lost: damage, which failed "UNIQUE constraint failed: meta.key" here).
                    if try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM events) OR EXISTS (SELECT 1 FROM meta)") ?? false {
                        throw StoreError(.badDatabase, "\(path) holds events or meta rows but no storeId (a damaged store): "
                                         + "restore it from a copy")
                    }
                    var ids = SortableIdGenerator()
                    id = ids.next(.store, at: SystemClock().now())
                    try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('storeId', ?)", arguments: [id])
                }
                // The counters start at 0, in a new store and in one that lost a row (damage: the
                // writer only updates them, so an audit's store without `publishedSeq` was
                // republished from the start at every start, for good). At 0 the relay republishes
                // from the first event: at least once, as ever.
                try db.execute(sql: "INSERT OR IGNORE INTO meta (key, value) VALUES ('commands', '0'), ('publishedSeq', '0')")
                return id
            }
        } catch let error as DatabaseError {
            throw storeError(error, "cannot set up \(path)")
        }
        return EventStore(pool: pool, path: path, storeId: storeId)
    }

    /// The checks `open` makes first, for a tool that only reads the store (`slam verify`, which
    /// said OK of a store a newer SLAM had migrated, judging its schema by this build's; audit):
    /// refuses another application's database, a newer SLAM's store, and a path with no store.
    public static func inspectForReading(path: String, migrations extra: [Migration] = []) throws {
        try inspect(path: path, known: (migrations + extra).map(\.id), mustExist: true)
    }

    /// Looks at an existing file before anything opens it for writing (opening a pool switches a
    /// database to WAL mode, and migrating adds tables): a database of another application (it
    /// has tables, and no record of SLAM's migrations), or one a newer SLAM has migrated (a
    /// migration numbered past every one this build knows: served, its schema would be one this
    /// build does not know) is refused with `badDatabase`, and so is a path with no store when
    /// `mustExist`. An empty or missing file is a new store.
    private static func inspect(path: String, known: [String], mustExist: Bool) throws {
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? nil
        guard let size, size > 0 else {
            if mustExist { throw StoreError(.badDatabase, "no store at \(path)") }
            return
        }
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(5)
        let (tables, applied): ([String], [String])
        do {
            let queue = try DatabaseQueue(path: path, configuration: config)
            defer { try? queue.close() }
            (tables, applied) = try queue.read { db in
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                let applied = tables.contains("grdb_migrations")
                    ? try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") : []
                return (tables, applied)
            }
        } catch let error as DatabaseError {
            throw storeError(error, "cannot open \(path)")
        }
        if !tables.isEmpty, !tables.contains("grdb_migrations") {
            throw StoreError(.badDatabase, "\(path) is not a SLAM store: it has tables of its own (\(tables.sorted().prefix(5).joined(separator: ", ")))")
        }
        if let newest = (known + buildMigrationIds).max(), let unknown = applied.filter({ $0 > newest }).max() {
            throw StoreError(.badDatabase, "\(path) was migrated by a newer SLAM (migration \(unknown); this build knows up to \(newest)): "
                             + "run that build, or one at least as new")
        }
        if mustExist, !tables.contains("events") { throw StoreError(.badDatabase, "no store at \(path)") }
    }

    /// SQLITE_BUSY here means another connection kept its lock past the busy timeout: another
    /// process holds the database, which is not the same as the file being bad.
    private static func storeError(_ error: DatabaseError, _ what: String) -> StoreError {
        let detail = error.message ?? "\(error)"
        switch error.resultCode {
        case .SQLITE_BUSY, .SQLITE_LOCKED:
            return StoreError(.locked, "\(what): another process holds the database (\(detail))")
        default:
            return StoreError(.badDatabase, "\(what): \(detail)")
        }
    }

    private init(pool: DatabasePool, path: String, storeId: String) {
        self.pool = pool
        self.path = path
        self.storeId = storeId
    }

    /// The writer's `PRAGMA synchronous` (2 = FULL, 1 = NORMAL).
    public func writerSynchronous() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// A writer for the writer thread, with the store's heads loaded.
    public func makeWriter() throws -> StoreWriter {
        try pool.read { db in try StoreWriter(db, storeId: storeId) }
    }

    /// Appends to several streams in one transaction: all or nothing. A convenience for tools
    /// and tests; the server appends through its own `StoreWriter` inside its batches.
    @discardableResult
    public func append(_ appends: [(streamId: String, expected: ExpectedVersion, events: [NewEvent])],
                       using writer: StoreWriter) throws -> [Int64] {
        let mark = writer.mark()
        do {
            return try pool.write { db in
                var positions: [Int64] = []
                for a in appends { positions += try writer.append(db, streamId: a.streamId, expected: a.expected, events: a.events) }
                return positions
            }
        } catch {
            writer.rollback(to: mark)
            throw error
        }
    }

    // MARK: Reads (any thread, on reader connections)

    public func readStream(_ streamId: String, fromVersion: Int64 = 1) throws -> [RecordedEvent] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT position, stream_id, stream_version, type, body, occurred_at, causation_id
                FROM events WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version
                """, arguments: [streamId, fromVersion]).map(Self.recorded)
        }
    }

    /// Events after `position`, oldest first.
    public func readAll(after position: Int64, limit: Int = 1000) throws -> [RecordedEvent] {
        try pool.read { db in try Self.readAll(db, after: position, limit: limit) }
    }

    public static func readAll(_ db: Database, after position: Int64, limit: Int) throws -> [RecordedEvent] {
        try Row.fetchAll(db, sql: """
            SELECT position, stream_id, stream_version, type, body, occurred_at, causation_id
            FROM events WHERE position > ? ORDER BY position LIMIT ?
            """, arguments: [position, limit]).map(recorded)
    }

    /// Outbox messages after `seq` (global), oldest first, optionally of one category. The
    /// outbox is the events table: an event's seq is its position, and its message (topic,
    /// header, body; PROTOCOL.md section 7) is built here from the row.
    public static func readOutbox(_ db: Database, afterSeq: Int64, limit: Int, category: String?) throws -> [OutboxMessage] {
        let storeId = try meta(db, "storeId") ?? ""
        // Rows read through a cursor, each made into a message where it stands: `Row.fetchAll`
        // copied every row first (18% of the relay thread's instructions, callgrind).
        func messages(_ sql: String, _ arguments: StatementArguments) throws -> [OutboxMessage] {
            var out: [OutboxMessage] = []
            let rows = try Row.fetchCursor(db.cachedStatement(sql: sql), arguments: arguments)
            while let row = try rows.next() { out.append(message(row, storeId: storeId)) }
            return out
        }
        if let category {
            // `WHERE category = ? AND position > ? ORDER BY position` has no index to follow:
            // SQLite reads the whole category and sorts it for every page (1.8 s a page for a
            // category of 6.6 million rows). Within a category, `category_seq` and `position`
            // grow together (the one writer assigns both in commit order), so the page is a range
            // of the (category, category_seq) index starting at the first row after `afterSeq`.
            guard let from = try firstCategorySeq(db, category: category, afterSeq: afterSeq) else {
                return try messages("""
                    SELECT \(outboxColumns) FROM events WHERE category = ? AND position > ? ORDER BY position LIMIT ?
                    """, [category, afterSeq, limit])
            }
            return try messages("""
                SELECT \(outboxColumns) FROM events WHERE category = ? AND category_seq >= ? ORDER BY category_seq LIMIT ?
                """, [category, from, limit])
        }
        return try messages("SELECT \(outboxColumns) FROM events WHERE position > ? ORDER BY position LIMIT ?", [afterSeq, limit])
    }

    private static let outboxColumns =
        "position, category, category_seq, type, stream_id, stream_version, occurred_at, causation_id, body"

    private static func message(_ row: Row, storeId: String) -> OutboxMessage {
        let seq: Int64 = row[0], category: String = row[1], categorySeq: Int64 = row[2], type: String = row[3]
        var w = JSONWriter(capacity: 256)
        w.beginObject()
        w.field("seq", seq)
        w.field("categorySeq", categorySeq)
        w.field("storeId", storeId)
        w.field("type", type)
        w.field("streamId", row[4] as String)
        w.field("streamVersion", row[5] as Int64)
        w.field("position", seq)
        w.field("occurredAt", RFC3339.format(row[6] as Int64))
        w.field("causationId", row[7] as String)
        w.endObject()
        return OutboxMessage(seq: seq, category: category, categorySeq: categorySeq, topic: category + "." + type,
                             header: w.string, body: row[8])
    }

    /// The lowest `category_seq` of `category` whose position is above `afterSeq`, found by
    /// binary search on the (category, category_seq) index: one past the category's head when
    /// nothing is newer, nil when a probe finds a hole in `category_seq` (then the caller scans).
    private static func firstCategorySeq(_ db: Database, category: String, afterSeq: Int64) throws -> Int64? {
        guard let low = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MIN(category_seq) FROM events WHERE category = ?"),
                                           arguments: [category]),
              let high = try Int64.fetchOne(db.cachedStatement(sql: "SELECT MAX(category_seq) FROM events WHERE category = ?"),
                                            arguments: [category])
        else { return 0 }   // no such category: an empty page
        let seqAt = try db.cachedStatement(sql: "SELECT position FROM events WHERE category = ? AND category_seq = ?")
        var lo = low, hi = high + 1   // the answer is in lo...hi
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            guard let seq = try Int64.fetchOne(seqAt, arguments: [category, mid]) else { return nil }
            if seq > afterSeq { hi = mid } else { lo = mid + 1 }
        }
        return lo
    }

    /// The highest committed event position and outbox seq (the same number: an event's seq is
    /// its position).
    public static func heads(_ db: Database) throws -> (position: Int64, seq: Int64) {
        let p = try Int64.fetchOne(db, sql: "SELECT MAX(position) FROM events") ?? 0
        return (p, p)
    }

    /// The highest `categorySeq` of each category.
    public static func categoryHeads(_ db: Database) throws -> [String: Int64] {
        // `SELECT category, MAX(category_seq) FROM events GROUP BY category` scans the whole
        // index (3 s warm, 16 s cold on 10 million rows), and this runs at every start and after
        // every failed batch. There are a handful of categories: hop from one to the next on the
        // index and take each one's maximum, a few index seeks in all.
        var heads: [String: Int64] = [:]
        for row in try Row.fetchAll(db, sql: """
            WITH RECURSIVE categories(name) AS (
                SELECT (SELECT MIN(category) FROM events)
                UNION ALL
                SELECT (SELECT MIN(category) FROM events WHERE category > categories.name)
                FROM categories WHERE categories.name IS NOT NULL
            )
            SELECT name, (SELECT MAX(category_seq) FROM events WHERE category = categories.name)
            FROM categories WHERE name IS NOT NULL
            """) {
            heads[row[0]] = row[1]
        }
        return heads
    }

    public static func meta(_ db: Database, _ key: String) throws -> String? {
        try String.fetchOne(db, cachedSQL: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    private static func recorded(_ row: Row) -> RecordedEvent {
        RecordedEvent(position: row[0], streamId: row[1], streamVersion: row[2], type: row[3], body: row[4],
                      occurredAt: row[5], causationId: row[6])
    }
}

extension Row {
    static func fetchAll(_ db: Database, cachedSQL sql: String, arguments: StatementArguments) throws -> [Row] {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }
}

extension String {
    static func fetchOne(_ db: Database, cachedSQL sql: String, arguments: StatementArguments) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }
}
