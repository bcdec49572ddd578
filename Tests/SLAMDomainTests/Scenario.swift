import SLAMDomain
import SLAMJSON
import Testing

// Given/when/then for the deciders: given events (folded with `DomainState.evolve`), when a
// command at a time, then the recorded events with their causes and the result body, or a
// rejection. New ids come from `SequentialIdGenerator` (`usr_1`, `sch_1`, `res_1`, `tok_1`, ...);
// the fixtures' own ids are names (`usr_alice`, `sch_x`) so the two never collide.

/// An event as a decision records it: the event and who caused it.
struct Recorded: Equatable, CustomStringConvertible {
    var event: DomainEvent
    var cause: Cause

    static func command(_ event: DomainEvent) -> Recorded { Recorded(event: event, cause: .command) }
    static func expiry(_ event: DomainEvent) -> Recorded { Recorded(event: event, cause: .expiry) }
    static func queue(_ event: DomainEvent) -> Recorded { Recorded(event: event, cause: .queue) }

    var description: String {
        switch cause {
        case .command: return "command: \(event)"
        case .system(let id): return "\(id): \(event)"
        }
    }
}

struct Scenario {
    private(set) var state = DomainState()
    private var ids = SequentialIdGenerator()
    var holdTtl: Millis = 300_000

    /// The state those events build, each recorded at `time`.
    init(given events: [DomainEvent] = [], at time: Millis = T.setUp) {
        for e in events { state.evolve(e, at: time) }
    }

    /// More history, recorded at another time (token join times and hold creation times matter).
    func given(_ events: [DomainEvent], at time: Millis) -> Scenario {
        var next = self
        for e in events { next.state.evolve(e, at: time) }
        return next
    }

    func when(_ command: Command, at now: Millis) -> Outcome {
        var ids = self.ids
        let result: Result<Decision, Rejection>
        do throws(Rejection) {
            result = .success(try Decider.decide(command, state: state, context: DecisionContext(now: now, holdTtl: holdTtl),
                                                 ids: &ids))
        } catch {
            result = .failure(error)
        }
        var next = self
        next.ids = ids
        if case .success(let d) = result {
            for e in d.events { next.state.evolve(e.event, at: now) }
        }
        return Outcome(command: command, result: result, next: next)
    }
}

/// What a decider answered, and the scenario after it (its events folded in).
struct Outcome {
    let command: Command
    let result: Result<Decision, Rejection>
    let next: Scenario

    var events: [Recorded] {
        guard case .success(let d) = result else { return [] }
        return d.events.map { Recorded(event: $0.event, cause: $0.cause) }
    }

    var body: JSONObject? {
        guard case .success(let d) = result else { return nil }
        return d.result
    }

    var rejection: Rejection? {
        guard case .failure(let r) = result else { return nil }
        return r
    }

