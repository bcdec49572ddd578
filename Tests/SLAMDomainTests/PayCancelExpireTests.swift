import SLAMDomain
import SLAMJSON
import Testing

/// Alice's hold `res_a` of VIP seat 1 (1,000 points) on `sch_x`, made at `T.now`, expiring five
/// minutes later; her wallet holds 5,000 points.
enum AliceHold {
    static let ref = reservation("res_a", alice, [1])
    static let expiresAt = T.now + T.holdTtl
    static let charged = DomainEvent.pointsCharged(userId: alice, amount: 5000, balance: 5000)
    static let held = DomainEvent.seatsHeld(ref, expiresAt: expiresAt)
    static let confirmed = DomainEvent.reservationConfirmed(ref)
    static let paid: [DomainEvent] = [confirmed, .pointsUsed(userId: alice, amount: 1000, balance: 4000, reservationId: "res_a")]

    /// The world with Alice's hold, and more events after it.
    static func given(_ later: [DomainEvent] = []) -> Scenario {
        SLAMDomainTests.given([charged]).given([held] + later, at: T.now)
    }
}

@Suite("PayReservation")
struct PayReservationTests {
    @Test("confirms the reservation and uses its price in points")
    func pays() {
        AliceHold.given()
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.reservationConfirmed(AliceHold.ref)),
                   .command(.pointsUsed(userId: alice, amount: 1000, balance: 4000, reservationId: "res_a"))],
                  result: ["reservationId": "res_a", "status": "CONFIRMED", "price": 1000, "balance": 4000])
    }

    @Test("a balance of exactly the price pays it, leaving 0")
    func exactBalance() {
        SLAMDomainTests.given([.pointsCharged(userId: alice, amount: 1000, balance: 1000)])
            .given([AliceHold.held], at: T.now)
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.reservationConfirmed(AliceHold.ref)),
                   .command(.pointsUsed(userId: alice, amount: 1000, balance: 0, reservationId: "res_a"))],
                  result: ["reservationId": "res_a", "status": "CONFIRMED", "price": 1000, "balance": 0])
    }

    @Test("a balance below the price is INSUFFICIENT_BALANCE naming both")
    func insufficientBalance() {
        SLAMDomainTests.given([.pointsCharged(userId: alice, amount: 999, balance: 999)])
            .given([AliceHold.held], at: T.now)
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .thenRejected(.insufficientBalance, details: ["price": 1000, "balance": 999])
    }

    @Test("paying after the reservation window closed, before the hold expires, succeeds")
    func afterWindowClosed() {
        let late = reservation("res_late", alice, [2])
        SLAMDomainTests.given([AliceHold.charged]).given([.seatsHeld(late, expiresAt: T.closes + T.holdTtl)], at: T.closes)
            .when(.payReservation(userId: alice, reservationId: "res_late"), at: T.closes + T.minute)
            .then([.command(.reservationConfirmed(late)),
                   .command(.pointsUsed(userId: alice, amount: 1000, balance: 4000, reservationId: "res_late"))])
    }

    @Test("paying a hold still live after the show has started succeeds: section 4 has no startsAt rule for payment")
    func afterTheShowStarted() {
        // (A window may close at startsAt; a hold made then lasts its 5 minutes.)
        let late = reservation("res_late", alice, [2])
        SLAMDomainTests.given([AliceHold.charged]).given([.seatsHeld(late, expiresAt: T.starts + T.holdTtl - T.minute)],
                                                         at: T.starts - T.minute)
            .when(.payReservation(userId: alice, reservationId: "res_late"), at: T.starts + T.minute)
            .then([.command(.reservationConfirmed(late)),
                   .command(.pointsUsed(userId: alice, amount: 1000, balance: 4000, reservationId: "res_late"))])
    }

    @Test("an unknown user is USER_NOT_FOUND")
    func unknownUser() {
        AliceHold.given()
            .when(.payReservation(userId: "usr_nobody", reservationId: "res_a"), at: T.now)
            .thenRejected(.userNotFound)
    }

    @Test("an unknown reservation is RESERVATION_NOT_FOUND")
    func unknownReservation() {
        AliceHold.given()
            .when(.payReservation(userId: alice, reservationId: "res_nope"), at: T.now)
            .thenRejected(.reservationNotFound)
    }

    @Test("another user's reservation is FORBIDDEN, even when that user could pay")
    func anotherUsers() {
        AliceHold.given([.pointsCharged(userId: bob, amount: 5000, balance: 5000)])
            .when(.payReservation(userId: bob, reservationId: "res_a"), at: T.now)
            .thenRejected(.forbidden)
    }

    struct Ended: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var events: [DomainEvent]
        var code: ErrorCode
    }

    @Test("a reservation no longer HELD cannot be paid", arguments: [
        Ended(testDescription: "CONFIRMED", events: AliceHold.paid, code: .invalidState),
        Ended(testDescription: "RELEASED", events: [.holdReleased(AliceHold.ref)], code: .invalidState),
        Ended(testDescription: "CANCELLED",
              events: AliceHold.paid + [.reservationCancelled(AliceHold.ref, refunded: 1000)], code: .invalidState),
        Ended(testDescription: "EXPIRED", events: [.holdExpired(AliceHold.ref)], code: .holdExpired),
    ])
    func notHeld(_ c: Ended) {
        AliceHold.given(c.events)
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .thenRejected(c.code)
    }

    @Test("INVALID_STATE names the reservation's status")
    func invalidStateDetails() {
        AliceHold.given([.holdReleased(AliceHold.ref)])
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .thenRejected(.invalidState, details: ["status": "RELEASED"])
    }

    @Test("paying twice: the second is INVALID_STATE")
    func payTwice() {
        AliceHold.given()
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(AliceHold.confirmed),
                   .command(.pointsUsed(userId: alice, amount: 1000, balance: 4000, reservationId: "res_a"))])
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + 2 * T.minute)
            .thenRejected(.invalidState, details: ["status": "CONFIRMED"])
    }

    struct Order: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var userId: String
        var reservationId: String
        var now: Millis
        var code: ErrorCode
    }

    // Carol has no points and both holds are lapsed at each row's time: each row breaks every rule after its own.
    @Test("when several rules are broken, the first in PROTOCOL.md's order answers", arguments: [
        Order(testDescription: "unknown user before unknown reservation",
              userId: "usr_nobody", reservationId: "res_nope", now: AliceHold.expiresAt + 1, code: .userNotFound),
        Order(testDescription: "ownership before an expired hold",
              userId: bob, reservationId: "res_a", now: AliceHold.expiresAt + 1, code: .forbidden),
        Order(testDescription: "an expired hold before the balance",
              userId: carol, reservationId: "res_c", now: AliceHold.expiresAt + 1, code: .holdExpired),
    ])
    func orderOfChecks(_ c: Order) {
        AliceHold.given([.seatsHeld(reservation("res_c", carol, [2]), expiresAt: AliceHold.expiresAt)])
            .when(.payReservation(userId: c.userId, reservationId: c.reservationId), at: c.now)
            .thenRejected(c.code)
    }
}

