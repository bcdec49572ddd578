import SLAMDomain
import SLAMJSON
import Testing

/// PROTOCOL.md section 4: time rules hold whether or not a sweep has run yet. Alice's hold
/// `res_a` (seat 1 of `sch_x`) expires at `AliceHold.expiresAt`, and no sweep has recorded it.
@Suite("Time rules")
struct TimeRuleTests {
    static let expiresAt = AliceHold.expiresAt

    @Test("paying 1 ms before expiresAt, or at it, succeeds", arguments: [expiresAt - 1, expiresAt])
    func payBeforeExpiry(now: Millis) {
        AliceHold.given()
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: now)
            .then([.command(AliceHold.confirmed),
                   .command(.pointsUsed(userId: alice, amount: 1000, balance: 4000, reservationId: "res_a"))])
    }

    @Test("paying 1 ms after expiresAt is HOLD_EXPIRED, though no sweep recorded it")
    func payAfterExpiry() {
        AliceHold.given()
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: Self.expiresAt + 1)
            .thenRejected(.holdExpired)
    }

    @Test("cancelling 1 ms after expiresAt is HOLD_EXPIRED; at expiresAt it releases")
    func cancelAroundExpiry() {
        AliceHold.given()
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: Self.expiresAt + 1)
            .thenRejected(.holdExpired)
        AliceHold.given()
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: Self.expiresAt)
            .then([.command(.holdReleased(AliceHold.ref))])
    }

    @Test("another user's hold of the lapsed seats records the HoldExpired first, caused by the expiry sweep")
    func lapsedSeatsCanBeHeld() {
        AliceHold.given()
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [1, 2], queueToken: nil), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(AliceHold.ref)),
                   .command(.seatsHeld(reservation("res_1", bob, [1, 2]), expiresAt: Self.expiresAt + 1 + T.holdTtl))],
                  result: ["reservationId": "res_1", "scheduleId": .string(schX), "seatNumbers": [1, 2], "price": 2000,
                           "expiresAt": .string(RFC3339.format(Self.expiresAt + 1 + T.holdTtl))])
    }

    @Test("at expiresAt itself the seats are still held")
    func notYetLapsed() {
        AliceHold.given()
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [1, 2], queueToken: nil), at: Self.expiresAt)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [1]])
    }

    @Test("each lapsed hold on the requested seats is recorded once, in seat order")
    func severalLapsedHolds() {
        let carols = reservation("res_c", carol, [3, 4])
        AliceHold.given([.seatsHeld(carols, expiresAt: Self.expiresAt)])
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [4, 3, 1], queueToken: nil), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(AliceHold.ref)), .expiry(.holdExpired(carols)),
                   .command(.seatsHeld(reservation("res_1", bob, [1, 3, 4]), expiresAt: Self.expiresAt + 1 + T.holdTtl))])
    }

    @Test("a lapsed hold on a requested seat does not save a seat that is really taken")
    func lapsedAndTaken() {
        AliceHold.given([.seatsHeld(reservation("res_c", carol, [2]), expiresAt: Self.expiresAt + T.minute)])
            .when(.holdSeats(userId: bob, scheduleId: schX, seatNumbers: [1, 2], queueToken: nil), at: Self.expiresAt + 1)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [2]])
    }

    @Test("the user's own lapsed hold does not count toward maxSeatsPerUser")
    func lapsedHoldDoesNotCount() {
        let four = reservation("res_a4", alice, [3, 4, 5, 6])
        let scenario = SLAMDomainTests.given().given([.seatsHeld(four, expiresAt: Self.expiresAt)], at: T.now)
        scenario
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [7, 8], queueToken: nil), at: Self.expiresAt)
            .thenRejected(.seatLimitExceeded, details: ["maxSeatsPerUser": 4, "held": 4])
        scenario
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [7, 8], queueToken: nil), at: Self.expiresAt + 1)
            .then([.command(.seatsHeld(reservation("res_1", alice, [7, 8]), expiresAt: Self.expiresAt + 1 + T.holdTtl))])
    }

    @Test("holding again the seats of one's own lapsed hold records its expiry first")
    func reholdOwnSeats() {
        AliceHold.given()
            .when(.holdSeats(userId: alice, scheduleId: schX, seatNumbers: [1], queueToken: nil), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(AliceHold.ref)),
                   .command(.seatsHeld(reservation("res_1", alice, [1]), expiresAt: Self.expiresAt + 1 + T.holdTtl))])
    }

    @Test("a free reservation is confirmed with no PointsUsed, even with an empty wallet")
    func freeConfirm() {
        let free = reservation("res_f", alice, [1, 2], on: schFree)
        SLAMDomainTests.given().given([.seatsHeld(free, expiresAt: Self.expiresAt)], at: T.now)
            .when(.payReservation(userId: alice, reservationId: "res_f"), at: T.now + T.minute)
            .then([.command(.reservationConfirmed(free))],
                  result: ["reservationId": "res_f", "status": "CONFIRMED", "price": 0, "balance": 0])
    }

    @Test("cancelling a free reservation refunds 0 with no PointsRefunded")
    func freeCancel() {
        let free = reservation("res_f", alice, [1], on: schFree)
        SLAMDomainTests.given([.pointsCharged(userId: alice, amount: 10, balance: 10)])
            .given([.seatsHeld(free, expiresAt: Self.expiresAt), .reservationConfirmed(free)], at: T.now)
            .when(.cancelReservation(userId: alice, reservationId: "res_f"), at: T.now + T.minute)
            .then([.command(.reservationCancelled(free, refunded: 0))],
                  result: ["reservationId": "res_f", "status": "CANCELLED", "refunded": 0])
    }

    @Test("a hold that outlasts the start can still be released after the show starts")
    func releaseAfterStart() {
        let late = reservation("res_late", alice, [2])
        // A server whose hold time is above an hour: the hold made as the window closes ends after the start.
        SLAMDomainTests.given().given([.seatsHeld(late, expiresAt: T.starts + T.minute)], at: T.closes)
            .when(.cancelReservation(userId: alice, reservationId: "res_late"), at: T.starts + 1)
            .then([.command(.holdReleased(late))])
    }
}

