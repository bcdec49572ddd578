import Foundation
import SLAMServer
import SLAMTesting
import Testing

/// `slam serve --timings FILE` (`ServerConfig.timingsPath`): the writer's batches and the store's
/// syncs, written as CSV when the server stops.
@Suite("Timings (a diagnostic)")
struct TimingsTests {
    @Test("a stopped server writes every batch it ran, with its commands, and the WAL's syncs")
    func writtenAtStop() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("slam-timings-" + UUID().uuidString)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("timings.csv").path
        let server = try TestServer { $0.timingsPath = path }
        do {
            let client = try server.client()
            defer { client.close() }
            let s = Scenario(client)
            // One at a time: each command is a batch of its own, committed (and its WAL synced).
            for i in 0..<20 { _ = try s.registerUser("fan \(i)") }
            _ = try s.must("GetStats")   // a query: no batch
            #expect(!FileManager.default.fileExists(atPath: path), "written before the server stopped")
        }
        server.shutdown()

        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.first == "kind,at_us,micros,commit_micros,commands,cpu_micros")
        let rows = lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.allSatisfy { $0.count == 6 }, "\(rows.prefix(3))")
        let batches = rows.filter { $0[0] == "batch" }
        // The 20 commands, in batches of one; the writer's batches without commands (sweeps,
        // the relay's progress) are not written.
        #expect(batches.count == 20, "\(batches.count) batches")
        for b in batches {
            let at = Double(b[1]), exec = Double(b[2]), commit = Double(b[3]), cpu = Double(b[5])
            #expect(at != nil && exec.map { $0 >= 0 } == true && commit.map { $0 > 0 } == true && b[4] == "1", "\(b)")
            // The thread's CPU time in the execution: some, and never more than its wall time.
            if let exec, let cpu { #expect(cpu > 0 && cpu <= exec + 5, "\(b)") } else { Issue.record("\(b)") }
        }
        let starts = batches.compactMap { Double($0[1]) }
        #expect(starts == starts.sorted(), "batches out of order")
        // synchronous = FULL: every commit synced the WAL, within the batch's commit (the syncs of
        // other servers in this process, tests running beside this one, are in the file too:
        // timing is process-wide).
        let commitSyncs = rows.filter { $0[0] == "wal-sync" }.compactMap { Double($0[1]) }
        for b in batches {
            guard let at = Double(b[1]), let exec = Double(b[2]), let commit = Double(b[3]) else { continue }
            #expect(commitSyncs.contains { $0 >= at + exec && $0 <= at + exec + commit }, "no WAL sync in the commit of \(b)")
        }
        let syncs = rows.filter { ["wal-sync", "wal-sync-other", "db-sync"].contains($0[0]) }
        #expect(syncs.allSatisfy { Double($0[1]) != nil && Double($0[2]).map { $0 >= 0 } == true })
        // No batch dropped or failed (syncs of other servers still in flight may be).
        #expect(rows.last?.first == "dropped" && rows.last?[2] == "0" && rows.last?[4] == "0", "\(rows.last ?? [])")
    }
}
