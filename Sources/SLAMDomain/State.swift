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
    public private(set) var held: Set<String>
    /// The same by expiry, with entries of holds that have ended since, dropped once on top.
    public private(set) var expiries: HoldExpiries

    public init(definition: ScheduleDefinition, version: Int64) {
        self.definition = definition
        self.version = version
        seatOwner = Array(repeating: nil, count: definition.seatCount)
        prices = definition.seatPrices()
        available = definition.seatCount
        soldOut = false
        liveByUser = [:]
        held = []
        expiries = HoldExpiries()
    }

    /// A hold recorded (or loaded): HELD until `expiresAt`.
    public mutating func holdRecorded(_ reservationId: String, expiresAt: Millis) {
        held.insert(reservationId)
        expiries.insert(reservationId, expiresAt: expiresAt)
    }

    /// A hold paid for, released or expired: no longer HELD.
    public mutating func holdEnded(_ reservationId: String) {
        guard held.remove(reservationId) != nil else { return }
        expiries.dropEnded(keeping: held)
    }

    /// The recorded HELD holds whose `expiresAt` is before `now`, in expiry order.
    public func holdsExpiring(before now: Millis) -> [String] {
        expiries.due(before: now).filter { held.contains($0) }
    }

    /// The first of `holdsExpiring(before: now)` that `accept` takes, found in expiry order
    /// from the top: it costs the holds before it (and ended ones among them), not every hold.
    public func firstHoldExpiring(before now: Millis, where accept: (String) -> Bool) -> String? {
        expiries.first(before: now) { held.contains($0) && accept($0) }
    }
}

/// A min-heap of holds by `expiresAt`. A hold that ends stays in it until it reaches the top
/// (`dropEnded`), so the top is always a hold still HELD, and every entry below it expires no
/// earlier: entries due before a time are found by a walk that stops at the first that is not.
public struct HoldExpiries: Equatable, Sendable {
    struct Entry: Equatable, Sendable {
        var expiresAt: Millis
        var reservationId: String
        static func < (a: Entry, b: Entry) -> Bool { (a.expiresAt, a.reservationId) < (b.expiresAt, b.reservationId) }
    }
    private var heap: [Entry] = []

    public init() {}

    /// Entries, ended holds included.
    public var count: Int { heap.count }

    mutating func insert(_ reservationId: String, expiresAt: Millis) {
        heap.append(Entry(expiresAt: expiresAt, reservationId: reservationId))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[i] < heap[parent] else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// Drops entries from the top while their hold is no longer held.
    mutating func dropEnded(keeping held: Set<String>) {
        while let top = heap.first, !held.contains(top.reservationId) {
            let last = heap.removeLast()
            guard !heap.isEmpty else { return }
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count, heap[l] < heap[m] { m = l }
                if r < heap.count, heap[r] < heap[m] { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
    }

    /// The first entry in expiry order with `expiresAt` before `now` whose id `accept` takes:
    /// a best-first walk from the top, whose frontier holds the children of the entries passed.
    func first(before now: Millis, where accept: (String) -> Bool) -> String? {
        var frontier = heap.isEmpty ? [] : [0]
        while !frontier.isEmpty {
            var k = 0
            for j in frontier.indices.dropFirst() where heap[frontier[j]] < heap[frontier[k]] { k = j }
            let i = frontier.remove(at: k)
            guard heap[i].expiresAt < now else { return nil }  // every entry left is later
            if accept(heap[i].reservationId) { return heap[i].reservationId }
            let l = 2 * i + 1
            if l < heap.count { frontier.append(l) }
            if l + 1 < heap.count { frontier.append(l + 1) }
        }
        return nil
    }

    /// The reservation ids of the entries with `expiresAt` before `now`, in expiry order.
    func due(before now: Millis) -> [String] {
        var found: [Entry] = []
        var stack = heap.isEmpty ? [] : [0]
        while let i = stack.popLast() {
            guard heap[i].expiresAt < now else { continue }  // nor anything below it
            found.append(heap[i])
            let l = 2 * i + 1
            if l < heap.count { stack.append(l) }
            if l + 1 < heap.count { stack.append(l + 1) }
        }
        return found.sorted(by: <).map(\.reservationId)
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
