import SLAMJSON

/// Seat holds, payments, cancellations and expiry.
enum Reservations {
    static func hold<G: IdGenerator>(userId: String, scheduleId: String, seatNumbers: [Int], queueToken: String?,
                                     state: DomainState, context: DecisionContext,
                                     ids: inout G) throws(Rejection) -> Decision {
        let now = context.now
        _ = try state.requireUser(userId)
        guard let schedule = state.schedules[scheduleId] else {
            throw Rejection(.scheduleNotFound, "schedule \(scheduleId) not found")
        }
        let def = schedule.definition
        let seats = Array(Set(seatNumbers)).sorted()
        // The wire decoder guarantees distinct seats ≥ 1; a decider still never traps on a typed command.
        // The count once, not per seat: a request may name thousands of seats, on a schedule of
        // thousands of sections, and `seatCount` adds them up at each use.
        let seatCount = def.seatCount
        let missing = seats.filter { $0 > seatCount || $0 < 1 }
        guard missing.isEmpty else {
            throw Rejection(.seatNotFound, "schedule \(scheduleId) has no seat \(missing.map(String.init).joined(separator: ", "))",
                            details: ["seatNumbers": .array(missing.map { .int(Int64($0)) })])
        }
        // The queue token: unknown ids, then ownership, come before the window (section 2's order).
        var token: TokenState?
        if def.queue != nil, let tokenId = queueToken {
            guard let t = state.tokens[tokenId] else { throw Rejection(.tokenNotFound, "queue token \(tokenId) not found") }
            // A token of another schedule is no token for this one: QUEUE_TOKEN_REQUIRED below.
            if t.ref.scheduleId == scheduleId {
                guard t.ref.userId == userId else { throw Rejection(.forbidden, "queue token \(tokenId) belongs to another user") }
                token = t
            }
        }
        guard def.reservationOpensAt <= now, now <= def.reservationClosesAt else {
            throw Rejection(.reservationWindowClosed, "reservations for schedule \(scheduleId) are open from "
                            + RFC3339.format(def.reservationOpensAt) + " to " + RFC3339.format(def.reservationClosesAt))
        }
        // A waiting token whose turn has come (its slot freed, the sweep has not recorded it yet)
        // is active: the queue's due work is recorded first (`system:queue`), as `JoinQueue` and
        // `LeaveQueue` do, and as a lapsed hold on a seat taken is.
        var queueEvents: [(DomainEvent, Cause)] = []
        if let policy = def.queue {
            guard let t = token else {
                throw Rejection(.queueTokenRequired, "schedule \(scheduleId) has a waiting queue: pass your ACTIVE queueToken")
            }
            var status = t.effectiveStatus(at: now, policy: policy)
            // Only when the queue has work due: a waiting token is otherwise still waiting (and
            // its own end, if past, is due), and the plan is not built for every refused hold.
            if t.status == .waiting, let queue = state.queues[scheduleId], let due = Queues.nextDue(queue, state: state),
               due <= now {
                let plan = Queues.Plan(queue: queue, state: state, now: now)
                status = plan.status(of: t)
                if status == .active { queueEvents = plan.events }
            }
            switch status {
            case .active: break
            case .waiting: throw Rejection(.queueTokenNotActive, "queue token \(t.ref.tokenId) is still waiting")
            case .expired: throw Rejection(.queueTokenExpired, "queue token \(t.ref.tokenId) has expired")
            }
        }
        // Limits: the user's live seats on this schedule (lapsed holds do not count).
        var owned = 0
        for rid in schedule.liveByUser[userId] ?? [] {
            if let r = state.reservations[rid], !r.isLapsedHold(at: now) { owned += r.ref.seatNumbers.count }
        }
        guard owned + seats.count <= def.maxSeatsPerUser else {
            throw Rejection(.seatLimitExceeded,
                            "at most \(def.maxSeatsPerUser) seats per user on this schedule; you have \(owned)",
                            details: ["maxSeatsPerUser": .int(Int64(def.maxSeatsPerUser)), "held": .int(Int64(owned))])
        }
        // Availability: a seat whose hold lapsed is free; its expiry is recorded first.
        var taken: [Int] = []
        var lapsed: [String] = []
        var freed = 0
        for n in seats {
            guard let owner = schedule.seatOwner[n - 1] else { continue }
            if let r = state.reservations[owner], r.isLapsedHold(at: now) {
                if !lapsed.contains(owner) {
                    lapsed.append(owner)
                    freed += r.ref.seatNumbers.count
                }
            } else {
                taken.append(n)
            }
        }
        guard taken.isEmpty else {
            throw Rejection(.seatUnavailable,
                            "seat \(taken.map(String.init).joined(separator: ", ")) of schedule \(scheduleId) is not available",
                            details: ["seatNumbers": .array(taken.map { .int(Int64($0)) })])
        }
        // Sold out means no seat is AVAILABLE, and a lapsed hold's seats are, recorded or not:
        // when this hold would take the last seats the schedule has recorded as free, the
        // schedule's earliest other lapsed hold is recorded first (after those on the seats
        // taken), so that it is not announced sold out while seats are free; the sweep records
        // the rest. Found by expiry, at the cost of the holds before it, not of every hold.
        if !schedule.soldOut, schedule.available + freed == seats.count,
           let rid = schedule.firstHoldExpiring(before: now, where: { rid in
               !lapsed.contains(rid) && state.reservations[rid]?.isLapsedHold(at: now) == true
           }) {
            lapsed.append(rid)
            freed += state.reservations[rid]!.ref.seatNumbers.count
        }
        var events = queueEvents + lapsed.map { (DomainEvent.holdExpired(state.reservations[$0]!.ref), Cause.expiry) }
        let reservationId = ids.next(.reservation, at: now)
        var price: Int64 = 0
        for n in seats { price += schedule.prices[n - 1] }
        let ref = ReservationRef(reservationId: reservationId, userId: userId, scheduleId: scheduleId,
                                 seatNumbers: seats, price: price)
        let expiresAt = now + context.holdTtl
        events.append((.seatsHeld(ref, expiresAt: expiresAt), .command))
        appendAvailabilityChange(schedule, freed: freed, taken: seats.count, to: &events)
        return Decision(events: events, result: [
            "reservationId": .string(reservationId), "scheduleId": .string(scheduleId),
            "seatNumbers": .array(seats.map { .int(Int64($0)) }), "price": .int(price),
            "expiresAt": .string(RFC3339.format(expiresAt)),
        ])
    }

