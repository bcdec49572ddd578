import SLAMDomain
import SLAMJSON
import Testing

// `sch_q` admits one active token at a time (active 600 s, waiting 300 s); `sch_q2` two.

func joined(_ id: String, _ user: String, on schedule: String = schQ) -> DomainEvent {
    .queueJoined(token(id, user, on: schedule))
}

func activated(_ id: String, _ user: String, until: Millis, on schedule: String = schQ) -> DomainEvent {
    .queueTokenActivated(token(id, user, on: schedule), activeUntil: until)
}

/// A line on `sch_q`: Alice active since `T.now`, Bob waiting since 8 minutes later, Carol since 9.
enum Line {
    static let aliceUntil = T.now + 600_000
    static let bobJoined = T.now + 8 * T.minute
    static let carolJoined = T.now + 9 * T.minute
    /// Everyone still live.
    static let now = carolJoined + T.second

    static func given(_ later: [DomainEvent] = [], at time: Millis = now) -> Scenario {
        SLAMDomainTests.given()
            .given([joined("tok_alice", alice), activated("tok_alice", alice, until: aliceUntil)], at: T.now)
            .given([joined("tok_bob", bob)], at: bobJoined)
            .given([joined("tok_carol", carol)], at: carolJoined)
            .given(later, at: time)
    }
}

@Suite("JoinQueue")
struct JoinQueueTests {
    @Test("the first joiner is ACTIVE at once; with one slot the second waits with 0 ahead, the third with 1")
    func firstSecondThird() {
        given()
            .when(.joinQueue(userId: alice, scheduleId: schQ), at: T.now)
            .then([.command(joined("tok_1", alice)), .command(activated("tok_1", alice, until: T.now + 600_000))],
                  result: ["tokenId": "tok_1", "status": "ACTIVE", "ahead": 0])
            .when(.joinQueue(userId: bob, scheduleId: schQ), at: T.now + T.second)
            .then([.command(joined("tok_2", bob))], result: ["tokenId": "tok_2", "status": "WAITING", "ahead": 0])
            .when(.joinQueue(userId: carol, scheduleId: schQ), at: T.now + 2 * T.second)
            .then([.command(joined("tok_3", carol))], result: ["tokenId": "tok_3", "status": "WAITING", "ahead": 1])
    }

    @Test("joining again returns the live token and records nothing", arguments: [
        (alice, "tok_alice", "ACTIVE", Int64(0)), (bob, "tok_bob", "WAITING", 0), (carol, "tok_carol", "WAITING", 1),
    ])
    func joinAgain(user: String, tokenId: String, status: String, ahead: Int64) {
        Line.given()
            .when(.joinQueue(userId: user, scheduleId: schQ), at: Line.now)
            .then([], result: ["tokenId": .string(tokenId), "status": .string(status), "ahead": .int(ahead)])
    }

