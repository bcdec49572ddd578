import CWalBuffer
import GRDBSQLite
import Foundation
import GRDB
import SLAMStore
import Testing

/// A fresh directory, with the buffering VFS registered as the process's default by opening a
/// store in it, as the server does.
func directoryWithBufferRegistered() throws -> TemporaryDirectory {
    let dir = try TemporaryDirectory()
    _ = try EventStore.open(path: dir.path("store.sqlite"))
    #expect(slam_walbuffer_register() == 0)
    return dir
}

/// The WAL-buffering VFS (Sources/CWalBuffer), registered as the process's default by
/// `EventStore.open`: a transaction's frames reach the WAL file in a few writes, and every
/// committed frame is in the file before another connection can see it, in FULL and NORMAL.
@Suite("The WAL-buffering VFS")
struct WalBufferTests {
    /// Opens a WAL-mode database through the default VFS (the buffering one, once a store has
    /// been opened in this process) with `synchronous` as given.
    func open(_ path: String, synchronous: String, cachePages: Int = 2000) throws -> DatabaseQueue {
        var config = Configuration()
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            try db.execute(sql: "PRAGMA cache_size = \(cachePages)")
        }
        let queue = try DatabaseQueue(path: path, configuration: config)
        try queue.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        return queue
    }

    @Test("a transaction of many pages reaches the WAL in a few writes, and reads back whole")
    func gathersWrites() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("gather.sqlite")
        let writer = try open(path, synchronous: "FULL")
        try writer.writeWithoutTransaction { db in try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)") }
        func writes() throws -> (asked: Int64, reached: Int64) {
            try writer.writeWithoutTransaction { db in
                var asked: Int64 = 0, reached: Int64 = 0
                #expect(slam_walbuffer_connection_writes(db.sqliteConnection, &asked, &reached) == 0)
                return (asked, reached)
            }
        }
        let before = try writes()
        try writer.write { db in
            for i in 0..<300 { try db.execute(sql: "INSERT INTO t VALUES (?, ?)", arguments: [i, String(repeating: "v", count: 1000)]) }
        }
        // About 80 pages: 160 writes asked of the VFS (a header and a page each), reaching the
        // file in two (124 KiB each at most).
        let after = try writes()
        let asked = after.asked - before.asked, reached = after.reached - before.reached
        #expect(asked >= 150, "asked \(asked)")
        #expect(reached <= 4, "asked \(asked), reached the file \(reached)")
        let reader = try DatabaseQueue(path: path)
        #expect(try reader.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t WHERE length(v) = 1000") } == 300)
        #expect(try reader.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") } == "ok")
        try reader.close()
        try writer.close()
    }

    @Test("with synchronous NORMAL (no sync at commit) another connection sees each commit at once")
    func visibleWithoutSync() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("normal.sqlite")
        let writer = try open(path, synchronous: "NORMAL")
        try writer.writeWithoutTransaction { db in try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)") }
        let reader = try DatabaseQueue(path: path)
        for i in 0..<50 {
            try writer.write { db in
                try db.execute(sql: "INSERT INTO t VALUES (?, ?)", arguments: [i, String(repeating: "n", count: 2000 + i)])
            }
            // The reader finds the new frames in the WAL: they must be in the file, not in the
            // writer's buffer.
            let row = try reader.read { db in try Row.fetchOne(db, sql: "SELECT COUNT(*), SUM(length(v)) FROM t") }
            #expect(row?[0] as Int? == i + 1)
            #expect(row?[1] as Int? == (0...i).reduce(0) { $0 + 2000 + $1 })
        }
        try reader.close()
        try writer.close()
    }

    @Test("a transaction larger than the page cache (pages spilled to the WAL and read back) commits whole, and survives reopening")
    func spillAndReopen() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("spill.sqlite")
        // A 10-page cache: the transaction below spills pages to the WAL mid-way and reads
        // some back before it commits.
        var writer: DatabaseQueue? = try open(path, synchronous: "FULL", cachePages: 10)
        try writer!.writeWithoutTransaction { db in
            try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            try db.execute(sql: "CREATE INDEX t_v ON t (v)")
        }
        try writer!.write { db in
            for i in 0..<3000 { try db.execute(sql: "INSERT INTO t VALUES (?, ?)", arguments: [i, "value \((i * 7919) % 3000)"]) }
            try db.execute(sql: "UPDATE t SET v = v || '!' WHERE k % 3 = 0")
            #expect(try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t WHERE v LIKE '%!'") == 1000)
        }
        try writer!.close()
        writer = nil
        let again = try open(path, synchronous: "FULL")
        #expect(try again.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") } == 3000)
        #expect(try again.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t WHERE v LIKE '%!'") } == 1000)
        #expect(try again.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") } == "ok")
        try again.close()
    }

    /// A buffered write that fails (a full disk) while a transaction goes on: here the frames
    /// its first insert spilled are still in the buffer when the second statement reads one of
    /// them back, the flush that read forces fails, and SQLite, told SQLITE_FULL, undoes only
    /// that statement. Those frames never reached the file, so the transaction must not commit
    /// (it did, over them, and the table read back wrong); it fails, is rolled back, and the
    /// next transaction commits as usual.
    @Test func aFailedBufferedWriteMakesItsTransactionFail() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("full.sqlite")
        let queue = try open(path, synchronous: "FULL", cachePages: 10)
        try queue.writeWithoutTransaction { db in try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)") }
        var commitError: (any Error)?
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "BEGIN IMMEDIATE")
            try db.execute(sql: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) "
                           + "INSERT INTO t SELECT i, randomblob(1000) FROM n")
            #expect(slam_walbuffer_fail_next_write(db.sqliteConnection, SQLITE_FULL) == SQLITE_OK)
            do {
                try db.execute(sql: "INSERT INTO t SELECT k + 1000, v FROM t")
                Issue.record("the statement whose read forced the failing flush succeeded")
            } catch let error as DatabaseError {
                #expect(error.resultCode == .SQLITE_FULL, "\(error)")
            }
            do {
                try db.execute(sql: "COMMIT")
            } catch {
                commitError = error
            }
            if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") }
        }
        #expect(commitError != nil, "a transaction whose frames never reached the WAL committed")
        #expect(try queue.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") } == 0)
        try queue.write { db in try db.execute(sql: "INSERT INTO t VALUES (1, x'00')") }
        try queue.close()
        let again = try open(path, synchronous: "FULL")
        #expect(try again.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t") } == 1)
        #expect(try again.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") } == "ok")
        try again.close()
    }

    /// In locking_mode EXCLUSIVE the WAL's write lock never goes through shared memory, where
    /// the VFS sees a transaction end: a failed write there is answered once, and the next
    /// transaction of the connection commits (kept, it failed every one after).
    @Test func aFailedWriteInExclusiveModeFailsOnlyItsTransaction() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let queue = try DatabaseQueue(path: dir.path("exclusive.sqlite"))
        defer { try? queue.close() }
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA locking_mode = EXCLUSIVE")
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY)")
            #expect(slam_walbuffer_fail_next_write(db.sqliteConnection, SQLITE_FULL) == SQLITE_OK)
        }
        #expect(throws: DatabaseError.self) { try queue.write { db in try db.execute(sql: "INSERT INTO t VALUES (1)") } }
        try queue.write { db in try db.execute(sql: "INSERT INTO t VALUES (2)") }
        #expect(try queue.read { db in try Int.fetchAll(db, sql: "SELECT k FROM t") } == [2])
    }
}

