import SLAMDomain
import SLAMJSON

/// Typed access to a body's fields; every failure is BAD_REQUEST naming the field's path
/// (`sections.1.price`), as PROTOCOL.md section 2 says.
struct BodyFields {
    let object: JSONObject
    let prefix: String

    init(_ object: JSONObject, prefix: String = "") {
        self.object = object
        self.prefix = prefix
    }

    func path(_ key: String) -> String { prefix.isEmpty ? key : prefix + "." + key }

    private func required(_ key: String) throws(Rejection) -> JSON {
        guard let v = object[key] else { throw .badField(path(key), "\(path(key)) is required") }
        return v
    }

    func string(_ key: String) throws(Rejection) -> String {
        guard let s = try required(key).stringValue else { throw .badField(path(key), "\(path(key)) must be a string") }
        return s
    }

    func optionalString(_ key: String) throws(Rejection) -> String? {
        guard object[key] != nil else { return nil }
        return try string(key)
    }

    /// An id: a non-empty string. The server issues ASCII ids only, so one with any other
    /// character names nothing; it comes back with those characters written `\u{…}`, so that it
    /// cannot match an issued id where Swift compares strings by canonical equivalence (the
    /// decision state's dictionaries: `usr_…\u{212A}`, with KELVIN SIGN, equals `usr_…K`). It is
    /// then the named kind's NOT_FOUND, like any id never issued, and its message shows it.
    func id(_ key: String) throws(Rejection) -> String {
        let s = try string(key)
        guard !s.isEmpty else { throw .badField(path(key), "\(path(key)) must not be empty") }
        guard s.utf8.contains(where: { $0 >= 0x80 }) else { return s }
        return s.unicodeScalars.map { $0.isASCII ? String($0) : "\\u{\(String($0.value, radix: 16, uppercase: true))}" }.joined()
    }

    func optionalId(_ key: String) throws(Rejection) -> String? {
        guard object[key] != nil else { return nil }
        return try id(key)
    }

    /// A name: 1 to 100 characters after trimming, none of them U+0000 (SQLite stores it, but
    /// GRDB reads text up to the first NUL, so the read models would answer a name cut short);
    /// returned trimmed.
    func name(_ key: String) throws(Rejection) -> String {
        let trimmed = try string(key).trimmingWhitespace()
        guard (1...100).contains(trimmed.unicodeScalars.count) else {
            throw .badField(path(key), "\(path(key)) must be 1 to 100 characters after trimming")
        }
        guard !trimmed.unicodeScalars.contains("\0") else {
            throw .badField(path(key), "\(path(key)) must not contain U+0000")
        }
        return trimmed
    }

    func int(_ key: String) throws(Rejection) -> Int64 { try Self.int(try required(key), path: path(key)) }

    func optionalInt(_ key: String) throws(Rejection) -> Int64? {
        guard let v = object[key] else { return nil }
        return try Self.int(v, path: path(key))
    }

    static func int(_ v: JSON, path: String) throws(Rejection) -> Int64 {
        switch v {
        case .int(let i): return i
        case .double(let d):
            // The parser makes every number whose value is an integer that fits in Int64 an
            // `.int`, however it is spelled (`1.0`, `1e2`): what is left is a fraction
            // (`1.5`, `1.0000000000000001`, `1e-400`) or beyond 64 bits.
            if d.rounded(.towardZero) == d, abs(d) >= 9.223372036854775808e18 {
                throw .badField(path, "\(path) must be an integer that fits in 64 bits")
            }
            throw .badField(path, "\(path) must be an integer")
        default: throw .badField(path, "\(path) must be an integer")
        }
    }

    func timestamp(_ key: String) throws(Rejection) -> Millis {
        guard let t = RFC3339.parse(try string(key)) else {
            throw .badField(path(key), "\(path(key)) must be an RFC 3339 timestamp, e.g. 2026-12-24T19:00:00.000Z")
        }
        return t
    }

    func optionalTimestamp(_ key: String) throws(Rejection) -> Millis? {
        guard object[key] != nil else { return nil }
        return try timestamp(key)
    }

    func array(_ key: String) throws(Rejection) -> [JSON] {
        guard let a = try required(key).arrayValue else { throw .badField(path(key), "\(path(key)) must be an array") }
        return a
    }

    func optionalObject(_ key: String) throws(Rejection) -> BodyFields? {
        guard let v = object[key] else { return nil }
        guard let o = v.objectValue else { throw .badField(path(key), "\(path(key)) must be an object") }
        return BodyFields(o, prefix: path(key))
    }

