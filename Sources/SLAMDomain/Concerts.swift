import SLAMJSON

/// Concerts and their schedules.
enum Concerts {
    static func create<G: IdGenerator>(name: String, artist: String, now: Millis, ids: inout G) -> Decision {
        let concertId = ids.next(.concert, at: now)
        return Decision(events: [(.concertCreated(concertId: concertId, name: name, artist: artist), .command)],
                        result: ["concertId": .string(concertId)])
    }

    static func schedule<G: IdGenerator>(_ r: ScheduleRequest, state: DomainState, now: Millis,
                                         ids: inout G) throws(Rejection) -> Decision {
        guard state.concerts[r.concertId] != nil else {
            throw Rejection(.concertNotFound, "concert \(r.concertId) not found")
        }
        func invalid(_ rule: String, _ message: String) -> Rejection {
            Rejection(.invalidSchedule, message, details: ["rule": .string(rule)])
        }
        guard r.reservationOpensAt <= r.reservationClosesAt else {
            throw invalid("reservationOpensAt<=reservationClosesAt", "reservationOpensAt must not be after reservationClosesAt")
        }
        guard r.reservationClosesAt <= r.startsAt else {
            throw invalid("reservationClosesAt<=startsAt", "reservationClosesAt must not be after startsAt")
        }
        var total: Int64 = 0
        for (i, s) in r.sections.enumerated() {
            guard s.seatCount >= 1 else {
                throw invalid("sectionSeatCount", "section \(i) (\(s.name)) must have at least 1 seat")
            }
            guard (0...Limits.maxPrice).contains(s.price) else {
                throw invalid("price", "section \(i) (\(s.name)) price must be from 0 to \(Limits.maxPrice)")
            }
            // Saturate: section sizes are client int64s, and two huge ones must be INVALID_SCHEDULE, not a trap.
            let (sum, overflow) = total.addingReportingOverflow(Int64(s.seatCount))
            total = overflow ? .max : sum
        }
        guard (1...Int64(Limits.maxSeatsPerSchedule)).contains(total) else {
            throw invalid("seatCount", "a schedule has from 1 to \(Limits.maxSeatsPerSchedule) seats in all")
        }
        let maxSeats = r.maxSeatsPerUser ?? Limits.defaultMaxSeatsPerUser
        guard Limits.maxSeatsPerUserRange.contains(maxSeats) else {
            throw invalid("maxSeatsPerUser", "maxSeatsPerUser must be from 1 to 10")
        }
        var policy: QueuePolicy?
        if let q = r.queue {
            let p = QueuePolicy(maxActive: q.maxActive ?? QueuePolicy.defaults.maxActive,
                                activeTtlSeconds: q.activeTtlSeconds ?? QueuePolicy.defaults.activeTtlSeconds,
                                waitingTtlSeconds: q.waitingTtlSeconds ?? QueuePolicy.defaults.waitingTtlSeconds)
            guard Limits.maxActiveRange.contains(p.maxActive) else {
                throw invalid("queue.maxActive", "queue.maxActive must be from 1 to 100000")
            }
            guard Limits.activeTtlRange.contains(p.activeTtlSeconds) else {
                throw invalid("queue.activeTtlSeconds", "queue.activeTtlSeconds must be from 1 to 86400")
            }
            guard Limits.waitingTtlRange.contains(p.waitingTtlSeconds) else {
                throw invalid("queue.waitingTtlSeconds", "queue.waitingTtlSeconds must be from 1 to 604800")
            }
            policy = p
        }
        let scheduleId = ids.next(.schedule, at: now)
        let definition = ScheduleDefinition(
            scheduleId: scheduleId, concertId: r.concertId, startsAt: r.startsAt,
            reservationOpensAt: r.reservationOpensAt, reservationClosesAt: r.reservationClosesAt,
            sections: r.sections, maxSeatsPerUser: Int(maxSeats), queue: policy)
        return Decision(events: [(.concertScheduled(definition), .command)],
                        result: ["scheduleId": .string(scheduleId), "seatCount": .int(total)])
    }
}
