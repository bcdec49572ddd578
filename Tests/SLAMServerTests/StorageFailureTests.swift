import CWalBuffer
import Foundation
import GRDB
import GRDBSQLite
import SLAMClient
import SLAMDomain
@testable import SLAMServer
import SLAMTesting
import Testing

@Suite("Storage failures in the writer's commit")
struct StorageFailureTests {
    /// A server whose only batches are the commands' (no sweeps), with `ioFailure` a no-op, and a
    /// client of it.
    private func withCommandBatchesOnly(_ body: (TestServer, SLAMClient) throws -> Void) throws {
        try withServer(configure: { c in
            c.sweepInterval = 3_600_000
            c.ioFailure = { _ in }
        }) { ts in
            let c = try ts.client()
            defer { c.close() }
            try body(ts, c)
        }
    }

    /// The next `count` replies on `client`, by request id.
    private func receive(_ count: Int, on client: SLAMClient) throws -> [String: Reply] {
        var replies: [String: Reply] = [:]
        while replies.count < count {
            guard let r = try client.receive(timeoutMs: 30_000) else { throw ClientError("no reply") }
            if let id = r.requestId { replies[id] = r }
        }
        return replies
    }

    /// Arms a failure of the next write to the writer connection's WAL (the connection the
    /// writer's batches use), with SQLite result code `code`.
    private func failNextWALWrite(_ ts: TestServer, _ code: Int32) throws {
        let rc = try ts.server.store.pool.writeWithoutTransaction { db in slam_walbuffer_fail_next_write(db.sqliteConnection, code) }
        #expect(rc == SQLITE_OK)
    }

    /// An audit put the store on a filesystem whose write-back failed with EIO: the writer
    /// answered INTERNAL and went on, and once writes worked again it acknowledged commits the
    /// filesystem then lost (a failed write-back is reported once; a later sync succeeds above
    /// the hole). An I/O error of a commit whose outcome is unknown (a failed sync; a wal-index
    /// region a full disk cannot grow, after the commit frame was synced) now goes to
    /// `ServerConfig.ioFailure`, which by default stops the process at once, answering nothing,
    /// as a failed sync in a checkpoint does. A full disk, or a write refused (a quota), is not:
    /// INTERNAL, and the server goes on (the retry executes).
    @Test("an I/O error of a commit whose outcome is unknown goes to ioFailure (by default: stop at once); a full disk or a refused write does not")
    func ioErrorInACommitIsFatal() throws {
        let failures = Shared<[String]>([])
        // No sweeps: the only batches are the commands', so the armed failure meets the command's.
        try withServer(configure: { c in
            c.sweepInterval = 3_600_000
            c.ioFailure = { message in failures.update { $0.append(message) } }
        }) { ts in
            let c = try ts.client()
            defer { c.close() }

            try failNextWALWrite(ts, SQLITE_FULL)
            let full = try c.call("RegisterUser", ["name": "disk full"], key: "storage-1")
            #expect(full.code == "INTERNAL" && full.replayed == false, "\(full.body)")
            #expect(failures.get().isEmpty, "a full disk is not fatal: \(failures.get())")
            let retry = try c.call("RegisterUser", ["name": "disk full"], key: "storage-1")
            #expect(retry.ok && retry.replayed == false, "not recorded: the retry executes: \(retry.body)")

            // A write refused for a reason that is not a full disk (a quota reached, EDQUOT): the
            // same, nothing was written.
            try failNextWALWrite(ts, ResultCode.SQLITE_IOERR_WRITE.rawValue)
            let quota = try c.call("RegisterUser", ["name": "quota"], key: "storage-3")
            #expect(quota.code == "INTERNAL", "\(quota.body)")
            #expect(failures.get().isEmpty, "a refused write is not fatal: \(failures.get())")

            // A failed sync, and a wal-index region that cannot grow (SQLite reports it after the
            // commit frame is synced), each as the commit's error (injected as the WAL's write's).
            for (n, code) in [ResultCode.SQLITE_IOERR_FSYNC, .SQLITE_IOERR_SHMSIZE].enumerated() {
                try failNextWALWrite(ts, code.rawValue)
                let io = try c.call("RegisterUser", ["name": .string("I/O error \(n)")], key: "storage-io-\(n)")
                #expect(io.code == "INTERNAL", "\(io.body)")  // ioFailure replaced: the test server goes on
                let recorded = failures.get()
                #expect(recorded.count == n + 1, "\(code): \(recorded)")
                #expect(recorded.last?.contains("stopping at once") == true, "\(recorded)")
            }
        }
    }

