import SLAMDomain

/// A fast path for `DomainEvent.decode` on the rebuild's hot loop: it reads the flat bodies
/// `DomainEvent.encodeBody` writes (string, integer and integer-array members, no escapes, no
/// whitespace) straight from the row's bytes into a chunk's arena (`RawEvent`), without
/// building a `JSON` tree or a `String`. Anything else (escapes, non-ASCII, whitespace, floats,
/// nested values, duplicate or missing members, `ConcertScheduled`) makes it return false, and
/// the caller falls back to `DomainEvent.decode`, which stays the definition: on the bodies it
/// accepts, this gives the same event (a test checks both on every event of a real store).
struct FastEventDecoder {
    /// The event types, by code (`typeCode(_:)`).
    static let typeNames = ["SeatsHeld", "ReservationConfirmed", "HoldExpired", "HoldReleased", "ReservationCancelled",
                            "PointsCharged", "PointsUsed", "PointsRefunded", "UserRegistered", "ConcertCreated",
                            "ScheduleSoldOut", "ScheduleReopened", "QueueJoined", "QueueTokenExpired", "QueueLeft",
                            "QueueTokenActivated", "ConcertScheduled"]
    private static let typeBytes = typeNames.map { Array($0.utf8) }

    /// The code of the type spelled by `bytes`, or -1.
    static func typeCode(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        outer: for (code, name) in typeBytes.enumerated() where name.count == bytes.count {
            for j in 0..<name.count where name[j] != bytes[j] { continue outer }
            return code
        }
        return -1
    }

    private enum K {
        static let userId = 0, name = 1, amount = 2, balance = 3, reservationId = 4, concertId = 5, artist = 6,
                   scheduleId = 7, tokenId = 8, activeUntil = 9, seatNumbers = 10, price = 11, expiresAt = 12, refunded = 13
        static let count = 14
    }

    /// One member's value: its kind and where it is (plain data, so filling slots costs no
    /// reference counting).
    private struct Slot {
        var kind: UInt8     // 0 absent, 1 string (bytes a..<b), 2 integer (value a), 3 integer array (bytes a..<b)
        var a: Int
        var b: Int
    }
    private var slots = [Slot](repeating: Slot(kind: 0, a: 0, b: 0), count: K.count)

    /// Appends the event of type `code` in `body` to `chunk` and returns true, or returns false
    /// (having appended nothing) when the fast path cannot tell.
    mutating func decode(code: Int, body: UnsafeBufferPointer<UInt8>, position: Int64, occurredAt: Int64,
                         into chunk: inout EventChunk) -> Bool {
        guard code >= 0, code < 16 else { return false }
        return slots.withUnsafeMutableBufferPointer { slots -> Bool in
            for k in 0..<K.count { slots[k].kind = 0 }
            guard Self.parse(body, into: slots) else { return false }
            return Self.build(code: code, body: body, slots: UnsafeBufferPointer(slots), position: position,
                              occurredAt: occurredAt, into: &chunk)
        }
    }

