import Foundation
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import Testing

/// The waiting queue through the real server with a manual clock (PROTOCOL.md section 4,
/// `JoinQueue`, `LeaveQueue`, `HoldSeats`; section 5, `GetQueueStatus`).
@Suite("Waiting queue, manual clock, real server")
struct QueueTests {
    /// Joins from many DEALER sockets at once, one thread each, released together. Returns the
    /// replies by user.
    static func joinConcurrently(_ h: Harness, users: [String], scheduleId: String) throws -> [String: JSON] {
        let results = Locked<[String: Result<JSON, Error>]>([:])
        let gate = DispatchSemaphore(value: 0)
        let ready = DispatchGroup()
        let done = DispatchGroup()
        let endpoint = h.commandsEndpoint
        let context = h.context
        for user in users {
            ready.enter()
            done.enter()
            let t = Thread {
                defer { done.leave() }
                let result: Result<JSON, Error>
                var isReady = false
                do {
                    let client = try SLAMClient(endpoint: endpoint, context: context)
                    defer { client.close() }
                    // Connected before the gate opens, so the joins really race.
                    _ = try client.call("GetStats")
                    isReady = true
                    ready.leave()
                    gate.wait()
                    let r = try client.call("JoinQueue", ["userId": .string(user), "scheduleId": .string(scheduleId)],
                                            key: UUID().uuidString, timeoutMs: 30_000)
                    result = r.ok ? .success(r.body) : .failure(ClientError(String(decoding: r.rawBody, as: UTF8.self)))
                } catch {
                    if !isReady { ready.leave() }
                    result = .failure(error)
                }
                results.update { $0[user] = result }
            }
            t.start()
        }
        guard ready.wait(timeout: .now() + pollTimeout) == .success else { throw TimeoutError(description: "clients not ready") }
        for _ in users { gate.signal() }
        guard done.wait(timeout: .now() + pollTimeout) == .success else { throw TimeoutError(description: "joins not answered") }
        return try results.value.mapValues { try $0.get() }
    }

