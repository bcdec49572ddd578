import Foundation
import SLAMDomain

/// Bytes of a string kept in an arena: `len < 0` is nil.
struct Ref {
    var off: Int
    var len: Int32
    static let none = Ref(off: 0, len: -1)
    var isNil: Bool { len < 0 }
}

/// A string of an event, in its chunk's arena, with its hash (computed by the decoding thread, so
/// the fold thread's lookups do not hash).
struct IdRef {
    var ref: Ref
    var hash: UInt64
    static let none = IdRef(ref: .none, hash: 0)
}

/// Event kinds, the codes of `FastEventDecoder.typeNames`; `undecodable` carries the error.
enum EventKind {
    static let seatsHeld: UInt8 = 0, reservationConfirmed: UInt8 = 1, holdExpired: UInt8 = 2, holdReleased: UInt8 = 3,
               reservationCancelled: UInt8 = 4, pointsCharged: UInt8 = 5, pointsUsed: UInt8 = 6, pointsRefunded: UInt8 = 7,
               userRegistered: UInt8 = 8, concertCreated: UInt8 = 9, scheduleSoldOut: UInt8 = 10,
               scheduleReopened: UInt8 = 11, queueJoined: UInt8 = 12, queueTokenExpired: UInt8 = 13, queueLeft: UInt8 = 14,
               queueTokenActivated: UInt8 = 15, concertScheduled: UInt8 = 16, undecodable: UInt8 = 255
}

/// One event of the log as the rebuild folds it: plain data whose strings live in the chunk's
/// arena. By kind:
/// - user: s0 userId, s1 name; wallet: s0 userId, s1 reservationId (uses, refunds), n0 amount, n1 balance
/// - concert: s0 concertId, s1 name, s2 artist; scheduled: `def` indexes the chunk's definitions;
///   sold out / reopened: s0 scheduleId
/// - queue: s0 tokenId, s1 userId, s2 scheduleId, n0 activeUntil (activated)
/// - reservation: s0 reservationId, s1 userId, s2 scheduleId, seats, n0 price, n1 expiresAt (held) or
///   refunded (cancelled)
/// - undecodable: s0 the type, s1 the error
struct RawEvent {
    var kind: UInt8
    var position: Int64
    var occurredAt: Int64
    var s0 = IdRef.none, s1 = IdRef.none, s2 = IdRef.none
    var n0: Int64 = 0, n1: Int64 = 0
    var seatsStart: Int32 = 0, seatsCount: Int32 = 0
    var def: Int32 = -1

    init(kind: UInt8, position: Int64, occurredAt: Int64) {
        self.kind = kind
        self.position = position
        self.occurredAt = occurredAt
    }
}

/// A run of decoded events with the bytes and seat numbers they point into.
struct EventChunk {
    var events: [RawEvent] = []
    var bytes: [UInt8] = []
    var seats: [Int] = []
    var defs: [ScheduleDefinition] = []

    init(capacity: Int) {
        events.reserveCapacity(capacity)
        bytes.reserveCapacity(capacity * 80)
        seats.reserveCapacity(capacity)
    }

    /// Copies bytes into the arena, hashing them.
    @inline(__always) mutating func add(_ p: UnsafeBufferPointer<UInt8>) -> IdRef {
        let off = bytes.count
        bytes.append(contentsOf: p)
        return IdRef(ref: Ref(off: off, len: Int32(p.count)), hash: hashBytes(p))
    }

    mutating func add(_ s: String) -> IdRef {
        var s = s
        return s.withUTF8 { add($0) }
    }

    func string(_ r: IdRef) -> String? {
        guard !r.ref.isNil else { return nil }
        return bytes.withUnsafeBufferPointer {
            String(decoding: UnsafeBufferPointer(rebasing: $0[r.ref.off..<(r.ref.off + Int(r.ref.len))]), as: UTF8.self)
        }
    }

