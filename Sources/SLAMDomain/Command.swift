/// A command, validated for shape (types, lengths, seat lists) by the wire decoder; business
/// rules are the deciders' job.
public enum Command: Equatable, Sendable {
    case registerUser(name: String)
    case chargePoints(userId: String, amount: Int64)
    case createConcert(name: String, artist: String)
    case scheduleConcert(ScheduleRequest)
    case joinQueue(userId: String, scheduleId: String)
    case leaveQueue(userId: String, tokenId: String)
    case holdSeats(userId: String, scheduleId: String, seatNumbers: [Int], queueToken: String?)
    case payReservation(userId: String, reservationId: String)
    case cancelReservation(userId: String, reservationId: String)
    /// The expiry sweep's command (`causationId` `system:expiry`).
    case expireHold(reservationId: String)
    /// The queue sweep's command (`causationId` `system:queue`): expire overdue tokens, admit the
    /// next in line.
    case tickQueue(scheduleId: String)

    public var type: String {
        switch self {
        case .registerUser: return "RegisterUser"
        case .chargePoints: return "ChargePoints"
        case .createConcert: return "CreateConcert"
        case .scheduleConcert: return "ScheduleConcert"
        case .joinQueue: return "JoinQueue"
        case .leaveQueue: return "LeaveQueue"
        case .holdSeats: return "HoldSeats"
        case .payReservation: return "PayReservation"
        case .cancelReservation: return "CancelReservation"
        case .expireHold: return "ExpireHold"
        case .tickQueue: return "TickQueue"
        }
    }
}

/// `ScheduleConcert`'s body: optional values are nil when the client left them out.
public struct ScheduleRequest: Equatable, Sendable {
    public var concertId: String
    public var startsAt: Millis
    public var reservationOpensAt: Millis
    public var reservationClosesAt: Millis
    public var sections: [Section]
    public var maxSeatsPerUser: Int64?
    public var queue: QueueRequest?

    public init(concertId: String, startsAt: Millis, reservationOpensAt: Millis, reservationClosesAt: Millis,
                sections: [Section], maxSeatsPerUser: Int64? = nil, queue: QueueRequest? = nil) {
        self.concertId = concertId
        self.startsAt = startsAt
        self.reservationOpensAt = reservationOpensAt
        self.reservationClosesAt = reservationClosesAt
        self.sections = sections
        self.maxSeatsPerUser = maxSeatsPerUser
        self.queue = queue
    }
}

public struct QueueRequest: Equatable, Sendable {
    public var maxActive: Int64?
    public var activeTtlSeconds: Int64?
    public var waitingTtlSeconds: Int64?
    public init(maxActive: Int64? = nil, activeTtlSeconds: Int64? = nil, waitingTtlSeconds: Int64? = nil) {
        self.maxActive = maxActive
        self.activeTtlSeconds = activeTtlSeconds
        self.waitingTtlSeconds = waitingTtlSeconds
    }
}
