import Foundation
import SLAMClient
import SLAMJSON
import SLAMServer
import SLAMTesting
import Testing

/// The writer keeps at most `maxCachedUsers` users in memory: past it, between batches, it
/// forgets them and loads each again from the read models when a command next names it.
@Suite("The writer's user cache")
struct UserCacheTests {
    @Test func forgottenUsersComeBackWithTheirBalancesAndWallets() throws {
        try withServer(configure: { $0.maxCachedUsers = 10 }) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            // 25 users, each charged once: more than the cap, one command at a time.
            let users = try (0..<25).map { i in try s.registerUser("fan \(i)", charge: 100) }
            let stats = try s.must("GetStats")
            #expect((stats["writerUserEvictions"]?.int64Value ?? 0) >= 1, "\(stats)")
            #expect((stats["writerUsers"]?.int64Value ?? 99) <= 10, "\(stats)")
            // Each charged again: its balance and wallet stream go on from where they were.
            for u in users {
                let r = try s.must("ChargePoints", ["userId": .string(u), "amount": 50])
                #expect(r["balance"]?.int64Value == 150, "\(u): \(r)")
            }
            for u in users {
                let history = try s.must("GetPointHistory", ["userId": .string(u)])["entries"]?.arrayValue ?? []
                #expect(history.compactMap { $0["n"]?.int64Value } == [2, 1], "\(u)")
                #expect(history.compactMap { $0["balance"]?.int64Value } == [150, 100], "\(u)")
            }
            // The wallet streams' versions went on without a gap or a repeat.
            let events = try s.must("ReadEvents", ["afterSeq": 0, "limit": 1000])["events"]?.arrayValue ?? []
            var versions: [String: [Int64]] = [:]
            for e in events where e["header"]?["streamId"]?.stringValue?.hasPrefix("wallet-") == true {
                versions[e["header"]!["streamId"]!.stringValue!, default: []].append(e["header"]!["streamVersion"]!.int64Value!)
            }
            #expect(versions.count == 25 && versions.values.allSatisfy { $0 == [1, 2] }, "\(versions)")
            #expect((try s.must("GetStats")["writerUsers"]?.int64Value ?? 99) <= 10)
        }
    }
}