/// Schemas/README.md 34: live through its `expiresAt` millisecond, lapsed from the next.
@Suite("A hold at exactly its expiresAt")
struct HoldAtExpiresAtTests {
    @Test("it can be paid, and a millisecond later it cannot")
    func paid() {
        AliceHold.given()
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: AliceHold.expiresAt)
            .then([.command(.reservationConfirmed(AliceHold.ref)),
                   .command(.pointsUsed(userId: alice, amount: 1000, balance: 4000, reservationId: "res_a"))],
                  result: ["reservationId": "res_a", "status": "CONFIRMED", "price": 1000, "balance": 4000])
        AliceHold.given()
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: AliceHold.expiresAt + 1)
            .thenRejected(.holdExpired)
    }

    @Test("it can be released, and a millisecond later it cannot")
    func released() {
        AliceHold.given()
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: AliceHold.expiresAt)
            .then([.command(.holdReleased(AliceHold.ref))], result: ["reservationId": "res_a", "status": "RELEASED", "refunded": 0])
        AliceHold.given()
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: AliceHold.expiresAt + 1)
            .thenRejected(.holdExpired)
    }

    @Test("its seat is not free, and a millisecond later it is")
    func seatTaken() {
        AliceHold.given()
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [1], queueToken: nil), at: AliceHold.expiresAt)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [1]])
        AliceHold.given()
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [1], queueToken: nil), at: AliceHold.expiresAt + 1)
            .then([.expiry(.holdExpired(AliceHold.ref)),
                   .command(.seatsHeld(reservation("res_1", bob, [1]), expiresAt: AliceHold.expiresAt + 1 + T.holdTtl))],
                  result: ["reservationId": "res_1", "scheduleId": .string(schX), "seatNumbers": [1], "price": 1000,
                           "expiresAt": .string(RFC3339.format(AliceHold.expiresAt + 1 + T.holdTtl))])
    }
}