    @Test("joining again after a slot freed records the admissions due, and answers the token's status after them",
          arguments: [(bob, "tok_bob", "ACTIVE"), (carol, "tok_carol", "WAITING")])
    func joinAgainAfterSlotFreed(user: String, tokenId: String, status: String) {
        let at = Line.aliceUntil + 1
        Line.given()
            .when(.joinQueue(userId: user, scheduleId: schQ), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))), .queue(activated("tok_bob", bob, until: at + 600_000))],
                  result: ["tokenId": .string(tokenId), "status": .string(status), "ahead": 0])
    }

    @Test("a token is per schedule: joining another schedule's queue makes another token")
    func perSchedule() {
        Line.given()
            .when(.joinQueue(userId: alice, scheduleId: schQ2), at: Line.now)
            .then([.command(joined("tok_1", alice, on: schQ2)),
                   .command(activated("tok_1", alice, until: Line.now + 600_000, on: schQ2))])
    }

    @Test("joining after one's token lapsed records its expiry, then a new token")
    func joinAfterLapse() {
        let at = T.now + 600_001
        SLAMDomainTests.given([joined("tok_alice", alice), activated("tok_alice", alice, until: T.now + 600_000)], at: T.now)
            .when(.joinQueue(userId: alice, scheduleId: schQ), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))),
                   .command(joined("tok_1", alice)), .command(activated("tok_1", alice, until: at + 600_000))],
                  result: ["tokenId": "tok_1", "status": "ACTIVE", "ahead": 0])
    }

    @Test("joining again after one's token left makes a new token")
    func joinAfterLeaving() {
        Line.given([.queueLeft(token("tok_bob", bob))])
            .when(.joinQueue(userId: bob, scheduleId: schQ), at: Line.now)
            .then([.command(joined("tok_1", bob))], result: ["tokenId": "tok_1", "status": "WAITING", "ahead": 1])
    }

    @Test("a newcomer waits behind tokens the sweep has yet to admit")
    func newcomerBehindWaiting() {
        let until = T.now + 600_000
        SLAMDomainTests.given()
            .given([joined("tok_alice", alice, on: schQ2), activated("tok_alice", alice, until: until, on: schQ2),
                    joined("tok_bob", bob, on: schQ2), activated("tok_bob", bob, until: until + 1, on: schQ2)], at: T.now)
            .given([joined("tok_carol", carol, on: schQ2)], at: until - T.minute)
            .when(.joinQueue(userId: dave, scheduleId: schQ2), at: until + 1)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice, on: schQ2))),
                   .queue(activated("tok_carol", carol, until: until + 1 + 600_000, on: schQ2)),
                   .command(joined("tok_1", dave, on: schQ2))],
                  result: ["tokenId": "tok_1", "status": "WAITING", "ahead": 0])
    }

    @Test("a schedule without a queue is INVALID_STATE")
    func noQueue() {
        given().when(.joinQueue(userId: alice, scheduleId: schX), at: T.now).thenRejected(.invalidState)
    }

    @Test("an unknown user is USER_NOT_FOUND, before the schedule is judged")
    func unknownUser() {
        given().when(.joinQueue(userId: "usr_nobody", scheduleId: "sch_nope"), at: T.now).thenRejected(.userNotFound)
    }

    @Test("an unknown schedule is SCHEDULE_NOT_FOUND")
    func unknownSchedule() {
        given().when(.joinQueue(userId: alice, scheduleId: "sch_nope"), at: T.now).thenRejected(.scheduleNotFound)
    }
}

@Suite("LeaveQueue")
struct LeaveQueueTests {
    @Test("leaving an active token frees its slot for the next waiting token in the same decision")
    func activeLeaves() {
        Line.given()
            .when(.leaveQueue(userId: alice, tokenId: "tok_alice"), at: Line.now)
            .then([.command(.queueLeft(token("tok_alice", alice))),
                   .queue(activated("tok_bob", bob, until: Line.now + 600_000))],
                  result: ["tokenId": "tok_alice", "status": "EXPIRED"])
            .when(.joinQueue(userId: carol, scheduleId: schQ), at: Line.now + 1)
            .then([], result: ["tokenId": "tok_carol", "status": "WAITING", "ahead": 0])
    }

    @Test("leaving a waiting token admits nobody; those behind move up")
    func waitingLeaves() {
        Line.given()
            .when(.leaveQueue(userId: bob, tokenId: "tok_bob"), at: Line.now)
            .then([.command(.queueLeft(token("tok_bob", bob)))], result: ["tokenId": "tok_bob", "status": "EXPIRED"])
            .when(.joinQueue(userId: carol, scheduleId: schQ), at: Line.now + 1)
            .then([], result: ["tokenId": "tok_carol", "status": "WAITING", "ahead": 0])
    }

    @Test("leaving a waiting token while a slot is free admits the next one, not the leaver")
    func waitingLeavesWithFreeSlot() {
        SLAMDomainTests.given()
            .given([joined("tok_alice", alice, on: schQ2), activated("tok_alice", alice, until: T.now + 600_000, on: schQ2),
                    joined("tok_bob", bob, on: schQ2), joined("tok_carol", carol, on: schQ2)], at: T.now)
            .when(.leaveQueue(userId: bob, tokenId: "tok_bob"), at: T.now + T.second)
            .then([.command(.queueLeft(token("tok_bob", bob, on: schQ2))),
                   .queue(activated("tok_carol", carol, until: T.now + T.second + 600_000, on: schQ2))])
    }

