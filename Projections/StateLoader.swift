import GRDB
import SLAMDomain
import SLAMJSON
import SLAMStore

/// Loads the writer's decision state from the read models, which commit with the events: the
/// server never replays the log at start-up (DESIGN.md section 3, "State at start-up"), it
/// loads each aggregate the first time a command touches it. Stream versions come from the
/// event store, so appends check them.
public enum StateLoader {
    public static func loadUser(_ db: Database, _ userId: String, into state: inout DomainState, writer: StoreWriter) throws {
        guard state.users[userId] == nil,
              let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT name, balance, history_count FROM users WHERE user_id = ?"),
                                         arguments: [userId]) else { return }
        state.users[userId] = UserState(userId: userId, name: row[0], balance: row[1], historyCount: row[2],
                                        walletVersion: try writer.version(db, of: "wallet-" + userId))
    }

    public static func loadConcert(_ db: Database, _ concertId: String, into state: inout DomainState) throws {
        guard state.concerts[concertId] == nil,
              let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT name, artist FROM concerts WHERE concert_id = ?"),
                                         arguments: [concertId]) else { return }
        state.concerts[concertId] = ConcertState(concertId: concertId, name: row[0], artist: row[1])
    }

    /// A schedule with its seat owners, its live reservations, and its queue with live tokens.
    public static func loadSchedule(_ db: Database, _ scheduleId: String, into state: inout DomainState,
                                    writer: StoreWriter) throws {
        guard state.schedules[scheduleId] == nil,
              let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT concert_id, starts_at, opens_at, closes_at, max_seats_per_user, sections, sold_out,
                       queue_max_active, queue_active_ttl, queue_waiting_ttl
                FROM schedules WHERE schedule_id = ?
                """), arguments: [scheduleId]) else { return }
        var sections: [Section] = []
        for s in (try JSONParser.parse(row[5] as String)).arrayValue ?? [] {
            sections.append(Section(name: s["name"]?.stringValue ?? "", seatCount: Int(s["seatCount"]?.int64Value ?? 0),
                                    price: s["price"]?.int64Value ?? 0))
        }
        var queue: QueuePolicy?
        if let maxActive: Int64 = row[7] {
            queue = QueuePolicy(maxActive: maxActive, activeTtlSeconds: row[8], waitingTtlSeconds: row[9])
        }
        let def = ScheduleDefinition(scheduleId: scheduleId, concertId: row[0], startsAt: row[1], reservationOpensAt: row[2],
                                     reservationClosesAt: row[3], sections: sections, maxSeatsPerUser: row[4], queue: queue)
        var schedule = ScheduleState(definition: def, version: try writer.version(db, of: "schedule-" + scheduleId))
        schedule.soldOut = row[6]
        // The live reservations are the ones the seat map names (a HELD or SOLD seat's
        // reservation_id), each read by its key: no index on status to keep up to date.
        let liveIds = try String.fetchAll(db.cachedStatement(sql: """
            SELECT DISTINCT reservation_id FROM seats WHERE schedule_id = ? AND reservation_id IS NOT NULL ORDER BY reservation_id
            """), arguments: [scheduleId])
        let byId = try db.cachedStatement(sql: """
            SELECT reservation_id, user_id, seat_numbers, price, status, expires_at, created_at
            FROM reservations WHERE reservation_id = ? AND status IN ('HELD', 'CONFIRMED')
            """)
        for id in liveIds {
            guard let r = try Row.fetchOne(byId, arguments: [id]) else { continue }
            let reservation = try reservationState(db, r, scheduleId: scheduleId, writer: writer)
            for n in reservation.ref.seatNumbers where n >= 1 && n <= schedule.seatOwner.count {
                schedule.seatOwner[n - 1] = reservation.ref.reservationId
            }
            schedule.available -= reservation.ref.seatNumbers.count
            schedule.liveByUser[reservation.ref.userId, default: []].append(reservation.ref.reservationId)
            if reservation.status == .held { schedule.holdRecorded(reservation.ref.reservationId, expiresAt: reservation.expiresAt) }
            state.reservations[reservation.ref.reservationId] = reservation
        }
        state.schedules[scheduleId] = schedule
        if let policy = queue { try loadQueue(db, scheduleId, policy: policy, into: &state, writer: writer) }
    }

    public static func loadReservation(_ db: Database, _ reservationId: String, into state: inout DomainState,
                                       writer: StoreWriter) throws {
        guard state.reservations[reservationId] == nil,
              let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT reservation_id, user_id, seat_numbers, price, status, expires_at, created_at, schedule_id
                FROM reservations WHERE reservation_id = ?
                """), arguments: [reservationId]) else { return }
        state.reservations[reservationId] = try reservationState(db, row, scheduleId: row[7], writer: writer)
    }

    public static func loadToken(_ db: Database, _ tokenId: String, into state: inout DomainState) throws {
        guard state.tokens[tokenId] == nil,
              let row = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT token_id, user_id, schedule_id, status, joined_at, active_until FROM queue_tokens WHERE token_id = ?
                """), arguments: [tokenId]) else { return }
        state.tokens[tokenId] = token(row)
    }

    private static func loadQueue(_ db: Database, _ scheduleId: String, policy: QueuePolicy, into state: inout DomainState,
                                  writer: StoreWriter) throws {
        var queue = QueueState(scheduleId: scheduleId, policy: policy, version: try writer.version(db, of: "queue-" + scheduleId))
        let rows = try Row.fetchCursor(db.cachedStatement(sql: """
            SELECT token_id, user_id, schedule_id, status, joined_at, active_until FROM queue_tokens
            WHERE schedule_id = ? AND status IN ('WAITING', 'ACTIVE') ORDER BY wait_seq
            """), arguments: [scheduleId])
        var active: [TokenState] = []
        while let row = try rows.next() {
            let t = token(row)
            state.tokens[t.ref.tokenId] = t
            queue.liveByUser[t.ref.userId] = t.ref.tokenId
            if t.status == .waiting { queue.appendWaiting(t.ref.tokenId) } else { active.append(t) }
        }
        // Active tokens in activation order, which is activeUntil order (one TTL per queue).
        for t in active.sorted(by: { ($0.activeUntil ?? 0, $0.ref.tokenId) < ($1.activeUntil ?? 0, $1.ref.tokenId) }) {
            queue.appendActive(t.ref.tokenId)
        }
        state.queues[scheduleId] = queue
    }

    private static func token(_ row: Row) -> TokenState {
        TokenState(ref: TokenRef(tokenId: row[0], userId: row[1], scheduleId: row[2]),
                   status: TokenStatus(rawValue: row[3]) ?? .expired, joinedAt: row[4], activeUntil: row[5])
    }

    private static func reservationState(_ db: Database, _ row: Row, scheduleId: String,
                                         writer: StoreWriter) throws -> ReservationState {
        let id: String = row[0]
        let seats = (try JSONParser.parse(row[2] as String)).arrayValue?.compactMap { $0.int64Value.map(Int.init) } ?? []
        return ReservationState(
            ref: ReservationRef(reservationId: id, userId: row[1], scheduleId: scheduleId, seatNumbers: seats, price: row[3]),
            status: ReservationStatus(rawValue: row[4]) ?? .expired, expiresAt: row[5], createdAt: row[6],
            version: try writer.version(db, of: "reservation-" + id))
    }
}