    /// An audit filled the disk: every retry of an acknowledged command was answered INTERNAL,
    /// because the batch it came in failed to commit (it records the relay's progress, a write).
    /// PROTOCOL.md section 3: only the checks before the idempotency record can pre-empt a replay.
    /// A reply that does not depend on the batch's commit now goes out as decided: a replay of a
    /// record committed before the batch; a command executed in it is INTERNAL.
    @Test("a replay in a batch that fails to commit is still answered with the recorded reply")
    func aReplayStandsWithoutItsBatch() throws {
        try withCommandBatchesOnly { ts, c in
            let first = try c.call("RegisterUser", ["name": "acknowledged"], key: "replay-1")
            #expect(first.ok)
            // Once the relay has published that event, the next batch records its progress (a
            // write to meta), so it has a write to fail even if it holds nothing but the replay.
            let published = try eventually {
                let stats = try c.call("GetStats").body
                return stats["publishedSeq"]?.int64Value == stats["headSeq"]?.int64Value
            }
            #expect(published)
            try failNextWALWrite(ts, SQLITE_FULL)
            // The replay and a new command, pipelined: in one batch or two, the first batch fails.
            let replayId = try c.send("RegisterUser", body: Array(#"{"name":"acknowledged"}"#.utf8), key: "replay-1")
            let newId = try c.send("RegisterUser", body: Array(#"{"name":"new"}"#.utf8), key: "replay-2")
            let replies = try receive(2, on: c)
            let replay = try #require(replies[replayId]), new = try #require(replies[newId])
            #expect(replay.ok && replay.replayed == true && replay.position == first.position, "\(replay.body)")
            #expect(replay.body == first.body, "the recorded reply")
            // The new command ran in the failed batch (INTERNAL) or in the next one (ok).
            #expect(new.code == "INTERNAL" || new.ok, "\(new.body)")
        }
    }

    /// A batch that fails before it reaches a command (an earlier one's idempotency record could
    /// not be written, so the whole batch fails): a replay among the commands it never reached is
    /// still answered from its record, committed before the batch, read outside any transaction.
    /// The writer is held (another connection holds the write lock) while the failing command
    /// and the replay queue up behind it, so that one batch takes both, in that order.
    @Test("a replay the failed batch never reached is answered from its record")
    func aReplayTheBatchNeverReached() throws {
        try withCommandBatchesOnly { ts, c in
            let early = try c.call("RegisterUser", ["name": "early"], key: "unreached-0")
            let first = try c.call("RegisterUser", ["name": "acknowledged"], key: "unreached-1")
            #expect(early.ok && first.ok)
            // The next record of key "unreached-boom" cannot be written: its batch fails there.
            try ts.server.store.pool.write { db in
                try db.execute(sql: """
                    CREATE TRIGGER boom BEFORE INSERT ON idempotency WHEN NEW.key = 'unreached-boom'
                    BEGIN SELECT RAISE(ABORT, 'boom'); END
                    """)
            }
            var holderConfig = Configuration()
            holderConfig.allowsUnsafeTransactions = true  // the write lock is held across two accesses
            let holder = try DatabaseQueue(path: ts.server.store.path, configuration: holderConfig)
            defer { try? holder.close() }
            try holder.inDatabase { db in try db.execute(sql: "BEGIN IMMEDIATE") }
            var released = false
            defer { if !released { try? holder.inDatabase { db in try db.execute(sql: "ROLLBACK") } } }
            // A replay the writer takes alone and waits with for the write lock (`taken` only
            // grows: the wait is over once the writer has it, not while it is still on its way)...
            let takenBefore = ts.server.commands.taken
            let held = try c.send("RegisterUser", body: Array(#"{"name":"early"}"#.utf8), key: "unreached-0")
            #expect(try eventually { ts.server.commands.taken == takenBefore + 1 }, "the writer took it")
            // ...while the failing command and the replay queue behind it.
            let boomId = try c.send("RegisterUser", body: Array(#"{"name":"boom"}"#.utf8), key: "unreached-boom")
            let replayId = try c.send("RegisterUser", body: Array(#"{"name":"acknowledged"}"#.utf8), key: "unreached-1")
            #expect(try eventually { ts.server.commands.count == 2 }, "both queued behind it")
            #expect(ts.server.commands.taken == takenBefore + 1, "the writer still waits with the first")
            try holder.inDatabase { db in try db.execute(sql: "COMMIT") }
            released = true
            let replies = try receive(3, on: c)
            let replay = try #require(replies[replayId]), boom = try #require(replies[boomId])
            #expect(try #require(replies[held]).replayed == true)
            #expect(boom.code == "INTERNAL", "\(boom.body)")
            #expect(replay.ok && replay.replayed == true && replay.position == first.position, "\(replay.body)")
            #expect(replay.body == first.body, "the recorded reply")
        }
    }
}
