import SLAMJSON

/// Every domain event. The type strings, stream ids and encoded bodies are the storage format and
/// the wire format of PROTOCOL.md section 7: never rename them (a test pins each encoding).
public enum DomainEvent: Equatable, Sendable {
    case userRegistered(userId: String, name: String)
    case pointsCharged(userId: String, amount: Int64, balance: Int64)
    case pointsUsed(userId: String, amount: Int64, balance: Int64, reservationId: String)
    case pointsRefunded(userId: String, amount: Int64, balance: Int64, reservationId: String)
    case concertCreated(concertId: String, name: String, artist: String)
    case concertScheduled(ScheduleDefinition)
    case scheduleSoldOut(scheduleId: String)
    case scheduleReopened(scheduleId: String)
    case queueJoined(TokenRef)
    case queueTokenActivated(TokenRef, activeUntil: Millis)
    case queueTokenExpired(TokenRef)
    case queueLeft(TokenRef)
    case seatsHeld(ReservationRef, expiresAt: Millis)
    case reservationConfirmed(ReservationRef)
    case holdExpired(ReservationRef)
    case holdReleased(ReservationRef)
    case reservationCancelled(ReservationRef, refunded: Int64)

    public var type: String {
        switch self {
        case .userRegistered: return "UserRegistered"
        case .pointsCharged: return "PointsCharged"
        case .pointsUsed: return "PointsUsed"
        case .pointsRefunded: return "PointsRefunded"
        case .concertCreated: return "ConcertCreated"
        case .concertScheduled: return "ConcertScheduled"
        case .scheduleSoldOut: return "ScheduleSoldOut"
        case .scheduleReopened: return "ScheduleReopened"
        case .queueJoined: return "QueueJoined"
        case .queueTokenActivated: return "QueueTokenActivated"
        case .queueTokenExpired: return "QueueTokenExpired"
        case .queueLeft: return "QueueLeft"
        case .seatsHeld: return "SeatsHeld"
        case .reservationConfirmed: return "ReservationConfirmed"
        case .holdExpired: return "HoldExpired"
        case .holdReleased: return "HoldReleased"
        case .reservationCancelled: return "ReservationCancelled"
        }
    }

    /// The category: the first part of the topic (`categoryOfType`).
    public var category: String {
        guard let category = Self.categoryOfType[type] else { preconditionFailure("no category for event type \(type)") }
        return category
    }

    public var topic: String { category + "." + type }

    /// Each event type's category: `category` of an event, and the check of stored rows
    /// (`slam verify`).
    public static let categoryOfType: [String: String] = [
        "UserRegistered": "user",
        "PointsCharged": "wallet", "PointsUsed": "wallet", "PointsRefunded": "wallet",
        "ConcertCreated": "concert", "ConcertScheduled": "concert", "ScheduleSoldOut": "concert", "ScheduleReopened": "concert",
        "QueueJoined": "queue", "QueueTokenActivated": "queue", "QueueTokenExpired": "queue", "QueueLeft": "queue",
        "SeatsHeld": "reservation", "ReservationConfirmed": "reservation", "HoldExpired": "reservation",
        "HoldReleased": "reservation", "ReservationCancelled": "reservation",
    ]

    /// The five categories of PROTOCOL.md section 7.
    public static let categories: Set<String> = Set(categoryOfType.values)

    /// The stream (consistency boundary) the event belongs to: a user, a wallet, a concert, a
    /// schedule (its definition and sold-out state), a schedule's queue, or a reservation.
    public var streamId: String {
        switch self {
        case .userRegistered(let u, _): return "user-" + u
        case .pointsCharged(let u, _, _), .pointsUsed(let u, _, _, _), .pointsRefunded(let u, _, _, _): return "wallet-" + u
        case .concertCreated(let c, _, _): return "concert-" + c
        case .concertScheduled(let d): return "schedule-" + d.scheduleId
        case .scheduleSoldOut(let s), .scheduleReopened(let s): return "schedule-" + s
        case .queueJoined(let t), .queueTokenActivated(let t, _), .queueTokenExpired(let t), .queueLeft(let t):
            return "queue-" + t.scheduleId
        case .seatsHeld(let r, _), .reservationConfirmed(let r), .holdExpired(let r), .holdReleased(let r),
             .reservationCancelled(let r, _):
            return "reservation-" + r.reservationId
        }
    }
}