    /// A positive `limit` lowered to `max`, `default` when absent; below 1 is BAD_REQUEST.
    func limit(_ key: String = "limit", default d: Int, max m: Int) throws(Rejection) -> Int {
        guard let v = try optionalInt(key) else { return d }
        guard v >= 1 else { throw .badField(path(key), "\(path(key)) must be at least 1") }
        return Int(min(v, Int64(m)))
    }

    /// Seat numbers: a non-empty array of distinct integers, each at least 1.
    func seatNumbers(_ key: String) throws(Rejection) -> [Int] {
        let items = try array(key)
        guard !items.isEmpty else { throw .badField(path(key), "\(path(key)) must list at least one seat") }
        var seen = Set<Int64>()
        var out: [Int] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            let p = path(key) + ".\(i)"
            let n = try Self.int(item, path: p)
            guard n >= 1 else { throw .badField(p, "seat numbers start at 1") }
            guard seen.insert(n).inserted else { throw .badField(p, "seat \(n) is listed twice") }
            // Seat numbers above any schedule's size are SEAT_NOT_FOUND, decided later, and its
            // details list them as sent: keep them exact (Int is 64 bits wherever the server runs).
            out.append(Int(exactly: n) ?? Int.max)
        }
        return out
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })!
        return String(scalars[first...last])
    }
}

/// Decodes a command's body into a `Command` (BAD_REQUEST on shape errors).
enum CommandDecoder {
    static func decode(type: String, body: JSONObject) throws(Rejection) -> Command {
        let f = BodyFields(body)
        switch type {
        case "RegisterUser":
            return .registerUser(name: try f.name("name"))
        case "ChargePoints":
            return .chargePoints(userId: try f.id("userId"), amount: try f.int("amount"))
        case "CreateConcert":
            return .createConcert(name: try f.name("name"), artist: try f.name("artist"))
        case "ScheduleConcert":
            let concertId = try f.id("concertId")
            let startsAt = try f.timestamp("startsAt")
            let opens = try f.timestamp("reservationOpensAt")
            let closes = try f.timestamp("reservationClosesAt")
            var sections: [Section] = []
            for (i, s) in try f.array("sections").enumerated() {
                guard let o = s.objectValue else { throw .badField("sections.\(i)", "sections.\(i) must be an object") }
                let sf = BodyFields(o, prefix: "sections.\(i)")
                let name = try sf.name("name")
                let seatCount = try sf.int("seatCount")
                let price = try sf.int("price")
                // Out-of-range counts are INVALID_SCHEDULE (a rule), not a shape error; clamp for Int.
                sections.append(Section(name: name, seatCount: Int(max(min(seatCount, 1_000_000_000), -1)), price: price))
            }
            let maxSeats = try f.optionalInt("maxSeatsPerUser")
            var queue: QueueRequest?
            if let q = try f.optionalObject("queue") {
                queue = QueueRequest(maxActive: try q.optionalInt("maxActive"),
                                     activeTtlSeconds: try q.optionalInt("activeTtlSeconds"),
                                     waitingTtlSeconds: try q.optionalInt("waitingTtlSeconds"))
            }
            return .scheduleConcert(ScheduleRequest(concertId: concertId, startsAt: startsAt, reservationOpensAt: opens,
                                                    reservationClosesAt: closes, sections: sections,
                                                    maxSeatsPerUser: maxSeats, queue: queue))
        case "JoinQueue":
            return .joinQueue(userId: try f.id("userId"), scheduleId: try f.id("scheduleId"))
        case "LeaveQueue":
            return .leaveQueue(userId: try f.id("userId"), tokenId: try f.id("tokenId"))
        case "HoldSeats":
            let userId = try f.id("userId")
            let scheduleId = try f.id("scheduleId")
            let seats = try f.seatNumbers("seatNumbers")
            return .holdSeats(userId: userId, scheduleId: scheduleId, seatNumbers: seats, queueToken: try f.optionalId("queueToken"))
        case "PayReservation":
            return .payReservation(userId: try f.id("userId"), reservationId: try f.id("reservationId"))
        case "CancelReservation":
            return .cancelReservation(userId: try f.id("userId"), reservationId: try f.id("reservationId"))
        default:
            throw Rejection(.unknownType, "no command is named \(type)")
        }
    }
}