@Suite("CancelReservation")
struct CancelReservationTests {
    @Test("a HELD reservation is released with nothing refunded")
    func releasesHold() {
        AliceHold.given()
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.holdReleased(AliceHold.ref))],
                  result: ["reservationId": "res_a", "status": "RELEASED", "refunded": 0])
    }

    @Test("a CONFIRMED reservation is cancelled with its full price refunded")
    func cancelsConfirmed() {
        AliceHold.given(AliceHold.paid)
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.reservationCancelled(AliceHold.ref, refunded: 1000)),
                   .command(.pointsRefunded(userId: alice, amount: 1000, balance: 5000, reservationId: "res_a"))],
                  result: ["reservationId": "res_a", "status": "CANCELLED", "refunded": 1000])
    }

    @Test("a refund may take the balance above the 1,000,000 cap")
    func refundAboveCap() {
        AliceHold.given(AliceHold.paid + [.pointsCharged(userId: alice, amount: 996_000, balance: 1_000_000)])
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.reservationCancelled(AliceHold.ref, refunded: 1000)),
                   .command(.pointsRefunded(userId: alice, amount: 1000, balance: 1_001_000, reservationId: "res_a"))],
                  result: ["reservationId": "res_a", "status": "CANCELLED", "refunded": 1000])
    }

    @Test("a CONFIRMED reservation can be cancelled until 1 ms before the show")
    func justBeforeTheShow() {
        AliceHold.given(AliceHold.paid)
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.starts - 1)
            .then([.command(.reservationCancelled(AliceHold.ref, refunded: 1000)),
                   .command(.pointsRefunded(userId: alice, amount: 1000, balance: 5000, reservationId: "res_a"))])
    }

    @Test("cancelling a CONFIRMED reservation at or after the start is INVALID_STATE",
          arguments: [T.starts, T.starts + 1, T.starts + 86_400_000])
    func afterTheShowStarted(now: Millis) {
        AliceHold.given(AliceHold.paid)
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: now)
            .thenRejected(.invalidState, details: ["status": "CONFIRMED"])
    }

    @Test("an unknown user is USER_NOT_FOUND")
    func unknownUser() {
        AliceHold.given()
            .when(.cancelReservation(userId: "usr_nobody", reservationId: "res_a"), at: T.now)
            .thenRejected(.userNotFound)
    }

    @Test("an unknown reservation is RESERVATION_NOT_FOUND")
    func unknownReservation() {
        AliceHold.given()
            .when(.cancelReservation(userId: alice, reservationId: "res_nope"), at: T.now)
            .thenRejected(.reservationNotFound)
    }

    @Test("another user's reservation is FORBIDDEN, before its state is judged")
    func anotherUsers() {
        AliceHold.given([.holdReleased(AliceHold.ref)])
            .when(.cancelReservation(userId: bob, reservationId: "res_a"), at: T.now)
            .thenRejected(.forbidden)
    }

    struct Ended: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var events: [DomainEvent]
        var code: ErrorCode
        var status: String
    }

    @Test("a reservation already ended cannot be cancelled", arguments: [
        Ended(testDescription: "RELEASED", events: [.holdReleased(AliceHold.ref)], code: .invalidState, status: "RELEASED"),
        Ended(testDescription: "CANCELLED", events: AliceHold.paid + [.reservationCancelled(AliceHold.ref, refunded: 1000)],
              code: .invalidState, status: "CANCELLED"),
    ])
    func ended(_ c: Ended) {
        AliceHold.given(c.events)
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .thenRejected(c.code, details: ["status": .string(c.status)])
    }

    @Test("a recorded expiry is HOLD_EXPIRED")
    func recordedExpiry() {
        AliceHold.given([.holdExpired(AliceHold.ref)])
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: AliceHold.expiresAt + 1)
            .thenRejected(.holdExpired)
    }

    @Test("cancelling twice: the second is INVALID_STATE", arguments: [false, true])
    func cancelTwice(paid: Bool) {
        let first = AliceHold.given(paid ? AliceHold.paid : [])
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
        #expect(first.rejection == nil)
        first.next
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + 2 * T.minute)
            .thenRejected(.invalidState, details: ["status": paid ? "CANCELLED" : "RELEASED"])
    }

    @Test("a cancelled reservation cannot be paid, nor a paid one paid again after a cancellation")
    func payAfterCancel() {
        AliceHold.given()
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.holdReleased(AliceHold.ref))])
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + 2 * T.minute)
            .thenRejected(.invalidState, details: ["status": "RELEASED"])
    }
}

