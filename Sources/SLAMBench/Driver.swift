import Foundation
import SLAMDomain
import SLAMJSON
import ZMQ

/// One load-generating thread: its own DEALER connections and its own share of the simulated
/// users. Open loop: requests are scheduled by the clock (latency counts from the scheduled
/// time, so a slow server shows up as latency, not as a slower client). Closed loop: each
/// connection keeps `inFlight` requests outstanding.
final class Driver: @unchecked Sendable {
    /// What a user does next. `poll` is the one query: a user waiting in the queue asks for its
    /// token's status (`GetQueueStatus`) until it is active, outside the command schedule.
    enum Action { case join, poll, leave, hold, pay(String), cancel(String) }

    /// A command as sent: what a retry after `OVERLOADED` sends again, same key and body
    /// (PROTOCOL.md section 6).
    struct Request {
        let type: String
        let body: String
        let key: String
    }

    struct User {
        let userId: String
        var next: Action
        var token: String?
        var confirmed: [String] = []
        /// The command to send again, refused with `OVERLOADED`, and when it was first due: its
        /// latency runs from then to the reply that is not `OVERLOADED`.
        var retry: (request: Request, intended: UInt64, socket: Int)?
    }

    struct Pending {
        let user: Int
        let action: Action
        let intended: UInt64
        /// Nil for a poll.
        let request: Request?
        /// The connection it went on: a retry or a resend goes on the same one, so that its reply
        /// frees the closed loop's slot on the connection that took it.
        let socket: Int
    }

    private let options: BenchOptions
    private let scheduleId: String
    private let runId: String
    private let index: Int
    private var users: [User]
    private var rng: SplitMix
    private var ready = Fifo<Int>()
    /// Users waiting to act again, by how long: after `OVERLOADED` (10 ms) and between polls
    /// (`pollInterval`). Each delay is one constant, so each queue is in time order.
    private var retryDelays = DelayQueue()
    private var pollDelays = DelayQueue()
    /// Open loop: send slots that found no user ready, oldest first; each is sent as soon as a
    /// user is, its latency counted from the slot's time (not dropped: a server slow enough to
    /// keep every user waiting must show as latency, not as a lower offered rate).
    private var owedSlots = Fifo<UInt64>()
    /// Users whose poll, or whose retry after `OVERLOADED`, is due: sent outside the command
    /// schedule and (a retry being the same command) without taking a new slot of it.
    private var pollsDue: [Int] = []
    private var retriesDue: [Int] = []
    /// Retries waiting for their time or due (the run waits for them as for replies).
    private var retriesWaiting = 0
    private var pending: [String: Pending] = [:]
    /// Every request sent, by when its reply is overdue (`replyTimeout` after it was sent): one
    /// constant delay, so in time order. A request still pending then is sent again, the same
    /// bytes (PROTOCOL.md section 3: "a client that times out waiting for a reply resends the same
    /// bytes"), and waited for again.
    private var overdue = Fifo<(at: UInt64, requestId: String)>()
    /// Requests sent again after a timeout, and how many times: as many replies again (the
    /// earlier tries', late, or replays) may come after the first, and are not errors.
    private var resentAfterTimeout: [String: Int] = [:]
    private var counter = 0
    var histogram = newHistogram()
    var outcomes = Outcomes()
    let progress: ProgressCounters

    init(index: Int, options: BenchOptions, scheduleId: String, runId: String, userIds: [String], progress: ProgressCounters) {
        self.index = index
        self.options = options
        self.scheduleId = scheduleId
        self.runId = runId
        self.progress = progress
        users = userIds.map { User(userId: $0, next: options.queue ? .join : .hold) }
        rng = SplitMix(seed: options.seed &+ UInt64(index) &* 7919)
        for u in users.indices { ready.append(u) }
    }

