import SLAMDomain
import SLAMJSON
import Testing

@Suite("CreateConcert")
struct CreateConcertTests {
    @Test("creates a concert")
    func creates() {
        Scenario()
            .when(.createConcert(name: "Winter Gala", artist: "SLAM Orchestra"), at: T.now)
            .then([.command(.concertCreated(concertId: "con_1", name: "Winter Gala", artist: "SLAM Orchestra"))],
                  result: ["concertId": "con_1"])
    }
}

@Suite("ScheduleConcert")
struct ScheduleConcertTests {
    static let vipAndR = [Section(name: "VIP", seatCount: 2, price: 1000), Section(name: "R", seatCount: 8, price: 500)]

    static func request(opens: Millis = T.opens, closes: Millis = T.closes, starts: Millis = T.starts,
                        sections: [Section] = vipAndR, maxSeatsPerUser: Int64? = nil,
                        queue: QueueRequest? = nil) -> ScheduleRequest {
        ScheduleRequest(concertId: concert, startsAt: starts, reservationOpensAt: opens, reservationClosesAt: closes,
                        sections: sections, maxSeatsPerUser: maxSeatsPerUser, queue: queue)
    }

    static func definition(id: String = "sch_1", sections: [Section] = vipAndR, opens: Millis = T.opens, closes: Millis = T.closes,
                           starts: Millis = T.starts, maxSeatsPerUser: Int = 4, queue: QueuePolicy? = nil) -> ScheduleDefinition {
        ScheduleDefinition(scheduleId: id, concertId: concert, startsAt: starts, reservationOpensAt: opens,
                           reservationClosesAt: closes, sections: sections, maxSeatsPerUser: maxSeatsPerUser, queue: queue)
    }

    @Test("schedules with 4 seats per user and no queue by default")
    func defaults() {
        given()
            .when(.scheduleConcert(Self.request()), at: T.setUp)
            .then([.command(.concertScheduled(Self.definition()))], result: ["scheduleId": "sch_1", "seatCount": 10])
    }

    @Test("a queue's missing settings take their defaults: 60 active, 180 s active, 21,600 s waiting")
    func queueDefaults() {
        given()
            .when(.scheduleConcert(Self.request(queue: QueueRequest())), at: T.setUp)
            .then([.command(.concertScheduled(Self.definition(
                queue: QueuePolicy(maxActive: 60, activeTtlSeconds: 180, waitingTtlSeconds: 21_600))))])
    }

    @Test("a queue's given settings are kept, the others defaulted")
    func queuePartial() {
        given()
            .when(.scheduleConcert(Self.request(maxSeatsPerUser: 2, queue: QueueRequest(maxActive: 5, waitingTtlSeconds: 60))),
                  at: T.setUp)
            .then([.command(.concertScheduled(Self.definition(
                maxSeatsPerUser: 2, queue: QueuePolicy(maxActive: 5, activeTtlSeconds: 180, waitingTtlSeconds: 60))))])
    }