@Suite("ExpireHold (the expiry sweep)")
struct ExpireHoldTests {
    @Test("a hold past its expiresAt is recorded as expired, caused by the sweep")
    func expires() {
        AliceHold.given()
            .when(.expireHold(reservationId: "res_a"), at: AliceHold.expiresAt + 1)
            .then([.expiry(.holdExpired(AliceHold.ref))], result: ["reservationId": "res_a"])
    }

    @Test("an expired hold frees its seats for anyone")
    func freesSeats() {
        AliceHold.given()
            .when(.expireHold(reservationId: "res_a"), at: AliceHold.expiresAt + 1)
            .then([.expiry(.holdExpired(AliceHold.ref))])
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [1], queueToken: nil), at: AliceHold.expiresAt + 2)
            .then([.command(.seatsHeld(reservation("res_1", bob, [1]), expiresAt: AliceHold.expiresAt + 2 + T.holdTtl))])
    }

    struct NothingToDo: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var events: [DomainEvent]
        var reservationId: String = "res_a"
        var now: Millis
    }

    @Test("a hold not yet lapsed, or a reservation already ended, needs nothing", arguments: [
        NothingToDo(testDescription: "HELD, 1 ms before expiresAt", events: [], now: AliceHold.expiresAt - 1),
        NothingToDo(testDescription: "HELD, at expiresAt", events: [], now: AliceHold.expiresAt),
        NothingToDo(testDescription: "CONFIRMED", events: AliceHold.paid, now: AliceHold.expiresAt + 1),
        NothingToDo(testDescription: "RELEASED", events: [.holdReleased(AliceHold.ref)], now: AliceHold.expiresAt + 1),
        NothingToDo(testDescription: "already EXPIRED", events: [.holdExpired(AliceHold.ref)], now: AliceHold.expiresAt + 1),
        NothingToDo(testDescription: "CANCELLED", events: AliceHold.paid + [.reservationCancelled(AliceHold.ref, refunded: 1000)],
                    now: AliceHold.expiresAt + 1),
        NothingToDo(testDescription: "unknown", events: [], reservationId: "res_nope", now: AliceHold.expiresAt + 1),
    ])
    func nothingToDo(_ c: NothingToDo) {
        AliceHold.given(c.events)
            .when(.expireHold(reservationId: c.reservationId), at: c.now)
            .then([])
    }
}