    /// Open loop: when thread `index`'s slot `k` is due, `interval` µs being each thread's own
    /// spacing (threads / rate): the threads' slots interleave, one every interval / threads.
    static func slotDue(_ k: Int, thread index: Int, of threads: Int, interval: Double, from startAt: UInt64) -> UInt64 {
        startAt + UInt64((Double(k) + Double(index) / Double(threads)) * interval)
    }

    func run(context: ZMQContext, startAt: UInt64, stopAt: UInt64) throws {
        // The connections shared out among the threads, the first ones taking one more when
        // they do not divide evenly (9 over 2: 5 and 4), so the run has as many as it reports.
        let perThread = max(1, options.connections / options.threads + (index < options.connections % options.threads ? 1 : 0))
        var sockets: [ZMQSocket] = []
        for _ in 0..<perThread {
            let s = try context.socket(.dealer)
            try s.setLinger(ms: 0)
            try s.setSendHighWaterMark(0)
            try s.setReceiveHighWaterMark(0)
            try s.connect(options.server)
            sockets.append(s)
        }
        defer { sockets.forEach { $0.close() } }
        let closedLoop = options.rate == nil
        let interval = closedLoop ? 0 : 1_000_000.0 / (Double(options.rate!) / Double(options.threads))
        // Open loop: this thread's share of the run's rate × duration slots, slot k due at
        // startAt + (k + index / threads) × interval, so that the threads' slots interleave, one
        // every 1/rate s (they used to coincide: with two threads, two commands at once every
        // 2/rate s, a burstier load than the rate). Counted, not found by adding the interval up until the end:
        // the sum can land a hair short of it and make one more (3,000/s on two threads, a slot
        // every 666.67 µs, made 3,002 in a second).
        let slotsInRun = closedLoop ? 0 : Int((Double(options.rate!) * options.duration).rounded())
        let mySlots = slotsInRun / options.threads + (index < slotsInRun % options.threads ? 1 : 0)
        var slot = 0
        func slotTime(_ k: Int) -> UInt64 { Driver.slotDue(k, thread: index, of: options.threads, interval: interval, from: startAt) }
        /// When the loop must next wake to send: the next slot's time, or the run's end.
        func nextWake() -> UInt64 { slot < mySlots ? slotTime(slot) : stopAt }
        while nowMicros() < startAt { usleep(200) }
        // Closed loop: sends owed to each connection, a reply having freed a slot when no user
        // was ready (all waiting for replies or for their next turn); paid as users become ready,
        // so the pipelines stay `inFlight` deep.
        var owed = [Int](repeating: 0, count: sockets.count)
        if closedLoop {
            for (i, _) in sockets.enumerated() {
                for _ in 0..<options.inFlight where try !sendNext(sockets, preferred: i, intended: nowMicros()) { owed[i] += 1 }
            }
        }
        // The open loop wakes for its next send by a timer with microsecond precision
        // (zmq_poll's timeout counts whole milliseconds: a send due in 200 µs would go up to a
        // millisecond late, and that lateness would count as the server's latency).
        var items = sockets.map { ZMQPollItem.socket($0) }
        #if os(Linux)
        let timer = closedLoop ? nil : try PollTimer()
        if let timer { items.append(.fd(timer.fd)) }
        #endif
        var closing = false
        while true {
            let now = nowMicros()
            if !closing, now >= stopAt {
                closing = true
                // Slots of the run the loop has not reached (it woke late, past the end): due, not
                // sent, and now never (not for want of a free user: not starved).
                while slot < mySlots {
                    owedSlots.append(slotTime(slot))
                    outcomes.unreached += 1
                    slot += 1
                }
            }
            if closing, (pending.isEmpty && retriesWaiting == 0) || now > stopAt + drainMicros { break }
            promoteDelayed(now)
            try resendOverdue(sockets, now: now)
            // A retry is the same command again, due since it was first sent: the drain after
            // the run's end still sends it.
            for u in retriesDue { try sendRetry(sockets, user: u) }
            retriesDue.removeAll(keepingCapacity: true)
            if !closing {
                for u in pollsDue { try sendPoll(sockets, user: u) }
            }
            pollsDue.removeAll(keepingCapacity: true)
            if !closing, closedLoop {
                for i in owed.indices {
                    while owed[i] > 0, !ready.isEmpty, try sendNext(sockets, preferred: i, intended: now) { owed[i] -= 1 }
                }
            }
            if !closing, !closedLoop {
                while !ready.isEmpty, let slot = owedSlots.popFirst() {
                    _ = try sendNext(sockets, preferred: nil, intended: slot)
                }
                while slot < mySlots {
                    let due = slotTime(slot)
                    guard due <= now else { break }
                    if try !sendNext(sockets, preferred: nil, intended: due) { owedSlots.append(due) }
                    slot += 1
                }
            }
            #if os(Linux)
            if let timer, !closing { timer.arm(atMicros: nextWake()) }
            try zmqPoll(&items, timeoutMs: 50)
            if let timer, items[sockets.count].isReadable { timer.drain() }
            #else
            let timeout = closing || closedLoop ? 50 : max(1, Int((Int64(nextWake()) - Int64(nowMicros())) / 1000))
            try zmqPoll(&items, timeoutMs: timeout)
            #endif
            for (i, item) in items.prefix(sockets.count).enumerated() where item.isReadable {
                while let frames = try sockets[i].receive(dontWait: true) {
                    let freed = handle(frames, stopAt: stopAt)
                    let t = nowMicros()
                    if freed, closedLoop, t < stopAt, try !sendNext(sockets, preferred: i, intended: t) { owed[i] += 1 }
                }
            }
        }
        // Given up on: still counted, at the latency they had reached (at least the drain time):
        // commands without a reply, retries never answered, and open-loop commands due but never
        // sent (no user was free before the end).
        let end = nowMicros()
        for p in pending.values where p.request != nil {
            recordLatency(from: p.intended, to: end)
            outcomes.noReply += 1
        }
        for u in users.indices {
            guard let retry = users[u].retry else { continue }
            recordLatency(from: retry.intended, to: end)
            outcomes.noReply += 1
        }
        while let slot = owedSlots.popFirst() {
            recordLatency(from: slot, to: end)
            outcomes.notSent += 1
        }
    }

