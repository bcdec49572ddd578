import SLAMJSON

/// The waiting queue of a schedule: joining, leaving, and the sweep that expires overdue tokens
/// and admits the next in line.
enum Queues {
    static func join<G: IdGenerator>(userId: String, scheduleId: String, state: DomainState, now: Millis,
                                     ids: inout G) throws(Rejection) -> Decision {
        _ = try state.requireUser(userId)
        guard let schedule = state.schedules[scheduleId] else {
            throw Rejection(.scheduleNotFound, "schedule \(scheduleId) not found")
        }
        guard let policy = schedule.definition.queue, let queue = state.queues[scheduleId] else {
            throw Rejection(.invalidState, "schedule \(scheduleId) has no waiting queue")
        }
        var plan = Plan(queue: queue, state: state, now: now)
        if let live = queue.liveByUser[userId], !plan.expired.contains(live) {
            let (status, ahead) = plan.status(of: live)
            return Decision(events: plan.events, result: [
                "tokenId": .string(live), "status": .string(status.rawValue), "ahead": .int(Int64(ahead)),
            ])
        }
        let tokenId = ids.next(.token, at: now)
        let ref = TokenRef(tokenId: tokenId, userId: userId, scheduleId: scheduleId)
        var events = plan.events
        events.append((.queueJoined(ref), .command))
        let ahead = plan.waitingCount
        if ahead == 0, plan.activeCount < policy.maxActive {
            events.append((.queueTokenActivated(ref, activeUntil: now + policy.activeTtlSeconds * 1000), .command))
            return Decision(events: events, result: [
                "tokenId": .string(tokenId), "status": .string(TokenStatus.active.rawValue), "ahead": .int(0),
            ])
        }
        return Decision(events: events, result: [
            "tokenId": .string(tokenId), "status": .string(TokenStatus.waiting.rawValue), "ahead": .int(Int64(ahead)),
        ])
    }

    static func leave(userId: String, tokenId: String, state: DomainState, now: Millis) throws(Rejection) -> Decision {
        _ = try state.requireUser(userId)
        guard let token = state.tokens[tokenId] else { throw Rejection(.tokenNotFound, "queue token \(tokenId) not found") }
        guard token.ref.userId == userId else { throw Rejection(.forbidden, "queue token \(tokenId) belongs to another user") }
        guard let queue = state.queues[token.ref.scheduleId] else {
            return Decision(result: ["tokenId": .string(tokenId), "status": .string(TokenStatus.expired.rawValue)])
        }
        let plan = Plan(queue: queue, state: state, now: now, leaving: token)
        return Decision(events: plan.events, result: [
            "tokenId": .string(tokenId), "status": .string(TokenStatus.expired.rawValue),
        ])
    }

    /// The sweep: expire overdue tokens and fill free slots; `[]` when there is nothing to do.
    static func tick(scheduleId: String, state: DomainState, now: Millis) -> Decision {
        guard let queue = state.queues[scheduleId] else { return Decision() }
        return Decision(events: Plan(queue: queue, state: state, now: now).events)
    }

    /// The next moment the queue needs a sweep, or nil when nothing is pending: the first token to
    /// expire, or now when a slot is free and someone waits.
    static func nextDue(_ queue: QueueState, state: DomainState) -> Millis? {
        var due: Millis?
        if let first = queue.active.first, let until = state.tokens[first]?.activeUntil { due = until + 1 }
        if let first = queue.waiting.first, let t = state.tokens[first] {
            let expiry = t.joinedAt + queue.policy.waitingTtlSeconds * 1000 + 1
            due = min(due ?? expiry, expiry)
            if Int64(queue.active.count) < queue.policy.maxActive { due = min(due ?? t.joinedAt, t.joinedAt) }
        }
        return due
    }

    /// What the queue's time rules record at `now`, without copying the queue: overdue tokens
    /// are prefixes of `active` and `waiting` (see `QueueState`), admission takes from the front.
    struct Plan {
        var events: [(DomainEvent, Cause)] = []
        var expired: Set<String> = []
        var admitted: [String] = []
        /// Active tokens once the plan's events apply.
        var activeCount: Int64 = 0
        /// Waiting tokens once the plan's events apply.
        var waitingCount = 0
        private let queue: QueueState
        private var firstWaiting = 0
        private var leftWaiting: String?

        init(queue: QueueState, state: DomainState, now: Millis, leaving: TokenState? = nil) {
            self.queue = queue
            let policy = queue.policy
            var activeExpired = 0
            for id in queue.active {
                guard let t = state.tokens[id], t.effectiveStatus(at: now, policy: policy) == .expired else { break }
                events.append((.queueTokenExpired(t.ref), .queue))
                expired.insert(id)
                activeExpired += 1
            }
            for id in queue.waiting {
                guard let t = state.tokens[id], t.effectiveStatus(at: now, policy: policy) == .expired else { break }
                events.append((.queueTokenExpired(t.ref), .queue))
                expired.insert(id)
                firstWaiting += 1
            }
            activeCount = Int64(queue.active.count - activeExpired)
            waitingCount = queue.waiting.count - firstWaiting
            if let leaving, leaving.status != .expired, !expired.contains(leaving.ref.tokenId),
               leaving.effectiveStatus(at: now, policy: policy) != .expired {
                events.append((.queueLeft(leaving.ref), .command))
                if leaving.status == .active { activeCount -= 1 } else { waitingCount -= 1; leftWaiting = leaving.ref.tokenId }
            }
            var k = firstWaiting
            while activeCount < policy.maxActive, k < queue.waiting.count {
                let id = queue.waiting[k]
                k += 1
                if id == leftWaiting { continue }
                guard let t = state.tokens[id] else { continue }
                events.append((.queueTokenActivated(t.ref, activeUntil: now + policy.activeTtlSeconds * 1000), .queue))
                admitted.append(id)
                activeCount += 1
                waitingCount -= 1
            }
        }

        /// A live token's status and the number of waiting tokens ahead of it after the plan.
        func status(of tokenId: String) -> (TokenStatus, Int) {
            if admitted.contains(tokenId) || queue.active.contains(tokenId) { return (.active, 0) }
            guard let index = queue.waiting.firstIndex(of: tokenId) else { return (.expired, 0) }
            var ahead = index - firstWaiting - admitted.count
            if let left = leftWaiting, let li = queue.waiting.firstIndex(of: left), li < index { ahead -= 1 }
            return (.waiting, max(ahead, 0))
        }
    }
}

extension DomainState {
    /// When the queue of `scheduleId` next needs its sweep (see `Queues.nextDue`).
    public func queueDue(_ scheduleId: String) -> Millis? {
        guard let q = queues[scheduleId] else { return nil }
        return Queues.nextDue(q, state: self)
    }
}
