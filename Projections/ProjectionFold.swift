import Foundation
import SLAMDomain
import SLAMJSON

/// One problem found in a store: which check, and a message naming the ids involved.
public struct Violation: Sendable, Equatable, CustomStringConvertible {
    /// A short, stable name of the check (`doubled-seat`, `projection-different`, ...).
    public let check: String
    public let message: String
    public init(_ check: String, _ message: String) {
        self.check = check
        self.message = message
    }
    public var description: String { "[\(check)] \(message)" }
}

/// An event the fold cannot apply the way the inline projection would (the inline `INSERT`
/// would have failed), or that does not decode: the log is corrupt.
public struct FoldError: Error, CustomStringConvertible {
    public let position: Int64
    public let message: String
    public var description: String { "event at position \(position): \(message)" }
}

/// The read models in memory: the same fold as `Projector.apply`, statement for statement, into
/// arrays instead of SQL, so a rebuild touches each row once when it writes it. `Projector.apply`
/// is the definition; every case below mirrors its SQL, including what an `UPDATE` of a missing
/// row does (nothing) and which counters move unconditionally.
///
/// It folds `RawEvent`s (decoded by the reader threads into chunk arenas) and keeps every string
/// it needs in one byte arena of its own, with its own hash indexes over them: millions of rows
/// cost no per-string allocation, and lookups use the hashes the reader threads computed.
///
/// With `checks`, it also checks the invariants the events can show (DESIGN.md section 2) as it
/// goes: positions contiguous, each wallet event's balance following from the previous one, no
/// charge above the limit, no seat held while another reservation holds it nor freed by one that
/// does not, each reservation's moves in order (and in time), one `PointsUsed` per paid
/// reservation and one `PointsRefunded` per refunded cancellation, both the owner's.
public final class ProjectionFold {
    public let checks: Bool
    /// Throw on the first event the inline projection could not have applied (rebuild), or
    /// record it as a violation and go on (verify).
    public let strict: Bool

    /// Every string of every row.
    @exclusivity(unchecked) var arena: [UInt8] = []

    struct User {
        var id: Ref
        var name: Ref
        var balance: Int64
        var historyCount: Int64
        /// checks: the balance the wallet events say.
        var eventBalance: Int64
    }
    struct History {
        var user: Int32
        var kind: UInt8      // 0 CHARGE, 1 USE, 2 REFUND
        var n: Int64
        var amount: Int64
        var balance: Int64
        var reservationId: Ref
        var at: Int64
    }
    struct Concert { var id: Ref; var name: Ref; var artist: Ref }
    struct SectionRow { var name: Ref; var seatCount: Int; var price: Int64 }
    struct Schedule {
        var id: Ref
        var concertId: Ref
        var startsAt: Int64, opensAt: Int64, closesAt: Int64
        var seatCount: Int64
        var available: Int64, held: Int64, sold: Int64
        var soldOut: Int64
        var maxSeatsPerUser: Int64
        var sections: Ref
        var queueMaxActive: Int64?, queueActiveTtl: Int64?, queueWaitingTtl: Int64?
        var position: Int64
        /// Reservations ever held on it.
        var reservations: Int64 = 0
        var sectionList: [SectionRow]
        /// Per seat (index number - 1): 0 AVAILABLE, 1 HELD, 2 SOLD; and its reservation id.
        var seatStatus: [UInt8]
        var seatReservation: [Ref]
    }
    struct Reservation {
        var id: Ref
        var userId: Ref
        var scheduleId: Ref
        var seatNumbers: Ref
        var price: Int64
        var status: UInt8    // index in reservationStatusNames
        var expiresAt: Int64
        var createdAt: Int64
        var position: Int64
        // checks
        var confirmed = false
        var cancelled = false
        var refunded: Int64 = 0
        var used: Int32 = 0
        var usedAmount: Int64 = 0
        var refunds: Int32 = 0
        var refundAmount: Int64 = 0
    }
    struct Token {
        var id: Ref
        var scheduleId: Ref
        var userId: Ref
        var status: UInt8    // 0 WAITING, 1 ACTIVE, 2 EXPIRED
        var waitSeq: Int64
        var leftWaiting: Int64
        var joinedAt: Int64
        var activeUntil: Int64?
    }
    struct Queue { var scheduleId: Ref; var waits: Int64; var frontRemoved: Int64; var active: Int64; var waiting: Int64 }