    /// Appends `event` (from the full decoder) as a raw event.
    mutating func append(_ event: DomainEvent, position: Int64, occurredAt: Int64) {
        var e = RawEvent(kind: 0, position: position, occurredAt: occurredAt)
        func reservation(_ kind: UInt8, _ r: ReservationRef) {
            e.kind = kind
            e.s0 = add(r.reservationId); e.s1 = add(r.userId); e.s2 = add(r.scheduleId)
            e.seatsStart = Int32(seats.count); e.seatsCount = Int32(r.seatNumbers.count)
            seats.append(contentsOf: r.seatNumbers)
            e.n0 = r.price
        }
        func token(_ kind: UInt8, _ t: TokenRef) {
            e.kind = kind
            e.s0 = add(t.tokenId); e.s1 = add(t.userId); e.s2 = add(t.scheduleId)
        }
        switch event {
        case .userRegistered(let u, let name):
            e.kind = EventKind.userRegistered; e.s0 = add(u); e.s1 = add(name)
        case .pointsCharged(let u, let amount, let balance):
            e.kind = EventKind.pointsCharged; e.s0 = add(u); e.n0 = amount; e.n1 = balance
        case .pointsUsed(let u, let amount, let balance, let r):
            e.kind = EventKind.pointsUsed; e.s0 = add(u); e.s1 = add(r); e.n0 = amount; e.n1 = balance
        case .pointsRefunded(let u, let amount, let balance, let r):
            e.kind = EventKind.pointsRefunded; e.s0 = add(u); e.s1 = add(r); e.n0 = amount; e.n1 = balance
        case .concertCreated(let c, let name, let artist):
            e.kind = EventKind.concertCreated; e.s0 = add(c); e.s1 = add(name); e.s2 = add(artist)
        case .concertScheduled(let d):
            e.kind = EventKind.concertScheduled; e.s0 = add(d.scheduleId); e.def = Int32(defs.count); defs.append(d)
        case .scheduleSoldOut(let s):
            e.kind = EventKind.scheduleSoldOut; e.s0 = add(s)
        case .scheduleReopened(let s):
            e.kind = EventKind.scheduleReopened; e.s0 = add(s)
        case .queueJoined(let t): token(EventKind.queueJoined, t)
        case .queueTokenExpired(let t): token(EventKind.queueTokenExpired, t)
        case .queueLeft(let t): token(EventKind.queueLeft, t)
        case .queueTokenActivated(let t, let until): token(EventKind.queueTokenActivated, t); e.n0 = until
        case .seatsHeld(let r, let expiresAt): reservation(EventKind.seatsHeld, r); e.n1 = expiresAt
        case .reservationConfirmed(let r): reservation(EventKind.reservationConfirmed, r)
        case .holdExpired(let r): reservation(EventKind.holdExpired, r)
        case .holdReleased(let r): reservation(EventKind.holdReleased, r)
        case .reservationCancelled(let r, let refunded): reservation(EventKind.reservationCancelled, r); e.n1 = refunded
        }
        events.append(e)
    }

    mutating func appendUndecodable(position: Int64, occurredAt: Int64, type: String, error: String) {
        var e = RawEvent(kind: EventKind.undecodable, position: position, occurredAt: occurredAt)
        e.s0 = add(type)
        e.s1 = add(error)
        events.append(e)
    }
}

/// FNV-1a over the bytes, then a 64-bit finalizer; never 0 (0 marks an empty slot).
@inline(__always) func hashBytes(_ p: UnsafeBufferPointer<UInt8>) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in p { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    h ^= h >> 33
    h = h &* 0xff51_afd7_ed55_8ccd
    h ^= h >> 33
    h = h &* 0xc4ce_b9fe_1a85_ec53
    h ^= h >> 33
    return h == 0 ? 1 : h
}

/// An open-addressing table from ids (bytes in an arena) to row indexes. Slots keep the hash,
/// so a probe compares bytes only when the hashes are equal.
struct ByteIndex {
    private var hashes: [UInt64]
    private var values: [Int32]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 1024) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        hashes = [UInt64](repeating: 0, count: n)
        values = [Int32](repeating: -1, count: n)
        mask = n - 1
    }

    /// The value for the id `key` (bytes `keyBytes`), where `idOf(value)` gives a stored id's bytes.
    @inline(__always)
    func find(_ hash: UInt64, _ key: UnsafeBufferPointer<UInt8>, _ stored: (Int32) -> UnsafeBufferPointer<UInt8>) -> Int32? {
        var i = Int(truncatingIfNeeded: hash) & mask
        while true {
            let h = hashes[i]
            if h == 0 { return nil }
            if h == hash {
                let v = values[i]
                if bytesEqual(stored(v), key) { return v }
            }
            i = (i + 1) & mask
        }
    }

    /// Adds `hash -> value` (the caller checked the id is not there).
    @inline(__always)
    mutating func insert(_ hash: UInt64, _ value: Int32) {
        if (count + 1) * 2 > hashes.count { grow() }
        var i = Int(truncatingIfNeeded: hash) & mask
        while hashes[i] != 0 { i = (i + 1) & mask }
        hashes[i] = hash
        values[i] = value
        count += 1
    }

    private mutating func grow() {
        let oldHashes = hashes, oldValues = values
        let n = hashes.count * 2
        hashes = [UInt64](repeating: 0, count: n)
        values = [Int32](repeating: -1, count: n)
        mask = n - 1
        for k in 0..<oldHashes.count where oldHashes[k] != 0 {
            var i = Int(truncatingIfNeeded: oldHashes[k]) & mask
            while hashes[i] != 0 { i = (i + 1) & mask }
            hashes[i] = oldHashes[k]
            values[i] = oldValues[k]
        }
    }
}

@inline(__always) func bytesEqual(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    if a.count == 0 { return true }
    return memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0
}

@inline(__always) func bytesCompare(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Int {
    let n = min(a.count, b.count)
    if n > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return c < 0 ? -1 : 1 }
    }
    return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
}
