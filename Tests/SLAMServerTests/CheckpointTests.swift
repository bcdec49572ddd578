import Foundation
import GRDB
import SLAMJSON
@testable import SLAMServer
import SLAMTesting
import Testing
import ZMQ

@Suite("WAL checkpoints")
struct CheckpointTests {
    @Test("under a stream of commits the checkpointer thread checkpoints and the WAL starts over, staying small")
    func walStaysBounded() throws {
        // A tiny threshold: the writer's hook asks for a PASSIVE checkpoint every 8 frames and
        // lets the WAL start over past 64; the TRUNCATE backstop is out of reach.
        let server = try TestServer { config in
            config.walAutocheckpointPages = 8
            config.walTruncateBytes = 1 << 40
        }
        defer { server.shutdown() }
        let client = try server.client()
        defer { client.close() }
        let s = Scenario(client)
        // The WAL starts over only when no reader is on it, and the relay reads after every
        // commit: on a loaded machine, where the relay (at nice +10) may be descheduled in the
        // middle of a read, a stream of commits that does not wait for it grows the WAL as long
        // as it is held (which the TRUNCATE backstop, off here, is for). So each command waits
        // until its event is published: the relay's read is over by then, as a subscriber that
        // keeps up would have it.
        let sub = try server.context.socket(.sub)
        defer { sub.close() }
        try sub.setLinger(ms: 0)
        try sub.connect(server.eventsEndpoint)
        try sub.subscribe("")
        try sub.setReceiveTimeout(ms: 60_000)
        // Joined once anything arrives (the heartbeat, every second).
        _ = try #require(try sub.receive(), "nothing published")
        for i in 0..<300 {
            let r = try s.call("RegisterUser", ["name": .string("fan \(i)")])
            let position = try #require(r.ok ? r.position : nil, "RegisterUser failed: \(r)")
            var seq: Int64 = 0
            while seq < position {
                let frames = try #require(try sub.receive(), "event \(position) not published")
                if frames[0] == Array("$heartbeat".utf8) { continue }
                seq = try JSONParser.parse(frames[1])["seq"]?.int64Value ?? 0
            }
        }
        let stats = try s.must("GetStats")
        #expect((stats["walPassiveCheckpoints"]?.int64Value ?? 0) > 0, "\(stats)")
        #expect((stats["walRestarts"]?.int64Value ?? 0) >= 2, "\(stats)")
        #expect(stats["walCheckpoints"]?.int64Value == 0, "\(stats)")
        // 300 commits of several pages each would make a WAL of about 10 MB had it never
        // started over; the file keeps the largest extent it reached: up to 128 frames here
        // (past which the writer checkpoints without waiting for the checkpointer thread), a
        // few more if the checkpointer's own PASSIVE checkpoint is in the way of a restart.
        let wal = try FileManager.default.attributesOfItem(atPath: server.server.config.dbPath + "-wal")[.size] as? Int ?? -1
        #expect(wal > 0 && wal < 2 << 20, "WAL file of \(wal) bytes")
    }
}

