import SLAMDomain
import SLAMJSON
import Testing

/// The storage and wire format of every event (PROTOCOL.md section 7). These strings are history:
/// a change here corrupts every store already written, so a failing row means the code changed,
/// never the row.
struct PinnedEvent: Sendable, CustomTestStringConvertible {
    var event: DomainEvent
    var type: String
    var category: String
    var streamId: String
    var body: String
    var testDescription: String { type + (body.contains("\"queue\"") ? " (with queue)" : "") }
}

enum Pinned {
    static let reservation = ReservationRef(reservationId: "res_1", userId: "usr_1", scheduleId: "sch_1",
                                            seatNumbers: [1, 3], price: 1500)
    static let refFields = #""reservationId":"res_1","userId":"usr_1","scheduleId":"sch_1","seatNumbers":[1,3],"price":1500"#
    static let token = TokenRef(tokenId: "tok_1", userId: "usr_1", scheduleId: "sch_1")
    static let tokenFields = #""tokenId":"tok_1","userId":"usr_1","scheduleId":"sch_1""#

    static func definition(queue: QueuePolicy?) -> ScheduleDefinition {
        ScheduleDefinition(scheduleId: "sch_1", concertId: "con_1", startsAt: T.starts, reservationOpensAt: T.opens,
                           reservationClosesAt: T.closes,
                           sections: [Section(name: "VIP", seatCount: 2, price: 1000), Section(name: "R", seatCount: 8, price: 500)],
                           maxSeatsPerUser: 4, queue: queue)
    }

    static let scheduleFields = #""scheduleId":"sch_1","concertId":"con_1","startsAt":"2026-12-24T19:00:00.000Z","#
        + #""reservationOpensAt":"2026-12-01T10:00:00.000Z","reservationClosesAt":"2026-12-24T18:00:00.000Z","#
        + #""seatCount":10,"sections":[{"name":"VIP","seatCount":2,"price":1000},{"name":"R","seatCount":8,"price":500}],"#
        + #""maxSeatsPerUser":4"#

