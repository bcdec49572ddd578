import Foundation
import SLAMClient
import SLAMDomain
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

            // A forgotten user holds, pays (points used from the reloaded wallet) and cancels
            // (refunded): the same balances and a wallet stream without a gap.
            let schedule = try s.openSchedule(now: SystemClock().now(), seats: 5, price: 40)
            let u = users[0]
            let held = try s.must("HoldSeats", ["userId": .string(u), "scheduleId": .string(schedule), "seatNumbers": [1]])
            let rid = try #require(held["reservationId"])
            #expect(try s.must("PayReservation", ["userId": .string(u), "reservationId": rid])["balance"]?.int64Value == 110)
            _ = try s.must("CancelReservation", ["userId": .string(u), "reservationId": rid])
            let user = try s.must("GetUser", ["userId": .string(u)])
            #expect(user["balance"]?.int64Value == 150, "\(user)")
            let wallet = try s.must("ReadEvents", ["afterSeq": 0, "limit": 1000])["events"]?.arrayValue?
                .filter { $0["header"]?["streamId"]?.stringValue == "wallet-" + u }
                .compactMap { $0["header"]?["streamVersion"]?.int64Value }
            #expect(wallet == [1, 2, 3, 4], "\(String(describing: wallet))")
        }
    }

    /// A reservation that has ended leaves the writer's memory, also when a rejected command
    /// loaded it again (every retry of a payment for a released or expired hold kept one).
    @Test func anEndedReservationARejectedCommandLoadedLeavesMemory() throws {
        try withServer { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let schedule = try s.openSchedule(now: SystemClock().now(), seats: 5)
            let u = try s.registerUser("fan", charge: 5000)
            func inMemory() throws -> Int64? { try s.must("GetStats")["writerReservations"]?.int64Value }
            let held = try s.must("HoldSeats", ["userId": .string(u), "scheduleId": .string(schedule), "seatNumbers": [1]])
            let rid = try #require(held["reservationId"])
            #expect(try inMemory() == 1)
            _ = try s.must("CancelReservation", ["userId": .string(u), "reservationId": rid])
            #expect(try inMemory() == 0, "released, it left memory")
            let retry = try s.call("PayReservation", ["userId": .string(u), "reservationId": rid])
            #expect(retry.code == "INVALID_STATE", "\(retry.body)")
            #expect(try inMemory() == 0, "loaded to be refused, it left memory again")
        }
    }
}