    /// How long replies are waited for after the run's end.
    let drainMicros: UInt64 = 15_000_000

    /// A command's latency: from when it was due to `now` (at least 1 µs); returns it.
    @discardableResult
    private func recordLatency(from intended: UInt64, to now: UInt64) -> UInt64 {
        let micros = now > intended ? now - intended : 1
        histogram.recordClamped(micros)
        return micros
    }

    /// Sends again, the same bytes, each request whose reply is `replyTimeout` overdue (a reply
    /// the server dropped, e.g. behind the reply high-water mark, or lost with a connection),
    /// on the connection it went on. A request sent again waits twice as long as before for its
    /// next try, up to eight times `replyTimeout` (a slow server is not sent more at the worst
    /// time); the waits after the first are kept apart from `overdue`, whose single delay keeps
    /// it in time order.
    private func resendOverdue(_ sockets: [ZMQSocket], now: UInt64) throws {
        while let next = overdue.first, next.at <= now {
            _ = overdue.popFirst()
            try resendIfPending(sockets, next.requestId, now: now)
        }
        guard !backedOff.isEmpty else { return }
        for (requestId, at) in backedOff where at <= now {
            backedOff[requestId] = nil
            try resendIfPending(sockets, requestId, now: now)
        }
    }

    /// Resent requests' next deadlines (few: only requests already sent again).
    private var backedOff: [String: UInt64] = [:]

    private func resendIfPending(_ sockets: [ZMQSocket], _ requestId: String, now: UInt64) throws {
        guard let p = pending[requestId] else { return }
        if let request = p.request {
            try send(sockets[p.socket], request, requestId: requestId)
        } else {
            try sendPollFrames(sockets[p.socket], user: p.user, requestId: requestId)
        }
        let tries = resentAfterTimeout[requestId, default: 0] + 1
        resentAfterTimeout[requestId] = tries
        outcomes.timedOut += 1
        backedOff[requestId] = now + replyTimeoutMicros << UInt64(min(tries, 3))
    }

