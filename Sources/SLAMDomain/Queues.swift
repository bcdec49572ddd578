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
        if let first = queue.active.first { due = state.tokens[first]?.endsAt(policy: queue.policy) }
        if let first = queue.waiting.first, let t = state.tokens[first] {
            if let expiry = t.endsAt(policy: queue.policy) { due = min(due ?? expiry, expiry) }
            if Int64(queue.active.count) < queue.policy.maxActive { due = min(due ?? t.joinedAt, t.joinedAt) }
        }
        return due
    }

    /// What the queue's time rules record at `now`, without copying the queue: overdue tokens
    /// are prefixes of `active` and `waiting` (see `QueueState`), admission takes from the front.
    ///
    /// What happened since the queue was last recorded is taken in the order it happened, as if
    /// the sweep ran at every instant: an active token's slot frees the moment its time ends,
    /// and the first token waiting then is admitted from that moment, for `activeTtlSeconds`
    /// (expiring in turn, if that too is past). Before, every end was judged at `now`, so a
    /// sweep that came after an active token's end and the next waiting token's end expired
    /// both, and whether that token got its turn depended on when the sweep ran. Like a hold's,
    /// a token's time is not stretched by a server that was down.
    struct Plan {
        var events: [(DomainEvent, Cause)] = []
        var expired: Set<String> = []
        var admitted: [String] = []
        /// Active tokens once the plan's events apply.
        var activeCount: Int64 = 0
        /// Waiting tokens once the plan's events apply.
        var waitingCount = 0
        private let queue: QueueState
        /// `waiting[..<consumed]` expired, were admitted or were passed over (the token leaving).
        private var consumed = 0
        /// Of the active tokens in activation order (`queue.active`, then `admitted`), those
        /// before this index expired.
        private var nextActive = 0
        /// The `activeUntil` of each admitted token.
        private var admittedUntil: [Millis] = []
        private var leftWaiting: String?

        init(queue: QueueState, state: DomainState, now: Millis, leaving: TokenState? = nil) {
            self.queue = queue
            activeCount = Int64(queue.active.count)
            waitingCount = queue.waiting.count
            // Ends in the order they came. Before time moves past an instant, its free slots go
            // to the front of the waiting line, in order (a token reached then had not ended at
            // that instant: the front's end is taken before an active one's at the same time).
            // A slot already free as recorded (none is: every command that frees one fills it)
            // is filled at the first instant reached: the first end's, or `now`.
            var time: Millis?
            while true {
                var next = nextEnd(state: state, now: now)
                if let time, next.map({ $0.at > time }) ?? true {
                    admitFromFront(state: state, at: time)
                    next = nextEnd(state: state, now: now)
                }
                guard let end = next else { break }
                events.append((.queueTokenExpired(end.ref), .queue))
                expired.insert(end.ref.tokenId)
                if end.active {
                    nextActive += 1
                    activeCount -= 1
                } else {
                    consumed += 1
                    waitingCount -= 1
                }
                time = end.at
            }
            // Leaving happens at `now`, after everything above: a token that ended by then records
            // nothing more; one admitted above leaves its slot; one still waiting is passed over
            // by the admissions at `now`, so it never takes the turn it gives up.
            if let leaving, leaving.status != .expired, !expired.contains(leaving.ref.tokenId) {
                events.append((.queueLeft(leaving.ref), .command))
                if leaving.status == .active || admitted.contains(leaving.ref.tokenId) {
                    activeCount -= 1
                } else {
                    waitingCount -= 1
                    leftWaiting = leaving.ref.tokenId
                }
            }
            admitFromFront(state: state, at: now)
        }

        typealias End = (ref: TokenRef, at: Millis, active: Bool)

        /// The next token to end by `now`, and the first moment it is past its time
        /// (`effectiveStatus`): the first active one, or the first waiting one, which goes first
        /// on a tie (it is past its time when the slot frees).
        private func nextEnd(state: DomainState, now: Millis) -> End? {
            var waiting: End?
            if consumed < queue.waiting.count, let t = state.tokens[queue.waiting[consumed]], t.status == .waiting,
               let end = t.endsAt(policy: queue.policy), end <= now {
                waiting = (t.ref, end, false)
            }
            var active: End?
            if nextActive < queue.active.count, let t = state.tokens[queue.active[nextActive]], t.status == .active {
                if let end = t.endsAt(policy: queue.policy), end <= now { active = (t.ref, end, true) }
            } else if nextActive >= queue.active.count, nextActive - queue.active.count < admitted.count {
                let k = nextActive - queue.active.count
                if let t = state.tokens[admitted[k]], admittedUntil[k] + 1 <= now { active = (t.ref, admittedUntil[k] + 1, true) }
            }
            if let w = waiting, w.at <= active?.at ?? w.at { return w }
            return active
        }

        /// Fills free slots from the front of the waiting line, as of `at`, passing over the
        /// token leaving (set only for the admissions at `now`).
        private mutating func admitFromFront(state: DomainState, at: Millis) {
            let until = at + queue.policy.activeTtlSeconds * 1000
            while activeCount < queue.policy.maxActive, consumed < queue.waiting.count {
                let id = queue.waiting[consumed]
                consumed += 1
                guard id != leftWaiting, let t = state.tokens[id] else { continue }
                events.append((.queueTokenActivated(t.ref, activeUntil: until), .queue))
                admitted.append(id)
                admittedUntil.append(until)
                activeCount += 1
                waitingCount -= 1
            }
        }

        /// A live token's status after the plan, without the queue's order.
        func status(of token: TokenState) -> TokenStatus {
            if expired.contains(token.ref.tokenId) { return .expired }
            if token.status == .active || admitted.contains(token.ref.tokenId) { return .active }
            return token.status
        }

        /// A live token's status and the number of waiting tokens ahead of it after the plan.
        func status(of tokenId: String) -> (TokenStatus, Int) {
            if expired.contains(tokenId) { return (.expired, 0) }
            if admitted.contains(tokenId) { return (.active, 0) }
            // Live and not waiting: active (without a scan of `active`, up to 100,000 long).
            guard let index = queue.waiting.position(of: tokenId) else { return (.active, 0) }
            guard index >= consumed else { return (.expired, 0) }
            var ahead = index - consumed
            if let left = leftWaiting, let li = queue.waiting.position(of: left), li >= consumed, li < index { ahead -= 1 }
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
