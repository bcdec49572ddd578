import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMTesting
import Testing

@Suite("Server over real sockets: the whole flow")
struct FlowTests {
    /// Timestamps come in with any offset and with or without fractional seconds, and go out
    /// in UTC with milliseconds.
    @Test func timestampsAreNormalizedToUTC() throws {
        try withServer { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let concertId = try #require(try s.must("CreateConcert", ["name": "N", "artist": "A"])["concertId"])
            _ = try s.must("ScheduleConcert", [
                "concertId": concertId, "startsAt": "2030-01-01T09:00:00+09:00",
                "reservationOpensAt": "2029-12-01T00:00:00.5Z", "reservationClosesAt": "2029-12-31T18:30:00.25-05:00",
                "sections": [["name": "A", "seatCount": 1, "price": 0]],
            ])
            let listed = try #require(try s.must("ListSchedules")["schedules"]![0])
            #expect(listed["startsAt"] == "2030-01-01T00:00:00.000Z")
            #expect(listed["reservationOpensAt"] == "2029-12-01T00:00:00.500Z")
            #expect(listed["reservationClosesAt"] == "2029-12-31T23:30:00.250Z")
        }
    }

    /// Register, charge, create, schedule (two sections at different prices), hold across the
    /// sections, pay, cancel with a refund, checking every read model at each step.
    @Test func registerChargeScheduleHoldPayCancel() throws {
        let clock = ManualClock(SystemClock().now())
        let now = clock.now()
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            var lastPosition: Int64 = 0

            /// A command's reply: ok, replayed false, position increasing.
            func command(_ type: String, _ body: JSONObject) throws -> JSON {
                let r = try s.call(type, body)
                #expect(r.ok, "\(type): \(r.bodyText)")
                #expect(r.replayed == false, "\(type): \(r.headerText)")
                let p = try #require(r.position, "\(type) has no position: \(r.headerText)")
                #expect(p > lastPosition, "\(type): position \(p) after \(lastPosition)")
                lastPosition = p
                return r.body
            }
            /// A query's reply: ok, with neither position nor replayed.
            func query(_ type: String, _ body: JSONObject) throws -> JSON {
                let r = try s.call(type, body)
                #expect(r.ok, "\(type): \(r.bodyText)")
                #expect(r.header["position"] == nil, "\(type): \(r.headerText)")
                #expect(r.header["replayed"] == nil, "\(type): \(r.headerText)")
                return r.body
            }
            func seatStatuses(_ scheduleId: String) throws -> (JSON, [Int64: String]) {
                let map = try query("GetSeatMap", ["scheduleId": .string(scheduleId)])
                var statuses: [Int64: String] = [:]
                for seat in map["seats"]!.array { statuses[seat["number"]!.int!] = seat["status"]!.string! }
                return (map, statuses)
            }

            // Register and charge.
            let registered = try command("RegisterUser", ["name": "  Alice  "])
            let userId = try #require(registered["userId"]?.string)
            #expect(registered["name"] == "Alice")
            #expect(registered["balance"] == 0)
            #expect(try query("GetUser", ["userId": .string(userId)]) == ["userId": .string(userId), "name": "Alice", "balance": 0])
            #expect(try query("GetPointHistory", ["userId": .string(userId)]) == ["entries": []])

            let charged = try command("ChargePoints", ["userId": .string(userId), "amount": 50_000])
            #expect(charged == ["userId": .string(userId), "balance": 50_000])
            #expect(try query("GetUser", ["userId": .string(userId)])["balance"] == 50_000)

            // A concert, scheduled with two sections.
            let concertId = try #require(try command("CreateConcert", ["name": "Winter Night", "artist": "IU"])["concertId"]?.string)
            let startsAt = now + 7 * 86_400_000, opensAt = now - 3_600_000, closesAt = now + 86_400_000
            let scheduled = try command("ScheduleConcert", [
                "concertId": .string(concertId),
                "startsAt": .string(RFC3339.format(startsAt)),
                "reservationOpensAt": .string(RFC3339.format(opensAt)),
                "reservationClosesAt": .string(RFC3339.format(closesAt)),
                "sections": [["name": "VIP", "seatCount": 3, "price": 10_000], ["name": "R", "seatCount": 5, "price": 3_000]],
            ])
            let scheduleId = try #require(scheduled["scheduleId"]?.string)
            #expect(scheduled["seatCount"] == 8)

            // ListSchedules, with and without openAt.
            let all = try query("ListSchedules", [:])["schedules"]!.array
            #expect(all.count == 1)
            #expect(all.first == [
                "scheduleId": .string(scheduleId), "concertId": .string(concertId), "name": "Winter Night", "artist": "IU",
                "startsAt": .string(RFC3339.format(startsAt)), "reservationOpensAt": .string(RFC3339.format(opensAt)),
                "reservationClosesAt": .string(RFC3339.format(closesAt)), "seatCount": 8, "available": 8,
            ])
            let openNow = try query("ListSchedules", ["openAt": .string(RFC3339.format(now))])["schedules"]!.array
            #expect(openNow.map { $0["scheduleId"] } == [.string(scheduleId)])
            #expect(try query("ListSchedules", ["openAt": .string(RFC3339.format(opensAt))])["schedules"]!.array.count == 1)
            #expect(try query("ListSchedules", ["openAt": .string(RFC3339.format(opensAt - 1))])["schedules"]!.array.isEmpty)
            #expect(try query("ListSchedules", ["openAt": .string(RFC3339.format(closesAt + 1))])["schedules"]!.array.isEmpty)
            #expect(try query("ListSchedules", ["concertId": .string(concertId)])["schedules"]!.array.count == 1)
            // Any offset is accepted: the same instant written in +09:00.
            let seoul = String(RFC3339.format(closesAt + 9 * 3_600_000).dropLast()) + "+09:00"
            #expect(try query("ListSchedules", ["openAt": .string(seoul)])["schedules"]!.array.count == 1)
            let seoulLater = String(RFC3339.format(closesAt + 9 * 3_600_000 + 1).dropLast()) + "+09:00"
            #expect(try query("ListSchedules", ["openAt": .string(seoulLater)])["schedules"]!.array.isEmpty)

            // The seat map before any hold: seats numbered across sections, each with its price.
            var (map, statuses) = try seatStatuses(scheduleId)
            #expect(map["available"] == 8 && map["held"] == 0 && map["sold"] == 0)
            let seats = map["seats"]!.array
            #expect(seats.map { $0["number"]!.int! } == Array(1...8))
            #expect(seats.map { $0["section"]!.string! } == ["VIP", "VIP", "VIP", "R", "R", "R", "R", "R"])
            #expect(seats.map { $0["price"]!.int! } == [10_000, 10_000, 10_000, 3_000, 3_000, 3_000, 3_000, 3_000])
            #expect(Set(statuses.values) == ["AVAILABLE"])
            let rSection = try query("GetSeatMap", ["scheduleId": .string(scheduleId), "section": "R"])
            #expect(rSection["seats"]!.array.map { $0["number"]!.int! } == [4, 5, 6, 7, 8])
            #expect(rSection["available"] == 5)

            // Hold seats spanning both sections: the price is the sum.
            let held = try command("HoldSeats", ["userId": .string(userId), "scheduleId": .string(scheduleId), "seatNumbers": [4, 3]])
            let reservationId = try #require(held["reservationId"]?.string)
            #expect(held["seatNumbers"] == [3, 4])
            #expect(held["price"] == 13_000)
            #expect(held["scheduleId"] == .string(scheduleId))
            #expect(held["expiresAt"] == .string(RFC3339.format(now + 300_000)))

            (map, statuses) = try seatStatuses(scheduleId)
            #expect(map["available"] == 6 && map["held"] == 2 && map["sold"] == 0)
            #expect(statuses[3] == "HELD" && statuses[4] == "HELD")
            #expect(statuses.filter { $0.value == "AVAILABLE" }.count == 6)
            #expect(try query("GetSeatMap", ["scheduleId": .string(scheduleId), "section": "VIP"])["held"] == 1)
            let reservation = try query("GetReservation", ["reservationId": .string(reservationId)])
            #expect(reservation == [
                "reservationId": .string(reservationId), "userId": .string(userId), "scheduleId": .string(scheduleId),
                "seatNumbers": [3, 4], "price": 13_000, "status": "HELD",
                "expiresAt": .string(RFC3339.format(now + 300_000)), "createdAt": .string(RFC3339.format(now)),
            ])
            #expect(try query("ListSchedules", [:])["schedules"]![0]?["available"] == 6)

            // Pay.
            let paid = try command("PayReservation", ["userId": .string(userId), "reservationId": .string(reservationId)])
            #expect(paid == ["reservationId": .string(reservationId), "status": "CONFIRMED", "price": 13_000, "balance": 37_000])
            #expect(try query("GetUser", ["userId": .string(userId)])["balance"] == 37_000)
            (map, statuses) = try seatStatuses(scheduleId)
            #expect(map["available"] == 6 && map["held"] == 0 && map["sold"] == 2)
            #expect(statuses[3] == "SOLD" && statuses[4] == "SOLD")
            #expect(try query("GetReservation", ["reservationId": .string(reservationId)])["status"] == "CONFIRMED")

            // A second hold, so ListReservations has an order to show.
            clock.advance(by: 1)
            let second = try command("HoldSeats", ["userId": .string(userId), "scheduleId": .string(scheduleId), "seatNumbers": [8]])
            let secondId = try #require(second["reservationId"]?.string)
            #expect(second["price"] == 3_000)
            let listed = try query("ListReservations", ["userId": .string(userId)])["reservations"]!.array
            #expect(listed.map { $0["reservationId"]!.string! } == [secondId, reservationId])
            #expect(listed.map { $0["status"]!.string! } == ["HELD", "CONFIRMED"])
            #expect(try query("ListReservations", ["userId": .string(userId), "limit": 1])["reservations"]!.array.count == 1)

            var history = try query("GetPointHistory", ["userId": .string(userId)])["entries"]!.array
            #expect(history.count == 2)
            #expect(history.map { $0["n"]!.int! } == [2, 1])
            #expect(history.map { $0["kind"]!.string! } == ["USE", "CHARGE"])
            #expect(history.map { $0["amount"]!.int! } == [13_000, 50_000])
            #expect(history.map { $0["balance"]!.int! } == [37_000, 50_000])
            #expect(history[0]["reservationId"] == .string(reservationId))
            #expect(history[1]["reservationId"] == nil)
            #expect(history[0]["at"] == .string(RFC3339.format(now)))

            // Cancel the confirmed one: a full refund, its seats free again.
            let cancelled = try command("CancelReservation", ["userId": .string(userId), "reservationId": .string(reservationId)])
            #expect(cancelled == ["reservationId": .string(reservationId), "status": "CANCELLED", "refunded": 13_000])
            #expect(try query("GetUser", ["userId": .string(userId)])["balance"] == 50_000)
            (map, statuses) = try seatStatuses(scheduleId)
            #expect(map["available"] == 7 && map["held"] == 1 && map["sold"] == 0)
            #expect(statuses[3] == "AVAILABLE" && statuses[4] == "AVAILABLE" && statuses[8] == "HELD")
            #expect(try query("GetReservation", ["reservationId": .string(reservationId)])["status"] == "CANCELLED")
            let afterCancel = try query("ListReservations", ["userId": .string(userId)])["reservations"]!.array
            #expect(afterCancel.map { $0["status"]!.string! } == ["HELD", "CANCELLED"])
            #expect(try query("ListSchedules", [:])["schedules"]![0]?["available"] == 7)

            history = try query("GetPointHistory", ["userId": .string(userId)])["entries"]!.array
            #expect(history.map { $0["n"]!.int! } == [3, 2, 1])
            #expect(history.map { $0["kind"]!.string! } == ["REFUND", "USE", "CHARGE"])
            #expect(history[0]["amount"] == 13_000 && history[0]["balance"] == 50_000)
            #expect(history[0]["reservationId"] == .string(reservationId))
            let page = try query("GetPointHistory", ["userId": .string(userId), "limit": 1, "before": 3])["entries"]!.array
            #expect(page.map { $0["n"]!.int! } == [2])

            // Cancelling twice is INVALID_STATE, a business rejection: replayed false, a position.
            let again = try s.call("CancelReservation", ["userId": .string(userId), "reservationId": .string(reservationId)])
            #expect(again.code == "INVALID_STATE")
            #expect(again.replayed == false)
            #expect(again.position == lastPosition)
        }
    }
}