/// "Sold out" means no seat is AVAILABLE (holds count as taken); `ScheduleReopened` follows when
/// one is again. Judged on the net change of the whole command. `sch_duo` has two seats at 300.
@Suite("Sold out and reopened")
struct AvailabilityTests {
    static let both = reservation("res_a", alice, [1, 2], on: schDuo)
    static let expiresAt = T.now + T.holdTtl
    static let soldOut: [DomainEvent] = [.seatsHeld(both, expiresAt: expiresAt), .scheduleSoldOut(scheduleId: schDuo)]

    static func givenSoldOut(_ later: [DomainEvent] = []) -> Scenario {
        given([.pointsCharged(userId: alice, amount: 5000, balance: 5000)]).given(soldOut + later, at: T.now)
    }

    @Test("taking the last seat records ScheduleSoldOut after the hold")
    func lastSeat() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schDuo, seatNumbers: [1, 2], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [1, 2], on: schDuo), expiresAt: Self.expiresAt)),
                   .command(.scheduleSoldOut(scheduleId: schDuo))])
    }

    @Test("taking a seat that is not the last records nothing more; taking the last one then does")
    func notLastSeat() {
        given()
            .when(.holdSeats(userId: alice, scheduleId: schDuo, seatNumbers: [2], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [2], on: schDuo), expiresAt: Self.expiresAt))])
            .when(.holdSeats(userId: bob, scheduleId: schDuo, seatNumbers: [1], queueToken: nil), at: T.now)
            .then([.command(.seatsHeld(reservation("res_2", bob, [1], on: schDuo), expiresAt: Self.expiresAt)),
                   .command(.scheduleSoldOut(scheduleId: schDuo))])
    }

    @Test("paying for a sold-out schedule's seats changes nothing about availability")
    func payKeepsSoldOut() {
        Self.givenSoldOut()
            .when(.payReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.reservationConfirmed(Self.both)),
                   .command(.pointsUsed(userId: alice, amount: 600, balance: 4400, reservationId: "res_a"))])
    }

    @Test("releasing a hold reopens the schedule")
    func releaseReopens() {
        Self.givenSoldOut()
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.holdReleased(Self.both)), .command(.scheduleReopened(scheduleId: schDuo))])
    }

    @Test("cancelling a confirmed reservation reopens the schedule, after the refund")
    func cancelReopens() {
        Self.givenSoldOut([.reservationConfirmed(Self.both),
                           .pointsUsed(userId: alice, amount: 600, balance: 4400, reservationId: "res_a")])
            .when(.cancelReservation(userId: alice, reservationId: "res_a"), at: T.now + T.minute)
            .then([.command(.reservationCancelled(Self.both, refunded: 600)),
                   .command(.pointsRefunded(userId: alice, amount: 600, balance: 5000, reservationId: "res_a")),
                   .command(.scheduleReopened(scheduleId: schDuo))])
    }

    @Test("the expiry sweep reopens the schedule, both events its own")
    func expiryReopens() {
        Self.givenSoldOut()
            .when(.expireHold(reservationId: "res_a"), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(Self.both)), .expiry(.scheduleReopened(scheduleId: schDuo))])
    }

    @Test("re-taking every seat a lapsed hold frees is no net change: neither reopened nor sold out again")
    func netZero() {
        Self.givenSoldOut()
            .when(.holdSeats(userId: bob, scheduleId: schDuo, seatNumbers: [1, 2], queueToken: nil), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(Self.both)),
                   .command(.seatsHeld(reservation("res_1", bob, [1, 2], on: schDuo), expiresAt: Self.expiresAt + 1 + T.holdTtl))])
    }

    @Test("re-taking fewer seats than a lapsed hold frees reopens the schedule")
    func netFreed() {
        Self.givenSoldOut()
            .when(.holdSeats(userId: bob, scheduleId: schDuo, seatNumbers: [2], queueToken: nil), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(Self.both)),
                   .command(.seatsHeld(reservation("res_1", bob, [2], on: schDuo), expiresAt: Self.expiresAt + 1 + T.holdTtl)),
                   .command(.scheduleReopened(scheduleId: schDuo))])
    }

    @Test("taking a lapsed seat and the last free one sells out")
    func netTaken() {
        let one = reservation("res_a1", alice, [1], on: schDuo)
        given().given([.seatsHeld(one, expiresAt: Self.expiresAt)], at: T.now)
            .when(.holdSeats(userId: bob, scheduleId: schDuo, seatNumbers: [1, 2], queueToken: nil), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(one)),
                   .command(.seatsHeld(reservation("res_1", bob, [1, 2], on: schDuo), expiresAt: Self.expiresAt + 1 + T.holdTtl)),
                   .command(.scheduleSoldOut(scheduleId: schDuo))])
    }

    @Test("taking the last free seat while another hold has lapsed records that expiry first, and does not sell out")
    func lapsedElsewhereIsNotSoldOut() {
        // Seat 1's hold lapsed and is not yet recorded: its seat is available, so holding seat 2
        // leaves the schedule with a free seat (PROTOCOL.md section 7: sold out means no seat
        // is AVAILABLE).
        let one = reservation("res_a1", alice, [1], on: schDuo)
        given().given([.seatsHeld(one, expiresAt: Self.expiresAt)], at: T.now)
            .when(.holdSeats(userId: bob, scheduleId: schDuo, seatNumbers: [2], queueToken: nil), at: Self.expiresAt + 1)
            .then([.expiry(.holdExpired(one)),
                   .command(.seatsHeld(reservation("res_1", bob, [2], on: schDuo), expiresAt: Self.expiresAt + 1 + T.holdTtl))])
    }

    @Test("of the schedule's lapsed holds the earliest is recorded, its confirmed reservations untouched")
    func earliestLapsed() {
        // sch_x's ten seats: 3 to 9 confirmed, 1 and 2 held and lapsed (res_z the earlier, though its
        // id sorts after res_a's), 10 free.
        let early = reservation("res_z", alice, [1]), late = reservation("res_a", bob, [2])
        let sold = [reservation("res_e", erin, [3, 4, 5, 6]), reservation("res_d", dave, [7, 8, 9])]
        given()
            .given(sold.flatMap { [DomainEvent.seatsHeld($0, expiresAt: T.now + T.holdTtl), .reservationConfirmed($0)] }, at: T.now)
            .given([.seatsHeld(early, expiresAt: T.now + T.holdTtl)], at: T.now)
            .given([.seatsHeld(late, expiresAt: T.now + T.minute + T.holdTtl)], at: T.now + T.minute)
            .when(.holdSeats(userId: carol, scheduleId: schX, seatNumbers: [10], queueToken: nil), at: T.now + 2 * T.minute + T.holdTtl)
            .then([.expiry(.holdExpired(early)),
                   .command(.seatsHeld(reservation("res_1", carol, [10]), expiresAt: T.now + 2 * T.minute + 2 * T.holdTtl))])
    }

    @Test("taking the last free seat while the other hold still lasts sells out")
    func liveElsewhereIsSoldOut() {
        let one = reservation("res_a1", alice, [1], on: schDuo)
        given().given([.seatsHeld(one, expiresAt: Self.expiresAt)], at: T.now)
            .when(.holdSeats(userId: bob, scheduleId: schDuo, seatNumbers: [2], queueToken: nil), at: Self.expiresAt)
            .then([.command(.seatsHeld(reservation("res_1", bob, [2], on: schDuo), expiresAt: Self.expiresAt + T.holdTtl)),
                   .command(.scheduleSoldOut(scheduleId: schDuo))])
    }

    @Test("a reopened schedule sells out again")
    func soldOutAgain() {
        Self.givenSoldOut([.holdReleased(Self.both), .scheduleReopened(scheduleId: schDuo)])
            .when(.holdSeats(userId: bob, scheduleId: schDuo, seatNumbers: [1, 2], queueToken: nil), at: T.now + T.minute)
            .then([.command(.seatsHeld(reservation("res_1", bob, [1, 2], on: schDuo), expiresAt: T.now + T.minute + T.holdTtl)),
                   .command(.scheduleSoldOut(scheduleId: schDuo))])
    }
}

/// The server's decision clock: the base clock's time, never earlier than what it gave before or
/// than its seed.
@Suite("NonDecreasingClock")
struct NonDecreasingClockTests {
    @Test func neverGoesBackwards() {
        let base = ManualClock(1_000)
        let clock = NonDecreasingClock(base)
        #expect(clock.now() == 1_000)
        base.set(400)  // stepped back
        #expect(clock.now() == 1_000)
        base.set(1_001)
        #expect(clock.now() == 1_001)
    }

    @Test func heldAtItsSeedUntilTheBaseCatchesUp() {
        let base = ManualClock(500)
        let clock = NonDecreasingClock(base, notBefore: 800)
        #expect(clock.now() == 800)
        base.set(900)
        #expect(clock.now() == 900)
    }
}