    /// A review found the token leaving passed over at instants before it left: the slot that
    /// freed while it still waited went to the token behind it, whose turn then ran from that
    /// instant, not from the leave, and the log depended on whether a sweep came in between.
    @Test("a token whose turn came before it left takes that turn, then leaves it: the same with a sweep between or not")
    func leavesAfterItsTurnCame() {
        let leaveAt = Line.aliceUntil + 101
        let admittedBob = activated("tok_bob", bob, until: Line.aliceUntil + 1 + 600_000)
        let then: [Recorded] = [.command(.queueLeft(token("tok_bob", bob))),
                                         .queue(activated("tok_carol", carol, until: leaveAt + 600_000))]
        Line.given()
            .when(.leaveQueue(userId: bob, tokenId: "tok_bob"), at: leaveAt)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))), .queue(admittedBob)] + then,
                  result: ["tokenId": "tok_bob", "status": "EXPIRED"])
        Line.given()
            .when(.tickQueue(scheduleId: schQ), at: Line.aliceUntil + 1)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))), .queue(admittedBob)])
            .when(.leaveQueue(userId: bob, tokenId: "tok_bob"), at: leaveAt)
            .then(then, result: ["tokenId": "tok_bob", "status": "EXPIRED"])
    }

    @Test("leaving a token already expired succeeds and records nothing", arguments: ["left", "expired"])
    func alreadyExpired(how: String) {
        let ref = token("tok_bob", bob)
        Line.given([how == "left" ? .queueLeft(ref) : .queueTokenExpired(ref)])
            .when(.leaveQueue(userId: bob, tokenId: "tok_bob"), at: Line.now + T.second)
            .then([], result: ["tokenId": "tok_bob", "status": "EXPIRED"])
    }

    @Test("leaving a token past its time records only its expiry, no QueueLeft")
    func pastItsTime() {
        let at = T.now + 600_001
        SLAMDomainTests.given([joined("tok_alice", alice), activated("tok_alice", alice, until: T.now + 600_000)], at: T.now)
            .when(.leaveQueue(userId: alice, tokenId: "tok_alice"), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice)))], result: ["tokenId": "tok_alice", "status": "EXPIRED"])
    }

    @Test("an unknown user is USER_NOT_FOUND")
    func unknownUser() {
        Line.given().when(.leaveQueue(userId: "usr_nobody", tokenId: "tok_alice"), at: Line.now).thenRejected(.userNotFound)
    }

    @Test("an unknown token is TOKEN_NOT_FOUND")
    func unknownToken() {
        Line.given().when(.leaveQueue(userId: alice, tokenId: "tok_nope"), at: Line.now).thenRejected(.tokenNotFound)
    }

    @Test("another user's token is FORBIDDEN")
    func anotherUsers() {
        Line.given().when(.leaveQueue(userId: bob, tokenId: "tok_alice"), at: Line.now).thenRejected(.forbidden)
    }
}

@Suite("TickQueue (the queue sweep)")
struct TickQueueTests {
    @Test("nothing overdue and no free slot: nothing to do", arguments: [Line.now, Line.aliceUntil])
    func nothingToDo(now: Millis) {
        Line.given().when(.tickQueue(scheduleId: schQ), at: now).then([])
    }

    @Test("a schedule without a queue, or an unknown one, needs nothing", arguments: [schX, "sch_nope"])
    func noQueue(scheduleId: String) {
        Line.given().when(.tickQueue(scheduleId: scheduleId), at: Line.now).then([])
    }