@Suite("A clean stop")
struct CleanStopTests {
    /// After SIGINT/SIGTERM (`stop`, `wait`) the WAL is copied into the database file and
    /// emptied: the file alone holds every commit, so a copy of it is a whole backup.
    @Test func leavesEveryCommitInTheDatabaseFileAndTheWALEmpty() throws {
        let server = try TestServer()
        let path = server.server.config.dbPath
        var removed = false
        defer { if !removed { server.shutdown() } }
        let client = try server.client()
        let s = Scenario(client)
        for i in 0..<50 { _ = try s.must("RegisterUser", ["name": .string("fan \(i)")]) }
        let head = try #require(try s.must("GetStats")["headSeq"]?.int64Value)
        client.close()
        server.shutdown(removeFiles: false)
        defer { try? FileManager.default.removeItem(at: server.directory) }
        removed = true
        let wal = (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? 0
        #expect(wal == 0, "WAL of \(wal) bytes after a clean stop")
        // The database file alone, without its WAL and shared memory, holds every event.
        let alone = server.directory.appendingPathComponent("copy.sqlite").path
        try FileManager.default.copyItem(atPath: path, toPath: alone)
        let queue = try DatabaseQueue(path: alone)
        defer { try? queue.close() }
        #expect(try queue.read { db in try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM events") } == head)
    }
}

@Suite("The writer's WAL hook")
struct WalHookTests {
    /// A database in WAL mode with one table, the hook on its connection, and a checkpointer
    /// that is never started: its PASSIVE checkpoints run only when a test calls
    /// `passiveIfRequested`, on a connection of its own.
    final class Fixture {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-walhook-\(UUID().uuidString)")
        let path: String
        let queue: DatabaseQueue
        let checkpointQueue: DatabaseQueue
        let stats = ServerStats()
        let checkpointer: Checkpointer
        let hook: WalHook
        private var next = 0

        init(soft: Int32, hard: Int32) throws {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            path = dir.appendingPathComponent("hook.sqlite").path
            queue = try DatabaseQueue(path: path)
            try queue.writeWithoutTransaction { db in
                _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
            }
            checkpointQueue = try DatabaseQueue(path: path)
            checkpointer = Checkpointer(path: path, config: ServerConfig(), stats: stats)
            hook = WalHook(checkpointer: checkpointer, soft: soft, hard: hard)
            queue.writeWithoutTransaction { db in hook.install(on: db) }
        }

        deinit {
            queue.inDatabase { db in hook.uninstall(from: db) }
            try? queue.close()
            try? checkpointQueue.close()
            try? FileManager.default.removeItem(at: dir)
        }

        /// Commits one transaction of three pages (a leaf, the root, page 1), then does what the writer does after a
        /// batch; returns whether the writer checkpointed.
        @discardableResult
        func commit() throws -> Bool {
            try write()
            return afterBatch()
        }

        func write() throws {
            next += 1
            try queue.write { db in
                try db.execute(sql: "INSERT INTO t (k, v) VALUES (?, ?)", arguments: [next, String(repeating: "x", count: 3000)])
            }
        }

        func afterBatch() -> Bool { queue.inDatabase { db in hook.checkpointIfDue(db) } }

        var walBytes: Int { (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? -1 }
    }

    @Test("it asks for a PASSIVE checkpoint each time the WAL has grown by the soft limit, not after every commit")
    func passiveEverySoftFrames() throws {
        let f = try Fixture(soft: 16, hard: 10_000)
        var askedAt: [Int32] = []
        for _ in 0..<60 {
            try f.commit()
            if f.checkpointer.passiveRequested.exchange(false) { askedAt.append(f.hook.lastFrames) }
        }
        #expect(askedAt.count >= 3, "asked at \(askedAt)")
        #expect((askedAt.first ?? 0) >= 16, "asked at \(askedAt)")
        for (a, b) in zip(askedAt, askedAt.dropFirst()) {
            #expect(b - a >= 16 && b - a < 16 + 4, "asked at \(askedAt)")
        }
    }

    /// Commits until the hook marks a restart due, clearing the PASSIVE checkpoints it asks for
    /// on the way (all but the last, which the restart waits for).
    func commitUntilRestartDue(_ f: Fixture) throws {
        while !f.hook.restartDue {
            #expect(try !f.commit(), "the writer checkpoints only once a restart is due")
            #expect(f.hook.lastFrames < 64 + 4)
            if !f.hook.restartDue { _ = f.checkpointer.passiveRequested.exchange(false) }
        }
        #expect(f.checkpointer.passiveRequested.get(), "the hook asks for the PASSIVE checkpoint the restart waits for")
    }

