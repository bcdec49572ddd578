/// The decision state of every aggregate the deciders need. The server keeps one of these in
/// memory on its writer thread (loaded from the read models on demand); tests build one from
/// events. `evolve` is the only way it changes.
public struct DomainState: Sendable {
    public var users: [String: UserState] = [:]
    public var concerts: [String: ConcertState] = [:]
    public var schedules: [String: ScheduleState] = [:]
    public var reservations: [String: ReservationState] = [:]
    public var queues: [String: QueueState] = [:]
    public var tokens: [String: TokenState] = [:]

    public init() {}
}

public struct UserState: Equatable, Sendable {
    public var userId: String
    public var name: String
    public var balance: Int64
    /// Entries in the point history so far (the next entry's `n` is this plus one).
    public var historyCount: Int64
    public var walletVersion: Int64
    public init(userId: String, name: String, balance: Int64, historyCount: Int64, walletVersion: Int64) {
        self.userId = userId
        self.name = name
        self.balance = balance
        self.historyCount = historyCount
        self.walletVersion = walletVersion
    }
}

public struct ConcertState: Equatable, Sendable {
    public var concertId: String
    public var name: String
    public var artist: String
    public init(concertId: String, name: String, artist: String) {
        self.concertId = concertId
        self.name = name
        self.artist = artist
    }
}

public struct ScheduleState: Equatable, Sendable {
    public var definition: ScheduleDefinition
    public var version: Int64
    /// The live reservation (HELD or CONFIRMED, as recorded) on each seat, index `number - 1`.
    public var seatOwner: [String?]
    public var prices: [Int64]
    /// Seats with no recorded live reservation.
    public var available: Int
    public var soldOut: Bool
    /// Each user's recorded live reservations on this schedule.
    public var liveByUser: [String: [String]]
    /// The recorded HELD reservations: those whose hold may have lapsed unrecorded.
    public var held: Set<String>

    public init(definition: ScheduleDefinition, version: Int64) {
        self.definition = definition
        self.version = version
        seatOwner = Array(repeating: nil, count: definition.seatCount)
        prices = definition.seatPrices()
        available = definition.seatCount
        soldOut = false
        liveByUser = [:]
        held = []
    }
}

public struct ReservationState: Equatable, Sendable {
    public var ref: ReservationRef
    public var status: ReservationStatus
    public var expiresAt: Millis
    public var createdAt: Millis
    public var version: Int64
    public init(ref: ReservationRef, status: ReservationStatus, expiresAt: Millis, createdAt: Millis, version: Int64) {
        self.ref = ref
        self.status = status
        self.expiresAt = expiresAt
        self.createdAt = createdAt
        self.version = version
    }

    /// A hold past its `expiresAt` is expired for every decision, swept or not.
    public func isLapsedHold(at now: Millis) -> Bool { status == .held && now > expiresAt }
}

extension DomainState {
    /// The current version of the stream `event` belongs to, as this state knows it (0 for a
    /// stream the event creates).
    public func streamVersion(of event: DomainEvent) -> Int64 {
        switch event {
        case .userRegistered, .concertCreated, .concertScheduled, .seatsHeld: return 0
        case .pointsCharged(let u, _, _), .pointsUsed(let u, _, _, _), .pointsRefunded(let u, _, _, _):
            return users[u]?.walletVersion ?? 0
        case .scheduleSoldOut(let s), .scheduleReopened(let s): return schedules[s]?.version ?? 0
        case .queueJoined(let t), .queueTokenActivated(let t, _), .queueTokenExpired(let t), .queueLeft(let t):
            return queues[t.scheduleId]?.version ?? 0
        case .reservationConfirmed(let r), .holdExpired(let r), .holdReleased(let r), .reservationCancelled(let r, _):
            return reservations[r.reservationId]?.version ?? 0
        }
    }
}
