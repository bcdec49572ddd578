import Foundation
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
        try withServer(configure: { $0.sync = .normal; $0.groupCommit = false }) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let before = try s.must("GetStats")
            #expect(before["synchronous"] == "NORMAL")
            #expect(before["groupCommit"] == false)
            let ids = try (0..<50).map { i in
                try c.send("RegisterUser", .object(["name": .string("fan \(i)")]), key: "settings-\(i)")
            }
            let replies = try collect(c, ids)
            #expect(replies.count == 50 && replies.values.allSatisfy { $0.ok })
            let after = try s.must("GetStats")
            let batches = (after["batches"]?.int64Value ?? 0) - (before["batches"]?.int64Value ?? 0)
            #expect(batches >= 50, "50 commands sent at once committed in \(batches) batches")
        }
    }
}