    /// Opens a read transaction on a connection of its own: a snapshot that stops checkpoints.
    func snapshot(_ path: String) throws -> DatabaseQueue {
        var config = Configuration()
        config.allowsUnsafeTransactions = true
        let reader = try DatabaseQueue(path: path, configuration: config)
        try reader.inDatabase { db in
            try db.beginTransaction(.deferred)
            _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM t")
        }
        return reader
    }

    @Test("past the hard limit the writer waits for the checkpointer's next PASSIVE checkpoint, then checkpoints the rest itself, and the WAL starts over")
    func restartAfterThePassive() throws {
        let f = try Fixture(soft: 16, hard: 64)
        try commitUntilRestartDue(f)
        // A reader's snapshot, then more commits: the checkpointer's PASSIVE checkpoint stops at
        // the snapshot, as it stops at the last commit it saw when the writer keeps appending.
        let reader = try snapshot(f.path)
        #expect(try !f.commit(), "the checkpointer has not run its PASSIVE checkpoint yet")
        #expect(f.checkpointer.passiveIfRequested(f.checkpointQueue))
        #expect(f.stats.passiveCheckpoints.get() == 1)
        #expect(f.checkpointer.lastCheckpointed > 0 && f.checkpointer.lastCheckpointed < f.checkpointer.lastWalFrames,
                "stopped short: \(f.checkpointer.lastCheckpointed) of \(f.checkpointer.lastWalFrames) frames")
        try reader.inDatabase { db in try db.commit() }
        try reader.close()
        let before = f.hook.lastFrames
        #expect(try f.commit(), "the writer checkpoints once the PASSIVE checkpoint is done")
        #expect(!f.hook.restartDue)
        try f.commit()
        #expect(f.hook.lastFrames < 8, "the WAL started over: \(f.hook.lastFrames) frames after \(before)")
    }

    @Test("when the checkpointer's PASSIVE checkpoint reaches the WAL's end, the WAL starts over without the writer's")
    func restartByThePassiveAlone() throws {
        let f = try Fixture(soft: 16, hard: 64)
        try commitUntilRestartDue(f)
        #expect(f.checkpointer.passiveIfRequested(f.checkpointQueue))
        #expect(f.checkpointer.lastCheckpointed == f.checkpointer.lastWalFrames)
        #expect(try !f.commit(), "the WAL started over at this commit: nothing is left for the writer")
        #expect(f.hook.lastFrames < 8 && !f.hook.restartDue, "\(f.hook.lastFrames) frames")
    }

    @Test("a reader on the WAL when the restart was due makes the writer checkpoint again after the next commits, without the checkpointer, a few times")
    func retryAfterAReader() throws {
        let f = try Fixture(soft: 16, hard: 64)
        try commitUntilRestartDue(f)
        // A reader on the WAL's last commit, as the relay reads right after each commit: the
        // checkpoints finish, but it keeps the next commit from starting the WAL over.
        var reader = try snapshot(f.path)
        #expect(f.checkpointer.passiveIfRequested(f.checkpointQueue))
        #expect(f.checkpointer.lastCheckpointed == f.checkpointer.lastWalFrames)
        for round in 0..<3 {
            let frames = f.hook.lastFrames
            try f.write()
            #expect(f.hook.lastFrames > frames, "round \(round): the reader kept the WAL from starting over")
            try reader.inDatabase { db in try db.commit() }
            try reader.close()
            reader = try snapshot(f.path)
            _ = f.checkpointer.passiveRequested.exchange(false)
            #expect(f.afterBatch(), "round \(round): the writer checkpoints after the commit")
            #expect(!f.checkpointer.passiveRequested.get(), "round \(round): without asking the checkpointer")
        }
        try reader.inDatabase { db in try db.commit() }
        try reader.close()
        #expect(try !f.commit())
        #expect(f.hook.lastFrames < 8, "the WAL started over: \(f.hook.lastFrames) frames")
    }

