/// Reservation statuses (PROTOCOL.md section 4).
public enum ReservationStatus: String, Sendable {
    case held = "HELD", confirmed = "CONFIRMED", expired = "EXPIRED", released = "RELEASED", cancelled = "CANCELLED"
}

/// Seat statuses as read models show them.
public enum SeatStatus: String, Sendable {
    case available = "AVAILABLE", held = "HELD", sold = "SOLD"
}

/// Queue token statuses.
public enum TokenStatus: String, Sendable {
    case waiting = "WAITING", active = "ACTIVE", expired = "EXPIRED"
}

public struct Section: Equatable, Sendable {
    public var name: String
    public var seatCount: Int
    public var price: Int64
    public init(name: String, seatCount: Int, price: Int64) {
        self.name = name
        self.seatCount = seatCount
        self.price = price
    }
}

/// A schedule's waiting-queue policy, defaults filled in.
public struct QueuePolicy: Equatable, Sendable {
    public var maxActive: Int64
    public var activeTtlSeconds: Int64
    public var waitingTtlSeconds: Int64
    public static let defaults = QueuePolicy(maxActive: 60, activeTtlSeconds: 180, waitingTtlSeconds: 21_600)
    public init(maxActive: Int64, activeTtlSeconds: Int64, waitingTtlSeconds: Int64) {
        self.maxActive = maxActive
        self.activeTtlSeconds = activeTtlSeconds
        self.waitingTtlSeconds = waitingTtlSeconds
    }
}

/// Everything `ConcertScheduled` records: enough to rebuild the seat map.
public struct ScheduleDefinition: Equatable, Sendable {
    public var scheduleId: String
    public var concertId: String
    public var startsAt: Millis
    public var reservationOpensAt: Millis
    public var reservationClosesAt: Millis
    public var sections: [Section]
    public var maxSeatsPerUser: Int
    public var queue: QueuePolicy?

    public var seatCount: Int { sections.reduce(0) { $0 + $1.seatCount } }

    public init(scheduleId: String, concertId: String, startsAt: Millis, reservationOpensAt: Millis,
                reservationClosesAt: Millis, sections: [Section], maxSeatsPerUser: Int, queue: QueuePolicy?) {
        self.scheduleId = scheduleId
        self.concertId = concertId
        self.startsAt = startsAt
        self.reservationOpensAt = reservationOpensAt
        self.reservationClosesAt = reservationClosesAt
        self.sections = sections
        self.maxSeatsPerUser = maxSeatsPerUser
        self.queue = queue
    }

    /// The section and price of seat `number` (1-based), seats numbered across sections in order.
    public func seat(_ number: Int) -> (section: String, price: Int64)? {
        guard number >= 1 else { return nil }
        var first = 1
        for s in sections {
            if number < first + s.seatCount { return (s.name, s.price) }
            first += s.seatCount
        }
        return nil
    }

    /// Per-seat prices, index `number - 1`.
    public func seatPrices() -> [Int64] {
        var out: [Int64] = []
        out.reserveCapacity(seatCount)
        for s in sections { out.append(contentsOf: repeatElement(s.price, count: s.seatCount)) }
        return out
    }
}

/// The facts of one reservation shared by every reservation event.
public struct ReservationRef: Equatable, Sendable {
    public var reservationId: String
    public var userId: String
    public var scheduleId: String
    public var seatNumbers: [Int]
    public var price: Int64
    public init(reservationId: String, userId: String, scheduleId: String, seatNumbers: [Int], price: Int64) {
        self.reservationId = reservationId
        self.userId = userId
        self.scheduleId = scheduleId
        self.seatNumbers = seatNumbers
        self.price = price
    }
}

public struct TokenRef: Equatable, Sendable {
    public var tokenId: String
    public var userId: String
    public var scheduleId: String
    public init(tokenId: String, userId: String, scheduleId: String) {
        self.tokenId = tokenId
        self.userId = userId
        self.scheduleId = scheduleId
    }
}