// MARK: - Encoding

extension DomainEvent {
    /// The event body as JSON bytes, fields in a fixed order.
    public func encodeBody() -> [UInt8] {
        var w = JSONWriter(capacity: 160)
        w.beginObject()
        switch self {
        case .userRegistered(let u, let name):
            w.field("userId", u); w.field("name", name)
        case .pointsCharged(let u, let amount, let balance):
            w.field("userId", u); w.field("amount", amount); w.field("balance", balance)
        case .pointsUsed(let u, let amount, let balance, let r), .pointsRefunded(let u, let amount, let balance, let r):
            w.field("userId", u); w.field("amount", amount); w.field("balance", balance); w.field("reservationId", r)
        case .concertCreated(let c, let name, let artist):
            w.field("concertId", c); w.field("name", name); w.field("artist", artist)
        case .concertScheduled(let d):
            w.field("scheduleId", d.scheduleId)
            w.field("concertId", d.concertId)
            w.field("startsAt", RFC3339.format(d.startsAt))
            w.field("reservationOpensAt", RFC3339.format(d.reservationOpensAt))
            w.field("reservationClosesAt", RFC3339.format(d.reservationClosesAt))
            w.field("seatCount", d.seatCount)
            w.key("sections")
            w.beginArray()
            for s in d.sections {
                w.beginObject(); w.field("name", s.name); w.field("seatCount", s.seatCount); w.field("price", s.price); w.endObject()
            }
            w.endArray()
            w.field("maxSeatsPerUser", d.maxSeatsPerUser)
            if let q = d.queue {
                w.key("queue")
                w.beginObject()
                w.field("maxActive", q.maxActive); w.field("activeTtlSeconds", q.activeTtlSeconds)
                w.field("waitingTtlSeconds", q.waitingTtlSeconds)
                w.endObject()
            }
        case .scheduleSoldOut(let s), .scheduleReopened(let s):
            w.field("scheduleId", s)
        case .queueJoined(let t), .queueTokenExpired(let t), .queueLeft(let t):
            Self.write(t, &w)
        case .queueTokenActivated(let t, let until):
            Self.write(t, &w); w.field("activeUntil", RFC3339.format(until))
        case .seatsHeld(let r, let expiresAt):
            Self.write(r, &w); w.field("expiresAt", RFC3339.format(expiresAt))
        case .reservationConfirmed(let r), .holdExpired(let r), .holdReleased(let r):
            Self.write(r, &w)
        case .reservationCancelled(let r, let refunded):
            Self.write(r, &w); w.field("refunded", refunded)
        }
        w.endObject()
        return w.bytes
    }

    private static func write(_ t: TokenRef, _ w: inout JSONWriter) {
        w.field("tokenId", t.tokenId); w.field("userId", t.userId); w.field("scheduleId", t.scheduleId)
    }

    private static func write(_ r: ReservationRef, _ w: inout JSONWriter) {
        w.field("reservationId", r.reservationId); w.field("userId", r.userId); w.field("scheduleId", r.scheduleId)
        w.field("seatNumbers", r.seatNumbers); w.field("price", r.price)
    }
}

// MARK: - Decoding

/// A stored event whose body does not decode: the store is corrupt or from a newer version.
public struct EventDecodingError: Error, CustomStringConvertible {
    public let type: String
    public let reason: String
    public var description: String { "cannot decode event \(type): \(reason)" }
}