/// The cases where SQLite writes to the WAL after a transaction's commit frame and before it
/// publishes the commit (found by a review of the shim against SQLite's wal.c): nothing may be
/// left in the buffer then. Driven through SQLite's C API, for URI parameters GRDB does not pass.
@Suite("The WAL-buffering VFS after the commit frame")
struct WalBufferCommitTests {
    final class Connection {
        let handle: OpaquePointer
        init(_ uri: String) throws {
            var h: OpaquePointer?
            let rc = sqlite3_open_v2(uri, &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, nil)
            guard rc == SQLITE_OK, let h else { throw DatabaseError(resultCode: ResultCode(rawValue: rc)) }
            handle = h
        }
        deinit { sqlite3_close_v2(handle) }
        func exec(_ sql: String) throws {
            var message: UnsafeMutablePointer<CChar>?
            let rc = sqlite3_exec(handle, sql, nil, nil, &message)
            defer { sqlite3_free(message) }
            guard rc == SQLITE_OK else {
                throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: message.map { String(cString: $0) })
            }
        }
        func int(_ sql: String) throws -> Int64 {
            var statement: OpaquePointer?
            var rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
            guard rc == SQLITE_OK else { throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(handle))) }
            defer { sqlite3_finalize(statement) }
            rc = sqlite3_step(statement)
            guard rc == SQLITE_ROW else { throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(handle))) }
            return sqlite3_column_int64(statement, 0)
        }
        /// `PRAGMA integrity_check` says ok.
        var isIntact: Bool {
            get throws { try int("SELECT COUNT(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'") == 1 }
        }
        /// Opens a copy of `path` and its WAL as they are now, which is what a crash of this
        /// process would leave (no -shm: the copy recovers from the WAL).
        static func crashCopy(of path: String, in dir: TemporaryDirectory) throws -> Connection {
            let copy = dir.path("copy.sqlite")
            try FileManager.default.copyItem(atPath: path, toPath: copy)
            try FileManager.default.copyItem(atPath: path + "-wal", toPath: copy + "-wal")
            return try Connection(copy)
        }
    }

    /// An INSERT of rows 1...count into t, each value `width` digits long.
    func insertRows(_ count: Int, width: Int) -> String {
        """
        WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < \(count))
        INSERT INTO t SELECT i, printf('%0\(width)d', i) FROM c;
        """
    }

    @Test("a transaction that rewrites its spilled frames (SQLite recomputes their checksums after the commit frame) is whole in the files once COMMIT returns, with synchronous NORMAL")
    func checksumsRewritten() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("rewrite.sqlite")
        let writer = try Connection(path)
        try writer.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = 10;")
        try writer.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        // With a 10-page cache the inserts spill to the WAL; the update then changes pages whose
        // frames this transaction already wrote, so SQLite rewrites them in place and, at the
        // commit, rewrites the frame headers' checksums from the first one changed.
        try writer.exec("BEGIN; " + insertRows(300, width: 200) + " UPDATE t SET v = v || '!' WHERE k % 2 = 0; COMMIT;")
        // The copy must recover the whole transaction from the WAL.
        let recovered = try Connection.crashCopy(of: path, in: dir)
        #expect(try recovered.int("SELECT COUNT(*) FROM t") == 300)
        #expect(try recovered.int("SELECT COUNT(*) FROM t WHERE v LIKE '%!'") == 150)
        #expect(try recovered.isIntact)
    }

    @Test("with powersafe overwrite off (padding frames written after the commit frame's sync) another connection reads each commit, with synchronous FULL")
    func paddingFrames() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("padding.sqlite")
        let writer = try Connection("file:" + path + "?psow=0")
        try writer.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        try writer.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        let reader = try Connection(path)
        for i in 1...20 {
            try writer.exec("INSERT INTO t VALUES (\(i), printf('%0\(100 * i)d', \(i)))")
            #expect(try reader.int("SELECT COUNT(*) FROM t") == Int64(i))
            #expect(try reader.int("SELECT SUM(length(v)) FROM t") == Int64((1...i).reduce(0) { $0 + 100 * $1 }))
        }
        #expect(try Connection.crashCopy(of: path, in: dir).int("SELECT COUNT(*) FROM t") == 20)
    }

    @Test("frames of a transaction that spilled and rolled back reach the file before the write lock goes, never later over another writer's commits")
    func rollbackThenAnotherWriter() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("rollback.sqlite")
        let a = try Connection(path)
        try a.exec("PRAGMA journal_mode = WAL; PRAGMA cache_size = 10;")
        try a.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        // A spills frames to the WAL mid-transaction, then rolls back: SQLite says nothing to
        // the WAL file, and the frames' offsets are free for the next writer.
        try a.exec("BEGIN; " + insertRows(2000, width: 200) + " ROLLBACK;")
        let b = try Connection(path)
        try b.exec(insertRows(300, width: 100))
        // A reads (a read of its WAL file would flush whatever it still held over B's frames).
        #expect(try a.int("SELECT COUNT(*) FROM t") == 300)
        #expect(try a.isIntact)
        try a.exec("PRAGMA wal_checkpoint(PASSIVE)")
        let fresh = try Connection(path)
        #expect(try fresh.int("SELECT COUNT(*) FROM t WHERE length(v) = 100") == 300)
        #expect(try fresh.isIntact)
    }

    @Test("the same after locking_mode EXCLUSIVE, where the WAL's write lock never goes through shared memory")
    func rollbackInExclusiveMode() throws {
        let dir = try directoryWithBufferRegistered()
        defer { dir.remove() }
        let path = dir.path("exclusive.sqlite")
        var a: Connection? = try Connection(path)
        try a!.exec("PRAGMA journal_mode = WAL; PRAGMA cache_size = 10;")
        try a!.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        try a!.exec("PRAGMA locking_mode = EXCLUSIVE")
        try a!.exec("BEGIN; " + insertRows(2000, width: 200) + " ROLLBACK;")
        try a!.exec("PRAGMA locking_mode = NORMAL")
        #expect(try a!.int("SELECT COUNT(*) FROM t") == 0)   // leaves EXCLUSIVE: unlocks the file
        let b = try Connection(path)
        try b.exec(insertRows(500, width: 100))
        a = nil   // closing A must not write its rolled-back frames over B's
        let fresh = try Connection(path)
        #expect(try fresh.int("SELECT COUNT(*) FROM t WHERE length(v) = 100") == 500)
        #expect(try fresh.isIntact)
    }
}