    private var replyTimeoutMicros: UInt64 { UInt64(options.replyTimeout * 1_000_000) }

    /// A request just sent: waited for, and sent again if no reply has come `replyTimeout` later.
    private func waitForReply(_ requestId: String, _ p: Pending, sentAt: UInt64) {
        pending[requestId] = p
        overdue.append((sentAt + replyTimeoutMicros, requestId))
    }

    private func promoteDelayed(_ now: UInt64) {
        while let u = retryDelays.popDue(now) { retriesDue.append(u) }
        while let u = pollDelays.popDue(now) { pollsDue.append(u) }
    }

    /// Sends a command again after `OVERLOADED`: same key and body, a new request id, its latency
    /// still counted from when it was first due.
    private func sendRetry(_ sockets: [ZMQSocket], user u: Int) throws {
        guard let retry = users[u].retry else { return }
        users[u].retry = nil
        retriesWaiting -= 1
        counter += 1
        let requestId = "\(index)-\(counter)"
        try send(sockets[retry.socket], retry.request, requestId: requestId)
        waitForReply(requestId, Pending(user: u, action: users[u].next, intended: retry.intended, request: retry.request,
                                        socket: retry.socket), sentAt: nowMicros())
        outcomes.resent += 1
    }

    private func send(_ socket: ZMQSocket, _ request: Request, requestId: String) throws {
        let header = "{\"type\":\"\(request.type)\",\"requestId\":\"\(requestId)\",\"idempotencyKey\":\"\(request.key)\"}"
        try socket.send([[], Array("SLAM/1".utf8), Array(header.utf8), Array(request.body.utf8)])
    }

    /// Sends a waiting user's `GetQueueStatus`: a query, outside the command schedule and the
    /// closed loop's window, and not counted as a command.
    private func sendPoll(_ sockets: [ZMQSocket], user u: Int) throws {
        counter += 1
        let requestId = "\(index)-\(counter)"
        let socket = u % sockets.count
        try sendPollFrames(sockets[socket], user: u, requestId: requestId)
        let now = nowMicros()
        waitForReply(requestId, Pending(user: u, action: .poll, intended: now, request: nil, socket: socket), sentAt: now)
        outcomes.polls += 1
    }

    private func sendPollFrames(_ socket: ZMQSocket, user u: Int, requestId: String) throws {
        let header = "{\"type\":\"GetQueueStatus\",\"requestId\":\"\(requestId)\"}"
        let body = "{\"tokenId\":\(q(users[u].token ?? "-"))}"
        try socket.send([[], Array("SLAM/1".utf8), Array(header.utf8), Array(body.utf8)])
    }

    /// Sends the next ready user's next command; false (counted as starved) when no user is ready.
    @discardableResult
    private func sendNext(_ sockets: [ZMQSocket], preferred: Int?, intended: UInt64) throws -> Bool {
        guard let u = ready.popFirst() else {
            outcomes.starved += 1
            return false
        }
        let user = users[u]
        counter += 1
        let requestId = "\(index)-\(counter)"
        let request = newRequest(user, key: "\(runId)-\(index)-\(counter)")
        let socket = preferred ?? (u % sockets.count)
        try send(sockets[socket], request, requestId: requestId)
        waitForReply(requestId, Pending(user: u, action: user.next, intended: intended, request: request, socket: socket),
                     sentAt: nowMicros())
        outcomes.sent += 1
        return true
    }

