import SLAMDomain
import SLAMJSON
import Testing

/// HoldSeats on `sch_x` (no queue): VIP seats 1–2 at 1,000, R seats 3–10 at 500, 4 per user.
@Suite("HoldSeats")
struct HoldSeatsTests {
    /// A live hold made a minute before `T.now`.
    static func held(_ r: ReservationRef) -> DomainEvent { .seatsHeld(r, expiresAt: T.now + 4 * T.minute) }

    @Test("holds the seats, sorted, for five minutes at the sum of their prices")
    func holds() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [3, 1], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(ReservationRef(reservationId: "res_1", userId: alice, scheduleId: schX,
                                                      seatNumbers: [1, 3], price: 1500),
                                       expiresAt: T.now + T.holdTtl))],
                  result: ["reservationId": "res_1", "scheduleId": .string(schX), "seatNumbers": [1, 3], "price": 1500,
                           "expiresAt": "2026-12-10T12:05:00.000Z"])
    }

    @Test("the hold lasts the server's hold time")
    func holdTime() {
        var scenario = given()
        scenario.holdTtl = 90 * T.second
        scenario
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [10], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [10]), expiresAt: T.now + 90 * T.second))],
                  result: ["reservationId": "res_1", "scheduleId": .string(schX), "seatNumbers": [10], "price": 500,
                           "expiresAt": "2026-12-10T12:01:30.000Z"])
    }

    @Test("the window's bounds are inside it", arguments: [T.opens, T.closes])
    func windowBounds(now: Millis) {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [1], queueToken: nil), at: now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [1]), expiresAt: now + T.holdTtl))])
    }

    @Test("outside the window is RESERVATION_WINDOW_CLOSED", arguments: [T.opens - 1, T.closes + 1, T.starts])
    func windowClosed(now: Millis) {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [1], queueToken: nil), at: now)
            .thenRejected(.reservationWindowClosed)
    }

    @Test("an unknown user is USER_NOT_FOUND")
    func unknownUser() {
        given()
            .when(.holdSeats(userId: "usr_nobody", scheduleId: schX, seatNumbers: [1], queueToken: nil), at: T.now)
            .thenRejected(.userNotFound)
    }

    @Test("an unknown schedule is SCHEDULE_NOT_FOUND")
    func unknownSchedule() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: "sch_nope", seatNumbers: [1], queueToken: nil), at: T.now)
            .thenRejected(.scheduleNotFound)
    }

    @Test("a seat above the schedule's seats is SEAT_NOT_FOUND listing every such seat")
    func unknownSeat() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [12, 2, 11], queueToken: nil), at: T.now)
            .thenRejected(.seatNotFound, details: ["seatNumbers": [11, 12]])
    }

    @Test("a seat held by someone else is SEAT_UNAVAILABLE listing the taken seats")
    func heldSeat() {
        given([Self.held(reservation("res_bob", bob, [1, 3]))])
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [4, 3, 2, 1], queueToken: nil), at: T.now)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [1, 3]])
    }

    @Test("a sold seat is SEAT_UNAVAILABLE")
    func soldSeat() {
        let r = reservation("res_bob", bob, [5])
        given([Self.held(r), .reservationConfirmed(r)])
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [5], queueToken: nil), at: T.now)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [5]])
    }

    @Test("the user's own held seat is SEAT_UNAVAILABLE too")
    func ownSeat() {
        given([Self.held(reservation("res_a", alice, [5]))])
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [5], queueToken: nil), at: T.now)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [5]])
    }

    @Test("seats freed by a release, a cancellation or an expiry can be held again", arguments: ["released", "cancelled", "expired"])
    func freedSeats(how: String) {
        let r = reservation("res_bob", bob, [1, 2])
        let end: [DomainEvent] = switch how {
        case "released": [.holdReleased(r)]
        case "cancelled": [.reservationConfirmed(r), .reservationCancelled(r, refunded: 2000)]
        default: [.holdExpired(r)]
        }
        given([Self.held(r)] + end)
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [1, 2], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [1, 2]), expiresAt: T.now + T.holdTtl))])
    }

    @Test("more seats than maxSeatsPerUser in one hold is SEAT_LIMIT_EXCEEDED")
    func tooManyAtOnce() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [3, 4, 5, 6, 7], queueToken: nil), at: T.now)
            .thenRejected(.seatLimitExceeded, details: ["maxSeatsPerUser": 4, "held": 0])
    }

    @Test("the user's held and confirmed seats count toward maxSeatsPerUser")
    func limitCountsLiveSeats() {
        let confirmed = reservation("res_a1", alice, [3, 4])
        given([Self.held(confirmed), .reservationConfirmed(confirmed), Self.held(reservation("res_a2", alice, [5]))])
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [6, 7], queueToken: nil), at: T.now)
            .thenRejected(.seatLimitExceeded, details: ["maxSeatsPerUser": 4, "held": 3])
    }

    @Test("up to maxSeatsPerUser in all is allowed")
    func limitReachedExactly() {
        let confirmed = reservation("res_a1", alice, [3, 4])
        given([Self.held(confirmed), .reservationConfirmed(confirmed), Self.held(reservation("res_a2", alice, [5]))])
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [6], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [6]), expiresAt: T.now + T.holdTtl))])
    }

    @Test("released, cancelled and expired reservations do not count toward maxSeatsPerUser")
    func endedDoNotCount() {
        let released = reservation("res_a1", alice, [3, 4]), cancelled = reservation("res_a2", alice, [5, 6])
        let expired = reservation("res_a3", alice, [7, 8])
        given([Self.held(released), .holdReleased(released),
               Self.held(cancelled), .reservationConfirmed(cancelled), .reservationCancelled(cancelled, refunded: 1000),
               Self.held(expired), .holdExpired(expired)])
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [3, 4, 5, 6], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [3, 4, 5, 6]), expiresAt: T.now + T.holdTtl))])
    }

    @Test("other users' seats and other schedules' seats do not count toward maxSeatsPerUser")
    func limitIsPerUserAndSchedule() {
        given([Self.held(reservation("res_b", bob, [3, 4, 5, 6])), Self.held(reservation("res_duo", alice, [1, 2], on: schDuo))])
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [7, 8, 9, 10], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [7, 8, 9, 10]), expiresAt: T.now + T.holdTtl))])
    }

    @Test("a queue token on a schedule without a queue is ignored")
    func tokenIgnoredWithoutQueue() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [1], queueToken: "tok_whatever"), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [1]), expiresAt: T.now + T.holdTtl))])
    }

    @Test("two holds get two reservations")
    func twoHolds() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [1], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [1]), expiresAt: T.now + T.holdTtl))])
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [2], queueToken: nil), at: T.now + 1)
            .then([.command(.seatsHeld(reservation("res_2", bob, [2]), expiresAt: T.now + 1 + T.holdTtl))])
            .when(.holdSeats(userId: carol, scheduleId: schX, seatNumbers: [2], queueToken: nil), at: T.now + 2)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [2]])
    }

    // PROTOCOL.md section 2: unknown ids, then state and time, queue token, limits, availability.
    struct Order: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var userId: String
        var scheduleId: String
        var seats: [Int]
        var now: Millis
        var code: ErrorCode
    }

    @Test("when several rules are broken, the first in PROTOCOL.md's order answers", arguments: [
        Order(testDescription: "unknown user before unknown schedule",
              userId: "usr_nobody", scheduleId: "sch_nope", seats: [1], now: T.now, code: .userNotFound),
        Order(testDescription: "unknown schedule before a closed window",
              userId: alice, scheduleId: "sch_nope", seats: [1], now: T.opens - 1, code: .scheduleNotFound),
        Order(testDescription: "unknown seat before a closed window",
              userId: alice, scheduleId: schX, seats: [11], now: T.opens - 1, code: .seatNotFound),
        Order(testDescription: "a closed window before the seat limit",
              userId: alice, scheduleId: schX, seats: [6, 7, 8, 9, 10], now: T.closes + 1, code: .reservationWindowClosed),
        Order(testDescription: "a closed window before a taken seat",
              userId: alice, scheduleId: schX, seats: [1], now: T.closes + 1, code: .reservationWindowClosed),
        Order(testDescription: "the seat limit before a taken seat",
              userId: alice, scheduleId: schX, seats: [1, 2, 3, 4, 5], now: T.now, code: .seatLimitExceeded),
    ])
    func orderOfChecks(_ c: Order) {
        given([.seatsHeld(reservation("res_bob", bob, [1]), expiresAt: T.closes + T.minute)])
            .when(.holdSeats(userId: c.userId, scheduleId: c.scheduleId, seatNumbers: c.seats, queueToken: nil), at: c.now)
            .thenRejected(c.code)
    }
}