    private static func build(code: Int, body: UnsafeBufferPointer<UInt8>, slots: UnsafeBufferPointer<Slot>,
                              position: Int64, occurredAt: Int64, into chunk: inout EventChunk) -> Bool {
        @inline(__always) func has(_ k: Int, _ kind: UInt8) -> Bool { slots[k].kind == kind }
        @inline(__always) func str(_ k: Int) -> IdRef {
            chunk.add(UnsafeBufferPointer(rebasing: body[slots[k].a..<slots[k].b]))
        }
        @inline(__always) func int(_ k: Int) -> Int64 { Int64(slots[k].a) }
        func time(_ k: Int) -> Millis? {
            RFC3339.parse(String(decoding: UnsafeBufferPointer(rebasing: body[slots[k].a..<slots[k].b]), as: UTF8.self))
        }
        var e = RawEvent(kind: UInt8(code), position: position, occurredAt: occurredAt)
        switch code {
        case 0...4:   // SeatsHeld, ReservationConfirmed, HoldExpired, HoldReleased, ReservationCancelled
            guard has(K.reservationId, 1), has(K.userId, 1), has(K.scheduleId, 1), has(K.seatNumbers, 3), has(K.price, 2)
            else { return false }
            if code == 0 {
                guard has(K.expiresAt, 1), let t = time(K.expiresAt) else { return false }
                e.n1 = t
            }
            if code == 4 {
                guard has(K.refunded, 2) else { return false }
                e.n1 = int(K.refunded)
            }
            let seatsStart = chunk.seats.count
            var i = slots[K.seatNumbers].a + 1
            if body[i] != 0x5D {
                while i < slots[K.seatNumbers].b {
                    guard let v = integer(body, &i) else {
                        chunk.seats.removeSubrange(seatsStart...)
                        return false
                    }
                    chunk.seats.append(Int(v))
                    i += 1   // ',' or ']' (checked by parse)
                }
            }
            e.seatsStart = Int32(seatsStart)
            e.seatsCount = Int32(chunk.seats.count - seatsStart)
            e.s0 = str(K.reservationId); e.s1 = str(K.userId); e.s2 = str(K.scheduleId)
            e.n0 = int(K.price)
        case 5:   // PointsCharged
            guard has(K.userId, 1), has(K.amount, 2), has(K.balance, 2) else { return false }
            e.s0 = str(K.userId); e.n0 = int(K.amount); e.n1 = int(K.balance)
        case 6, 7:   // PointsUsed, PointsRefunded
            guard has(K.userId, 1), has(K.amount, 2), has(K.balance, 2), has(K.reservationId, 1) else { return false }
            e.s0 = str(K.userId); e.s1 = str(K.reservationId); e.n0 = int(K.amount); e.n1 = int(K.balance)
        case 8:   // UserRegistered
            guard has(K.userId, 1), has(K.name, 1) else { return false }
            e.s0 = str(K.userId); e.s1 = str(K.name)
        case 9:   // ConcertCreated
            guard has(K.concertId, 1), has(K.name, 1), has(K.artist, 1) else { return false }
            e.s0 = str(K.concertId); e.s1 = str(K.name); e.s2 = str(K.artist)
        case 10, 11:   // ScheduleSoldOut, ScheduleReopened
            guard has(K.scheduleId, 1) else { return false }
            e.s0 = str(K.scheduleId)
        case 12...15:   // QueueJoined, QueueTokenExpired, QueueLeft, QueueTokenActivated
            guard has(K.tokenId, 1), has(K.userId, 1), has(K.scheduleId, 1) else { return false }
            if code == 15 {
                guard has(K.activeUntil, 1), let t = time(K.activeUntil) else { return false }
                e.n0 = t
            }
            e.s0 = str(K.tokenId); e.s1 = str(K.userId); e.s2 = str(K.scheduleId)
        default:
            return false
        }
        chunk.events.append(e)
        return true
    }