extension DomainEvent {
    public static func decode(type: String, body: [UInt8]) throws -> DomainEvent {
        let json: JSON
        do { json = try JSONParser.parse(body) } catch { throw EventDecodingError(type: type, reason: "\(error)") }
        let f = Fields(type: type, json: json)
        switch type {
        case "UserRegistered": return .userRegistered(userId: try f.str("userId"), name: try f.str("name"))
        case "PointsCharged":
            return .pointsCharged(userId: try f.str("userId"), amount: try f.int("amount"), balance: try f.int("balance"))
        case "PointsUsed":
            return .pointsUsed(userId: try f.str("userId"), amount: try f.int("amount"), balance: try f.int("balance"),
                               reservationId: try f.str("reservationId"))
        case "PointsRefunded":
            return .pointsRefunded(userId: try f.str("userId"), amount: try f.int("amount"), balance: try f.int("balance"),
                                   reservationId: try f.str("reservationId"))
        case "ConcertCreated":
            return .concertCreated(concertId: try f.str("concertId"), name: try f.str("name"), artist: try f.str("artist"))
        case "ConcertScheduled":
            guard let sections = json["sections"]?.arrayValue else { throw f.missing("sections") }
            let parsed = try sections.map { s -> Section in
                let sf = Fields(type: type, json: s)
                return Section(name: try sf.str("name"), seatCount: Int(try sf.int("seatCount")), price: try sf.int("price"))
            }
            var queue: QueuePolicy?
            if let q = json["queue"] {
                let qf = Fields(type: type, json: q)
                queue = QueuePolicy(maxActive: try qf.int("maxActive"), activeTtlSeconds: try qf.int("activeTtlSeconds"),
                                    waitingTtlSeconds: try qf.int("waitingTtlSeconds"))
            }
            return .concertScheduled(ScheduleDefinition(
                scheduleId: try f.str("scheduleId"), concertId: try f.str("concertId"),
                startsAt: try f.time("startsAt"), reservationOpensAt: try f.time("reservationOpensAt"),
                reservationClosesAt: try f.time("reservationClosesAt"), sections: parsed,
                maxSeatsPerUser: Int(try f.int("maxSeatsPerUser")), queue: queue))
        case "ScheduleSoldOut": return .scheduleSoldOut(scheduleId: try f.str("scheduleId"))
        case "ScheduleReopened": return .scheduleReopened(scheduleId: try f.str("scheduleId"))
        case "QueueJoined": return .queueJoined(try f.token())
        case "QueueTokenActivated": return .queueTokenActivated(try f.token(), activeUntil: try f.time("activeUntil"))
        case "QueueTokenExpired": return .queueTokenExpired(try f.token())
        case "QueueLeft": return .queueLeft(try f.token())
        case "SeatsHeld": return .seatsHeld(try f.reservation(), expiresAt: try f.time("expiresAt"))
        case "ReservationConfirmed": return .reservationConfirmed(try f.reservation())
        case "HoldExpired": return .holdExpired(try f.reservation())
        case "HoldReleased": return .holdReleased(try f.reservation())
        case "ReservationCancelled": return .reservationCancelled(try f.reservation(), refunded: try f.int("refunded"))
        default: throw EventDecodingError(type: type, reason: "unknown event type")
        }
    }

    private struct Fields {
        let type: String
        let json: JSON
        func missing(_ k: String) -> EventDecodingError { EventDecodingError(type: type, reason: "missing or mistyped \(k)") }
        func str(_ k: String) throws -> String {
            guard let v = json[k]?.stringValue else { throw missing(k) }
            return v
        }
        func int(_ k: String) throws -> Int64 {
            guard let v = json[k]?.int64Value else { throw missing(k) }
            return v
        }
        func time(_ k: String) throws -> Millis {
            guard let v = RFC3339.parse(try str(k)) else { throw missing(k) }
            return v
        }
        func token() throws -> TokenRef {
            TokenRef(tokenId: try str("tokenId"), userId: try str("userId"), scheduleId: try str("scheduleId"))
        }
        func reservation() throws -> ReservationRef {
            guard let seats = json["seatNumbers"]?.arrayValue else { throw missing("seatNumbers") }
            return ReservationRef(reservationId: try str("reservationId"), userId: try str("userId"),
                                  scheduleId: try str("scheduleId"),
                                  seatNumbers: try seats.map { guard let n = $0.int64Value else { throw missing("seatNumbers") }; return Int(n) },
                                  price: try int("price"))
        }
    }
}
