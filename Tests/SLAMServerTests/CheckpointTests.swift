import Foundation
import GRDB
import SLAMJSON
@testable import SLAMServer
import SLAMTesting
import Testing

@Suite("WAL checkpoints")
struct CheckpointTests {
    @Test("under a stream of commits the checkpointer thread checkpoints and the WAL starts over, staying small")
    func walStaysBounded() throws {
        // A tiny threshold: the writer's hook asks for a PASSIVE checkpoint past 8 frames and
        // checkpoints itself past 32; the TRUNCATE backstop is out of reach.
        let server = try TestServer { config in
            config.walAutocheckpointPages = 8
            config.walTruncateBytes = 1 << 40
        }
        defer { server.shutdown() }
        let client = try server.client()
        defer { client.close() }
        let s = Scenario(client)
        for i in 0..<300 { _ = try s.must("RegisterUser", ["name": .string("fan \(i)")]) }
        let stats = try s.must("GetStats")
        #expect((stats["walPassiveCheckpoints"]?.int64Value ?? 0) > 0, "\(stats)")
        #expect(stats["walCheckpoints"]?.int64Value == 0, "\(stats)")
        // 300 commits of several pages each would make a WAL of megabytes had it never started
        // over; the file keeps the largest extent it reached.
        let wal = try FileManager.default.attributesOfItem(atPath: server.server.config.dbPath + "-wal")[.size] as? Int ?? -1
        #expect(wal > 0 && wal < 1 << 20, "WAL file of \(wal) bytes")
    }
}

@Suite("The writer's WAL hook")
struct WalHookTests {
    /// Commits `count` transactions of a few pages each on `db`'s connection.
    func commit(_ queue: DatabaseQueue, _ count: Int, from start: Int = 0) throws {
        for i in start..<start + count {
            try queue.write { db in
                try db.execute(sql: "INSERT INTO t (k, v) VALUES (?, ?)", arguments: [i, String(repeating: "x", count: 3000)])
            }
        }
    }

    func walBytes(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int) ?? -1
    }

    @Test("past the soft limit it asks the checkpointer; past the hard one it checkpoints, and the WAL starts over")
    func softAndHard() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-walhook-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("hook.sqlite").path
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        }
        // The checkpointer is never started: requests are only recorded, so every checkpoint
        // below is the hook's own.
        let checkpointer = Checkpointer(path: path, config: ServerConfig(), stats: ServerStats())
        let hook = WalHook(checkpointer: checkpointer, soft: 16, hard: 64)
        try queue.writeWithoutTransaction { db in hook.install(on: db) }
        defer { withExtendedLifetime(hook) {} }

        try commit(queue, 1)
        #expect(!checkpointer.passiveRequested.get(), "below the soft limit nothing is asked")
        try commit(queue, 20, from: 1)
        #expect(checkpointer.passiveRequested.get(), "past the soft limit a PASSIVE checkpoint is asked for")
        // 400 commits of a page or two each: without the hook's own checkpoints the WAL would
        // pass 1.6 MB; with them it starts over past 64 frames.
        try commit(queue, 400, from: 21)
        let bytes = walBytes(path)
        #expect(bytes > 0 && bytes < 100 * (4096 + 24), "WAL file of \(bytes) bytes")
        try queue.close()
    }
}
