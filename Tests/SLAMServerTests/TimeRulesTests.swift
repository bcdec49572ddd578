import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMTesting
import Testing

@Suite("Server over real sockets: time rules with a manual clock")
struct TimeRulesTests {
    static let holdTtl: Millis = 300_000

    /// A hold past its expiresAt cannot be paid, and its seats can be held again at once, the
    /// expiry recorded first; a payment 1 ms before expiry goes through.
    @Test func expiredHoldIsNotPayableAndItsSeatsAreFree() throws {
        let clock = ManualClock(SystemClock().now())
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let alice = try s.registerUser("alice", charge: 10_000)
            let bob = try s.registerUser("bob", charge: 10_000)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 10, price: 1_000)

            let heldAt = clock.now()
            let first = try s.must("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId), "seatNumbers": [1, 2]])
            let firstId = try #require(first["reservationId"]?.string)
            #expect(first["expiresAt"] == .string(RFC3339.format(heldAt + Self.holdTtl)))

            clock.advance(by: Self.holdTtl + 1)
            let late = try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(firstId)])
            #expect(late.code == "HOLD_EXPIRED", "\(late.bodyText)")
            #expect(try s.must("GetUser", ["userId": .string(alice)])["balance"] == 10_000)
            let lateCancel = try s.call("CancelReservation", ["userId": .string(alice), "reservationId": .string(firstId)])
            #expect(lateCancel.code == "HOLD_EXPIRED")

            let headBefore = try stats(s).headSeq
            let secondAt = clock.now()
            let second = try s.call("HoldSeats", ["userId": .string(bob), "scheduleId": .string(scheduleId), "seatNumbers": [2, 1]])
            #expect(second.ok, "\(second.bodyText)")
            let secondId = try #require(second.body["reservationId"]?.string)
            #expect(second.body["seatNumbers"] == [1, 2])

            // The log: alice's HoldExpired (by the sweep or by bob's hold, either way caused by
            // system:expiry) comes before bob's SeatsHeld.
            let events = try s.must("ReadEvents", ["afterSeq": 0])["events"]!.array
            let expiredAt = events.firstIndex { $0["header"]?["type"] == "HoldExpired" && $0["body"]?["reservationId"] == .string(firstId) }
            let heldAgainAt = events.firstIndex { $0["header"]?["type"] == "SeatsHeld" && $0["body"]?["reservationId"] == .string(secondId) }
            let e = try #require(expiredAt, "no HoldExpired for \(firstId)")
            let h = try #require(heldAgainAt)
            #expect(e < h)
            #expect(events[e]["header"]?["causationId"] == "system:expiry")
            #expect(events[e]["topic"] == "reservation.HoldExpired")
            #expect(events[e]["body"]?["seatNumbers"] == [1, 2])
            #expect(events.filter { $0["header"]?["type"] == "HoldExpired" }.count == 1)
            #expect(events[h]["header"]!["seq"]!.int! > headBefore)
            #expect(try s.must("GetReservation", ["reservationId": .string(firstId)])["status"] == "EXPIRED")

            // Bob pays 1 ms before his hold expires.
            clock.advance(by: Self.holdTtl - 1)
            let paid = try s.call("PayReservation", ["userId": .string(bob), "reservationId": .string(secondId)])
            #expect(paid.ok, "\(paid.bodyText)")
            #expect(paid.body["balance"] == 8_000)
            #expect(try s.must("GetReservation", ["reservationId": .string(secondId)])["status"] == "CONFIRMED")
            // A confirmed reservation never expires.
            clock.advance(by: Self.holdTtl)
            #expect(try s.must("GetReservation", ["reservationId": .string(secondId)])["expiresAt"]
                    == .string(RFC3339.format(secondAt + Self.holdTtl)))
            let map = try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])
            #expect(map["sold"] == 2 && map["held"] == 0 && map["available"] == 8)
        }
    }

    /// The expiry sweep records a lapsed hold by itself, with no command touching it.
    @Test func sweepExpiresLapsedHolds() throws {
        let clock = ManualClock(SystemClock().now())
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let carol = try s.registerUser("carol", charge: 10_000)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 4, price: 1_000)
            let held = try s.must("HoldSeats", ["userId": .string(carol), "scheduleId": .string(scheduleId), "seatNumbers": [1, 2, 3, 4]])
            let reservationId = try #require(held["reservationId"]?.string)
            #expect(try s.must("ListSchedules")["schedules"]![0]?["available"] == 0)

            // Exactly at expiresAt the hold still stands: its seats are not free yet.
            clock.advance(by: Self.holdTtl)
            let dave = try s.registerUser("dave")
            let early = try s.call("HoldSeats", ["userId": .string(dave), "scheduleId": .string(scheduleId), "seatNumbers": [3]])
            #expect(early.code == "SEAT_UNAVAILABLE", "\(early.bodyText)")

            clock.advance(by: 1)
            let expired = try eventually {
                try s.must("GetReservation", ["reservationId": .string(reservationId)])["status"] == "EXPIRED"
            }
            #expect(expired, "the sweep never recorded the expiry")
            let map = try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])
            #expect(map["available"] == 4 && map["held"] == 0)
            let events = try s.must("ReadEvents", ["afterSeq": 0, "category": "reservation"])["events"]!.array
            #expect(events.map { $0["header"]!["type"]!.string! } == ["SeatsHeld", "HoldExpired"])
            #expect(events.last?["header"]?["causationId"] == "system:expiry")
            // Once recorded, the expired hold is still neither payable nor cancellable.
            let pay = try s.call("PayReservation", ["userId": .string(carol), "reservationId": .string(reservationId)])
            #expect(pay.code == "HOLD_EXPIRED", "\(pay.bodyText)")
            let cancel = try s.call("CancelReservation", ["userId": .string(carol), "reservationId": .string(reservationId)])
            #expect(cancel.code == "HOLD_EXPIRED", "\(cancel.bodyText)")
            #expect(try s.must("GetUser", ["userId": .string(carol)])["balance"] == 10_000)
            // Its seats are free for anyone, with no second expiry recorded.
            let again = try s.call("HoldSeats", ["userId": .string(dave), "scheduleId": .string(scheduleId), "seatNumbers": [3]])
            #expect(again.ok, "\(again.bodyText)")
            let after = try s.must("ReadEvents", ["afterSeq": 0, "category": "reservation"])["events"]!.array
            #expect(after.map { $0["header"]!["type"]!.string! } == ["SeatsHeld", "HoldExpired", "SeatsHeld"])
            // The schedule came back from sold out.
            let concert = try s.must("ReadEvents", ["afterSeq": 0, "category": "concert"])["events"]!.array
            #expect(concert.map { $0["header"]!["type"]!.string! }.suffix(2) == ["ScheduleSoldOut", "ScheduleReopened"])
        }
    }
}