    @Test("an active token past activeUntil expires and the first waiting one is admitted")
    func activeExpires() {
        let at = Line.aliceUntil + 1
        Line.given()
            .when(.tickQueue(scheduleId: schQ), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))), .queue(activated("tok_bob", bob, until: at + 600_000))])
            .when(.joinQueue(userId: carol, scheduleId: schQ), at: at + 1)
            .then([], result: ["tokenId": "tok_carol", "status": "WAITING", "ahead": 0])
    }

    /// An audit found a waiting token expired, never admitted, though the slot freed while it
    /// still waited: the sweep came after both ends and judged both at its own time.
    @Test("a slot that frees while a token waits is that token's, however late the sweep",
          arguments: [Line.bobJoined, Line.aliceUntil - 299_999])
    func slotFreedWhileWaiting(bobJoined: Millis) {
        // Alice's time ends at 10 min (+1 ms); Bob waits 5 min from joining (the second case
        // ends 1 ms after Alice's), and the sweep comes after that.
        let at = bobJoined + 300_001
        SLAMDomainTests.given()
            .given([joined("tok_alice", alice), activated("tok_alice", alice, until: Line.aliceUntil)], at: T.now)
            .given([joined("tok_bob", bob)], at: bobJoined)
            .given([joined("tok_carol", carol)], at: bobJoined + 1)
            .when(.tickQueue(scheduleId: schQ), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))),
                   .queue(activated("tok_bob", bob, until: Line.aliceUntil + 1 + 600_000))])
            .when(.joinQueue(userId: carol, scheduleId: schQ), at: at)
            .then([], result: ["tokenId": "tok_carol", "status": "WAITING", "ahead": 0])
    }

    @Test("a waiting token whose time ended before the slot freed (or as it freed) expires; the slot goes to the next",
          arguments: [T.now + T.minute, Line.aliceUntil - 300_000])
    func waitingEndsFirst(bobJoined: Millis) {
        let freed = Line.aliceUntil + 1
        SLAMDomainTests.given()
            .given([joined("tok_alice", alice), activated("tok_alice", alice, until: Line.aliceUntil)], at: T.now)
            .given([joined("tok_bob", bob)], at: bobJoined)
            .given([joined("tok_carol", carol)], at: T.now + 6 * T.minute)
            .when(.tickQueue(scheduleId: schQ), at: freed + T.second)
            .then([.queue(.queueTokenExpired(token("tok_bob", bob))), .queue(.queueTokenExpired(token("tok_alice", alice))),
                   .queue(activated("tok_carol", carol, until: freed + 600_000))])
    }

    @Test("with no sweep for a long while (a server down), each turn is taken as it came, and ends if its time has passed")
    func turnsInOrderAfterAGap() {
        // Alice ends at 10 min: Bob's turn, 10 min from then; Carol's waiting time ends at
        // 14 min, before Bob's turn does (20 min). At 25 min every one of them has ended.
        let at = T.now + 25 * T.minute
        Line.given()
            .when(.tickQueue(scheduleId: schQ), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))),
                   .queue(activated("tok_bob", bob, until: Line.aliceUntil + 1 + 600_000)),
                   .queue(.queueTokenExpired(token("tok_carol", carol))),
                   .queue(.queueTokenExpired(token("tok_bob", bob)))])
            .when(.joinQueue(userId: dave, scheduleId: schQ), at: at)
            .then([.command(joined("tok_1", dave)), .command(activated("tok_1", dave, until: at + 600_000))],
                  result: ["tokenId": "tok_1", "status": "ACTIVE", "ahead": 0])
    }

    @Test("a waiting token expires at joinedAt + waitingTtl + 1 ms, not before")
    func waitingBound() {
        let scenario = SLAMDomainTests.given()
            .given([joined("tok_alice", alice), activated("tok_alice", alice, until: T.now + 600_000)], at: T.now)
            .given([joined("tok_bob", bob)], at: T.now + T.minute)
        scenario.when(.tickQueue(scheduleId: schQ), at: T.now + T.minute + 300_000).then([])
        scenario.when(.tickQueue(scheduleId: schQ), at: T.now + T.minute + 300_001)
            .then([.queue(.queueTokenExpired(token("tok_bob", bob)))])
    }

    @Test("admission is first come first served and never above maxActive")
    func fifoUpToMaxActive() {
        let until = T.now + 600_000, at = until + 1
        SLAMDomainTests.given()
            .given([joined("tok_alice", alice, on: schQ2), activated("tok_alice", alice, until: until, on: schQ2),
                    joined("tok_bob", bob, on: schQ2), activated("tok_bob", bob, until: until, on: schQ2)], at: T.now)
            .given([joined("tok_carol", carol, on: schQ2)], at: until - 60 * T.second)
            .given([joined("tok_dave", dave, on: schQ2)], at: until - 50 * T.second)
            .given([joined("tok_erin", erin, on: schQ2)], at: until - 40 * T.second)
            .when(.tickQueue(scheduleId: schQ2), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice, on: schQ2))),
                   .queue(.queueTokenExpired(token("tok_bob", bob, on: schQ2))),
                   .queue(activated("tok_carol", carol, until: at + 600_000, on: schQ2)),
                   .queue(activated("tok_dave", dave, until: at + 600_000, on: schQ2))])
            .when(.joinQueue(userId: erin, scheduleId: schQ2), at: at)
            .then([], result: ["tokenId": "tok_erin", "status": "WAITING", "ahead": 0])
    }

    @Test("a free slot is filled by the sweep even when nothing expires")
    func fillsFreeSlot() {
        SLAMDomainTests.given()
            .given([joined("tok_alice", alice, on: schQ2), activated("tok_alice", alice, until: T.now + 600_000, on: schQ2),
                    joined("tok_bob", bob, on: schQ2), joined("tok_carol", carol, on: schQ2)], at: T.now)
            .when(.tickQueue(scheduleId: schQ2), at: T.now + T.second)
            .then([.queue(activated("tok_bob", bob, until: T.now + T.second + 600_000, on: schQ2))])
    }

    @Test("after a tick, nothing is left to do")
    func idempotentSweep() {
        let at = Line.aliceUntil + 1
        Line.given()
            .when(.tickQueue(scheduleId: schQ), at: at)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))), .queue(activated("tok_bob", bob, until: at + 600_000))])
            .when(.tickQueue(scheduleId: schQ), at: at)
            .then([])
    }
}

