import CWalBuffer
import Foundation
import GRDB
import SLAMStore
import Testing

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

    func setUp() throws -> TemporaryDirectory {
        let dir = try TemporaryDirectory()
        // Registers the VFS, as the server does.
        _ = try EventStore.open(path: dir.path("store.sqlite"))
        #expect(slam_walbuffer_register() == 0)
        return dir
    }

    @Test("a transaction of many pages reaches the WAL in a few writes, and reads back whole")
    func gathersWrites() throws {
        let dir = try setUp()
        defer { dir.remove() }
        let path = dir.path("gather.sqlite")
        let writer = try open(path, synchronous: "FULL")
        try writer.writeWithoutTransaction { db in try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)") }
        let requested = slam_walbuffer_requested_writes(), written = slam_walbuffer_file_writes()
        try writer.write { db in
            for i in 0..<300 { try db.execute(sql: "INSERT INTO t VALUES (?, ?)", arguments: [i, String(repeating: "v", count: 1000)]) }
        }
        // About 80 pages: 160 writes asked of the VFS (a header and a page each). Other tests
        // may write at the same time, so the counts are compared loosely but could not pass
        // without the gathering (every asked write would be a file write).
        let asked = slam_walbuffer_requested_writes() - requested
        let reached = slam_walbuffer_file_writes() - written
        #expect(asked >= 150, "asked \(asked)")
        #expect(reached * 4 < asked, "asked \(asked), reached the file \(reached)")
        let reader = try DatabaseQueue(path: path)
        #expect(try reader.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t WHERE length(v) = 1000") } == 300)
        #expect(try reader.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") } == "ok")
        try reader.close()
        try writer.close()
    }

    @Test("with synchronous NORMAL (no sync at commit) another connection sees each commit at once")
    func visibleWithoutSync() throws {
        let dir = try setUp()
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
        let dir = try setUp()
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
}