    struct Valid: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var request: ScheduleRequest
        var seatCount: Int
    }

    @Test("every bound of every range is allowed", arguments: [
        Valid(testDescription: "opens = closes = starts",
              request: request(opens: T.starts, closes: T.starts, starts: T.starts), seatCount: 10),
        Valid(testDescription: "1 seat", request: request(sections: [Section(name: "Solo", seatCount: 1, price: 10)]),
              seatCount: 1),
        Valid(testDescription: "100,000 seats over two sections",
              request: request(sections: [Section(name: "A", seatCount: 60_000, price: 0),
                                          Section(name: "B", seatCount: 40_000, price: 1_000_000)]),
              seatCount: 100_000),
        Valid(testDescription: "maxSeatsPerUser 1", request: request(maxSeatsPerUser: 1), seatCount: 10),
        Valid(testDescription: "maxSeatsPerUser 10", request: request(maxSeatsPerUser: 10), seatCount: 10),
        Valid(testDescription: "queue minimums",
              request: request(queue: QueueRequest(maxActive: 1, activeTtlSeconds: 1, waitingTtlSeconds: 1)), seatCount: 10),
        Valid(testDescription: "queue maximums",
              request: request(queue: QueueRequest(maxActive: 100_000, activeTtlSeconds: 86_400, waitingTtlSeconds: 604_800)),
              seatCount: 10),
    ])
    func valid(_ c: Valid) {
        let outcome = given().when(.scheduleConcert(c.request), at: T.setUp)
        #expect(outcome.rejection == nil)
        #expect(outcome.body?["seatCount"] == .int(Int64(c.seatCount)))
        guard case .concertScheduled(let def)? = outcome.events.first?.event else {
            Issue.record("no ConcertScheduled")
            return
        }
        #expect(def.seatCount == c.seatCount)
        #expect(def.sections == c.request.sections)
    }

    @Test("an unknown concert is CONCERT_NOT_FOUND, before any rule of the schedule is judged")
    func unknownConcert() {
        var r = Self.request(opens: T.starts + 1, sections: [])
        r.concertId = "con_nope"
        given().when(.scheduleConcert(r), at: T.setUp).thenRejected(.concertNotFound)
    }

    struct Invalid: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var request: ScheduleRequest
        var rule: String
    }

    @Test("a broken rule is INVALID_SCHEDULE naming the rule", arguments: [
        Invalid(testDescription: "opens after closes", request: request(opens: T.closes + 1),
                rule: "reservationOpensAt<=reservationClosesAt"),
        Invalid(testDescription: "closes after starts", request: request(closes: T.starts + 1),
                rule: "reservationClosesAt<=startsAt"),
        Invalid(testDescription: "no sections: 0 seats", request: request(sections: []), rule: "seatCount"),
        Invalid(testDescription: "100,001 seats",
                request: request(sections: [Section(name: "A", seatCount: 50_000, price: 1),
                                            Section(name: "B", seatCount: 50_001, price: 1)]),
                rule: "seatCount"),
        Invalid(testDescription: "seat counts whose sum overflows",
                request: request(sections: [Section(name: "A", seatCount: .max, price: 1),
                                            Section(name: "B", seatCount: .max, price: 1)]),
                rule: "seatCount"),
        Invalid(testDescription: "a section with 0 seats",
                request: request(sections: [Section(name: "A", seatCount: 10, price: 1), Section(name: "B", seatCount: 0, price: 1)]),
                rule: "sectionSeatCount"),
        Invalid(testDescription: "a section with -1 seats",
                request: request(sections: [Section(name: "A", seatCount: -1, price: 1)]), rule: "sectionSeatCount"),
        Invalid(testDescription: "price -1", request: request(sections: [Section(name: "A", seatCount: 1, price: -1)]),
                rule: "price"),
        Invalid(testDescription: "price 1,000,001",
                request: request(sections: [Section(name: "A", seatCount: 1, price: 1_000_001)]), rule: "price"),
        Invalid(testDescription: "maxSeatsPerUser 0", request: request(maxSeatsPerUser: 0), rule: "maxSeatsPerUser"),
        Invalid(testDescription: "maxSeatsPerUser 11", request: request(maxSeatsPerUser: 11), rule: "maxSeatsPerUser"),
        Invalid(testDescription: "queue.maxActive 0", request: request(queue: QueueRequest(maxActive: 0)),
                rule: "queue.maxActive"),
        Invalid(testDescription: "queue.maxActive 100,001", request: request(queue: QueueRequest(maxActive: 100_001)),
                rule: "queue.maxActive"),
        Invalid(testDescription: "queue.activeTtlSeconds 0", request: request(queue: QueueRequest(activeTtlSeconds: 0)),
                rule: "queue.activeTtlSeconds"),
        Invalid(testDescription: "queue.activeTtlSeconds 86,401",
                request: request(queue: QueueRequest(activeTtlSeconds: 86_401)), rule: "queue.activeTtlSeconds"),
        Invalid(testDescription: "queue.waitingTtlSeconds 0", request: request(queue: QueueRequest(waitingTtlSeconds: 0)),
                rule: "queue.waitingTtlSeconds"),
        Invalid(testDescription: "queue.waitingTtlSeconds 604,801",
                request: request(queue: QueueRequest(waitingTtlSeconds: 604_801)), rule: "queue.waitingTtlSeconds"),
    ])
    func invalid(_ c: Invalid) {
        given().when(.scheduleConcert(c.request), at: T.setUp)
            .thenRejected(.invalidSchedule, details: ["rule": .string(c.rule)])
    }

    @Test("with several rules broken, the window's order is named first")
    func firstRuleWins() {
        given()
            .when(.scheduleConcert(Self.request(opens: T.closes + 1, sections: [], maxSeatsPerUser: 0)), at: T.setUp)
            .thenRejected(.invalidSchedule, details: ["rule": "reservationOpensAt<=reservationClosesAt"])
    }

    @Test("a second schedule of the same concert is another schedule")
    func twoSchedules() {
        given()
            .when(.scheduleConcert(Self.request()), at: T.setUp)
            .then([.command(.concertScheduled(Self.definition()))])
            .when(.scheduleConcert(Self.request()), at: T.setUp)
            .then([.command(.concertScheduled(Self.definition(id: "sch_2")))], result: ["scheduleId": "sch_2", "seatCount": 10])
    }
}