    @Test("while a reader keeps an old snapshot, the writer checkpoints a few times per soft limit of new frames, not after every batch")
    func noRestartLoop() throws {
        let f = try Fixture(soft: 64, hard: 128)
        try f.commit()
        let reader = try snapshot(f.path)
        var writerCheckpoints = 0
        var commitsPastHard = 0
        for _ in 0..<200 {
            if try f.commit() { writerCheckpoints += 1 }
            if f.hook.lastFrames >= 128 { commitsPastHard += 1 }
            // A checkpointer that answers at once.
            f.checkpointer.passiveIfRequested(f.checkpointQueue)
        }
        let frames = f.hook.lastFrames
        try reader.inDatabase { db in try db.commit() }
        try reader.close()
        #expect(frames > 128 + 3 * 64, "the WAL could not start over: \(frames) frames")
        // At most `directRetries` + 1 checkpoints each time the WAL grows by the soft limit.
        let bound = (f.hook.directRetries + 1) * (Int(frames - 128) / 64 + 1)
        #expect(writerCheckpoints >= 2 && writerCheckpoints <= bound,
                "\(writerCheckpoints) writer checkpoints over \(commitsPastHard) commits past the hard limit, \(frames) frames")
        #expect(bound < commitsPastHard / 2, "the bound \(bound) tells backing off from a checkpoint after every commit")
    }

    @Test("a reader that keeps the WAL from starting over: the TRUNCATE backstop waits for it briefly and never holds off the writer for long")
    func truncateBackstopDoesNotStallTheWriter() throws {
        let server = try TestServer { config in
            config.walTruncateBytes = 256 * 1024
        }
        defer { server.shutdown() }
        let client = try server.client()
        defer { client.close() }
        let s = Scenario(client)
        _ = try s.must("RegisterUser", ["name": "first"])
        // A reader on an old snapshot: the WAL cannot start over, and grows past the backstop.
        var readerConfig = Configuration()
        readerConfig.allowsUnsafeTransactions = true
        let reader = try DatabaseQueue(path: server.directory.appendingPathComponent("slam.sqlite").path, configuration: readerConfig)
        try reader.inDatabase { db in
            try db.beginTransaction(.deferred)
            _ = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events")
        }
        func stat(_ key: String) throws -> Int64 { try s.must("GetStats")[key]?.int64Value ?? -1 }
        var n = 0
        while try stat("walTruncatesBlocked") < 2, n < 100_000 {  // two attempts, a retry apart, both held off
            _ = try s.must("RegisterUser", ["name": .string("fan \(n)")])
            n += 1
        }
        #expect(try stat("walTruncatesBlocked") >= 2)
        // Longer than the writer's own busy timeout (5 s): a TRUNCATE that waited for the reader
        // as long as it liked would fail the writer's batches (INTERNAL) meanwhile.
        let until = Date().addingTimeInterval(6)
        while Date() < until {
            let r = try client.call("RegisterUser", ["name": .string("fan \(n)")], key: UUID().uuidString)
            #expect(r.ok, "\(r.body)")
            n += 1
        }
        #expect(try stat("walCheckpoints") == 0, "the reader kept every TRUNCATE from completing")
        try reader.inDatabase { db in try db.commit() }
        try reader.close()
        // Reader gone: the next attempt completes.
        #expect(try eventually { try stat("walCheckpoints") >= 1 }, "a TRUNCATE checkpoint once the reader left")
    }

