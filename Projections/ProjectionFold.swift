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
/// arrays and dictionaries instead of SQL, so a rebuild touches each row once when it writes it.
/// `Projector.apply` is the definition; every case below mirrors its SQL, including what an
/// `UPDATE` of a missing row does (nothing) and which counters move unconditionally.
///
/// With `checks`, it also checks the invariants the events can show (DESIGN.md section 2) as it
/// goes: positions contiguous, each wallet event's balance following from the previous one, no
/// charge above the limit, no seat held while another reservation holds it, one `PointsUsed` per
/// paid reservation and one `PointsRefunded` per refunded cancellation.
public final class ProjectionFold {
    public let checks: Bool
    /// Throw on the first event the inline projection could not have applied (rebuild), or
    /// record it as a violation and go on (verify).
    public let strict: Bool

    // users, point_history
    struct User {
        var id: String
        var name: String
        var balance: Int64
        var historyCount: Int64
        /// checks: the balance the wallet events say, before the projection's update.
        var eventBalance: Int64
    }
    struct History {
        var user: Int32
        var kind: UInt8      // 0 CHARGE, 1 USE, 2 REFUND
        var n: Int64
        var amount: Int64
        var balance: Int64
        var reservationId: String?
        var at: Int64
    }
    var users: [User] = []
    var userIndex = IdIndex()
    var history: [History] = []

    struct Concert { var id: String; var name: String; var artist: String }
    var concerts: [Concert] = []
    var concertIndex = IdIndex()

    struct Schedule {
        var id: String
        var concertId: String
        var startsAt: Int64, opensAt: Int64, closesAt: Int64
        var seatCount: Int64
        var available: Int64, held: Int64, sold: Int64
        var soldOut: Int64
        var maxSeatsPerUser: Int64
        var sections: String
        var queueMaxActive: Int64?, queueActiveTtl: Int64?, queueWaitingTtl: Int64?
        var position: Int64
        var sectionList: [Section]
        /// Per seat (index number - 1): 0 AVAILABLE, 1 HELD, 2 SOLD; and its reservation id.
        var seatStatus: [UInt8]
        var seatReservation: [String?]
    }
    var schedules: [Schedule] = []
    var scheduleIndex = IdIndex()

    struct Reservation {
        var id: String
        var userId: String
        var scheduleId: String
        var seatNumbers: String
        var price: Int64
        var status: UInt8    // index in reservationStatusNames
        var expiresAt: Int64
        var createdAt: Int64
        var position: Int64
        // checks
        var confirmed: Bool = false
        var cancelled: Bool = false
        var refunded: Int64 = 0
        var used: Int32 = 0
        var usedAmount: Int64 = 0
        var refunds: Int32 = 0
        var refundAmount: Int64 = 0
    }
    var reservations: [Reservation] = []
    var reservationIndex = IdIndex()

    struct Token {
        var id: String
        var scheduleId: String
        var userId: String
        var status: UInt8    // 0 WAITING, 1 ACTIVE, 2 EXPIRED
        var waitSeq: Int64
        var leftWaiting: Int64
        var joinedAt: Int64
        var activeUntil: Int64?
    }
    var tokens: [Token] = []
    var tokenIndex = IdIndex()

    struct Queue { var scheduleId: String; var waits: Int64; var frontRemoved: Int64; var active: Int64; var waiting: Int64 }
    var queues: [Queue] = []
    var queueIndex = IdIndex()

    static let seatStatusNames = ["AVAILABLE", "HELD", "SOLD"]
    static let reservationStatusNames = ["HELD", "CONFIRMED", "EXPIRED", "RELEASED", "CANCELLED"]
    static let tokenStatusNames = ["WAITING", "ACTIVE", "EXPIRED"]
    static let historyKindNames = ["CHARGE", "USE", "REFUND"]

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

    private func conflict(_ position: Int64, _ message: String) throws {
        if strict { throw FoldError(position: position, message: message) }
        report("fold-conflict", "event at position \(position): \(message) (the inline projection could not have applied it)")
    }

