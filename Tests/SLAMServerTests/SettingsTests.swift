import Foundation
import GRDB
import SLAMClient
import SLAMJSON
import SLAMServer
import SLAMTesting
import Testing

/// GetStats says how the server commits (`synchronous`, `groupCommit`), so that a benchmark can
/// report what it ran against.
@Suite("Server settings in GetStats")
struct SettingsTests {
    @Test func theDefaultsAreFullSyncAndGroupCommit() throws {
        try withServer { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let stats = try s.must("GetStats")
            #expect(stats["synchronous"] == "FULL")
            #expect(stats["groupCommit"] == true)
        }
    }

    /// `slam serve --sync normal --no-group-commit`: every command in a transaction of its own,
    /// however many are waiting.
    @Test func normalSyncWithoutGroupCommitCommitsOneCommandATransaction() throws {
        let batches = try batchesFor50WaitingCommands { $0.sync = .normal; $0.groupCommit = false }
        #expect(batches.settings == ("NORMAL", false))
        #expect(batches.count == 50, "50 waiting commands committed in \(batches.count) transactions, not one each")
    }

    /// The default: the commands waiting when the writer starts a batch commit together (the
    /// first batch holds what was waiting when the writer woke, the second the rest).
    @Test func groupCommitCommitsTheWaitingCommandsTogether() throws {
        let batches = try batchesFor50WaitingCommands { _ in }
        #expect(batches.settings == ("FULL", true))
        #expect((1...2).contains(batches.count), "50 waiting commands committed in \(batches.count) transactions")
    }

    /// Makes 50 commands wait for the writer, then lets it go, and returns how many batches the
    /// server committed meanwhile (GetStats' `batches`) and its settings. The commands wait
    /// behind a write lock this test holds on the database: the writer, having taken the first
    /// of them, waits for the lock (its busy timeout), and the ROUTER queues the rest. A
    /// GetStats sent on the same connection after them is answered once the ROUTER has read
    /// (and queued) every one of them, since it reads a connection's requests in order; only
    /// then is the lock let go. No sweep runs meanwhile (it would be a batch of its own), nor
    /// does the start-up one (a command answered before counting starts).
    private func batchesFor50WaitingCommands(_ configure: @escaping (inout ServerConfig) -> Void) throws
        -> (count: Int64, settings: (String, Bool)) {
        var result: (count: Int64, settings: (String, Bool)) = (0, ("", false))
        try withServer(configure: { configure(&$0); $0.sweepInterval = 3_600_000 }) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            // A command answered: the writer's start-up batch (a sweep) is done, and not counted.
            _ = try s.registerUser("warm-up")
            let before = try s.must("GetStats")
            var held = Configuration()
            held.allowsUnsafeTransactions = true  // the transaction outlives one database access
            let lock = try DatabaseQueue(path: ts.server.config.dbPath, configuration: held)
            defer { try? lock.close() }
            try lock.writeWithoutTransaction { db in try db.execute(sql: "BEGIN IMMEDIATE") }
            let ids = try (0..<50).map { i in
                try c.send("RegisterUser", .object(["name": .string("fan \(i)")]), key: "settings-\(i)")
            }
            let statsId = try c.send("GetStats", .object([:]))
            let queued = try c.receive(timeoutMs: replyTimeoutMs)
            try lock.writeWithoutTransaction { db in try db.execute(sql: "ROLLBACK") }
            #expect(queued?.requestId == statsId, "a command was answered while the writer could not commit")
            let replies = try collect(c, ids)
            #expect(replies.count == 50 && replies.values.allSatisfy { $0.ok })
            let after = try s.must("GetStats")
            result.count = (after["batches"]?.int64Value ?? 0) - (before["batches"]?.int64Value ?? 0)
            result.settings = (after["synchronous"]?.stringValue ?? "", after["groupCommit"]?.boolValue ?? false)
        }
        return result
    }
}