    #if os(Linux)
    /// The process's descriptors of `path` (Linux: /proc/self/fd).
    static func descriptors(of path: String) throws -> Int {
        let real = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\($0)")) == real
        }.count
    }
    #endif

    #if os(Linux)
    @Test("the database file is synced through SQLite's own handle: no descriptor of the checkpointer's own, whose close would drop the process's POSIX locks on the file")
    func syncHoldsNoDescriptorOfItsOwn() throws {
        let f = try Fixture(soft: 16, hard: 64)
        try f.checkpointQueue.inDatabase { db in _ = try Int.fetchOne(db, sql: "SELECT count(*) FROM t") }
        let before = try Self.descriptors(of: f.path)
        #expect(before >= 2, "the two connections' descriptors")
        var failures: [String] = []
        f.checkpointer.ioFailure = { failures.append($0) }
        f.checkpointer.syncDatabaseFile(f.checkpointQueue)
        #expect(failures.isEmpty, "\(failures)")
        #expect(try Self.descriptors(of: f.path) == before)
    }
    #endif

    @Test("a failed sync of the database file, or an I/O error in a checkpoint, goes to ioFailure (by default: stop at once)")
    func ioFailureIsFatal() throws {
        let f = try Fixture(soft: 16, hard: 64)
        var failures: [String] = []
        f.checkpointer.ioFailure = { failures.append($0) }
        f.checkpointer.syncDatabaseFile(f.checkpointQueue)
        #expect(failures.isEmpty, "a sync that succeeds: \(failures)")
        // A failed write-back: SQLite's sync reports SQLITE_IOERR_FSYNC.
        let sync = f.checkpointer.syncMainFile
        f.checkpointer.syncMainFile = { _ in (ResultCode.SQLITE_IOERR_FSYNC.rawValue, EIO) }
        f.checkpointer.syncDatabaseFile(f.checkpointQueue)
        // Not an I/O error (no main file, say): logged, not fatal.
        f.checkpointer.syncMainFile = { _ in (ResultCode.SQLITE_NOTFOUND.rawValue, 0) }
        f.checkpointer.syncDatabaseFile(f.checkpointQueue)
        f.checkpointer.syncMainFile = sync
        #expect(failures.count == 1 && failures.first?.contains("syncing") == true, "\(failures)")
        #expect(failures.first?.contains(String(cString: strerror(EIO))) == true, "the system's error: \(failures)")
        // A checkpoint's I/O error goes there too; any other error is only logged.
        f.checkpointer.checkpointFailed("PASSIVE", code: ResultCode.SQLITE_IOERR_FSYNC.rawValue, "disk I/O error")
        f.checkpointer.checkpointFailed("PASSIVE", code: ResultCode.SQLITE_FULL.rawValue, "database or disk is full")
        // A refused write (a quota reached as the file grows): nothing copied counts; logged.
        f.checkpointer.checkpointFailed("PASSIVE", code: ResultCode.SQLITE_IOERR_WRITE.rawValue, "disk I/O error")
        #expect(failures.count == 2 && failures.last == "WAL checkpoint (PASSIVE): disk I/O error", "\(failures)")
        #expect(Checkpointer.isIOError(ResultCode.SQLITE_IOERR.rawValue) && Checkpointer.isIOError(ResultCode.SQLITE_IOERR_FSYNC.rawValue))
        #expect(!Checkpointer.isIOError(ResultCode.SQLITE_BUSY.rawValue) && !Checkpointer.isIOError(ResultCode.SQLITE_OK.rawValue))
    }

    @Test("if the checkpointer does not answer, the writer checkpoints past twice the hard limit")
    func restartWithoutTheCheckpointer() throws {
        let f = try Fixture(soft: 16, hard: 64)
        var restarts = 0
        var peak: Int32 = 0
        // 400 commits of three pages each: without the writer's checkpoints the WAL would pass
        // 4.9 MB.
        for _ in 0..<400 {
            if try f.commit() {
                #expect(f.hook.lastFrames >= 128, "the writer waited for twice the hard limit")
                restarts += 1
            }
            peak = max(peak, f.hook.lastFrames)
        }
        #expect(restarts >= 2)
        #expect(peak < 128 + 4)
        #expect(f.walBytes > 0 && f.walBytes < 140 * (4096 + 24), "WAL file of \(f.walBytes) bytes")
    }
}
