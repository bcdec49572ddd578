import Foundation
import GRDB
import SLAMDomain
import SLAMStore

/// Where a rebuild or a verify is, for a progress display.
public struct RebuildProgress: Sendable {
    public enum Phase: String, Sendable {
        /// Reading and folding the log: `done` positions of `total`.
        case fold
        /// Writing rows: `done` rows of `total`.
        case write
        /// Checking (verify only).
        case check
    }
    public var phase: Phase
    public var done: Int64
    public var total: Int64
    /// Seconds since the phase began.
    public var elapsed: Double
}

/// What a rebuild did.
public struct RebuildReport: Sendable {
    /// The read models rebuilt.
    public var models: [ReadModel]
    /// The last position folded (the log's head).
    public var headPosition: Int64
    /// Events folded (every event, or only the types the chosen models need).
    public var events: Int64
    /// Rows written per table.
    public var rows: [String: Int]
    /// How each table was written (compared and patched, or replaced), with its changes.
    public var tables: [TableWrite]
    public var foldSeconds: Double
    public var writeSeconds: Double
    public var totalSeconds: Double
}

/// `slam projections rebuild`: rebuilds read models from the event log, offline.
///
/// It takes the store's lock (`StoreLock`, the one `slam serve` holds for its whole life), so it
/// refuses while a server has the database open, and a server refuses to start during it. It
/// folds the whole log in memory (`ProjectionFold`, the same fold as the inline projections),
/// reading the log with parallel decoders, then writes the tables in ONE write transaction
/// (`ProjectionWriter`): each table is merged with the fold in key order and only the rows that
/// differ are written, or, when many differ, the table is emptied and bulk-inserted with its
/// secondary indexes dropped and rebuilt (`full` forces that for every table). Then `meta`
/// records the rebuild, the commit is durable (`synchronous = FULL`), and a WAL checkpoint
/// copies what was written into the database so the next server does not.
///
/// Interrupted (killed, crashed, disk full) at any point, it leaves the database exactly as it
/// was: the fold writes nothing, and the write is one transaction that either commits or rolls
/// back (SQLite's WAL recovery discards an uncommitted one). Running it again starts over; the
/// fold is the fast part and a checkpoint of it would save little. A completed rebuild records
/// `projectionsRebuiltAt` and `projectionsRebuiltPosition` in `meta`.
public enum Rebuild {
    /// Rebuilds `models` (all of them by default) of the store at `path`.
    /// Throws `StoreError(.locked)` while a server holds the store, `StoreError(.badDatabase)` when
    /// there is no store at `path`, `FoldError` when the log is corrupt (nothing is written then).
    public static func run(path: String, models: [ReadModel] = ReadModel.allCases, full: Bool = false, decoders: Int? = nil,
                           progress: ((RebuildProgress) -> Void)? = nil) throws -> RebuildReport {
        let started = Date()
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.badDatabase, "no database at \(path)")
        }
        let lock = try StoreLock.acquire(database: path, holder: "slam projections rebuild")
        defer { lock.release() }
        let store = try EventStore.open(path: path, sync: .full, migrations: Projector.migrations, readers: 2, mustExist: true)
        defer { try? store.pool.close() }

        let modelSet = Set(models)
        let head = try store.pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(position) FROM events") ?? 0 }
        let types: [String]? = modelSet == Set(ReadModel.allCases) ? nil
            : Array(Set(modelSet.flatMap(\.eventTypes))).sorted()

        // Fold.
        let fold = ProjectionFold(checks: false, strict: true)
        let foldStart = Date()
        var trace = Trace("rebuild")
        defer { trace.mark("write") }
        try foldLog(path: path, through: head, types: types, into: fold, decoders: decoders) { done in
            progress?(RebuildProgress(phase: .fold, done: done, total: head, elapsed: Date().timeIntervalSince(foldStart)))
        }
        let foldSeconds = Date().timeIntervalSince(foldStart)
        let applied = fold.applied
        trace.mark("fold")
        // A log with positions missing (rows deleted: `slam verify` names each gap) is refused, as
        // an undecodable event is: read models rebuilt from it would drop, silently, what the
        // missing events recorded (an audit removed a charge, and the rebuild took the balance
        // with it, exit 0). A whole fold counts every event; one of some types counts the table.
        let events = types == nil ? applied : try store.pool.read { db in try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0 }
        if events != head {
            let first = try store.pool.read { db in
                try Int64.fetchOne(db, sql: """
                    SELECT CASE WHEN (SELECT MIN(position) FROM events) > 1 THEN 1
                           ELSE (SELECT e.position + 1 FROM events e
                                 WHERE NOT EXISTS (SELECT 1 FROM events n WHERE n.position = e.position + 1)
                                 ORDER BY e.position LIMIT 1) END
                    """)
            } ?? 1
            throw FoldError(position: first, message: "missing, with \(head - events) in all below the head, position \(head) "
                            + "(`slam verify` names them): a rebuild from a log with holes would drop what they recorded, so "
                            + "nothing was written; restore the store from a copy")
        }

        // Write, in one transaction.
        let tables = ReadModel.tables(of: modelSet)
        let totalRows = Int64(tables.reduce(0) { $0 + fold.rowCount($1) })
        let writeStart = Date()
        var writes: [TableWrite] = []
        try store.pool.writeWithoutTransaction { db in
            // A cache that holds what a full rewrite dirties (so pages go to the WAL once, at the
            // commit), index sorts in memory on two threads.
            try db.execute(sql: "PRAGMA cache_size = -4194304")
            try db.execute(sql: "PRAGMA temp_store = MEMORY")
            try db.execute(sql: "PRAGMA threads = 2")
            try db.inTransaction(.immediate) {
                let now = try Int64.fetchOne(db, sql: "SELECT MAX(position) FROM events") ?? 0
                guard now == head else {
                    throw StoreError(.locked, "events were appended during the rebuild (head \(head) became \(now)); "
                                     + "another process writes the database without its lock")
                }
                // A table or index of these read models that is missing (dropped, damage) is
                // created again first, as the migrations make it (it could not be rebuilt before:
                // "no such table", exit 1, while `slam verify` said to rebuild).
                for object in try Projector.missingSchema(db, tables: Set(tables)) { try db.execute(sql: object.sql) }
                writes = try ProjectionWriter.write(fold, tables: tables, db: db, allowDiff: !full, recreateIndexes: true,
                                                    readers: (path, max(2, ProcessInfo.processInfo.activeProcessorCount))) { rows in
                    progress?(RebuildProgress(phase: .write, done: Int64(rows), total: totalRows,
                                              elapsed: Date().timeIntervalSince(writeStart)))
                }
                var t = Trace("rebuild")
                defer { t.mark("commit") }
                let at = RFC3339.format(SystemClock().now())
                try db.execute(sql: """
                    INSERT INTO meta (key, value) VALUES ('projectionsRebuiltAt', ?), ('projectionsRebuiltPosition', ?)
                    ON CONFLICT (key) DO UPDATE SET value = excluded.value
                    """, arguments: [at, String(head)])
                return .commit
            }
            // The commit is durable (synchronous = FULL). Copy the WAL into the database now, so the
            // next server's first commit does not; best effort (a reader may hold the WAL).
            var t = Trace("rebuild")
            _ = try? Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            t.mark("checkpoint")
            try db.execute(sql: "PRAGMA cache_size = -2000")
            try db.execute(sql: "PRAGMA temp_store = DEFAULT")
            try db.execute(sql: "PRAGMA threads = 0")
        }
        let writeSeconds = Date().timeIntervalSince(writeStart)
        let counts = fold.rowCounts()
        // Millions of small objects: free them off the caller's path (a CLI exits meanwhile).
        DispatchQueue.global(qos: .utility).async { withExtendedLifetime(fold) {} }
        var rows: [String: Int] = [:]
        for t in tables { rows[t] = counts[t] ?? 0 }
        return RebuildReport(models: ReadModel.allCases.filter { modelSet.contains($0) }, headPosition: head,
                             events: applied, rows: rows, tables: writes, foldSeconds: foldSeconds, writeSeconds: writeSeconds,
                             totalSeconds: Date().timeIntervalSince(started))
    }

    /// Folds the events `(0, through]` of the store at `path` (optionally only `types`) into `fold`.
    static func foldLog(path: String, through: Int64, types: [String]?, into fold: ProjectionFold, decoders: Int?,
                        progress: ((Int64) -> Void)?) throws {
        let reader = EventReader(path: path, through: through, types: types, decoders: decoders ?? defaultDecoders)
        try reader.run({ chunk in try fold.apply(chunk) }, done: progress)
    }

    /// Decoding threads: one per core and one more, so reads waiting on the disk overlap (the
    /// fold runs beside them on the caller's thread).
    static var defaultDecoders: Int { max(2, ProcessInfo.processInfo.activeProcessorCount + 1) }
}