    static func pay(userId: String, reservationId: String, state: DomainState, now: Millis) throws(Rejection) -> Decision {
        let user = try state.requireUser(userId)
        let r = try owned(reservationId, by: userId, state: state)
        switch r.status {
        case .held where !r.isLapsedHold(at: now): break
        case .held, .expired:
            throw Rejection(.holdExpired, "the hold on reservation \(reservationId) expired at " + RFC3339.format(r.expiresAt))
        case .confirmed, .released, .cancelled:
            throw Rejection(.invalidState, "reservation \(reservationId) is \(r.status.rawValue); only a HELD reservation can be paid",
                            details: ["status": .string(r.status.rawValue)])
        }
        guard user.balance >= r.ref.price else {
            throw Rejection(.insufficientBalance, "the price is \(r.ref.price) points; the balance is \(user.balance)",
                            details: ["price": .int(r.ref.price), "balance": .int(user.balance)])
        }
        var events: [(DomainEvent, Cause)] = [(.reservationConfirmed(r.ref), .command)]
        let balance = user.balance - r.ref.price
        if r.ref.price > 0 {
            events.append((.pointsUsed(userId: userId, amount: r.ref.price, balance: balance, reservationId: reservationId), .command))
        }
        return Decision(events: events, result: [
            "reservationId": .string(reservationId), "status": .string(ReservationStatus.confirmed.rawValue),
            "price": .int(r.ref.price), "balance": .int(balance),
        ])
    }

    static func cancel(userId: String, reservationId: String, state: DomainState, now: Millis) throws(Rejection) -> Decision {
        let user = try state.requireUser(userId)
        let r = try owned(reservationId, by: userId, state: state)
        guard let schedule = state.schedules[r.ref.scheduleId] else {
            throw Rejection(.scheduleNotFound, "schedule \(r.ref.scheduleId) not found")
        }
        var events: [(DomainEvent, Cause)] = []
        let status: ReservationStatus
        var refunded: Int64 = 0
        switch r.status {
        case .held where !r.isLapsedHold(at: now):
            events.append((.holdReleased(r.ref), .command))
            status = .released
        case .held, .expired:
            throw Rejection(.holdExpired, "the hold on reservation \(reservationId) expired at " + RFC3339.format(r.expiresAt))
        case .confirmed:
            guard now < schedule.definition.startsAt else {
                throw Rejection(.invalidState, "the show started at " + RFC3339.format(schedule.definition.startsAt)
                                + "; a confirmed reservation can be cancelled only before", details: ["status": .string(r.status.rawValue)])
            }
            refunded = r.ref.price
            events.append((.reservationCancelled(r.ref, refunded: refunded), .command))
            if refunded > 0 {
                events.append((.pointsRefunded(userId: userId, amount: refunded, balance: user.balance + refunded,
                                               reservationId: reservationId), .command))
            }
            status = .cancelled
        case .released, .cancelled:
            throw Rejection(.invalidState, "reservation \(reservationId) is already \(r.status.rawValue)",
                            details: ["status": .string(r.status.rawValue)])
        }
        appendAvailabilityChange(schedule, freed: r.ref.seatNumbers.count, taken: 0, to: &events)
        return Decision(events: events, result: [
            "reservationId": .string(reservationId), "status": .string(status.rawValue), "refunded": .int(refunded),
        ])
    }

    /// The expiry sweep: records a lapsed hold's expiry; anything else needs nothing.
    static func expire(reservationId: String, state: DomainState, now: Millis) -> Decision {
        guard let r = state.reservations[reservationId], r.isLapsedHold(at: now),
              let schedule = state.schedules[r.ref.scheduleId] else { return Decision() }
        var events: [(DomainEvent, Cause)] = [(.holdExpired(r.ref), .expiry)]
        appendAvailabilityChange(schedule, freed: r.ref.seatNumbers.count, taken: 0, to: &events, cause: .expiry)
        return Decision(events: events, result: ["reservationId": .string(reservationId)])
    }

    private static func owned(_ reservationId: String, by userId: String, state: DomainState) throws(Rejection) -> ReservationState {
        guard let r = state.reservations[reservationId] else {
            throw Rejection(.reservationNotFound, "reservation \(reservationId) not found")
        }
        guard r.ref.userId == userId else {
            throw Rejection(.forbidden, "reservation \(reservationId) belongs to another user")
        }
        return r
    }

    /// `ScheduleSoldOut` when the last available seat goes, `ScheduleReopened` when one comes back,
    /// judged on the net change of the whole command.
    private static func appendAvailabilityChange(_ schedule: ScheduleState, freed: Int, taken: Int,
                                                 to events: inout [(DomainEvent, Cause)], cause: Cause = .command) {
        let after = schedule.available + freed - taken
        let id = schedule.definition.scheduleId
        if !schedule.soldOut, after == 0 {
            events.append((.scheduleSoldOut(scheduleId: id), cause))
        } else if schedule.soldOut, after > 0 {
            events.append((.scheduleReopened(scheduleId: id), cause))
        }
    }
}