    /// Expects acceptance with exactly these events (and this result body, when given); returns
    /// the scenario that follows, to state what a later command meets.
    @discardableResult
    func then(_ expected: [Recorded], result expectedBody: JSONObject? = nil,
              sourceLocation: SourceLocation = #_sourceLocation) -> Scenario {
        switch result {
        case .failure(let r):
            Issue.record("\(command.type) was rejected: \(r)", sourceLocation: sourceLocation)
        case .success:
            #expect(events == expected, sourceLocation: sourceLocation)
            if let expectedBody { #expect(body == expectedBody, sourceLocation: sourceLocation) }
        }
        return next
    }

    /// Expects a rejection with this code (and these details, when given).
    func thenRejected(_ code: ErrorCode, details: JSONObject? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        switch result {
        case .success(let d):
            Issue.record("\(command.type) was accepted, expected \(code.rawValue); events: \(d.events.map(\.event))",
                         sourceLocation: sourceLocation)
        case .failure(let r):
            #expect(r.code == code, "\(r)", sourceLocation: sourceLocation)
            if let details { #expect(r.details == details, sourceLocation: sourceLocation) }
        }
    }
}

// MARK: - Times

/// The fixtures' calendar: a concert on Christmas Eve 2026, reservations open on December 1st.
enum T {
    static func at(_ text: String) -> Millis { RFC3339.parse(text)! }

    /// When the fixtures' history is recorded.
    static let setUp = at("2026-11-30T09:00:00Z")
    static let opens = at("2026-12-01T10:00:00Z")
    /// A moment inside the reservation window.
    static let now = at("2026-12-10T12:00:00Z")
    static let closes = at("2026-12-24T18:00:00Z")
    static let starts = at("2026-12-24T19:00:00Z")

    static let second: Millis = 1000
    static let minute: Millis = 60_000
    static let holdTtl: Millis = 300_000
}

// MARK: - Fixtures

let alice = "usr_alice", bob = "usr_bob", carol = "usr_carol", dave = "usr_dave", erin = "usr_erin"
let concert = "con_gala"

/// `sch_x`: VIP seats 1–2 at 1,000, R seats 3–10 at 500; 4 seats per user; no queue.
let schX = "sch_x"
/// `sch_duo`: two seats at 300, to sell out in one hold.
let schDuo = "sch_duo"
/// `sch_free`: two free seats.
let schFree = "sch_free"
/// `sch_q`: ten seats at 100 behind a queue of one active token (active 600 s, waiting 300 s).
let schQ = "sch_q"
/// `sch_q2`: like `sch_q` with two active tokens.
let schQ2 = "sch_q2"

enum Fixture {
    static let definitionX = schedule(schX, sections: [Section(name: "VIP", seatCount: 2, price: 1000),
                                                       Section(name: "R", seatCount: 8, price: 500)])
    static let definitionDuo = schedule(schDuo, sections: [Section(name: "Duo", seatCount: 2, price: 300)])
    static let definitionFree = schedule(schFree, sections: [Section(name: "Free", seatCount: 2, price: 0)])
    static let queuePolicy = QueuePolicy(maxActive: 1, activeTtlSeconds: 600, waitingTtlSeconds: 300)
    static let definitionQ = schedule(schQ, sections: [Section(name: "A", seatCount: 10, price: 100)], queue: queuePolicy)
    static let definitionQ2 = schedule(schQ2, sections: [Section(name: "A", seatCount: 10, price: 100)],
                                       queue: QueuePolicy(maxActive: 2, activeTtlSeconds: 600, waitingTtlSeconds: 300))

    static func schedule(_ id: String, sections: [Section], maxSeatsPerUser: Int = 4, queue: QueuePolicy? = nil) -> ScheduleDefinition {
        ScheduleDefinition(scheduleId: id, concertId: concert, startsAt: T.starts, reservationOpensAt: T.opens,
                           reservationClosesAt: T.closes, sections: sections, maxSeatsPerUser: maxSeatsPerUser, queue: queue)
    }

    /// Five users with empty wallets, one concert and every schedule above.
    static let world: [DomainEvent] = [
        .userRegistered(userId: alice, name: "Alice"),
        .userRegistered(userId: bob, name: "Bob"),
        .userRegistered(userId: carol, name: "Carol"),
        .userRegistered(userId: dave, name: "Dave"),
        .userRegistered(userId: erin, name: "Erin"),
        .concertCreated(concertId: concert, name: "Winter Gala", artist: "SLAM Orchestra"),
        .concertScheduled(definitionX),
        .concertScheduled(definitionDuo),
        .concertScheduled(definitionFree),
        .concertScheduled(definitionQ),
        .concertScheduled(definitionQ2),
    ]
}

/// A reservation's facts; the price is the seats' prices on their schedule.
func reservation(_ id: String, _ user: String, _ seats: [Int], on schedule: String = schX) -> ReservationRef {
    let def = [Fixture.definitionX, Fixture.definitionDuo, Fixture.definitionFree, Fixture.definitionQ, Fixture.definitionQ2]
        .first { $0.scheduleId == schedule }!
    return ReservationRef(reservationId: id, userId: user, scheduleId: schedule, seatNumbers: seats,
                          price: seats.reduce(0) { $0 + def.seat($1)!.price })
}

func token(_ id: String, _ user: String, on schedule: String = schQ) -> TokenRef {
    TokenRef(tokenId: id, userId: user, scheduleId: schedule)
}

/// The world, with these events recorded at `time` on top.
func given(_ events: [DomainEvent] = [], at time: Millis = T.setUp) -> Scenario {
    Scenario(given: Fixture.world).given(events, at: time)
}

/// A small deterministic generator (an LCG) for the randomized tests: the same sequence on every run.
struct Rng {
    var state: UInt64
    mutating func next(_ bound: Int) -> Int {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Int((state >> 33) % UInt64(bound))
    }
}