    /// Parses `{"key":value,...}` with values a plain string, a plain integer or an array of
    /// plain integers; unknown keys are skipped if their value is one of those. False on
    /// anything else.
    private static func parse(_ b: UnsafeBufferPointer<UInt8>, into slots: UnsafeMutableBufferPointer<Slot>) -> Bool {
        let n = b.count
        guard n >= 2, b[0] == 0x7B else { return false }   // {
        var i = 1
        if b[i] == 0x7D { return i + 1 == n }
        while true {
            // Key.
            guard i < n, b[i] == 0x22 else { return false }
            i += 1
            let ks = i
            while i < n, b[i] != 0x22 {
                if b[i] == 0x5C || b[i] < 0x20 || b[i] >= 0x80 { return false }
                i += 1
            }
            guard i < n else { return false }
            let slot = keySlot(b, ks, i)
            i += 1
            guard i < n, b[i] == 0x3A else { return false }   // :
            i += 1
            guard i < n else { return false }
            // Value.
            let value: Slot
            let c = b[i]
            if c == 0x22 {
                i += 1
                let vs = i
                while i < n, b[i] != 0x22 {
                    if b[i] == 0x5C || b[i] < 0x20 || b[i] >= 0x80 { return false }
                    i += 1
                }
                guard i < n else { return false }
                value = Slot(kind: 1, a: vs, b: i)
                i += 1
            } else if c == 0x5B {   // [
                let vs = i
                i += 1
                if i < n, b[i] == 0x5D {
                    i += 1
                } else {
                    while true {
                        guard integer(b, &i) != nil, i < n else { return false }
                        if b[i] == 0x2C { i += 1; continue }
                        if b[i] == 0x5D { i += 1; break }
                        return false
                    }
                }
                value = Slot(kind: 3, a: vs, b: i)
            } else {
                guard let v = integer(b, &i) else { return false }
                value = Slot(kind: 2, a: Int(v), b: 0)
            }
            if slot >= 0 {
                if slots[slot].kind != 0 { return false }   // a duplicate member: leave it to the full parser
                slots[slot] = value
            }
            guard i < n else { return false }
            if b[i] == 0x2C { i += 1; continue }          // ,
            if b[i] == 0x7D { return i + 1 == n }         // }
            return false
        }
    }

    /// The slot of the member name in `b[s..<e]`, or -1 for a name the fast path does not use.
    @inline(__always)
    private static func keySlot(_ b: UnsafeBufferPointer<UInt8>, _ s: Int, _ e: Int) -> Int {
        func eq(_ name: StaticString) -> Bool {
            guard name.utf8CodeUnitCount == e - s else { return false }
            let p = name.utf8Start
            for j in 0..<(e - s) where p[j] != b[s + j] { return false }
            return true
        }
        switch (e - s, b[s]) {
        case (4, 0x6E): return eq("name") ? K.name : -1
        case (5, 0x70): return eq("price") ? K.price : -1
        case (6, 0x75): return eq("userId") ? K.userId : -1
        case (6, 0x61): return eq("amount") ? K.amount : eq("artist") ? K.artist : -1
        case (7, 0x62): return eq("balance") ? K.balance : -1
        case (7, 0x74): return eq("tokenId") ? K.tokenId : -1
        case (8, 0x72): return eq("refunded") ? K.refunded : -1
        case (9, 0x63): return eq("concertId") ? K.concertId : -1
        case (9, 0x65): return eq("expiresAt") ? K.expiresAt : -1
        case (10, 0x73): return eq("scheduleId") ? K.scheduleId : -1
        case (11, 0x61): return eq("activeUntil") ? K.activeUntil : -1
        case (11, 0x73): return eq("seatNumbers") ? K.seatNumbers : -1
        case (13, 0x72): return eq("reservationId") ? K.reservationId : -1
        default: return -1
        }
    }

    /// `-?(0|[1-9][0-9]*)` fitting in Int64, not followed by `.`, `e` or `E`.
    @inline(__always)
    private static func integer(_ b: UnsafeBufferPointer<UInt8>, _ i: inout Int) -> Int64? {
        let n = b.count
        var negative = false
        if i < n, b[i] == 0x2D { negative = true; i += 1 }
        guard i < n, b[i] >= 0x30, b[i] <= 0x39 else { return nil }
        if b[i] == 0x30, i + 1 < n, b[i + 1] >= 0x30, b[i + 1] <= 0x39 { return nil }
        var v: Int64 = 0
        var digits = 0
        while i < n, b[i] >= 0x30, b[i] <= 0x39 {
            v = v &* 10 &+ Int64(b[i] - 0x30)
            digits += 1
            i += 1
        }
        guard digits <= 18 else { return nil }           // no overflow by construction
        if i < n, b[i] == 0x2E || b[i] == 0x65 || b[i] == 0x45 { return nil }
        return negative ? -v : v
    }
}
