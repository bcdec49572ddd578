import SLAMJSON

/// Who caused an event: the client command being decided, or one of the server's sweeps whose
/// work a command had to record first (PROTOCOL.md section 4: a new hold records the overdue
/// `HoldExpired` with `causationId` `system:expiry`).
public enum Cause: Equatable, Sendable {
    case command
    case system(String)

    public static let expiry = Cause.system("system:expiry")
    public static let queue = Cause.system("system:queue")
}

/// What a decider produced for an accepted command: the events to append, in order, and the
/// command's result body.
public struct Decision: Equatable, Sendable {
    public var events: [(event: DomainEvent, cause: Cause)]
    public var result: JSONObject

    public init(events: [(DomainEvent, Cause)] = [], result: JSONObject = [:]) {
        self.events = events.map { (event: $0.0, cause: $0.1) }
        self.result = result
    }

    public static func == (a: Decision, b: Decision) -> Bool {
        a.result == b.result && a.events.count == b.events.count
            && zip(a.events, b.events).allSatisfy { $0.event == $1.event && $0.cause == $1.cause }
    }
}

/// Settings of a decision that are the server's, not the client's.
public struct DecisionContext: Sendable {
    public var now: Millis
    /// How long a hold lasts (PROTOCOL.md: 5 minutes by default).
    public var holdTtl: Millis
    public init(now: Millis, holdTtl: Millis = 300_000) {
        self.now = now
        self.holdTtl = holdTtl
    }
}

/// Limits of PROTOCOL.md section 4.
public enum Limits {
    public static let maxBalance: Int64 = 1_000_000
    public static let maxCharge: Int64 = 1_000_000
    public static let maxSeatsPerSchedule = 100_000
    public static let maxPrice: Int64 = 1_000_000
    public static let defaultMaxSeatsPerUser: Int64 = 4
    public static let maxSeatsPerUserRange: ClosedRange<Int64> = 1...10
    public static let maxActiveRange: ClosedRange<Int64> = 1...100_000
    public static let activeTtlRange: ClosedRange<Int64> = 1...86_400
    public static let waitingTtlRange: ClosedRange<Int64> = 1...604_800
}

/// The deciders: `decide(command, state) -> events`, pure. Time and new ids come in through the
/// context and the id generator; nothing here reads a clock, a database or a socket.
public enum Decider {
    public static func decide<G: IdGenerator>(_ command: Command, state: DomainState, context: DecisionContext,
                                              ids: inout G) throws(Rejection) -> Decision {
        switch command {
        case .registerUser(let name):
            return Users.register(name: name, now: context.now, ids: &ids)
        case .chargePoints(let userId, let amount):
            return try Users.charge(userId: userId, amount: amount, state: state)
        case .createConcert(let name, let artist):
            return Concerts.create(name: name, artist: artist, now: context.now, ids: &ids)
        case .scheduleConcert(let request):
            return try Concerts.schedule(request, state: state, now: context.now, ids: &ids)
        case .joinQueue(let userId, let scheduleId):
            return try Queues.join(userId: userId, scheduleId: scheduleId, state: state, now: context.now, ids: &ids)
        case .leaveQueue(let userId, let tokenId):
            return try Queues.leave(userId: userId, tokenId: tokenId, state: state, now: context.now)
        case .tickQueue(let scheduleId):
            return Queues.tick(scheduleId: scheduleId, state: state, now: context.now)
        case .holdSeats(let userId, let scheduleId, let seats, let token):
            return try Reservations.hold(userId: userId, scheduleId: scheduleId, seatNumbers: seats, queueToken: token,
                                         state: state, context: context, ids: &ids)
        case .payReservation(let userId, let reservationId):
            return try Reservations.pay(userId: userId, reservationId: reservationId, state: state, now: context.now)
        case .cancelReservation(let userId, let reservationId):
            return try Reservations.cancel(userId: userId, reservationId: reservationId, state: state, now: context.now)
        case .expireHold(let reservationId):
            return Reservations.expire(reservationId: reservationId, state: state, now: context.now)
        }
    }
}