    /// The user's next command, under a new idempotency key.
    private func newRequest(_ user: User, key: String) -> Request {
        let type: String
        let body: String
        switch user.next {
        case .poll:
            preconditionFailure("a poll is sent by sendPoll")
        case .join:
            type = "JoinQueue"
            body = "{\"userId\":\(q(user.userId)),\"scheduleId\":\(q(scheduleId))}"
        case .leave:
            type = "LeaveQueue"
            body = "{\"userId\":\(q(user.userId)),\"tokenId\":\(q(user.token ?? "-"))}"
        case .hold:
            type = "HoldSeats"
            let count = 1 + Int(rng.next() % 4)
            // Favour the best sections: seats are numbered best first, and u² skews to the front.
            let r = rng.unit()
            var start = 1 + Int(Double(options.seats) * r * r)
            if start + count - 1 > options.seats { start = options.seats - count + 1 }
            let seats = (start..<(start + count)).map(String.init).joined(separator: ",")
            let token = user.token.map { ",\"queueToken\":\(q($0))" } ?? ""
            body = "{\"userId\":\(q(user.userId)),\"scheduleId\":\(q(scheduleId)),\"seatNumbers\":[\(seats)]\(token)}"
        case .pay(let rid):
            type = "PayReservation"
            body = "{\"userId\":\(q(user.userId)),\"reservationId\":\(q(rid))}"
        case .cancel(let rid):
            type = "CancelReservation"
            body = "{\"userId\":\(q(user.userId)),\"reservationId\":\(q(rid))}"
        }
        return Request(type: type, body: body, key: key)
    }

    /// A round of buying is over: through a queue the user leaves it (freeing the slot for the
    /// next in line) and joins again; without one, holds again.
    private func roundDone(_ user: User) -> Action { options.queue && user.token != nil ? .leave : .hold }

    /// Takes a reply; returns whether it frees a slot of the closed loop's window: a command's
    /// final answer does; a poll's does not (polls take none), nor an `OVERLOADED` (the command
    /// is sent again and keeps its slot).
    private func handle(_ frames: [[UInt8]], stopAt: UInt64) -> Bool {
        guard frames.count == 4, let header = try? JSONParser.parse(frames[2]),
              let requestId = header["requestId"]?.stringValue else {
            outcomes.otherErrors += 1
            return false
        }
        guard let p = pending.removeValue(forKey: requestId) else {
            // Another reply to a request sent again after a timeout; anything else is an error.
            if let extra = resentAfterTimeout[requestId] {
                resentAfterTimeout[requestId] = extra > 1 ? extra - 1 : nil
                outcomes.duplicateReplies += 1
            } else {
                outcomes.otherErrors += 1
            }
            return false
        }
        let now = nowMicros()
        let ok = header["ok"]?.boolValue ?? false
        let body = (try? JSONParser.parse(frames[3])) ?? .null
        var user = users[p.user]
        if case .poll = p.action {
            // Active: hold. Still waiting, or the query not answered (OVERLOADED, INTERNAL): ask
            // again later. The token gone (unknown, expired, left): join again.
            let status = ok ? body["status"]?.stringValue : nil
            let gone = ok ? status != "WAITING" : body["code"]?.stringValue == "TOKEN_NOT_FOUND"
            if status == "ACTIVE" {
                user.next = .hold
                ready.append(p.user)
            } else if gone {
                user.token = nil
                user.next = .join
                ready.append(p.user)
            } else {
                pollDelays.append(now + Self.pollInterval, p.user)
            }
            users[p.user] = user
            return false
        }
        if !ok, body["code"]?.stringValue == "OVERLOADED" {
            // Not executed: sent again, same key and body, 10 ms later; not an answer yet.
            outcomes.overloaded += 1
            users[p.user].retry = (p.request!, p.intended, p.socket)
            retriesWaiting += 1
            retryDelays.append(now + 10_000, p.user)
            return false
        }
        progress.add(latencyMicros: recordLatency(from: p.intended, to: now))
        outcomes.replies += 1
        if now > stopAt { outcomes.repliesAfterEnd += 1 }
        var poll = false
        if ok {
            switch p.action {
            case .poll:
                break
            case .join:
                outcomes.joined += 1
                user.token = body["tokenId"]?.stringValue
                if body["status"]?.stringValue == "ACTIVE" { user.next = .hold } else {
                    outcomes.waiting += 1
                    user.next = .poll
                    poll = true
                }
            case .hold:
                outcomes.holdsWon += 1
                let rid = body["reservationId"]?.stringValue ?? ""
                let r = rng.unit()
                if r < 0.75 { user.next = .pay(rid) } else if r < 0.85 { user.next = .cancel(rid) } else {
                    outcomes.abandoned += 1
                    user.next = roundDone(user)
                }
            case .pay(let rid):
                outcomes.paid += 1
                user.confirmed.append(rid)
                if rng.unit() < 0.05 { user.next = .cancel(rid) } else { user.next = roundDone(user) }
            case .cancel(let rid):
                if body["status"]?.stringValue == "CANCELLED" { outcomes.cancelled += 1 } else { outcomes.released += 1 }
                user.confirmed.removeAll { $0 == rid }
                user.next = roundDone(user)
            case .leave:
                outcomes.left += 1
                user.token = nil
                user.next = .join
            }
        } else {
            let code = body["code"]?.stringValue ?? "?"
            switch code {
            case "SEAT_UNAVAILABLE": outcomes.seatUnavailable += 1; user.next = .hold
            case "SEAT_LIMIT_EXCEEDED":
                outcomes.seatLimit += 1
                if let rid = user.confirmed.last, rng.unit() < 0.2 { user.next = .cancel(rid) } else { user.next = .hold }
            case "INSUFFICIENT_BALANCE": outcomes.insufficient += 1; user.next = .hold
            case "HOLD_EXPIRED": outcomes.holdExpired += 1; user.next = .hold
            case "QUEUE_TOKEN_REQUIRED", "QUEUE_TOKEN_NOT_ACTIVE", "QUEUE_TOKEN_EXPIRED":
                outcomes.queueRejections += 1
                user.token = nil
                user.next = .join
            default:
                outcomes.otherErrors += 1
                outcomes.errorCodes[code, default: 0] += 1
                user.next = options.queue ? .join : .hold
            }
        }
        users[p.user] = user
        if poll { pollDelays.append(now + Self.pollInterval, p.user) } else { ready.append(p.user) }
        return true
    }

