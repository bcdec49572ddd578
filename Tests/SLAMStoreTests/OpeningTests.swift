import Foundation
import GRDB
import SLAMStore
import Testing

@Suite("Opening a store")
struct OpeningTests {
    @Test("SQLite's process settings change nothing once SQLite has started, and say so")
    func processSettingsAfterStart() throws {
        // The `slam` executable makes them first thing (`SLAM.main`, whose debug build, the one the
        // CLI and contract tests run, stops if they did not take effect); in this process SQLite
        // is running by now, and sqlite3_config would refuse them (SQLITE_MISUSE).
        let queue = try DatabaseQueue()
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT 1") } == 1)
        #expect(EventStore.configureSQLiteProcess() == false)
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT 2") } == 2)
    }

    @Test("creates the database file and its missing folders")
    func createsFileAndFolder() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("nested/deeper/store.sqlite")
        #expect(!FileManager.default.fileExists(atPath: dir.path("nested")))
        let store = try EventStore.open(path: path)
        #expect(FileManager.default.fileExists(atPath: path))
        #expect(store.path == path)
        let tables = try store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        }
        for table in ["events", "idempotency", "meta"] { #expect(tables.contains(table)) }
        // The outbox is the events table; SQL sees it through a view.
        #expect(try store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'view'")
        } == ["outbox"])
    }

    @Test("storeId is set once and stays the same across reopens")
    func storeIdIsStable() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("store.sqlite")
        let first: String
        do {
            let store = try EventStore.open(path: path)
            first = store.storeId
            #expect(first.hasPrefix("st_"))
            #expect(first.count == "st_".count + 26)
            let writer = try store.makeWriter()
            try append(store, writer, "s-1", .noStream, events(2))
        }
        for sync in [SyncMode.normal, .full] {
            let again = try EventStore.open(path: path, sync: sync)
            #expect(again.storeId == first)
            #expect(try again.pool.read { db in try EventStore.meta(db, "storeId") } == first)
            #expect(try again.readStream("s-1").count == 2)
        }
        // Another file is another store.
        let other = try EventStore.open(path: dir.path("other.sqlite"))
        #expect(other.storeId != first)
    }

    @Test("meta starts with zero commands and nothing published")
    func metaDefaults() throws {
        try withStore { store, _ in
            try store.pool.read { db throws in
                #expect(try EventStore.meta(db, "commands") == "0")
                #expect(try EventStore.meta(db, "publishedSeq") == "0")
                #expect(try EventStore.meta(db, "nonexistent") == nil)
            }
        }
    }

    @Test("the writer's synchronous setting is what was asked for, not GRDB's NORMAL",
          arguments: [(SyncMode.full, 2), (SyncMode.normal, 1)])
    func writerSynchronous(mode: SyncMode, pragma: Int) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("store.sqlite")
        do {
            let store = try EventStore.open(path: path, sync: mode)
            #expect(try store.writerSynchronous() == pragma)
            // Still so after writes, and read on the writer connection the way the server uses it.
            let writer = try store.makeWriter()
            try append(store, writer, "s", .any, events(3))
            #expect(try store.writerSynchronous() == pragma)
            #expect(try store.pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == pragma)
        }
        // A reopen of an existing file applies it again.
        let reopened = try EventStore.open(path: path, sync: mode)
        #expect(try reopened.writerSynchronous() == pragma)
    }

    @Test("the database is in WAL mode")
    func walMode() throws {
        try withStore { store, dir in
            let mode = try store.pool.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(mode == "wal")
            let readerMode = try store.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(readerMode == "wal")
            #expect(FileManager.default.fileExists(atPath: dir.path("store.sqlite-wal")))
        }
    }

    @Test("a new writer starts from the heads of what is committed")
    func writerLoadsHeads() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("store.sqlite")
        do {
            let store = try EventStore.open(path: path)
            let writer = try store.makeWriter()
            #expect(writer.headPosition == 0)
            #expect(writer.headSeq == 0)
            #expect(writer.categoryHeads.isEmpty)
            try append(store, writer, "a", .noStream, events(2, category: "alpha"))
            try append(store, writer, "b", .noStream, events(3, category: "beta"))
            writer.countCommand()
            writer.countCommand()
            try store.pool.write { db in try writer.flushMeta(db) }
        }
        let store = try EventStore.open(path: path)
        let writer = try store.makeWriter()
        #expect(writer.headPosition == 5)
        #expect(writer.headSeq == 5)
        #expect(writer.categoryHeads == ["alpha": 2, "beta": 3])
        #expect(writer.commandsExecuted == 2)
        #expect(try append(store, writer, "a", .exact(2), events(1, category: "beta")) == [6])
        #expect(try storeProblems(store) == [])
        #expect(try allOutbox(store, category: "beta").map(\.categorySeq) == [1, 2, 3, 4])
    }

    @Test("a file that is not a database is refused with badDatabase")
    func notADatabase() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("garbage.sqlite")
        try Data(repeating: 0x5A, count: 8192).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try EventStore.open(path: path)
        } throws: { error in
            isStoreError(error, .badDatabase)
        }
    }
}

