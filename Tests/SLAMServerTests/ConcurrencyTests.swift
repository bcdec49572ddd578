import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMTesting
import Testing

@Suite("Server over real sockets: many connections at once")
struct ConcurrencyTests {
    /// Registers `count` users, pipelined on one connection; returns their ids in order.
    static func registerUsers(_ c: SLAMClient, count: Int) throws -> [String] {
        var ids: [String] = []
        for i in 0..<count {
            ids.append(try c.send("RegisterUser", ["name": .string("fan \(i)")], key: "reg-\(i)-" + UUID().uuidString))
        }
        let replies = try collect(c, ids)
        return try ids.map { id in
            let r = try #require(replies[id])
            guard r.ok, let userId = r.body["userId"]?.string else { throw ClientError("RegisterUser failed: \(r.bodyText)") }
            return userId
        }
    }

    /// Sends one request on each connection, then collects one reply from each.
    static func fanOut(_ clients: [SLAMClient], _ request: (Int, SLAMClient) throws -> String) throws -> [Reply] {
        let ids = try clients.enumerated().map { i, c in try request(i, c) }
        return try zip(clients, ids).map { c, id in try #require(try collect(c, [id])[id]) }
    }

    /// 500 connections hold the same seat at once: exactly one wins.
    @Test func fiveHundredHoldsOnOneSeat() throws {
        let clock = ManualClock(SystemClock().now())
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let users = try Self.registerUsers(c, count: 500)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 20)

            var clients: [SLAMClient] = []
            defer { for client in clients { client.close() } }
            for _ in 0..<500 { clients.append(try ts.client()) }
            let replies = try Self.fanOut(clients) { i, client in
                try client.send("HoldSeats", ["userId": .string(users[i]), "scheduleId": .string(scheduleId), "seatNumbers": [7]],
                                key: "hold-\(i)-" + UUID().uuidString)
            }

            let winners = replies.indices.filter { replies[$0].ok }
            #expect(winners.count == 1)
            let losers = replies.filter { !$0.ok }
            #expect(losers.count == 499)
            #expect(losers.allSatisfy { $0.code == "SEAT_UNAVAILABLE" })
            #expect(losers.allSatisfy { $0.details?["seatNumbers"] == [7] })
            #expect(replies.allSatisfy { $0.replayed == false })
            let winner = try #require(winners.first)
            let reservationId = try #require(replies[winner].body["reservationId"]?.string)
            #expect(replies[winner].body["seatNumbers"] == [7])

            let map = try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])
            #expect(map["held"] == 1 && map["available"] == 19 && map["sold"] == 0)
            let seat7 = map["seats"]!.array.first { $0["number"] == 7 }
            #expect(seat7?["status"] == "HELD")
            let reservation = try s.must("GetReservation", ["reservationId": .string(reservationId)])
            #expect(reservation["status"] == "HELD")
            #expect(reservation["userId"] == .string(users[winner]))
            #expect(reservation["seatNumbers"] == [7])
            // A loser has no reservation at all.
            let loser = users[winner == 0 ? 1 : 0]
            #expect(try s.must("ListReservations", ["userId": .string(loser)])["reservations"] == [])
            let st = try stats(s)
            #expect(st.users == 500)
            #expect(try s.must("GetStats")["reservations"] == 1)
        }
    }

    /// 50 connections hold 50 different seats at once: all succeed.
    @Test func fiftyHoldsOnFiftySeats() throws {
        let clock = ManualClock(SystemClock().now())
        try withServer(clock: clock) { ts in
            let (c, s) = try ts.scenario()
            defer { c.close() }
            let users = try Self.registerUsers(c, count: 50)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 50)

            var clients: [SLAMClient] = []
            defer { for client in clients { client.close() } }
            for _ in 0..<50 { clients.append(try ts.client()) }
            let replies = try Self.fanOut(clients) { i, client in
                try client.send("HoldSeats", ["userId": .string(users[i]), "scheduleId": .string(scheduleId),
                                              "seatNumbers": [.int(Int64(i + 1))]], key: "hold50-\(i)-" + UUID().uuidString)
            }
            for (i, r) in replies.enumerated() {
                #expect(r.ok, "seat \(i + 1): \(r.bodyText)")
                #expect(r.body["seatNumbers"] == [.int(Int64(i + 1))])
            }
            #expect(Set(replies.compactMap { $0.body["reservationId"]?.string }).count == 50)

            let map = try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])
            #expect(map["held"] == 50 && map["available"] == 0 && map["sold"] == 0)
            #expect(map["seats"]!.array.count == 50)
            #expect(map["seats"]!.array.allSatisfy { $0["status"] == "HELD" })
            for (i, r) in replies.enumerated() {
                let reservation = try s.must("GetReservation", ["reservationId": r.body["reservationId"]!])
                #expect(reservation["userId"] == .string(users[i]) && reservation["status"] == "HELD")
            }
        }
    }
}
