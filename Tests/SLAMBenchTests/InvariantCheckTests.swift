import Foundation
import GRDB
@testable import SLAMBench
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMTesting
import Testing

/// The bench's closing check against a server whose read models are made wrong on purpose,
/// behind the server's back (a write to the projection tables): each planted fault must be a
/// violation, and the store as the commands left it must pass.
@Suite("slam bench's invariant check")
struct InvariantCheckTests {
    /// A schedule of 10 seats at 1,000 points; alice holds and pays for seats 1 and 2, bob holds
    /// seat 3, carol pays for seat 4 and cancels.
    final class Fixture {
        let server: TestServer
        let client: SLAMClient
        let scheduleId: String
        let users: [String]
        let paid: String

        init() throws {
            server = try TestServer()
            client = try server.client()
            let s = Scenario(client)
            let schedule = try s.openSchedule(now: SystemClock().now(), seats: 10)
            scheduleId = schedule
            let alice = try s.registerUser("alice", charge: 5000)
            let bob = try s.registerUser("bob", charge: 5000)
            let carol = try s.registerUser("carol", charge: 5000)
            users = [alice, bob, carol]
            func hold(_ user: String, _ seats: [Int64]) throws -> String {
                try s.must("HoldSeats", ["userId": .string(user), "scheduleId": .string(schedule),
                                         "seatNumbers": .array(seats.map { .int($0) })])["reservationId"]!.stringValue!
            }
            let paid = try hold(alice, [1, 2])
            self.paid = paid
            _ = try s.must("PayReservation", ["userId": .string(alice), "reservationId": .string(paid)])
            _ = try hold(bob, [3])
            let cancelled = try hold(carol, [4])
            _ = try s.must("PayReservation", ["userId": .string(carol), "reservationId": .string(cancelled)])
            _ = try s.must("CancelReservation", ["userId": .string(carol), "reservationId": .string(cancelled)])
        }

        func check(users: [String]? = nil) throws -> InvariantReport {
            try InvariantCheck(client: client, scheduleId: scheduleId, userIds: users ?? self.users).run()
        }

        /// Runs `sql` on the store, checks, then runs `undo`.
        func planted(_ sql: String, undo: String) throws -> InvariantReport {
            try server.server.store.pool.write { db in try db.execute(sql: sql) }
            defer { try? server.server.store.pool.write { db in try db.execute(sql: undo) } }
            return try check()
        }

        func close() {
            client.close()
            server.shutdown()
        }
    }

    @Test func theStoreAsTheCommandsLeftItPasses() throws {
        let f = try Fixture()
        defer { f.close() }
        let r = try f.check()
        #expect(r.ok, "\(r.violations)")
        #expect(r.usersChecked == 3)
        #expect(r.soldSeats == 2 && r.confirmedSeats == 2)
        #expect(r.statusCounts == ["CONFIRMED": 1, "HELD": 1, "CANCELLED": 1])
    }

    @Test func aSeatSoldWithoutAConfirmedReservationIsAViolation() throws {
        let f = try Fixture()
        defer { f.close() }
        let r = try f.planted("UPDATE seats SET status = 'SOLD' WHERE number = 9",
                              undo: "UPDATE seats SET status = 'AVAILABLE' WHERE number = 9")
        #expect(r.violations.contains { $0.hasPrefix("seat map has 3 SOLD seats; confirmed reservations hold 2") }, "\(r.violations)")
        #expect(try f.check().ok)
    }

    @Test func aSeatInTwoLiveReservationsIsAViolation() throws {
        let f = try Fixture()
        defer { f.close() }
        // bob's hold of seat 3 made to name seat 2, which alice bought.
        let r = try f.planted("UPDATE reservations SET seat_numbers = '[2]' WHERE status = 'HELD'",
                              undo: "UPDATE reservations SET seat_numbers = '[3]' WHERE status = 'HELD'")
        #expect(r.violations.contains { $0.hasPrefix("seat 2: live in both") }, "\(r.violations)")
    }

    @Test func aBalanceThatIsNotItsHistoryIsAViolation() throws {
        let f = try Fixture()
        defer { f.close() }
        let r = try f.planted("UPDATE users SET balance = balance + 1 WHERE name = 'bob'",
                              undo: "UPDATE users SET balance = balance - 1 WHERE name = 'bob'")
        #expect(r.violations == ["user \(f.users[1]): balance 5001 but history sums to 5000"])
    }

    @Test func pointsUsedTwiceForOneReservationAreAViolationEvenWhenTheHistoryAddsUp() throws {
        let f = try Fixture()
        defer { f.close() }
        // A second USE of alice's payment, her balance lowered to match: the sum still agrees.
        let r = try f.planted("""
            INSERT INTO point_history (user_id, n, kind, amount, balance, reservation_id, at)
                SELECT user_id, 3, kind, amount, balance - amount, reservation_id, at FROM point_history
                WHERE reservation_id = '\(f.paid)' AND kind = 'USE';
            UPDATE users SET balance = balance - 2000 WHERE name = 'alice';
            """, undo: """
            DELETE FROM point_history WHERE n = 3 AND reservation_id = '\(f.paid)';
            UPDATE users SET balance = balance + 2000 WHERE name = 'alice';
            """)
        #expect(r.violations == ["reservation \(f.paid) (CONFIRMED): 2 USE and 0 REFUND entries in the point history, not 1 and 0"])
    }