    @exclusivity(unchecked) var users: [User] = []
    @exclusivity(unchecked) var history: [History] = []
    @exclusivity(unchecked) var concerts: [Concert] = []
    @exclusivity(unchecked) var schedules: [Schedule] = []
    @exclusivity(unchecked) var reservations: [Reservation] = []
    @exclusivity(unchecked) var tokens: [Token] = []
    @exclusivity(unchecked) var queues: [Queue] = []
    @exclusivity(unchecked) private var userIndex = ByteIndex()
    @exclusivity(unchecked) private var concertIndex = ByteIndex()
    @exclusivity(unchecked) private var scheduleIndex = ByteIndex()
    @exclusivity(unchecked) private var reservationIndex = ByteIndex()
    @exclusivity(unchecked) private var tokenIndex = ByteIndex()
    @exclusivity(unchecked) private var queueIndex = ByteIndex()

    static let seatStatusNames: [StaticString] = ["AVAILABLE", "HELD", "SOLD"]
    static let reservationStatusNames: [StaticString] = ["HELD", "CONFIRMED", "EXPIRED", "RELEASED", "CANCELLED"]
    static let tokenStatusNames: [StaticString] = ["WAITING", "ACTIVE", "EXPIRED"]
    static let historyKindNames: [StaticString] = ["CHARGE", "USE", "REFUND"]

    /// Events applied, and the last position seen.
    public private(set) var applied: Int64 = 0
    public private(set) var lastPosition: Int64 = 0
    /// Violations found (with `checks`, or anomalies when not `strict`).
    public private(set) var violations: [Violation] = []
    /// How many violations of each check were found (the list keeps the first few of each).
    public private(set) var violationCounts: [String: Int] = [:]
    public var violationLimitPerCheck = 50

    public init(checks: Bool = false, strict: Bool = true) {
        self.checks = checks
        self.strict = strict
    }

    func report(_ check: String, _ message: String) {
        let n = violationCounts[check, default: 0] + 1
        violationCounts[check] = n
        if n <= violationLimitPerCheck { violations.append(Violation(check, message)) }
    }

    // MARK: Strings

    /// The text of a stored string.
    func string(_ r: Ref) -> String {
        guard !r.isNil else { return "" }
        return arena.withUnsafeBufferPointer {
            String(decoding: UnsafeBufferPointer(rebasing: $0[r.off..<(r.off + Int(r.len))]), as: UTF8.self)
        }
    }

    @inline(__always) private func store(_ bytes: UnsafeBufferPointer<UInt8>) -> Ref {
        let off = arena.count
        arena.append(contentsOf: bytes)
        return Ref(off: off, len: Int32(bytes.count))
    }

    @inline(__always) private func store(_ s: String) -> Ref {
        var s = s
        return s.withUTF8 { store($0) }
    }

    @inline(__always) private func find(_ index: ByteIndex, _ key: UnsafeBufferPointer<UInt8>, _ hash: UInt64,
                                        _ idOf: (Int32) -> Ref) -> Int32? {
        arena.withUnsafeBufferPointer { a in
            index.find(hash, key) { v in
                let r = idOf(v)
                return UnsafeBufferPointer(rebasing: a[r.off..<(r.off + Int(r.len))])
            }
        }
    }