    static let all: [PinnedEvent] = [
        PinnedEvent(event: .userRegistered(userId: "usr_1", name: "Zoë \"Z\" \\ 😀"),
                    type: "UserRegistered", category: "user", streamId: "user-usr_1",
                    body: #"{"userId":"usr_1","name":"Zoë \"Z\" \\ 😀"}"#),
        PinnedEvent(event: .pointsCharged(userId: "usr_1", amount: 5000, balance: 5000),
                    type: "PointsCharged", category: "wallet", streamId: "wallet-usr_1",
                    body: #"{"userId":"usr_1","amount":5000,"balance":5000}"#),
        PinnedEvent(event: .pointsUsed(userId: "usr_1", amount: 1500, balance: 3500, reservationId: "res_1"),
                    type: "PointsUsed", category: "wallet", streamId: "wallet-usr_1",
                    body: #"{"userId":"usr_1","amount":1500,"balance":3500,"reservationId":"res_1"}"#),
        PinnedEvent(event: .pointsRefunded(userId: "usr_1", amount: 1500, balance: 1_001_500, reservationId: "res_1"),
                    type: "PointsRefunded", category: "wallet", streamId: "wallet-usr_1",
                    body: #"{"userId":"usr_1","amount":1500,"balance":1001500,"reservationId":"res_1"}"#),
        PinnedEvent(event: .concertCreated(concertId: "con_1", name: "Winter Gala", artist: "SLAM Orchestra"),
                    type: "ConcertCreated", category: "concert", streamId: "concert-con_1",
                    body: #"{"concertId":"con_1","name":"Winter Gala","artist":"SLAM Orchestra"}"#),
        PinnedEvent(event: .concertScheduled(definition(queue: QueuePolicy(maxActive: 60, activeTtlSeconds: 180,
                                                                           waitingTtlSeconds: 21_600))),
                    type: "ConcertScheduled", category: "concert", streamId: "schedule-sch_1",
                    body: "{" + scheduleFields + #","queue":{"maxActive":60,"activeTtlSeconds":180,"waitingTtlSeconds":21600}}"#),
        PinnedEvent(event: .concertScheduled(definition(queue: nil)),
                    type: "ConcertScheduled", category: "concert", streamId: "schedule-sch_1",
                    body: "{" + scheduleFields + "}"),
        PinnedEvent(event: .scheduleSoldOut(scheduleId: "sch_1"),
                    type: "ScheduleSoldOut", category: "concert", streamId: "schedule-sch_1",
                    body: #"{"scheduleId":"sch_1"}"#),
        PinnedEvent(event: .scheduleReopened(scheduleId: "sch_1"),
                    type: "ScheduleReopened", category: "concert", streamId: "schedule-sch_1",
                    body: #"{"scheduleId":"sch_1"}"#),
        PinnedEvent(event: .queueJoined(token),
                    type: "QueueJoined", category: "queue", streamId: "queue-sch_1",
                    body: "{" + tokenFields + "}"),
        PinnedEvent(event: .queueTokenActivated(token, activeUntil: T.now + 180_000),
                    type: "QueueTokenActivated", category: "queue", streamId: "queue-sch_1",
                    body: "{" + tokenFields + #","activeUntil":"2026-12-10T12:03:00.000Z"}"#),
        PinnedEvent(event: .queueTokenExpired(token),
                    type: "QueueTokenExpired", category: "queue", streamId: "queue-sch_1",
                    body: "{" + tokenFields + "}"),
        PinnedEvent(event: .queueLeft(token),
                    type: "QueueLeft", category: "queue", streamId: "queue-sch_1",
                    body: "{" + tokenFields + "}"),
        PinnedEvent(event: .seatsHeld(reservation, expiresAt: T.now + 300_123),
                    type: "SeatsHeld", category: "reservation", streamId: "reservation-res_1",
                    body: "{" + refFields + #","expiresAt":"2026-12-10T12:05:00.123Z"}"#),
        PinnedEvent(event: .reservationConfirmed(reservation),
                    type: "ReservationConfirmed", category: "reservation", streamId: "reservation-res_1",
                    body: "{" + refFields + "}"),
        PinnedEvent(event: .holdExpired(reservation),
                    type: "HoldExpired", category: "reservation", streamId: "reservation-res_1",
                    body: "{" + refFields + "}"),
        PinnedEvent(event: .holdReleased(reservation),
                    type: "HoldReleased", category: "reservation", streamId: "reservation-res_1",
                    body: "{" + refFields + "}"),
        PinnedEvent(event: .reservationCancelled(reservation, refunded: 1500),
                    type: "ReservationCancelled", category: "reservation", streamId: "reservation-res_1",
                    body: "{" + refFields + #","refunded":1500}"#),
    ]

    /// No `default:`: a new event case does not compile until it has a row above.
    static func row(for event: DomainEvent) -> String {
        switch event {
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
}

@Suite("Event storage contract")
struct EventContractTests {
    @Test("every event case has a pinned row")
    func everyCasePinned() {
        let pinned = Set(Pinned.all.map(\.type))
        #expect(pinned.count == 17)
        for p in Pinned.all { #expect(Pinned.row(for: p.event) == p.type) }
        #expect(Set(DomainEvent.categoryOfType.keys) == pinned)
    }

    @Test("type, category, topic and stream id are fixed", arguments: Pinned.all)
    func names(_ p: PinnedEvent) {
        #expect(p.event.type == p.type)
        #expect(p.event.category == p.category)
        #expect(DomainEvent.categoryOfType[p.type] == p.category)
        #expect(p.event.topic == p.category + "." + p.type)
        #expect(p.event.streamId == p.streamId)
    }

    @Test("the encoded body is fixed, byte for byte", arguments: Pinned.all)
    func body(_ p: PinnedEvent) {
        #expect(String(decoding: p.event.encodeBody(), as: UTF8.self) == p.body)
    }

    @Test("the pinned body decodes to the event", arguments: Pinned.all)
    func decodes(_ p: PinnedEvent) throws {
        #expect(try DomainEvent.decode(type: p.type, body: Array(p.body.utf8)) == p.event)
    }

    @Test("decoding tolerates unknown fields, any member order and any timestamp offset")
    func tolerantReader() throws {
        #expect(try DomainEvent.decode(type: "ScheduleSoldOut", body: Array(#"{"later":[1],"scheduleId":"sch_1"}"#.utf8))
            == .scheduleSoldOut(scheduleId: "sch_1"))
        #expect(try DomainEvent.decode(
            type: "QueueTokenActivated",
            body: Array(#"{"activeUntil":"2026-12-10T21:03:00+09:00","scheduleId":"sch_1","userId":"usr_1","tokenId":"tok_1"}"#.utf8))
            == .queueTokenActivated(Pinned.token, activeUntil: T.now + 180_000))
    }

    struct Undecodable: Sendable, CustomTestStringConvertible {
        var type: String
        var body: String
        var testDescription: String { "\(type) \(body)" }
    }

    @Test("a body that does not fit its type is an EventDecodingError", arguments: [
        Undecodable(type: "SeatsReserved", body: #"{"scheduleId":"sch_1"}"#),
        Undecodable(type: "ScheduleSoldOut", body: #"{"scheduleId":"#),
        Undecodable(type: "ScheduleSoldOut", body: #"{}"#),
        Undecodable(type: "ScheduleSoldOut", body: #"{"scheduleId":1}"#),
        Undecodable(type: "ScheduleSoldOut", body: #"[]"#),
        Undecodable(type: "PointsCharged", body: #"{"userId":"usr_1","amount":"5","balance":5}"#),
        Undecodable(type: "PointsCharged", body: #"{"userId":"usr_1","amount":1.5,"balance":5}"#),
        Undecodable(type: "QueueTokenActivated", body: #"{"tokenId":"t","userId":"u","scheduleId":"s","activeUntil":"soon"}"#),
        Undecodable(type: "SeatsHeld", body: "{" + Pinned.refFields + "}"),
        Undecodable(type: "HoldExpired",
                    body: #"{"reservationId":"r","userId":"u","scheduleId":"s","seatNumbers":[1,"2"],"price":1}"#),
        Undecodable(type: "ConcertScheduled", body: #"{"scheduleId":"sch_1"}"#),
        Undecodable(type: "ConcertScheduled",
                    body: "{" + Pinned.scheduleFields + #","queue":{"maxActive":60}}"#),
    ])
    func undecodable(_ c: Undecodable) {
        #expect(throws: EventDecodingError.self) { try DomainEvent.decode(type: c.type, body: Array(c.body.utf8)) }
    }
}