@Suite("HoldSeats on a schedule with a queue")
struct HoldSeatsQueueTests {
    /// Alice active, Bob and Carol waiting on `sch_q`; Dave's token left; Alice also holds an active token on `sch_q2`.
    static func given() -> Scenario {
        Line.given()
            .given([joined("tok_dave", dave), .queueLeft(token("tok_dave", dave)),
                    joined("tok_alice2", alice, on: schQ2), activated("tok_alice2", alice, until: Line.aliceUntil, on: schQ2)],
                   at: Line.bobJoined)
    }

    @Test("the user's ACTIVE token for the schedule lets the hold through", arguments: [Line.now, Line.aliceUntil])
    func activeToken(now: Millis) {
        Self.given()
            .when(.holdSeats(userId: alice, scheduleId: schQ, seatNumbers: [1, 2], queueToken: "tok_alice"), at: now)
            .then([.command(.seatsHeld(reservation("res_1", alice, [1, 2], on: schQ), expiresAt: now + T.holdTtl))],
                  result: ["reservationId": "res_1", "scheduleId": .string(schQ), "seatNumbers": [1, 2], "price": 200,
                           "expiresAt": .string(RFC3339.format(now + T.holdTtl))])
    }

    /// An audit found `JoinQueue` answering a token ACTIVE (recording its admission) at an
    /// instant `HoldSeats` refused it as still waiting: the sweep had not yet recorded it.
    @Test("a waiting token whose turn has come, not yet recorded, holds: the admission is recorded first")
    func turnCameBeforeTheSweep() {
        let now = Line.aliceUntil + 2
        Self.given()
            .when(.holdSeats(userId: bob, scheduleId: schQ, seatNumbers: [3], queueToken: "tok_bob"), at: now)
            .then([.queue(.queueTokenExpired(token("tok_alice", alice))),
                   .queue(activated("tok_bob", bob, until: Line.aliceUntil + 1 + 600_000)),
                   .command(.seatsHeld(reservation("res_1", bob, [3], on: schQ), expiresAt: now + T.holdTtl))],
                  result: ["reservationId": "res_1", "scheduleId": .string(schQ), "seatNumbers": [3], "price": 100,
                           "expiresAt": .string(RFC3339.format(now + T.holdTtl))])
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var user: String
        var queueToken: String?
        var now: Millis = Line.now
        var code: ErrorCode
    }

    @Test("any other token is refused", arguments: [
        Case(testDescription: "no token", user: alice, queueToken: nil, code: .queueTokenRequired),
        Case(testDescription: "the user's token of another schedule", user: alice, queueToken: "tok_alice2",
             code: .queueTokenRequired),
        Case(testDescription: "an unknown token", user: alice, queueToken: "tok_nope", code: .tokenNotFound),
        Case(testDescription: "another user's active token", user: bob, queueToken: "tok_alice", code: .forbidden),
        Case(testDescription: "a waiting token", user: carol, queueToken: "tok_carol", code: .queueTokenNotActive),
        Case(testDescription: "a waiting token behind the one whose turn has come", user: carol, queueToken: "tok_carol",
             now: Line.aliceUntil + 2, code: .queueTokenNotActive),
        Case(testDescription: "an active token past activeUntil", user: alice, queueToken: "tok_alice",
             now: Line.aliceUntil + 1, code: .queueTokenExpired),
        Case(testDescription: "a waiting token past waitingTtl", user: carol, queueToken: "tok_carol",
             now: Line.carolJoined + 300_001, code: .queueTokenExpired),
        Case(testDescription: "a token that left", user: dave, queueToken: "tok_dave", code: .queueTokenExpired),
    ])
    func refused(_ c: Case) {
        Self.given()
            .when(.holdSeats(userId: c.user, scheduleId: schQ, seatNumbers: [1], queueToken: c.queueToken), at: c.now)
            .thenRejected(c.code)
    }

