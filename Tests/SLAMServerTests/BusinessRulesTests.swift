import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import SLAMTesting
import Testing
import ZMQ

@Suite("Server over real sockets: business rules and state across restarts")
struct BusinessRulesTests {
    /// The business rejections through the server: each a recorded reply with replayed false
    /// and a position, each appending nothing.
    @Test func businessRejections() throws {
        let clock = ManualClock(SystemClock().now())
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let now = clock.now()
            let alice = try s.registerUser("alice", charge: 10_000)
            let bob = try s.registerUser("bob", charge: 10_000)
            let scheduleId = try s.openSchedule(now: now, seats: 6, price: 1_000, extra: ["maxSeatsPerUser": 3])
            let held = try s.must("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId), "seatNumbers": [1, 2]])
            let rid = held["reservationId"]!
            let before = try stats(s)

            func rejected(_ type: String, _ body: JSONObject, _ code: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Reply {
                let r = try s.call(type, body)
                #expect(r.code == code, "\(type): \(r.bodyText)", sourceLocation: sourceLocation)
                #expect(r.replayed == false, sourceLocation: sourceLocation)
                #expect(r.position == before.position, sourceLocation: sourceLocation)
                return r
            }
            let missingSeat = try rejected("HoldSeats", ["userId": .string(bob), "scheduleId": .string(scheduleId), "seatNumbers": [2, 7, 9]],
                                           "SEAT_NOT_FOUND")
            #expect(missingSeat.details?["seatNumbers"] == [7, 9])
            // Seat numbers far past any schedule are reported as sent.
            let huge = try rejected("HoldSeats", ["userId": .string(bob), "scheduleId": .string(scheduleId),
                                                  "seatNumbers": [3, 3_000_000_000, 9_223_372_036_854_775_807]], "SEAT_NOT_FOUND")
            #expect(huge.details?["seatNumbers"] == [3_000_000_000, 9_223_372_036_854_775_807], "\(huge.bodyText)")
            let taken = try rejected("HoldSeats", ["userId": .string(bob), "scheduleId": .string(scheduleId), "seatNumbers": [3, 2, 1]],
                                     "SEAT_UNAVAILABLE")
            #expect(taken.details?["seatNumbers"] == [1, 2])
            _ = try rejected("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId), "seatNumbers": [3, 4]],
                             "SEAT_LIMIT_EXCEEDED")
            _ = try rejected("HoldSeats", ["userId": "u_nobody", "scheduleId": .string(scheduleId), "seatNumbers": [3]], "USER_NOT_FOUND")
            _ = try rejected("HoldSeats", ["userId": .string(bob), "scheduleId": "s_nothing", "seatNumbers": [3]], "SCHEDULE_NOT_FOUND")
            _ = try rejected("PayReservation", ["userId": .string(bob), "reservationId": rid], "FORBIDDEN")
            _ = try rejected("CancelReservation", ["userId": .string(bob), "reservationId": rid], "FORBIDDEN")
            _ = try rejected("PayReservation", ["userId": .string(bob), "reservationId": "r_nothing"], "RESERVATION_NOT_FOUND")
            _ = try rejected("ChargePoints", ["userId": .string(bob), "amount": 990_001], "BALANCE_LIMIT_EXCEEDED")
            _ = try rejected("JoinQueue", ["userId": .string(bob), "scheduleId": .string(scheduleId)], "INVALID_STATE")
            _ = try rejected("ScheduleConcert", [
                "concertId": "c_nothing", "startsAt": .string(RFC3339.format(now)), "reservationOpensAt": .string(RFC3339.format(now)),
                "reservationClosesAt": .string(RFC3339.format(now)), "sections": [["name": "A", "seatCount": 1, "price": 0]],
            ], "CONCERT_NOT_FOUND")
            let concertId = try #require(try s.must("ListSchedules")["schedules"]![0]?["concertId"])
            let invalid = try rejected("ScheduleConcert", [
                "concertId": concertId, "startsAt": .string(RFC3339.format(now)), "reservationOpensAt": .string(RFC3339.format(now + 1)),
                "reservationClosesAt": .string(RFC3339.format(now)), "sections": [["name": "A", "seatCount": 1, "price": 0]],
            ], "INVALID_SCHEDULE")
            #expect(invalid.details?["rule"] != nil)
            // Queries naming unknown ids.
            for (type, body, code) in [("GetUser", ["userId": "u_x"], "USER_NOT_FOUND"),
                                       ("GetPointHistory", ["userId": "u_x"], "USER_NOT_FOUND"),
                                       ("ListReservations", ["userId": "u_x"], "USER_NOT_FOUND"),
                                       ("GetSeatMap", ["scheduleId": "s_x"], "SCHEDULE_NOT_FOUND"),
                                       ("GetReservation", ["reservationId": "r_x"], "RESERVATION_NOT_FOUND"),
                                       ("GetQueueStatus", ["tokenId": "t_x"], "TOKEN_NOT_FOUND"),
                                       ("ListSchedules", ["concertId": "c_x"], "CONCERT_NOT_FOUND")] as [(String, JSONObject, String)] {
                let r = try s.call(type, body)
                #expect(r.code == code, "\(type): \(r.bodyText)")
                #expect(r.header["replayed"] == nil)
            }
            let after = try stats(s)
            #expect(after.position == before.position)
            #expect(after.headSeq == before.headSeq)
            #expect(after.commands == before.commands + 13)
            #expect(try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])["held"] == 2)
        }
    }

    /// Released and cancelled reservations stay ended; their seats no longer count toward the
    /// limit; a free reservation moves no points; cancelling after the show starts is refused.
    @Test func endedReservationsAndLimits() throws {
        let clock = ManualClock(SystemClock().now())
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let now = clock.now()
            let alice = try s.registerUser("alice", charge: 10_000)
            let scheduleId = try s.openSchedule(now: now, seats: 10, price: 1_000, extra: ["maxSeatsPerUser": 2])
            func hold(_ seats: JSON) throws -> Reply {
                try s.call("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId), "seatNumbers": seats])
            }
            func act(_ type: String, _ rid: JSON) throws -> Reply {
                try s.call(type, ["userId": .string(alice), "reservationId": rid])
            }

            let first = try hold([1, 2])
            #expect(first.ok)
            let released = try act("CancelReservation", first.body["reservationId"]!)
            #expect(released.body == ["reservationId": first.body["reservationId"]!, "status": "RELEASED", "refunded": 0])
            #expect(try act("CancelReservation", first.body["reservationId"]!).code == "INVALID_STATE")
            #expect(try act("PayReservation", first.body["reservationId"]!).code == "INVALID_STATE")

            // The released seats no longer count: two more are allowed, a third is not.
            let second = try hold([1, 3])
            #expect(second.ok, "\(second.bodyText)")
            #expect(try hold([4]).code == "SEAT_LIMIT_EXCEEDED")
            #expect(try act("PayReservation", second.body["reservationId"]!).ok)
            #expect(try act("PayReservation", second.body["reservationId"]!).code == "INVALID_STATE")
            let cancelled = try act("CancelReservation", second.body["reservationId"]!)
            #expect(cancelled.body["refunded"] == 2_000 && cancelled.body["status"] == "CANCELLED")
            #expect(try act("CancelReservation", second.body["reservationId"]!).code == "INVALID_STATE")
            #expect(try act("PayReservation", second.body["reservationId"]!).code == "INVALID_STATE")
            #expect(try s.must("GetUser", ["userId": .string(alice)])["balance"] == 10_000)

            // A free schedule: confirmed with no wallet event and no history entry.
            let free = try s.openSchedule(now: now, seats: 2, price: 0)
            let freeHold = try s.must("HoldSeats", ["userId": .string(alice), "scheduleId": .string(free), "seatNumbers": [1]])
            #expect(freeHold["price"] == 0)
            let historyBefore = try s.must("GetPointHistory", ["userId": .string(alice)])["entries"]!.array.count
            let freePaid = try act("PayReservation", freeHold["reservationId"]!)
            #expect(freePaid.body == ["reservationId": freeHold["reservationId"]!, "status": "CONFIRMED", "price": 0, "balance": 10_000])
            #expect(try s.must("GetPointHistory", ["userId": .string(alice)])["entries"]!.array.count == historyBefore)

            // A confirmed reservation, cancelled after the show started: INVALID_STATE.
            let third = try hold([5])
            #expect(try act("PayReservation", third.body["reservationId"]!).ok)
            clock.advance(by: 8 * 86_400_000)
            #expect(try act("CancelReservation", third.body["reservationId"]!).code == "INVALID_STATE")
            // And the window is closed for new holds.
            #expect(try hold([6]).code == "RESERVATION_WINDOW_CLOSED")
        }
    }

    /// A schedule loaded after a restart knows its held reservations: a hold that lapses after
    /// the restart, not yet swept, is recorded by the hold that takes the last free seat, and no
    /// ScheduleSoldOut is published while its seat is free (PROTOCOL.md section 7).
    @Test func aLapsedHoldLoadedAfterARestartKeepsTheScheduleFromSellingOut() throws {
        let clock = ManualClock(SystemClock().now())
        // No sweep but the one at start-up: the lapse is left for the next hold to record.
        let ts = try TestServer(clock: clock, configure: { $0.sweepInterval = 3_600_000 })
        var stopped = false
        defer { if !stopped { ts.shutdown() } }
        var alice = "", bob = "", carol = "", scheduleId = "", rid = ""
        do {
            let (c, s) = try ts.scenario()
            defer { c.close() }
            alice = try s.registerUser("alice")
            bob = try s.registerUser("bob")
            carol = try s.registerUser("carol")
            scheduleId = try s.openSchedule(now: clock.now(), seats: 2, price: 0)
            rid = try #require(try s.must("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId),
                                                       "seatNumbers": [1]])["reservationId"]?.string)
        }
        ts.shutdown(removeFiles: false)
        stopped = true
        defer { try? FileManager.default.removeItem(at: ts.directory) }

        try withRestartedServer(config: ts.server.config, clock: clock) { c in
            let s = Scenario(c)
            clock.advance(by: ts.server.config.holdTtl + 1)
            let before = try stats(s).headSeq
            _ = try s.must("HoldSeats", ["userId": .string(bob), "scheduleId": .string(scheduleId), "seatNumbers": [2]],
                           key: "bob-takes-the-last-free-seat")
            var events = try s.must("ReadEvents", ["afterSeq": .int(before)])["events"]!.array
            #expect(events.map { $0["header"]!["type"]! } == ["HoldExpired", "SeatsHeld"], "\(events)")
            #expect(events.first?["body"]?["reservationId"] == .string(rid))
            #expect(events.first?["header"]?["causationId"] == "system:expiry")
            // Seat 1 is free: the schedule sells out when it is taken.
            let after = try stats(s).headSeq
            _ = try s.must("HoldSeats", ["userId": .string(carol), "scheduleId": .string(scheduleId), "seatNumbers": [1]],
                           key: "carol-takes-the-last-seat")
            events = try s.must("ReadEvents", ["afterSeq": .int(after)])["events"]!.array
            #expect(events.map { $0["header"]!["type"]! } == ["SeatsHeld", "ScheduleSoldOut"], "\(events)")
            #expect(events.last?["header"]?["causationId"] == "carol-takes-the-last-seat")
        }
    }

    /// The writer's state after a restart comes from the store: a hold made before it can be
    /// paid after it, its seat stays taken, and balances and limits carry over.
    @Test func stateCarriesAcrossRestart() throws {
        let clock = ManualClock(SystemClock().now())
        let ts = try TestServer(clock: clock)
        var stopped = false
        defer { if !stopped { ts.shutdown() } }
        var alice = "", bob = "", scheduleId = "", rid = ""
        do {
            let (c, s) = try ts.scenario()
            defer { c.close() }
            alice = try s.registerUser("alice", charge: 5_000)
            bob = try s.registerUser("bob", charge: 5_000)
            scheduleId = try s.openSchedule(now: clock.now(), seats: 4, price: 1_500, extra: ["maxSeatsPerUser": 2])
            rid = try #require(try s.must("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId),
                                                       "seatNumbers": [1, 2]])["reservationId"]?.string)
        }
        ts.shutdown(removeFiles: false)
        stopped = true
        defer { try? FileManager.default.removeItem(at: ts.directory) }

        clock.advance(by: 1_000)
        try withRestartedServer(config: ts.server.config, clock: clock) { c in
            let s = Scenario(c)

            let taken = try s.call("HoldSeats", ["userId": .string(bob), "scheduleId": .string(scheduleId), "seatNumbers": [2, 3]])
            #expect(taken.code == "SEAT_UNAVAILABLE", "\(taken.bodyText)")
            #expect(taken.details?["seatNumbers"] == [2])
            #expect(try s.call("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId), "seatNumbers": [3]]).code
                    == "SEAT_LIMIT_EXCEEDED")
            let paid = try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(rid)])
            #expect(paid.ok, "\(paid.bodyText)")
            #expect(paid.body["balance"] == 2_000)
            let charged = try s.must("ChargePoints", ["userId": .string(bob), "amount": 1])
            #expect(charged["balance"] == 5_001)
            let history = try s.must("GetPointHistory", ["userId": .string(alice)])["entries"]!.array
            #expect(history.map { $0["n"]!.int! } == [2, 1])
            #expect(try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])["sold"] == 2)
            // New holds still work on the reloaded schedule.
            let bobHold = try s.must("HoldSeats", ["userId": .string(bob), "scheduleId": .string(scheduleId), "seatNumbers": [3, 4]])
            #expect(bobHold["price"] == 3_000)
            let events = try s.must("ReadEvents", ["afterSeq": 0])
            let seqs = events["events"]!.array.map { $0["header"]!["seq"]!.int! }
            #expect(seqs == Array(1...Int64(seqs.count)), "the outbox seq stays contiguous across the restart")
            #expect(events["headSeq"]?.int == Int64(seqs.count))
        }
    }
}