    /// How often a user waiting in the queue asks for its token's status: once a second, as a
    /// waiting-room page would (every 200 ms, 15,000 waiting users made 75,000 queries a second,
    /// more than the commands, and the rush measured the polling).
    static let pollInterval: UInt64 = 1_000_000
}

/// A first-in, first-out queue on an array: taken from the front by an index, the taken part
/// dropped once it is most of the array.
struct Fifo<Element> {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ e: Element) { items.append(e) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let e = items[head]
        head += 1
        if head > 4096, head * 2 > items.count { items.removeFirst(head); head = 0 }
        return e
    }
}

/// Users waiting until a time, in the order they were added: with one constant delay per
/// queue, also the order they fall due.
struct DelayQueue {
    private var items = Fifo<(at: UInt64, user: Int)>()

    mutating func append(_ at: UInt64, _ user: Int) { items.append((at, user)) }

    /// The next user due at `now`, if any.
    mutating func popDue(_ now: UInt64) -> Int? {
        guard let next = items.first, next.at <= now else { return nil }
        return items.popFirst()?.user
    }
}

/// Replies counted across drivers, for the progress line, with the latencies of those since the
/// line before: a run's p99 says how many commands were slow, the lines say when (a few seconds
/// of stalls, or all along).
final class ProgressCounters: @unchecked Sendable {
    private let lock = Lock()
    private var replies = 0
    private var recent = newHistogram()
    func add(latencyMicros: UInt64) {
        lock.withLock {
            replies += 1
            recent.recordClamped(latencyMicros)
        }
    }
    var total: Int { lock.withLock { replies } }
    /// The latencies recorded since the last call (a histogram made outside the lock replaces
    /// them, so the drivers never wait for one to be made).
    func takeRecent() -> LatencyHistogram {
        var fresh = newHistogram()
        lock.withLock { swap(&fresh, &recent) }
        return fresh
    }
}