    /// An event whose body does not decode.
    public func undecodable(position: Int64, type: String, error: String) throws {
        if strict { throw FoldError(position: position, message: "\(type) does not decode: \(error)") }
        report("undecodable-event", "event at position \(position) (\(type)) does not decode: \(error)")
        notePosition(position)
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

    public func apply(_ event: DomainEvent, position: Int64, occurredAt: Millis) throws {
        notePosition(position)
        applied += 1
        switch event {
        case .userRegistered(let userId, let name):
            guard userIndex.insertNew(userId, Int32(users.count)) else {
                return try conflict(position, "user \(userId) is registered twice")
            }
            users.append(User(id: userId, name: name, balance: 0, historyCount: 0, eventBalance: 0))
        case .pointsCharged(let userId, let amount, let balance):
            if checks {
                if balance > Limits.maxBalance {
                    report("charge-over-limit", "PointsCharged at position \(position) takes user \(userId)'s balance to \(balance), "
                           + "above \(Limits.maxBalance)")
                }
                if amount <= 0 { report("balance-history", "PointsCharged at position \(position) for user \(userId) has amount \(amount)") }
                walletCheck(userId, delta: amount, balance: balance, position: position, type: "PointsCharged")
            }
            addHistory(userId, 0, amount, balance, nil, occurredAt)
        case .pointsUsed(let userId, let amount, let balance, let reservationId):
            if checks {
                walletCheck(userId, delta: -amount, balance: balance, position: position, type: "PointsUsed")
                if let i = reservationIndex[reservationId] {
                    reservations[Int(i)].used += 1
                    reservations[Int(i)].usedAmount += amount
                    if reservations[Int(i)].userId != userId {
                        report("points-used", "PointsUsed at position \(position) charges user \(userId) for reservation "
                               + "\(reservationId) of user \(reservations[Int(i)].userId)")
                    }
                } else {
                    report("points-used", "PointsUsed at position \(position) (user \(userId), \(amount) points) names "
                           + "reservation \(reservationId), which was never held")
                }
            }
            addHistory(userId, 1, amount, balance, reservationId, occurredAt)
        case .pointsRefunded(let userId, let amount, let balance, let reservationId):
            if checks {
                walletCheck(userId, delta: amount, balance: balance, position: position, type: "PointsRefunded")
                if let i = reservationIndex[reservationId] {
                    reservations[Int(i)].refunds += 1
                    reservations[Int(i)].refundAmount += amount
                } else {
                    report("points-refunded", "PointsRefunded at position \(position) (user \(userId), \(amount) points) names "
                           + "reservation \(reservationId), which was never held")
                }
            }
            addHistory(userId, 2, amount, balance, reservationId, occurredAt)
        case .concertCreated(let concertId, let name, let artist):
            guard concertIndex.insertNew(concertId, Int32(concerts.count)) else {
                return try conflict(position, "concert \(concertId) is created twice")
            }
            concerts.append(Concert(id: concertId, name: name, artist: artist))
        case .concertScheduled(let d):
            guard scheduleIndex.insertNew(d.scheduleId, Int32(schedules.count)) else {
                return try conflict(position, "schedule \(d.scheduleId) is scheduled twice")
            }
            var w = JSONWriter()
            w.beginArray()
            for s in d.sections {
                w.beginObject(); w.field("name", s.name); w.field("seatCount", s.seatCount); w.field("price", s.price); w.endObject()
            }
            w.endArray()
            let count = d.seatCount
            schedules.append(Schedule(
                id: d.scheduleId, concertId: d.concertId, startsAt: d.startsAt, opensAt: d.reservationOpensAt,
                closesAt: d.reservationClosesAt, seatCount: Int64(count), available: Int64(count), held: 0, sold: 0, soldOut: 0,
                maxSeatsPerUser: Int64(d.maxSeatsPerUser), sections: w.string, queueMaxActive: d.queue?.maxActive,
                queueActiveTtl: d.queue?.activeTtlSeconds, queueWaitingTtl: d.queue?.waitingTtlSeconds, position: position,
                sectionList: d.sections, seatStatus: [UInt8](repeating: 0, count: max(count, 0)),
                seatReservation: [String?](repeating: nil, count: max(count, 0))))
            if d.queue != nil, queueIndex.insertNew(d.scheduleId, Int32(queues.count)) {
                queues.append(Queue(scheduleId: d.scheduleId, waits: 0, frontRemoved: 0, active: 0, waiting: 0))
            }
        case .scheduleSoldOut(let scheduleId):
            if let i = scheduleIndex[scheduleId] { schedules[Int(i)].soldOut = 1 }
        case .scheduleReopened(let scheduleId):
            if let i = scheduleIndex[scheduleId] { schedules[Int(i)].soldOut = 0 }
        case .seatsHeld(let r, let expiresAt):
            guard reservationIndex.insertNew(r.reservationId, Int32(reservations.count)) else {
                return try conflict(position, "reservation \(r.reservationId) is held twice")
            }
            reservations.append(Reservation(id: r.reservationId, userId: r.userId, scheduleId: r.scheduleId,
                                            seatNumbers: Self.seatList(r.seatNumbers), price: r.price, status: 0,
                                            expiresAt: expiresAt, createdAt: occurredAt, position: position))
            if let si = scheduleIndex[r.scheduleId] {
                let s = Int(si)
                if checks { seatCheck(s, r, position: position, type: "SeatsHeld") }
                setSeats(s, r.seatNumbers, status: 1, reservationId: r.reservationId)
                let n = Int64(r.seatNumbers.count)
                schedules[s].available -= n
                schedules[s].held += n
            }
        case .reservationConfirmed(let r):
            if let i = reservationIndex[r.reservationId] {
                reservations[Int(i)].status = 1
                if checks { reservations[Int(i)].confirmed = true }
            }
            if let si = scheduleIndex[r.scheduleId] {
                let s = Int(si)
                if checks { seatCheck(s, r, position: position, type: "ReservationConfirmed") }
                setSeats(s, r.seatNumbers, status: 2, reservationId: r.reservationId)
                let n = Int64(r.seatNumbers.count)
                schedules[s].held -= n
                schedules[s].sold += n
            }
        case .holdExpired(let r):
            release(r, status: 2, fromSold: false)
        case .holdReleased(let r):
            release(r, status: 3, fromSold: false)
        case .reservationCancelled(let r, let refunded):
            if checks, let i = reservationIndex[r.reservationId] {
                reservations[Int(i)].cancelled = true
                reservations[Int(i)].refunded = refunded
            }
            release(r, status: 4, fromSold: true)
        case .queueJoined(let t):
            guard tokenIndex[t.tokenId] == nil else { return try conflict(position, "queue token \(t.tokenId) joins twice") }
            let q: Int
            if let i = queueIndex[t.scheduleId] {
                q = Int(i)
            } else {
                q = queues.count
                _ = queueIndex.insertNew(t.scheduleId, Int32(q))
                queues.append(Queue(scheduleId: t.scheduleId, waits: 0, frontRemoved: 0, active: 0, waiting: 0))
            }
            queues[q].waits += 1
            queues[q].waiting += 1
            _ = tokenIndex.insertNew(t.tokenId, Int32(tokens.count))
            tokens.append(Token(id: t.tokenId, scheduleId: t.scheduleId, userId: t.userId, status: 0, waitSeq: queues[q].waits,
                                leftWaiting: 0, joinedAt: occurredAt, activeUntil: nil))
        case .queueTokenActivated(let t, let activeUntil):
            if let i = tokenIndex[t.tokenId] {
                tokens[Int(i)].status = 1
                tokens[Int(i)].activeUntil = activeUntil
            }
            if let q = queueIndex[t.scheduleId] {
                queues[Int(q)].frontRemoved += 1
                queues[Int(q)].waiting -= 1
                queues[Int(q)].active += 1
            }
        case .queueTokenExpired(let t), .queueLeft(let t):
            let left: Bool
            if case .queueLeft = event { left = true } else { left = false }
            guard let ti = tokenIndex[t.tokenId] else { return }
            let k = Int(ti)
            let q = queueIndex[t.scheduleId].map(Int.init)
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
        }
    }

    @inline(__always)
    private func addHistory(_ userId: String, _ kind: UInt8, _ amount: Int64, _ balance: Int64, _ reservationId: String?,
                            _ at: Int64) {
        guard let ui = userIndex[userId] else { return }
        let u = Int(ui)
        users[u].balance = balance
        users[u].historyCount += 1
        history.append(History(user: ui, kind: kind, n: users[u].historyCount, amount: amount, balance: balance,
                               reservationId: reservationId, at: at))
    }

    @inline(__always)
    private func setSeats(_ s: Int, _ numbers: [Int], status: UInt8, reservationId: String?) {
        let count = schedules[s].seatStatus.count
        for n in numbers where n >= 1 && n <= count {
            schedules[s].seatStatus[n - 1] = status
            schedules[s].seatReservation[n - 1] = reservationId
        }
    }

    /// A reservation ends: its seats are AVAILABLE again; `fromSold` picks the counter they leave.
    private func release(_ r: ReservationRef, status: UInt8, fromSold: Bool) {
        if let i = reservationIndex[r.reservationId] { reservations[Int(i)].status = status }
        guard let si = scheduleIndex[r.scheduleId] else { return }
        let s = Int(si)
        setSeats(s, r.seatNumbers, status: 0, reservationId: nil)
        let n = Int64(r.seatNumbers.count)
        schedules[s].available += n
        if fromSold { schedules[s].sold -= n } else { schedules[s].held -= n }
    }

    /// `Projector.seatList` (a JSON array of integers), without a `JSONWriter`: the same bytes.
    static func seatList(_ seats: [Int]) -> String {
        String(unsafeUninitializedCapacity: 2 + 21 * seats.count) { buf in
            var i = 0
            buf[i] = 0x5B; i += 1
            for (k, n) in seats.enumerated() {
                if k > 0 { buf[i] = 0x2C; i += 1 }
                if n == 0 { buf[i] = 0x30; i += 1; continue }
                if n < 0 { buf[i] = 0x2D; i += 1 }
                var v = n.magnitude
                var digits = 0
                var w = v
                while w > 0 { digits += 1; w /= 10 }
                var j = i + digits - 1
                while v > 0 {
                    buf[j] = UInt8(v % 10) + 0x30
                    v /= 10
                    j -= 1
                }
                i += digits
            }
            buf[i] = 0x5D; i += 1
            return i
        }
    }

    // MARK: Checks

    private func walletCheck(_ userId: String, delta: Int64, balance: Int64, position: Int64, type: String) {
        guard let ui = userIndex[userId] else {
            report("balance-history", "\(type) at position \(position) is for user \(userId), who is not registered")
            return
        }
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

    /// A seat taken by `r` while another live reservation has it: two live reservations on one seat.
    private func seatCheck(_ s: Int, _ r: ReservationRef, position: Int64, type: String) {
        let count = schedules[s].seatStatus.count
        for n in r.seatNumbers where n >= 1 && n <= count {
            guard schedules[s].seatStatus[n - 1] != 0, let owner = schedules[s].seatReservation[n - 1],
                  owner != r.reservationId else { continue }
            let ownerStatus = reservationIndex[owner].map { Self.reservationStatusNames[Int(reservations[Int($0)].status)] } ?? "?"
            report("doubled-seat", "seat \(n) of schedule \(r.scheduleId) is taken by reservation \(r.reservationId) (\(type) at "
                   + "position \(position)) while reservation \(owner) (\(ownerStatus)) holds it")
        }
    }

    /// The end-of-log checks: one deduction per paid reservation, one refund per refunded cancellation.
    public func finish() {
        guard checks else { return }
        for r in reservations {
            let expectUse = r.confirmed && r.price > 0
            if expectUse {
                if r.used != 1 || r.usedAmount != r.price {
                    report("points-used", "reservation \(r.id) (user \(r.userId), price \(r.price)) was confirmed with "
                           + "\(r.used) PointsUsed events totalling \(r.usedAmount) points; expected exactly one of \(r.price)")
                }
            } else if r.used != 0 {
                report("points-used", "reservation \(r.id) (user \(r.userId)) was never confirmed (or is free) but has "
                       + "\(r.used) PointsUsed events totalling \(r.usedAmount) points")
            }
            let expectRefund = r.cancelled && r.refunded > 0
            if expectRefund {
                if r.refunds != 1 || r.refundAmount != r.refunded {
                    report("points-refunded", "reservation \(r.id) (user \(r.userId)) was cancelled with a refund of \(r.refunded) "
                           + "but has \(r.refunds) PointsRefunded events totalling \(r.refundAmount) points; expected exactly one")
                }
            } else if r.refunds != 0 {
                report("points-refunded", "reservation \(r.id) (user \(r.userId)) has \(r.refunds) PointsRefunded events "
                       + "totalling \(r.refundAmount) points but no refunded cancellation")
            }
            if r.cancelled, r.refunded != (r.confirmed ? r.price : 0) {
                report("points-refunded", "reservation \(r.id) was cancelled with refunded \(r.refunded); it paid "
                       + "\(r.confirmed ? r.price : 0)")
            }
        }
    }

    /// Rows per table, as the write will produce them.
    public func rowCounts() -> [String: Int] {
        ["users": users.count, "point_history": history.count, "concerts": concerts.count, "schedules": schedules.count,
         "seats": schedules.reduce(0) { $0 + $1.seatStatus.count }, "reservations": reservations.count,
         "queue_tokens": tokens.count, "queues": queues.count]
    }
}

/// Row indexes by id, for the fold's lookups. The key keeps its string's hash, so a probe that
/// meets another key compares two integers, not two 30-byte ids sharing their time prefix
/// (Swift's `Dictionary` stores no hashes: an unsuccessful lookup otherwise compares strings
/// all along its probe run).
struct IdIndex {
    struct Key: Hashable {
        let id: String
        let hash: Int
        @inline(__always) init(_ id: String) {
            self.id = id
            // FNV-1a over the UTF-8 bytes, then the Dictionary's seeded hasher mixes it.
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            var s = id
            s.withUTF8 { buf in
                for b in buf { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            }
            hash = Int(bitPattern: UInt(h))
        }
        @inline(__always) static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.id == b.id }
        @inline(__always) func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }
    private(set) var table: [Key: Int32] = [:]

    var count: Int { table.count }

    @inline(__always) subscript(id: String) -> Int32? { table[Key(id)] }

    /// Adds `id -> value`; false (and no change) when `id` is already there.
    @inline(__always) mutating func insertNew(_ id: String, _ value: Int32) -> Bool {
        let key = Key(id)
        if let old = table.updateValue(value, forKey: key) {
            table[key] = old
            return false
        }
        return true
    }
}