@Suite("Opening a database that is not this build's store")
struct ForeignDatabaseTests {
    /// Another application's database (tables of its own, no record of SLAM's migrations) is
    /// refused, and left exactly as it was: not switched to WAL mode, no table added.
    @Test func anotherApplicationsDatabaseIsRefusedUntouched() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("theirs.sqlite")
        let theirs = try DatabaseQueue(path: path)
        try theirs.write { db in try db.execute(sql: "CREATE TABLE invoices (id INTEGER PRIMARY KEY); INSERT INTO invoices VALUES (7)") }
        try theirs.close()
        #expect {
            _ = try EventStore.open(path: path)
        } throws: { error in
            isStoreError(error, .badDatabase) && "\(error)".contains("not a SLAM store")
        }
        let again = try DatabaseQueue(path: path)
        defer { try? again.close() }
        #expect(try again.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "delete")
        #expect(try again.read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") } == ["invoices"])
    }

    /// A store a newer build has migrated (a migration numbered past every one this build knows)
    /// is refused, naming the migration, rather than served with a schema this build does not know.
    @Test func aStoreMigratedByANewerBuildIsRefused() throws {
        try withStore { store, dir in
            try store.pool.write { db in try db.execute(sql: "INSERT INTO grdb_migrations VALUES ('0099_from_the_future')") }
            try store.pool.close()
            #expect {
                _ = try EventStore.open(path: dir.path("store.sqlite"))
            } throws: { error in
                isStoreError(error, .badDatabase) && "\(error)".contains("0099_from_the_future")
            }
        }
    }

    /// `mustExist` (what `slam projections rebuild` asks): an empty file, or a missing one, is
    /// no store, and is not made one.
    @Test func mustExistRefusesAnEmptyFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("empty.sqlite")
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        #expect {
            _ = try EventStore.open(path: path, mustExist: true)
        } throws: { error in
            isStoreError(error, .badDatabase)
        }
        #expect(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int == 0)
    }
}

@Suite("Opening a store another process holds")
struct LockedOpeningTests {
    @Test("a database whose lock another connection keeps past the busy timeout is refused with locked")
    func lockedByAnother() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("store.sqlite")
        // Another "process": a plain connection holding an exclusive lock on the new file.
        var config = Configuration()
        config.allowsUnsafeTransactions = true   // the lock must outlive one database access
        let other = try DatabaseQueue(path: path, configuration: config)
        try other.writeWithoutTransaction { db in try db.execute(sql: "BEGIN EXCLUSIVE; CREATE TABLE squatter (x)") }
        defer { try? other.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") } }
        #expect {
            _ = try EventStore.open(path: path)
        } throws: { error in
            isStoreError(error, .locked)
        }
    }
}