    @Test("when several rules are broken, the first in PROTOCOL.md's order answers", arguments: [
        Case(testDescription: "an unknown token before a closed window", user: alice, queueToken: "tok_nope",
             now: T.closes + 1, code: .tokenNotFound),
        Case(testDescription: "another user's token before a closed window", user: bob, queueToken: "tok_alice",
             now: T.closes + 1, code: .forbidden),
        Case(testDescription: "a closed window before a missing token", user: alice, queueToken: nil,
             now: T.closes + 1, code: .reservationWindowClosed),
        Case(testDescription: "a closed window before an expired token", user: alice, queueToken: "tok_alice",
             now: T.closes + 1, code: .reservationWindowClosed),
    ])
    func orderOfChecks(_ c: Case) {
        Self.given()
            .when(.holdSeats(userId: c.user, scheduleId: schQ, seatNumbers: [1], queueToken: c.queueToken), at: c.now)
            .thenRejected(c.code)
    }

    @Test("queue token rules come before the seat limit and availability")
    func tokenBeforeLimitsAndSeats() {
        let scenario = Self.given().given([.seatsHeld(reservation("res_e", erin, [1], on: schQ), expiresAt: Line.now + T.minute)],
                                          at: Line.now)
        scenario
            .when(.holdSeats(userId: carol, scheduleId: schQ, seatNumbers: [2, 3, 4, 5, 6], queueToken: "tok_carol"), at: Line.now)
            .thenRejected(.queueTokenNotActive)
        scenario
            .when(.holdSeats(userId: dave, scheduleId: schQ, seatNumbers: [1], queueToken: "tok_dave"), at: Line.now)
            .thenRejected(.queueTokenExpired)
        scenario
            .when(.holdSeats(userId: alice, scheduleId: schQ, seatNumbers: [1], queueToken: "tok_alice"), at: Line.now)
            .thenRejected(.seatUnavailable, details: ["seatNumbers": [1]])
    }
}

@Suite("When a queue needs its sweep")
struct QueueDueTests {
    @Test("an empty queue, or a schedule without one, needs no sweep")
    func nothingPending() {
        #expect(given().state.queueDue(schQ) == nil)
        #expect(given().state.queueDue(schX) == nil)
    }

    @Test("with every slot taken, the first active or waiting token to lapse decides, 1 ms after its time")
    func firstToLapse() {
        #expect(Line.given().state.queueDue(schQ) == Line.aliceUntil + 1)
        let late = SLAMDomainTests.given()
            .given([joined("tok_alice", alice), activated("tok_alice", alice, until: T.now + 600_000)], at: T.now)
            .given([joined("tok_bob", bob)], at: T.now + 6 * T.minute)
        #expect(late.state.queueDue(schQ) == T.now + 600_000 + 1)
        let early = SLAMDomainTests.given()
            .given([joined("tok_alice", alice), activated("tok_alice", alice, until: T.now + 600_000)], at: T.now)
            .given([joined("tok_bob", bob)], at: T.now + T.minute)
        #expect(early.state.queueDue(schQ) == T.now + T.minute + 300_000 + 1)
    }

    @Test("a free slot with someone waiting is due at once")
    func freeSlot() {
        let scenario = SLAMDomainTests.given()
            .given([joined("tok_alice", alice, on: schQ2), activated("tok_alice", alice, until: T.now + 600_000, on: schQ2)],
                   at: T.now)
            .given([joined("tok_bob", bob, on: schQ2)], at: T.now + T.minute)
        #expect(scenario.state.queueDue(schQ2) == T.now + T.minute)
    }
}