    @Test func aRefundMissingForACancelledReservationIsAViolation() throws {
        let f = try Fixture()
        defer { f.close() }
        let r = try f.planted("UPDATE point_history SET kind = 'CHARGE' WHERE kind = 'REFUND'",
                              undo: "UPDATE point_history SET kind = 'REFUND' WHERE reservation_id IS NOT NULL AND kind = 'CHARGE'")
        #expect(r.violations.contains { $0.hasSuffix("(CANCELLED): 1 USE and 0 REFUND entries in the point history, not 1 and 1") }, "\(r.violations)")
    }

    @Test func pointsThatAreNotThePriceAreAViolationEvenWhenTheHistoryAddsUp() throws {
        let f = try Fixture()
        defer { f.close() }
        // alice paid 1,999 for her 2,000-point reservation, her balances made to agree.
        let r = try f.planted("""
            UPDATE point_history SET amount = 1999, balance = 3001 WHERE reservation_id = '\(f.paid)';
            UPDATE users SET balance = 3001 WHERE name = 'alice';
            """, undo: """
            UPDATE point_history SET amount = 2000, balance = 3000 WHERE reservation_id = '\(f.paid)';
            UPDATE users SET balance = 3000 WHERE name = 'alice';
            """)
        #expect(r.violations == ["reservation \(f.paid) (CONFIRMED) costs 2000 points, but its history entries move 1999"])
    }

    @Test func aHistoryWithAGapOrAWrongRunningBalanceIsAViolation() throws {
        let f = try Fixture()
        defer { f.close() }
        let gap = try f.planted("UPDATE point_history SET n = 4 WHERE user_id = '\(f.users[2])' AND n = 3",
                                undo: "UPDATE point_history SET n = 3 WHERE user_id = '\(f.users[2])' AND n = 4")
        #expect(gap.violations == ["user \(f.users[2]): history entry 3 is n 4 with balance 5000, not n 3 with 5000"])
        // carol: CHARGE 5000 (5000), USE 1000 (4000), REFUND 1000 (5000).
        let running = try f.planted("UPDATE point_history SET balance = 3999 WHERE user_id = '\(f.users[2])' AND n = 2",
                                    undo: "UPDATE point_history SET balance = 4000 WHERE user_id = '\(f.users[2])' AND n = 2")
        #expect(running.violations == ["user \(f.users[2]): history entry 2 is n 2 with balance 3999, not n 2 with 4000"])
    }

    @Test func whatCannotBeReadIsAViolationNotAPass() throws {
        let f = try Fixture()
        defer { f.close() }
        let unknown = try f.check(users: f.users + ["user-that-does-not-exist"])
        #expect(unknown.violations == ["user-that-does-not-exist: not checked, the query was refused (USER_NOT_FOUND)"])
        #expect(unknown.usersChecked == 3)
        // More reservations than ListReservations returns: the newest 1,000 cannot show them all.
        let many = try f.planted("""
            WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < 1000)
            INSERT INTO reservations (reservation_id, user_id, schedule_id, seat_numbers, price, status, expires_at, created_at, position)
                SELECT 'planted-' || k, '\(f.users[1])', 'elsewhere', '[1]', 0, 'EXPIRED', 0, 0, k FROM i
            """, undo: "DELETE FROM reservations WHERE reservation_id LIKE 'planted-%'")
        #expect(many.violations.count == 1)
        #expect(many.violations.first?.hasPrefix("user \(f.users[1]): 1000 reservations, more than ListReservations shows") == true)
    }

    @Test func aHistoryLongerThanOnePageIsReadWhole() throws {
        let f = try Fixture()
        defer { f.close() }
        let s = Scenario(f.client)
        // bob: his charge, his hold (no points), then 1,200 small charges.
        let charges = (0..<1200).map { i in
            ("ChargePoints", "{\"userId\":\"\(f.users[1])\",\"amount\":1}", "more-\(i)")
        }
        _ = try pipelined(f.client, charges.map { (type: $0.0, body: $0.1, key: Optional($0.2)) })
        #expect(try s.must("GetUser", ["userId": .string(f.users[1])])["balance"] == 6200)
        let r = try f.check()
        #expect(r.ok, "\(r.violations)")
        // A planted difference on the oldest page is found.
        let planted = try f.planted("UPDATE point_history SET amount = 5001 WHERE user_id = '\(f.users[1])' AND n = 1",
                                    undo: "UPDATE point_history SET amount = 5000 WHERE user_id = '\(f.users[1])' AND n = 1")
        #expect(planted.violations == ["user \(f.users[1]): history entry 1 is n 1 with balance 5000, not n 1 with 5001",
                                       "user \(f.users[1]): balance 6200 but history sums to 6201"])
        // The oldest entry of a long history read whole: a wrong running balance there is found.
        let oldest = try f.planted("UPDATE point_history SET balance = 4999 WHERE user_id = '\(f.users[1])' AND n = 1",
                                   undo: "UPDATE point_history SET balance = 5000 WHERE user_id = '\(f.users[1])' AND n = 1")
        #expect(oldest.violations == ["user \(f.users[1]): history entry 1 is n 1 with balance 4999, not n 1 with 5000"])
    }
}