    @inline(__always) private func findUser(_ k: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> Int32? {
        find(userIndex, k, h) { self.users[Int($0)].id }
    }
    @inline(__always) private func findConcert(_ k: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> Int32? {
        find(concertIndex, k, h) { self.concerts[Int($0)].id }
    }
    @inline(__always) private func findSchedule(_ k: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> Int32? {
        find(scheduleIndex, k, h) { self.schedules[Int($0)].id }
    }
    @inline(__always) private func findReservation(_ k: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> Int32? {
        find(reservationIndex, k, h) { self.reservations[Int($0)].id }
    }
    @inline(__always) private func findToken(_ k: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> Int32? {
        find(tokenIndex, k, h) { self.tokens[Int($0)].id }
    }
    @inline(__always) private func findQueue(_ k: UnsafeBufferPointer<UInt8>, _ h: UInt64) -> Int32? {
        find(queueIndex, k, h) { self.queues[Int($0)].scheduleId }
    }

    private func conflict(_ position: Int64, _ message: String) throws {
        if strict { throw FoldError(position: position, message: message) }
        report("fold-conflict", "event at position \(position): \(message) (the inline projection could not have applied it)")
    }

    @inline(__always) private func notePosition(_ position: Int64) {
        if checks, position != lastPosition + 1 {
            if position <= lastPosition {
                report("position-order", "event position \(position) comes after \(lastPosition)")
            } else if position == lastPosition + 2 {
                report("position-gap", "event position \(lastPosition + 1) is missing (positions must run 1...max)")
            } else {
                report("position-gap", "event positions \(lastPosition + 1)...\(position - 1) are missing (positions must run 1...max)")
            }
        }
        lastPosition = position
    }

    // MARK: The fold (mirrors Projector.apply)

    /// Folds a chunk's events, in order.
    func apply(_ chunk: EventChunk) throws {
        try chunk.bytes.withUnsafeBufferPointer { cb in
            for i in chunk.events.indices {
                try apply(chunk.events[i], cb, chunk)
            }
        }
    }

    /// Folds one event (tests and small callers; the rebuild folds chunks).
    public func apply(_ event: DomainEvent, position: Int64, occurredAt: Millis) throws {
        var chunk = EventChunk(capacity: 1)
        chunk.append(event, position: position, occurredAt: occurredAt)
        try apply(chunk)
    }

    private func apply(_ e: RawEvent, _ cb: UnsafeBufferPointer<UInt8>, _ chunk: EventChunk) throws {
        @inline(__always) func bytes(_ r: IdRef) -> UnsafeBufferPointer<UInt8> {
            UnsafeBufferPointer(rebasing: cb[r.ref.off..<(r.ref.off + Int(r.ref.len))])
        }
        @inline(__always) func text(_ r: IdRef) -> String { String(decoding: bytes(r), as: UTF8.self) }
        let position = e.position, occurredAt = e.occurredAt
        if e.kind == EventKind.undecodable {
            if strict { throw FoldError(position: position, message: "\(text(e.s0)) does not decode: \(text(e.s1))") }
            report("undecodable-event", "event at position \(position) (\(text(e.s0))) does not decode: \(text(e.s1))")
            notePosition(position)
            return
        }
        notePosition(position)
        applied += 1
        switch e.kind {
        case EventKind.userRegistered:
            guard findUser(bytes(e.s0), e.s0.hash) == nil else {
                return try conflict(position, "user \(text(e.s0)) is registered twice")
            }
            userIndex.insert(e.s0.hash, Int32(users.count))
            users.append(User(id: store(bytes(e.s0)), name: store(bytes(e.s1)), balance: 0, historyCount: 0, eventBalance: 0))

        case EventKind.pointsCharged, EventKind.pointsUsed, EventKind.pointsRefunded:
            let user = findUser(bytes(e.s0), e.s0.hash)
            let kind = e.kind - EventKind.pointsCharged
            let amount = e.n0, balance = e.n1
            if checks { walletChecks(e, kind: kind, user: user, bytes: bytes) }
            guard let ui = user else { return }
            let u = Int(ui)
            users[u].balance = balance
            users[u].historyCount += 1
            history.append(History(user: ui, kind: kind, n: users[u].historyCount, amount: amount, balance: balance,
                                   reservationId: kind == 0 ? .none : store(bytes(e.s1)), at: occurredAt))

        case EventKind.concertCreated:
            guard findConcert(bytes(e.s0), e.s0.hash) == nil else {
                return try conflict(position, "concert \(text(e.s0)) is created twice")
            }
            concertIndex.insert(e.s0.hash, Int32(concerts.count))
            concerts.append(Concert(id: store(bytes(e.s0)), name: store(bytes(e.s1)), artist: store(bytes(e.s2))))

        case EventKind.concertScheduled:
            let d = chunk.defs[Int(e.def)]
            guard findSchedule(bytes(e.s0), e.s0.hash) == nil else {
                return try conflict(position, "schedule \(d.scheduleId) is scheduled twice")
            }
            var w = JSONWriter()
            w.beginArray()
            for s in d.sections {
                w.beginObject(); w.field("name", s.name); w.field("seatCount", s.seatCount); w.field("price", s.price); w.endObject()
            }
            w.endArray()
            let count = max(d.seatCount, 0)
            let sections = w.bytes.withUnsafeBufferPointer { store($0) }
            let id = store(bytes(e.s0))
            scheduleIndex.insert(e.s0.hash, Int32(schedules.count))
            schedules.append(Schedule(
                id: id, concertId: store(d.concertId), startsAt: d.startsAt, opensAt: d.reservationOpensAt,
                closesAt: d.reservationClosesAt, seatCount: Int64(d.seatCount), available: Int64(d.seatCount), held: 0, sold: 0,
                soldOut: 0, maxSeatsPerUser: Int64(d.maxSeatsPerUser), sections: sections,
                queueMaxActive: d.queue?.maxActive, queueActiveTtl: d.queue?.activeTtlSeconds,
                queueWaitingTtl: d.queue?.waitingTtlSeconds, position: position,
                sectionList: d.sections.map { SectionRow(name: store($0.name), seatCount: $0.seatCount, price: $0.price) },
                seatStatus: [UInt8](repeating: 0, count: count), seatReservation: [Ref](repeating: .none, count: count)))
            if d.queue != nil, findQueue(bytes(e.s0), e.s0.hash) == nil {
                queueIndex.insert(e.s0.hash, Int32(queues.count))
                queues.append(Queue(scheduleId: id, waits: 0, frontRemoved: 0, active: 0, waiting: 0))
            }

        case EventKind.scheduleSoldOut, EventKind.scheduleReopened:
            if let i = findSchedule(bytes(e.s0), e.s0.hash) { schedules[Int(i)].soldOut = e.kind == EventKind.scheduleSoldOut ? 1 : 0 }

        case EventKind.seatsHeld:
            guard findReservation(bytes(e.s0), e.s0.hash) == nil else {
                return try conflict(position, "reservation \(text(e.s0)) is held twice")
            }
            let seats = chunk.seats[Int(e.seatsStart)..<Int(e.seatsStart + e.seatsCount)]
            let id = store(bytes(e.s0))
            reservationIndex.insert(e.s0.hash, Int32(reservations.count))
            reservations.append(Reservation(id: id, userId: store(bytes(e.s1)), scheduleId: store(bytes(e.s2)),
                                            seatNumbers: seatList(seats), price: e.n0, status: 0, expiresAt: e.n1,
                                            createdAt: occurredAt, position: position))
            if let si = findSchedule(bytes(e.s2), e.s2.hash) {
                let s = Int(si)
                if checks { seatCheck(s, seats, id, position: position, type: "SeatsHeld", scheduleId: text(e.s2)) }
                setSeats(s, seats, status: 1, reservation: id)
                let n = Int64(seats.count)
                schedules[s].available -= n
                schedules[s].held += n
                schedules[s].reservations += 1
            }

        case EventKind.reservationConfirmed:
            let seats = chunk.seats[Int(e.seatsStart)..<Int(e.seatsStart + e.seatsCount)]
            let r = findReservation(bytes(e.s0), e.s0.hash)
            if checks {
                lifecycleCheck(r, text(e.s0), to: 1, position: position, occurredAt: occurredAt)
            }
            if let r {
                reservations[Int(r)].status = 1
                if checks { reservations[Int(r)].confirmed = true }
            }
            if let si = findSchedule(bytes(e.s2), e.s2.hash) {
                let s = Int(si)
                let id = r.map { reservations[Int($0)].id } ?? store(bytes(e.s0))
                if checks { seatCheck(s, seats, id, position: position, type: "ReservationConfirmed", scheduleId: text(e.s2)) }
                setSeats(s, seats, status: 2, reservation: id)
                let n = Int64(seats.count)
                schedules[s].held -= n
                schedules[s].sold += n
            }

        case EventKind.holdExpired, EventKind.holdReleased, EventKind.reservationCancelled:
            let seats = chunk.seats[Int(e.seatsStart)..<Int(e.seatsStart + e.seatsCount)]
            let status: UInt8 = e.kind == EventKind.holdExpired ? 2 : e.kind == EventKind.holdReleased ? 3 : 4
            let r = findReservation(bytes(e.s0), e.s0.hash)
            let si = findSchedule(bytes(e.s2), e.s2.hash)
            if checks {
                lifecycleCheck(r, text(e.s0), to: status, position: position, occurredAt: occurredAt)
                if let si {
                    ownerCheck(Int(si), seats, r.map { string(reservations[Int($0)].id) } ?? text(e.s0), position: position,
                               type: Self.reservationEventNames[Int(status)], scheduleId: text(e.s2))
                }
            }
            if let r {
                reservations[Int(r)].status = status
                if checks, status == 4 {
                    reservations[Int(r)].cancelled = true
                    reservations[Int(r)].refunded = e.n1
                }
            }
            if let si {
                let s = Int(si)
                setSeats(s, seats, status: 0, reservation: .none)
                let n = Int64(seats.count)
                schedules[s].available += n
                if status == 4 { schedules[s].sold -= n } else { schedules[s].held -= n }
            }

        case EventKind.queueJoined:
            guard findToken(bytes(e.s0), e.s0.hash) == nil else {
                return try conflict(position, "queue token \(text(e.s0)) joins twice")
            }
            let q: Int
            if let i = findQueue(bytes(e.s2), e.s2.hash) {
                q = Int(i)
            } else {
                q = queues.count
                queueIndex.insert(e.s2.hash, Int32(q))
                queues.append(Queue(scheduleId: store(bytes(e.s2)), waits: 0, frontRemoved: 0, active: 0, waiting: 0))
            }
            queues[q].waits += 1
            queues[q].waiting += 1
            tokenIndex.insert(e.s0.hash, Int32(tokens.count))
            tokens.append(Token(id: store(bytes(e.s0)), scheduleId: store(bytes(e.s2)), userId: store(bytes(e.s1)), status: 0,
                                waitSeq: queues[q].waits, leftWaiting: 0, joinedAt: occurredAt, activeUntil: nil))

        case EventKind.queueTokenActivated:
            if let i = findToken(bytes(e.s0), e.s0.hash) {
                tokens[Int(i)].status = 1
                tokens[Int(i)].activeUntil = e.n0
            }
            if let q = findQueue(bytes(e.s2), e.s2.hash) {
                queues[Int(q)].frontRemoved += 1
                queues[Int(q)].waiting -= 1
                queues[Int(q)].active += 1
            }

        case EventKind.queueTokenExpired, EventKind.queueLeft:
            let left = e.kind == EventKind.queueLeft
            guard let ti = findToken(bytes(e.s0), e.s0.hash) else { return }
            let k = Int(ti)
            let q = findQueue(bytes(e.s2), e.s2.hash).map(Int.init)
            if tokens[k].status == 1 {
                if let q { queues[q].active -= 1 }
            } else if tokens[k].status == 0 {
                if let q {
                    queues[q].waiting -= 1
                    if !left { queues[q].frontRemoved += 1 }
                }
                if left { tokens[k].leftWaiting = 1 }
            }
            tokens[k].status = 2

        default:
            break
        }
    }

    @inline(__always)
    private func setSeats(_ s: Int, _ numbers: ArraySlice<Int>, status: UInt8, reservation: Ref) {
        let count = schedules[s].seatStatus.count
        for n in numbers where n >= 1 && n <= count {
            schedules[s].seatStatus[n - 1] = status
            schedules[s].seatReservation[n - 1] = reservation
        }
    }

    /// `Projector.seatList` (a JSON array of integers) into the arena: the same bytes.
    private func seatList(_ seats: ArraySlice<Int>) -> Ref {
        let off = arena.count
        arena.append(0x5B)
        var first = true
        for n in seats {
            if !first { arena.append(0x2C) }
            first = false
            if n == 0 { arena.append(0x30); continue }
            if n < 0 { arena.append(0x2D) }
            var v = n.magnitude
            var digits = 0
            var w = v
            while w > 0 { digits += 1; w /= 10 }
            let at = arena.count
            arena.append(contentsOf: repeatElement(0x30, count: digits))
            var j = at + digits - 1
            while v > 0 {
                arena[j] = UInt8(v % 10) + 0x30
                v /= 10
                j -= 1
            }
        }
        arena.append(0x5D)
        return Ref(off: off, len: Int32(arena.count - off))
    }

    // MARK: Checks

    private func walletChecks(_ e: RawEvent, kind: UInt8, user: Int32?, bytes: (IdRef) -> UnsafeBufferPointer<UInt8>) {
        let type = ["PointsCharged", "PointsUsed", "PointsRefunded"][Int(kind)]
        let amount = e.n0, balance = e.n1, position = e.position
        let userId = String(decoding: bytes(e.s0), as: UTF8.self)
        if kind == 0 {
            if balance > Limits.maxBalance {
                report("charge-over-limit", "PointsCharged at position \(position) takes user \(userId)'s balance to \(balance), "
                       + "above \(Limits.maxBalance)")
            }
            if amount <= 0 { report("balance-history", "PointsCharged at position \(position) for user \(userId) has amount \(amount)") }
        } else {
            let reservationId = String(decoding: bytes(e.s1), as: UTF8.self)
            let check = kind == 1 ? "points-used" : "points-refunded"
            if let r = findReservation(bytes(e.s1), e.s1.hash) {
                if kind == 1 {
                    reservations[Int(r)].used += 1
                    reservations[Int(r)].usedAmount += amount
                } else {
                    reservations[Int(r)].refunds += 1
                    reservations[Int(r)].refundAmount += amount
                }
                // Points go out of, and come back to, the reservation's owner.
                let owner = string(reservations[Int(r)].userId)
                if owner != userId {
                    report(check, "\(type) at position \(position) \(kind == 1 ? "charges" : "refunds") user \(userId) for "
                           + "reservation \(reservationId) of user \(owner)")
                }
            } else {
                report(check, "\(type) at position \(position) (user \(userId), \(amount) points) names reservation "
                       + "\(reservationId), which was never held")
            }
        }
        guard let ui = user else {
            report("balance-history", "\(type) at position \(position) is for user \(userId), who is not registered")
            return
        }
        let delta = kind == 1 ? -amount : amount
        let before = users[Int(ui)].eventBalance
        if before + delta != balance {
            report("balance-history", "\(type) at position \(position) sets user \(userId)'s balance to \(balance); "
                   + "the history says \(before) \(delta < 0 ? "-" : "+") \(abs(delta)) = \(before + delta)")
        }
        if balance < 0 {
            report("negative-balance", "\(type) at position \(position) takes user \(userId)'s balance to \(balance)")
        }
        users[Int(ui)].eventBalance = balance
    }

    /// The event's name for each status a reservation moves to (by its fold status).
    static let reservationEventNames = ["SeatsHeld", "ReservationConfirmed", "HoldExpired", "HoldReleased", "ReservationCancelled"]

    /// A reservation moves HELD → CONFIRMED (while its hold lasts: at or before `expiresAt`),
    /// HELD → EXPIRED (not before `expiresAt`), HELD → RELEASED, CONFIRMED → CANCELLED; an event
    /// naming one never held, or in another status, describes what cannot happen. `status` is the
    /// fold status the event moves it to (1 CONFIRMED ... 4 CANCELLED).
    private func lifecycleCheck(_ r: Int32?, _ named: @autoclosure () -> String, to status: UInt8, position: Int64,
                                occurredAt: Millis) {
        let type = Self.reservationEventNames[Int(status)]
        let from: UInt8 = status == 4 ? 1 : 0
        guard let r else {
            report("reservation-lifecycle", "\(type) at position \(position) names reservation \(named()), which was never held")
            return
        }
        let res = reservations[Int(r)]
        let id = string(res.id)
        if res.status != from {
            report("reservation-lifecycle", "\(type) at position \(position) for reservation \(id), which is "
                   + "\(Self.reservationStatusNames[Int(res.status)])")
        } else if status == 1, occurredAt > res.expiresAt {
            report("reservation-lifecycle", "reservation \(id) confirmed at \(RFC3339.format(occurredAt)) (position \(position)), "
                   + "after its hold expired at \(RFC3339.format(res.expiresAt))")
        } else if status == 2, occurredAt < res.expiresAt {
            report("reservation-lifecycle", "reservation \(id) expired at \(RFC3339.format(occurredAt)) (position \(position)), "
                   + "before its hold's end at \(RFC3339.format(res.expiresAt))")
        }
    }

    /// The seats an ending reservation frees are its own: a release must not free a seat another
    /// reservation holds (the seat map would offer it again while that reservation lives).
    private func ownerCheck(_ s: Int, _ seats: ArraySlice<Int>, _ mine: String, position: Int64, type: String,
                            scheduleId: String) {
        let count = schedules[s].seatStatus.count
        for n in seats {
            let ownerRef = n >= 1 && n <= count ? schedules[s].seatReservation[n - 1] : Ref.none
            let owner = ownerRef.isNil ? nil : string(ownerRef)
            guard owner != mine else { continue }
            report("doubled-seat", "\(type) at position \(position) frees seat \(n) of schedule \(scheduleId) for reservation "
                   + "\(mine), which does not hold it" + (owner.map { " (reservation \($0) does)" } ?? ""))
        }
    }

    /// A seat taken by `reservation` while another live reservation has it.
    private func seatCheck(_ s: Int, _ seats: ArraySlice<Int>, _ reservation: Ref, position: Int64, type: String,
                           scheduleId: String) {
        let count = schedules[s].seatStatus.count
        let mine = string(reservation)
        for n in seats where n >= 1 && n <= count {
            let ownerRef = schedules[s].seatReservation[n - 1]
            guard schedules[s].seatStatus[n - 1] != 0, !ownerRef.isNil else { continue }
            let owner = string(ownerRef)
            guard owner != mine else { continue }
            var key = Array(owner.utf8)
            let status = key.withUnsafeMutableBufferPointer { b -> String in
                let k = UnsafeBufferPointer(b)
                guard let r = findReservation(k, hashBytes(k)) else { return "?" }
                return "\(Self.reservationStatusNames[Int(reservations[Int(r)].status)])"
            }
            key = []
            report("doubled-seat", "seat \(n) of schedule \(scheduleId) is taken by reservation \(mine) (\(type) at "
                   + "position \(position)) while reservation \(owner) (\(status)) holds it")
        }
    }

    /// The end-of-log checks: one deduction per paid reservation, one refund per refunded cancellation.
    public func finish() {
        guard checks else { return }
        for r in reservations {
            let id = string(r.id), user = string(r.userId)
            if r.confirmed && r.price > 0 {
                if r.used != 1 || r.usedAmount != r.price {
                    report("points-used", "reservation \(id) (user \(user), price \(r.price)) was confirmed with "
                           + "\(r.used) PointsUsed events totalling \(r.usedAmount) points; expected exactly one of \(r.price)")
                }
            } else if r.used != 0 {
                report("points-used", "reservation \(id) (user \(user)) was never confirmed (or is free) but has "
                       + "\(r.used) PointsUsed events totalling \(r.usedAmount) points")
            }
            if r.cancelled && r.refunded > 0 {
                if r.refunds != 1 || r.refundAmount != r.refunded {
                    report("points-refunded", "reservation \(id) (user \(user)) was cancelled with a refund of \(r.refunded) "
                           + "but has \(r.refunds) PointsRefunded events totalling \(r.refundAmount) points; expected exactly one")
                }
            } else if r.refunds != 0 {
                report("points-refunded", "reservation \(id) (user \(user)) has \(r.refunds) PointsRefunded events "
                       + "totalling \(r.refundAmount) points but no refunded cancellation")
            }
            if r.cancelled, r.refunded != (r.confirmed ? r.price : 0) {
                report("points-refunded", "reservation \(id) was cancelled with refunded \(r.refunded); it paid "
                       + "\(r.confirmed ? r.price : 0)")
            }
        }
    }

    /// Rows `table` will hold.
    func rowCount(_ table: String) -> Int { rowCounts()[table] ?? 0 }

    /// Rows per table, as the write will produce them.
    public func rowCounts() -> [String: Int] {
        ["users": users.count, "user_count": users.isEmpty ? 0 : 1, "point_history": history.count,
         "concerts": concerts.count, "schedules": schedules.count,
         "seats": schedules.reduce(0) { $0 + $1.seatStatus.count }, "reservations": reservations.count,
         "queue_tokens": tokens.count, "queues": queues.count]
    }
}