    /// FIFO admission under concurrent joins, exact `ahead`, never more than maxActive active;
    /// LeaveQueue (active and waiting) and active-token expiry admit the next in line; waiting
    /// tokens expire after waitingTtlSeconds.
    @Test func fifoAdmissionLeaveAndExpiry() throws {
        let clock = manualClock()
        let maxActive = 3
        let activeTtl: Int64 = 60
        let waitingTtl: Int64 = 3_600
        try withHarness(clock: clock) { h in
            let s = try h.scenario()
            let scheduleId = try openQueuedSchedule(s, now: clock.now(), maxActive: Int64(maxActive), activeTtl: activeTtl,
                                                    waitingTtl: waitingTtl)
            let users = try (0..<16).map { try s.registerUser("fan\($0)") }
            let t0 = clock.now()
            let replies = try Self.joinConcurrently(h, users: users, scheduleId: scheduleId)
            #expect(replies.count == users.count)

            // Join order is the server's: the order of QueueJoined in the log.
            let order = try checkQueueLog(s, scheduleId: scheduleId, maxActive: maxActive)
            #expect(order.count == users.count && Set(order).count == users.count)
            let tokenOfUser = replies.mapValues { $0["tokenId"]?.string ?? "" }
            #expect(Set(tokenOfUser.values) == Set(order))
            let userOfToken = Dictionary(uniqueKeysWithValues: tokenOfUser.map { ($1, $0) })
            for (i, token) in order.enumerated() {
                let reply = try #require(replies[userOfToken[token]!])
                if i < maxActive {
                    #expect(reply["status"] == "ACTIVE" && reply["ahead"] == 0, "join #\(i): \(reply)")
                } else {
                    #expect(reply["status"] == "WAITING" && reply["ahead"]?.int == Int64(i - maxActive), "join #\(i): \(reply)")
                }
            }
            var views = try checkSettled(s, joinOrder: order, maxActive: maxActive)
            #expect(views.map(\.status) == Array(repeating: "ACTIVE", count: maxActive)
                    + Array(repeating: "WAITING", count: users.count - maxActive))
            #expect(views[0].activeUntil == RFC3339.format(t0 + activeTtl * 1000))

            // Joining again returns the same live token, with its place.
            let again = try join(s, userOfToken[order[5]]!, scheduleId)
            #expect(again["tokenId"]?.string == order[5] && again["status"] == "WAITING" && again["ahead"] == 2)
            let againActive = try join(s, userOfToken[order[0]]!, scheduleId)
            #expect(againActive["tokenId"]?.string == order[0] && againActive["status"] == "ACTIVE")

            // An active token leaves: the next in line (order[3]) is ACTIVE with the reply. The
            // admission is the server's (`system:queue`), appended after the command's QueueLeft;
            // the reply's position is the QueueLeft's, the command's last event (section 2).
            let leaveKey = "leave-" + order[1]
            let leave = try s.call("LeaveQueue", ["userId": .string(userOfToken[order[1]]!), "tokenId": .string(order[1])],
                                   key: leaveKey)
            #expect(leave.ok && leave.body["status"] == "EXPIRED", "\(leave.body)")
            let caused = try readEvents(s, category: "queue").filter { $0.position >= (leave.position ?? 0) }
            #expect(caused.map(\.type) == ["QueueLeft", "QueueTokenActivated"])
            #expect(caused.map(\.causationId) == [leaveKey, "system:queue"])
            #expect(caused.first?.position == leave.position)
            views = try checkSettled(s, joinOrder: order, maxActive: maxActive)
            #expect(views[1].status == "EXPIRED" && views[3].status == "ACTIVE")
            #expect(views[4] == TokenView(status: "WAITING", ahead: 0, activeUntil: nil))

            // A waiting token leaves: everyone behind it moves up by one.
            _ = try s.must("LeaveQueue", ["userId": .string(userOfToken[order[6]]!), "tokenId": .string(order[6])])
            views = try checkSettled(s, joinOrder: order, maxActive: maxActive)
            #expect(views[6].status == "EXPIRED")
            #expect(views[7] == TokenView(status: "WAITING", ahead: 2, activeUntil: nil))
            #expect(views[15] == TokenView(status: "WAITING", ahead: 10, activeUntil: nil))
            // Leaving again changes nothing.
            let leftAgain = try s.must("LeaveQueue", ["userId": .string(userOfToken[order[6]]!), "tokenId": .string(order[6])])
            #expect(leftAgain["status"] == "EXPIRED")
            #expect(try checkSettled(s, joinOrder: order, maxActive: maxActive) == views)

            // Active tokens expire activeTtlSeconds after activation; the sweep admits the next three.
            clock.advance(by: activeTtl * 1000 + 1)
            let t1 = clock.now()
            try pollUntil("order[4], [5], [7] admitted") {
                try queueStatuses(s, [order[4], order[5], order[7]]).allSatisfy { $0.status == "ACTIVE" }
            }
            views = try checkSettled(s, joinOrder: order, maxActive: maxActive)
            #expect(views.map(\.status) == ["EXPIRED", "EXPIRED", "EXPIRED", "EXPIRED", "ACTIVE", "ACTIVE", "EXPIRED",
                                            "ACTIVE", "WAITING", "WAITING", "WAITING", "WAITING", "WAITING", "WAITING",
                                            "WAITING", "WAITING"])
            #expect(views[4].activeUntil == RFC3339.format(t1 + activeTtl * 1000))
            #expect(views[8].ahead == 0 && views[15].ahead == 7)
            let expiredEvents = try readEvents(s, category: "queue").filter { $0.type == "QueueTokenExpired" }
            #expect(Set(expiredEvents.compactMap { $0.body["tokenId"]?.string }) == Set([order[0], order[2], order[3]]))
            #expect(expiredEvents.allSatisfy { $0.causationId == "system:queue" })
            let admitted = try readEvents(s, category: "queue").filter { $0.type == "QueueTokenActivated" }.suffix(3)
            #expect(admitted.allSatisfy { $0.causationId == "system:queue" })

            // Waiting tokens expire waitingTtlSeconds after joining (the active ones, activated
            // later, are past their TTL by then too).
            clock.set(t0 + waitingTtl * 1000 + 1)
            try pollUntil("every token expired") {
                try queueStatuses(s, order).allSatisfy { $0.status == "EXPIRED" }
            }
            // A new join after that: ACTIVE at once.
            let fresh = try join(s, userOfToken[order[9]]!, scheduleId)
            #expect(fresh["status"] == "ACTIVE" && fresh["tokenId"]?.string != order[9])
            try checkQueueLog(s, scheduleId: scheduleId, maxActive: maxActive)
        }
    }

    /// Waiting tokens expire on their own time while the active one lives on; an expired
    /// token's user who joins again gets a new token at the back of the line.
    @Test func waitingTokensExpire() throws {
        let clock = manualClock()
        try withHarness(clock: clock) { h in
            let s = try h.scenario()
            let scheduleId = try openQueuedSchedule(s, now: clock.now(), maxActive: 1, activeTtl: 600, waitingTtl: 10)
            let a = try s.registerUser("a"), b = try s.registerUser("b"), c = try s.registerUser("c")
            let ta = try #require(try join(s, a, scheduleId)["tokenId"]?.string)
            let tb = try #require(try join(s, b, scheduleId)["tokenId"]?.string)
            clock.advance(by: 5_000)
            let tc = try #require(try join(s, c, scheduleId)["tokenId"]?.string)
            #expect(try queueStatuses(s, [ta, tb, tc]).map(\.description) == ["ACTIVE/0", "WAITING/0", "WAITING/1"])

            // 10 s after b joined (5 s after c): b expires, c moves to the front.
            clock.advance(by: 5_001)
            try pollUntil("b's token expired") { try queueStatus(s, tb).status == "EXPIRED" }
            #expect(try queueStatuses(s, [ta, tb, tc]).map(\.description) == ["ACTIVE/0", "EXPIRED/0", "WAITING/0"])
            // b joins again: a new token behind c.
            let tb2 = try join(s, b, scheduleId)
            #expect(tb2["tokenId"]?.string != tb && tb2["status"] == "WAITING" && tb2["ahead"] == 1)
            clock.advance(by: 5_000)
            try pollUntil("c's token expired") { try queueStatus(s, tc).status == "EXPIRED" }
            let tb2Id = try #require(tb2["tokenId"]?.string)
            #expect(try queueStatuses(s, [ta, tc, tb2Id]).map(\.description) == ["ACTIVE/0", "EXPIRED/0", "WAITING/0"])
            let expired = try readEvents(s, category: "queue").filter { $0.type == "QueueTokenExpired" }
            #expect(expired.map { $0.body["tokenId"]?.string } == [tb, tc])
            #expect(expired.allSatisfy { $0.causationId == "system:queue" })
            try checkQueueLog(s, scheduleId: scheduleId, maxActive: 1)
        }
    }

    /// The audit's case through the server: the sweep comes after a slot freed and after the
    /// next token's own waiting time; that token was still waiting when the slot freed, so it
    /// was admitted then (and, its active time past too, expired), not expired unadmitted.
    @Test func aLateSweepStillGivesTheTurnInOrder() throws {
        let clock = manualClock()
        try withHarness(clock: clock) { h in
            let s = try h.scenario()
            let scheduleId = try openQueuedSchedule(s, now: clock.now(), maxActive: 1, activeTtl: 60, waitingTtl: 90)
            let a = try s.registerUser("a"), b = try s.registerUser("b")
            let t0 = clock.now()
            let ta = try #require(try join(s, a, scheduleId)["tokenId"]?.string)
            let tb = try #require(try join(s, b, scheduleId)["tokenId"]?.string)
            // a's slot frees at t0 + 60 s (+1 ms), while b waits (until t0 + 90 s); b's turn ends at
            // t0 + 120 s (+1 ms). The sweep's first look is at t0 + 150 s.
            clock.set(t0 + 150_000)
            try pollUntil("both tokens expired") { try queueStatuses(s, [ta, tb]).allSatisfy { $0.status == "EXPIRED" } }
            let events = try readEvents(s, category: "queue").filter { $0.type != "QueueJoined" }
            #expect(events.map(\.type) == ["QueueTokenActivated", "QueueTokenExpired", "QueueTokenActivated", "QueueTokenExpired"])
            #expect(events.map { $0.body["tokenId"]?.string } == [ta, ta, tb, tb])
            #expect(events[2].body["activeUntil"]?.string == RFC3339.format(t0 + 60_001 + 60_000))
            #expect(events.dropFirst().allSatisfy { $0.causationId == "system:queue" })
            try checkQueueLog(s, scheduleId: scheduleId, maxActive: 1)
        }
    }

    /// HoldSeats on a schedule with a queue: every token rule with its code, and the own ACTIVE
    /// token succeeds; JoinQueue without a queue is INVALID_STATE.
    @Test func holdSeatsChecksTheQueueToken() throws {
        let clock = manualClock()
        try withHarness(clock: clock) { h in
            let s = try h.scenario()
            let scheduleId = try openQueuedSchedule(s, now: clock.now(), maxActive: 1, activeTtl: 60, waitingTtl: 3_600)
            let otherQueued = try openQueuedSchedule(s, now: clock.now(), maxActive: 5, activeTtl: 60, waitingTtl: 3_600)
            let plain = try s.openSchedule(now: clock.now(), seats: 5)
            let alice = try s.registerUser("alice", charge: 100_000)
            let bob = try s.registerUser("bob", charge: 100_000)
            let carol = try s.registerUser("carol", charge: 100_000)

            let aliceToken = try #require(try join(s, alice, scheduleId)["tokenId"]?.string)
            let bobJoin = try join(s, bob, scheduleId)
            let bobToken = try #require(bobJoin["tokenId"]?.string)
            #expect(bobJoin["status"] == "WAITING")
            let aliceOther = try #require(try join(s, alice, otherQueued)["tokenId"]?.string)
            #expect(try s.call("JoinQueue", ["userId": .string(alice), "scheduleId": .string(plain)]).code == "INVALID_STATE")
            #expect(try s.call("JoinQueue", ["userId": .string(alice), "scheduleId": "sch-nope"]).code == "SCHEDULE_NOT_FOUND")

            #expect(try hold(s, alice, scheduleId, [1]).code == "QUEUE_TOKEN_REQUIRED")
            #expect(try hold(s, alice, scheduleId, [1], token: aliceOther).code == "QUEUE_TOKEN_REQUIRED")
            #expect(try hold(s, bob, scheduleId, [1], token: bobToken).code == "QUEUE_TOKEN_NOT_ACTIVE")
            #expect(try hold(s, bob, scheduleId, [1], token: aliceToken).code == "FORBIDDEN")
            #expect(try hold(s, carol, scheduleId, [1], token: aliceToken).code == "FORBIDDEN")
            #expect(try hold(s, alice, scheduleId, [1], token: "tok-unknown").code == "TOKEN_NOT_FOUND")
            #expect(try s.call("LeaveQueue", ["userId": .string(bob), "tokenId": .string(aliceToken)]).code == "FORBIDDEN")
            // A schedule without a queue ignores the token rules.
            #expect(try hold(s, carol, plain, [1]).ok)

            let ok = try hold(s, alice, scheduleId, [1, 2], token: aliceToken)
            #expect(ok.ok, "\(ok.text)")
            let held = try #require(ok.body["reservationId"]?.string)
            #expect(try s.must("PayReservation", ["userId": .string(alice), "reservationId": .string(held)])["status"] == "CONFIRMED")

            // Past activeUntil: expired for every decision, before the sweep records it.
            clock.advance(by: 60_001)
            #expect(try hold(s, alice, scheduleId, [3], token: aliceToken).code == "QUEUE_TOKEN_EXPIRED")
            // The sweep expires it and admits bob.
            try pollUntil("bob admitted") { try queueStatus(s, bobToken).status == "ACTIVE" }
            #expect(try queueStatus(s, aliceToken).status == "EXPIRED")
            #expect(try hold(s, alice, scheduleId, [3], token: aliceToken).code == "QUEUE_TOKEN_EXPIRED")
            #expect(try hold(s, bob, scheduleId, [3], token: bobToken).ok)

            // A token left by LeaveQueue is expired too.
            _ = try s.must("LeaveQueue", ["userId": .string(bob), "tokenId": .string(bobToken)])
            #expect(try hold(s, bob, scheduleId, [4], token: bobToken).code == "QUEUE_TOKEN_EXPIRED")
            try checkQueueLog(s, scheduleId: scheduleId, maxActive: 1)
        }
    }

    /// The server's clock stepped back (60 s here) decides at the time it had reached, so a token
    /// that joins after the step is not due before one that joined before it: the tokens still
    /// expire in join order (the prefix the sweep relies on), and what `JoinQueue` answers agrees
    /// with `GetQueueStatus` and `HoldSeats`. Times recorded never decrease, across a restart too.
    @Test func aClockSteppedBackDoesNotReorderTheQueue() throws {
        let clock = manualClock()
        let waitingTtl: Int64 = 3_600
        try withHarness(clock: clock) { h in
            var s = try h.scenario()
            let scheduleId = try openQueuedSchedule(s, now: clock.now(), maxActive: 1, activeTtl: 7_200, waitingTtl: waitingTtl)
            let (a, b, c) = (try s.registerUser("a"), try s.registerUser("b"), try s.registerUser("c"))
            #expect(try join(s, a, scheduleId)["status"] == "ACTIVE")
            let t = clock.now()
            let tokenB = try #require(try join(s, b, scheduleId)["tokenId"]?.string)
            clock.set(t - 60_000)
            let tokenC = try #require(try join(s, c, scheduleId)["tokenId"]?.string)
            // A deadline is an instant of the wall clock: 5 s ahead of the stepped-back clock has
            // not passed, though decisions are still made at t.
            let inTime = try s.client.call("RegisterUser", ["name": "in time"], key: UUID().uuidString, deadline: t - 55_000)
            #expect(inTime.ok, "\(inTime.text)")
            #expect(try s.client.call("GetStats", deadline: t - 55_000).ok)

            // Past C's time as the stepped-back clock counts it, not B's: both still wait.
            clock.set(t - 60_000 + waitingTtl * 1000 + 1)
            #expect(try queueStatus(s, tokenC).description == "WAITING/1")
            let again = try join(s, c, scheduleId)
            #expect(again["tokenId"]?.string == tokenC && again["status"] == "WAITING", "\(again)")
            #expect(try hold(s, c, scheduleId, [1], token: tokenC).code == "QUEUE_TOKEN_NOT_ACTIVE")

            // Past both: the sweep expires B, then C.
            clock.set(t + waitingTtl * 1000 + 1)
            try pollUntil("B and C expired") { try queueStatuses(s, [tokenB, tokenC]).allSatisfy { $0.status == "EXPIRED" } }
            let expired = try readEvents(s, category: "queue").filter { $0.type == "QueueTokenExpired" }
            #expect(expired.map { $0.body["tokenId"]?.string } == [tokenB, tokenC])

            // Restarted with the clock behind the log: a new event is not recorded earlier.
            let last = try readEvents(s).last?.occurredAt ?? 0
            clock.set(last - 30_000)
            try h.restart()
            s = try h.scenario()
            _ = try s.registerUser("d")
            let times = try readEvents(s).map(\.occurredAt)
            #expect(times == times.sorted(), "recorded times never decrease")
            #expect(times.last == last)
        }
    }

    /// A restart mid-queue keeps every position: GetQueueStatus is identical before and after,
    /// and admissions after the restart continue in join order.
    @Test func restartMidQueueKeepsPositions() throws {
        let clock = manualClock()
        let maxActive = 2
        try withHarness(clock: clock) { h in
            var s = try h.scenario()
            let scheduleId = try openQueuedSchedule(s, now: clock.now(), maxActive: Int64(maxActive), activeTtl: 60,
                                                    waitingTtl: 3_600)
            let users = try (0..<10).map { try s.registerUser("fan\($0)") }
            var tokens: [String] = []
            for u in users {
                tokens.append(try #require(try join(s, u, scheduleId)["tokenId"]?.string))
                clock.advance(by: 10)
            }
            _ = try s.must("LeaveQueue", ["userId": .string(users[4]), "tokenId": .string(tokens[4])])  // waiting
            _ = try s.must("LeaveQueue", ["userId": .string(users[0]), "tokenId": .string(tokens[0])])  // active: admits 2
            let before = try checkSettled(s, joinOrder: tokens, maxActive: maxActive)
            #expect(before.map(\.description) == ["EXPIRED/0", "ACTIVE/0", "ACTIVE/0", "WAITING/0", "EXPIRED/0", "WAITING/1",
                                                  "WAITING/2", "WAITING/3", "WAITING/4", "WAITING/5"])

            try h.restart()
            s = try h.scenario()
            let after = try checkSettled(s, joinOrder: tokens, maxActive: maxActive)
            #expect(after == before)
            // Joining again after the restart still returns the live token and its place.
            let again = try join(s, users[7], scheduleId)
            #expect(again["tokenId"]?.string == tokens[7] && again["ahead"] == 3)

            // Admissions continue FIFO: a leave admits tokens[3], expiry admits [5] and [6].
            _ = try s.must("LeaveQueue", ["userId": .string(users[1]), "tokenId": .string(tokens[1])])
            #expect(try queueStatus(s, tokens[3]).status == "ACTIVE")
            #expect(try queueStatus(s, tokens[5]).description == "WAITING/0")
            clock.advance(by: 60_001)
            try pollUntil("tokens[5] and [6] admitted") {
                try queueStatuses(s, [tokens[5], tokens[6]]).allSatisfy { $0.status == "ACTIVE" }
            }
            let final = try checkSettled(s, joinOrder: tokens, maxActive: maxActive)
            #expect(final.map(\.description) == ["EXPIRED/0", "EXPIRED/0", "EXPIRED/0", "EXPIRED/0", "EXPIRED/0", "ACTIVE/0",
                                                 "ACTIVE/0", "WAITING/0", "WAITING/1", "WAITING/2"])

            // Once more across a restart, after the expiry sweep changed the counters.
            try h.restart()
            s = try h.scenario()
            #expect(try checkSettled(s, joinOrder: tokens, maxActive: maxActive) == final)
            let order = try checkQueueLog(s, scheduleId: scheduleId, maxActive: maxActive)
            #expect(order == tokens)
        }
    }
}

/// A value behind a lock, for results gathered from threads.
final class Locked<Value>: @unchecked Sendable {
    private var stored: Value
    private let lock = NSLock()
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&stored) } }
}
