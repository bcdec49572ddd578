import Foundation
import GRDB
import SLAMClient
import SLAMDomain
import SLAMJSON
import SLAMServer
import Testing

/// Hold expiry with a manual clock through the real server (PROTOCOL.md section 4, "Time rules
/// hold whether or not a sweep has run yet"; DESIGN.md section 3, "Time-driven work").
@Suite("Hold expiry, manual clock, real server")
struct HoldExpiryTests {
    static let holdTtl: Millis = 300_000

    /// With the sweep effectively off (it runs only at start-up), a hold 1 ms past `expiresAt` is
    /// expired for every decision: paying and cancelling it are HOLD_EXPIRED while the read model
    /// still shows it HELD; another user can hold its seats, the new hold recording the
    /// HoldExpired first in the same transaction; paying 1 ms before `expiresAt` succeeds.
    /// A restart's start-up sweep then records the lapsed holds left, and paying or cancelling
    /// after that sweep is still HOLD_EXPIRED.
    @Test func expiredBeforeTheSweepAndAfterIt() throws {
        let clock = manualClock()
        try withHarness(clock: clock, configure: { $0.sweepInterval = 3_600_000 }) { h in
            var s = try h.scenario()
            let alice = try s.registerUser("alice", charge: 100_000)
            let bob = try s.registerUser("bob", charge: 100_000)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 10, price: 1_000)

            let t0 = clock.now()
            let a = try hold(s, alice, scheduleId, [1, 2])
            #expect(a.ok, "\(a.text)")
            let aId = try #require(a.body["reservationId"]?.string)
            #expect(a.body["expiresAt"]?.string == RFC3339.format(t0 + Self.holdTtl))
            let b = try hold(s, alice, scheduleId, [3])
            let bId = try #require(b.body["reservationId"]?.string)
            let c = try hold(s, alice, scheduleId, [4])
            let cId = try #require(c.body["reservationId"]?.string)

            // 1 ms before expiresAt: payable.
            clock.set(t0 + Self.holdTtl - 1)
            let paid = try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(bId)])
            #expect(paid.ok && paid.body["status"] == "CONFIRMED", "\(paid.text)")
            #expect(try s.must("GetUser", ["userId": .string(alice)])["balance"] == 99_000)

            // 1 ms after: expired for every decision, though no sweep has recorded it.
            clock.set(t0 + Self.holdTtl + 1)
            let pay = try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(aId)])
            #expect(pay.code == "HOLD_EXPIRED", "\(pay.text)")
            let cancel = try s.call("CancelReservation", ["userId": .string(alice), "reservationId": .string(aId)])
            #expect(cancel.code == "HOLD_EXPIRED", "\(cancel.text)")
            #expect(try s.must("GetUser", ["userId": .string(alice)])["balance"] == 99_000)
            #expect(try reservation(s, aId)["status"] == "HELD", "no sweep ran: the read model still shows the hold")
            #expect(try readEvents(s, category: "reservation").filter { $0.type == "HoldExpired" }.isEmpty)

            // Another user holds the seats at once; the expiry is recorded first, same transaction.
            let bobHold = try hold(s, bob, scheduleId, [2, 1])
            #expect(bobHold.ok, "\(bobHold.text)")
            let bobId = try #require(bobHold.body["reservationId"]?.string)
            #expect(bobHold.body["seatNumbers"] == [1, 2])
            let events = try readEvents(s)
            let expired = try #require(events.firstIndex { $0.type == "HoldExpired" })
            #expect(events[expired].body["reservationId"]?.string == aId)
            #expect(events[expired].causationId == "system:expiry")
            #expect(events[expired + 1].type == "SeatsHeld" && events[expired + 1].body["reservationId"]?.string == bobId)
            #expect(events[expired + 1].position == events[expired].position + 1)
            #expect(try reservation(s, aId)["status"] == "EXPIRED")
            let seats = try seatStatuses(s, scheduleId)
            #expect(seats[1] == "HELD" && seats[2] == "HELD" && seats[3] == "SOLD" && seats[4] == "HELD")

            // After the expiry is recorded: still HOLD_EXPIRED, never INVALID_STATE.
            #expect(try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(aId)]).code == "HOLD_EXPIRED")
            #expect(try s.call("CancelReservation", ["userId": .string(alice), "reservationId": .string(aId)]).code == "HOLD_EXPIRED")

            // Hold c lapsed too but nobody touched it: a restart's start-up sweep records it.
            #expect(try reservation(s, cId)["status"] == "HELD")
            try h.restart()
            s = try h.scenario()
            // The start-up sweep runs on the writer thread as the server starts; a query may be
            // answered just before it commits (PROTOCOL.md: queries show an expiry once recorded).
            try pollUntil("the start-up sweep to expire \(cId)") { try reservation(s, cId)["status"] == "EXPIRED" }
            #expect(try seatStatuses(s, scheduleId)[4] == "AVAILABLE")
            let swept = try readEvents(s, category: "reservation").filter { $0.type == "HoldExpired" && $0.body["reservationId"]?.string == cId }
            #expect(swept.count == 1 && swept.first?.causationId == "system:expiry")
            #expect(try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(cId)]).code == "HOLD_EXPIRED")
            #expect(try s.call("CancelReservation", ["userId": .string(alice), "reservationId": .string(cId)]).code == "HOLD_EXPIRED")
            // The confirmed reservation and bob's hold are untouched.
            #expect(try reservation(s, bId)["status"] == "CONFIRMED")
            #expect(try reservation(s, bobId)["status"] == "HELD")
        }
    }

    /// More holds lapse than one sweep records (`sweepExpiryLimit`, 3 here): after a restart
    /// every one is recorded batch after batch, without waiting for the next sweep interval (an
    /// hour here).
    @Test func aBacklogOfLapsedHoldsIsRecordedAtOnce() throws {
        let clock = manualClock()
        try withHarness(clock: clock, configure: { $0.sweepInterval = 3_600_000; $0.sweepExpiryLimit = 3 }) { h in
            var s = try h.scenario()
            let users = try (0..<3).map { try s.registerUser("fan\($0)", charge: 100_000) }
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 20, price: 1_000)
            var ids: [String] = []
            for n in 1...10 {
                let r = try hold(s, users[(n - 1) % 3], scheduleId, [Int64(n)])
                ids.append(try #require(r.body["reservationId"]?.string, "\(r.text)"))
            }
            clock.advance(by: Self.holdTtl + 1)
            try h.restart()
            s = try h.scenario()
            try pollUntil("every lapsed hold recorded") { try ids.allSatisfy { try reservation(s, $0)["status"] == "EXPIRED" } }
            let expired = try readEvents(s, category: "reservation").filter { $0.type == "HoldExpired" }
            #expect(expired.count == ids.count)
            #expect(Set(expired.compactMap { $0.body["reservationId"]?.string }) == Set(ids))
            #expect(expired.allSatisfy { $0.causationId == "system:expiry" })
        }
    }

    /// Idempotency records past the retention go `pruneLimit` at a time (2 here); a prune that
    /// reaches the limit runs again with the next batch, so a backlog goes without waiting for
    /// `pruneInterval` (an hour here), and a key whose record went executes anew.
    @Test func aBacklogOfIdempotencyRecordsIsPrunedBatchAfterBatch() throws {
        let clock = manualClock()
        try withHarness(clock: clock, configure: {
            $0.pruneInterval = 3_600_000; $0.pruneLimit = 2; $0.idempotencyRetention = 60_000
        }) { h in
            var s = try h.scenario()
            let user = try s.registerUser("keeper")
            for k in 0..<7 { _ = try s.must("ChargePoints", ["userId": .string(user), "amount": 1], key: "old-\(k)") }
            let store = try #require(h.server?.store)
            #expect(try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM idempotency") } == 8)
            clock.advance(by: 60_001)
            try h.restart()  // the start-up batch prunes the first 2; the sweeps' batches the rest
            s = try h.scenario()
            let restarted = try #require(h.server?.store)
            try pollUntil("every record past the retention pruned") {
                try restarted.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM idempotency") } == 0
            }
            let again = try s.call("ChargePoints", ["userId": .string(user), "amount": 1], key: "old-0")
            #expect(again.ok && again.replayed == false, "\(again.text)")
            #expect(try s.must("GetUser", ["userId": .string(user)])["balance"] == 8)
        }
    }

    /// A prune that fails (here a trigger aborts every delete from the idempotency table) is
    /// rolled back alone and tried again an interval later: the batches it runs in commit, and
    /// every command after it succeeds.
    @Test func aFailingPruneFailsNoBatch() throws {
        let clock = manualClock()
        try withHarness(clock: clock, configure: { $0.idempotencyRetention = 60_000 }) { h in
            let s = try h.scenario()
            let user = try s.registerUser("keeper")
            let store = try #require(h.server?.store)
            try store.pool.write { db in
                try db.execute(sql: "CREATE TRIGGER no_prune BEFORE DELETE ON idempotency BEGIN SELECT RAISE(ABORT, 'injected fault'); END")
            }
            clock.advance(by: 60_001)
            try h.restart()  // the start-up batch prunes first
            let after = try h.scenario()
            for k in 0..<5 {
                let r = try after.call("ChargePoints", ["userId": .string(user), "amount": 1], key: "after-\(k)")
                #expect(r.ok, "\(r.text)")
            }
            let restarted = try #require(h.server?.store)
            #expect(try restarted.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM idempotency") } == 6)
        }
    }

    /// A queue whose schedule cannot be loaded (here its sections are made unreadable JSON in the
    /// read model) fails no sweep: the hold on another schedule that the same sweep expires is
    /// recorded, and client commands commit.
    @Test func aQueueThatCannotBeLoadedFailsNoSweep() throws {
        let clock = manualClock()
        try withHarness(clock: clock) { h in
            var s = try h.scenario()
            let alice = try s.registerUser("alice", charge: 10_000)
            let queued = try openQueuedSchedule(s, now: clock.now(), maxActive: 1, activeTtl: 3_600, waitingTtl: 3_600)
            #expect(try join(s, alice, queued)["status"] == "ACTIVE")
            let plain = try s.openSchedule(now: clock.now(), seats: 5, price: 1_000)
            let held = try #require(try hold(s, alice, plain, [1]).body["reservationId"]?.string)
            let store = try #require(h.server?.store)
            try store.pool.write { db in
                try db.execute(sql: "UPDATE schedules SET sections = 'not json' WHERE schedule_id = ?", arguments: [queued])
            }
            clock.advance(by: Self.holdTtl + 1)
            try h.restart()  // nothing in the writer's memory: the sweep loads each queue's schedule
            s = try h.scenario()
            try pollUntil("the sweep to expire \(held)") { try reservation(s, held)["status"] == "EXPIRED" }
            #expect(try s.call("ChargePoints", ["userId": .string(alice), "amount": 1]).ok)
        }
    }

    /// The running sweep (every 200 ms of real time, deciding with the injected clock) records a
    /// lapsed hold: reservation EXPIRED, seats AVAILABLE, HoldExpired with system:expiry; paying
    /// or cancelling it is HOLD_EXPIRED; a hold not yet due is left alone.
    @Test func theSweepExpiresDueHolds() throws {
        let clock = manualClock()
        try withHarness(clock: clock) { h in
            let s = try h.scenario()
            let alice = try s.registerUser("alice", charge: 100_000)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 10, price: 1_000)
            let t0 = clock.now()
            let due = try #require(try hold(s, alice, scheduleId, [5, 6]).body["reservationId"]?.string)
            clock.advance(by: 1_000)
            let later = try #require(try hold(s, alice, scheduleId, [7]).body["reservationId"]?.string)

            clock.set(t0 + Self.holdTtl + 1)
            try pollUntil("the sweep to expire \(due)") { try reservation(s, due)["status"] == "EXPIRED" }
            let seats = try seatStatuses(s, scheduleId)
            #expect(seats[5] == "AVAILABLE" && seats[6] == "AVAILABLE")
            #expect(seats[7] == "HELD")
            #expect(try reservation(s, later)["status"] == "HELD")
            let map = try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])
            #expect(map["available"] == 9 && map["held"] == 1)
            let expiredEvents = try readEvents(s, category: "reservation").filter { $0.type == "HoldExpired" }
            #expect(expiredEvents.count == 1)
            #expect(expiredEvents.first?.body["reservationId"]?.string == due)
            #expect(expiredEvents.first?.body["seatNumbers"] == [5, 6])
            #expect(expiredEvents.first?.causationId == "system:expiry")
            #expect(try s.call("PayReservation", ["userId": .string(alice), "reservationId": .string(due)]).code == "HOLD_EXPIRED")
            #expect(try s.call("CancelReservation", ["userId": .string(alice), "reservationId": .string(due)]).code == "HOLD_EXPIRED")

            // The second hold expires when its own time comes.
            clock.set(t0 + 1_000 + Self.holdTtl + 1)
            try pollUntil("the sweep to expire \(later)") { try reservation(s, later)["status"] == "EXPIRED" }
            #expect(try s.must("GetSeatMap", ["scheduleId": .string(scheduleId)])["available"] == 10)
            #expect(try s.must("GetUser", ["userId": .string(alice)])["balance"] == 100_000)
        }
    }

    /// On a one-seat schedule: a hold sells it out (ScheduleSoldOut, caused by the command), the
    /// sweep's expiry reopens it (ScheduleReopened, system:expiry), and a new hold sells it out again.
    @Test func soldOutAndReopenedThroughExpiry() throws {
        let clock = manualClock()
        try withHarness(clock: clock) { h in
            let s = try h.scenario()
            let alice = try s.registerUser("alice", charge: 10_000)
            let bob = try s.registerUser("bob", charge: 10_000)
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 1, price: 500)
            let key = "hold-" + UUID().uuidString
            let first = try s.call("HoldSeats", ["userId": .string(alice), "scheduleId": .string(scheduleId), "seatNumbers": [1]],
                                   key: key)
            let firstId = try #require(first.body["reservationId"]?.string)
            var concert = try readEvents(s, category: "concert").filter { $0.body["scheduleId"]?.string == scheduleId }
            #expect(concert.map(\.type) == ["ConcertScheduled", "ScheduleSoldOut"])
            #expect(concert.last?.causationId == key)

            clock.advance(by: Self.holdTtl + 1)
            try pollUntil("the sweep to expire \(firstId)") { try reservation(s, firstId)["status"] == "EXPIRED" }
            concert = try readEvents(s, category: "concert").filter { $0.body["scheduleId"]?.string == scheduleId }
            #expect(concert.map(\.type) == ["ConcertScheduled", "ScheduleSoldOut", "ScheduleReopened"])
            #expect(concert.last?.causationId == "system:expiry")
            #expect(try seatStatuses(s, scheduleId)[1] == "AVAILABLE")
            let listed = try s.must("ListSchedules", [:])["schedules"]?.arrayValue?.first { $0["scheduleId"]?.string == scheduleId }
            #expect(listed?["available"] == 1)

            // The expiry and the reopening are one transaction: adjacent positions.
            let all = try readEvents(s)
            let exp = try #require(all.firstIndex { $0.type == "HoldExpired" && $0.body["reservationId"]?.string == firstId })
            #expect(all[exp + 1].type == "ScheduleReopened" && all[exp + 1].position == all[exp].position + 1)

            let second = try hold(s, bob, scheduleId, [1])
            #expect(second.ok, "\(second.text)")
            concert = try readEvents(s, category: "concert").filter { $0.body["scheduleId"]?.string == scheduleId }
            #expect(concert.map(\.type) == ["ConcertScheduled", "ScheduleSoldOut", "ScheduleReopened", "ScheduleSoldOut"])
        }
    }

    /// A lapsed hold no longer counts toward maxSeatsPerUser, before any sweep; a live one does.
    @Test func lapsedHoldsDoNotCountTowardTheSeatLimit() throws {
        let clock = manualClock()
        try withHarness(clock: clock, configure: { $0.sweepInterval = 3_600_000 }) { h in
            let s = try h.scenario()
            let alice = try s.registerUser("alice")
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 10, price: 0, extra: ["maxSeatsPerUser": 2])
            let first = try #require(try hold(s, alice, scheduleId, [1, 2]).body["reservationId"]?.string)
            #expect(try hold(s, alice, scheduleId, [3]).code == "SEAT_LIMIT_EXCEEDED")
            clock.advance(by: Self.holdTtl + 1)
            let again = try hold(s, alice, scheduleId, [3, 4])
            #expect(again.ok, "\(again.text)")
            // Other seats: the lapsed hold is not recorded by this command, only ignored.
            #expect(try reservation(s, first)["status"] == "HELD")
            #expect(try hold(s, alice, scheduleId, [1]).code == "SEAT_LIMIT_EXCEEDED")
        }
    }

    /// A lapsed hold on a sold-out one-seat schedule, taken over before any sweep: HoldExpired
    /// and SeatsHeld, and neither a reopening nor a second sold-out (the net change is nil).
    @Test func takeoverOfALapsedHoldOnASoldOutSchedule() throws {
        let clock = manualClock()
        try withHarness(clock: clock, configure: { $0.sweepInterval = 3_600_000 }) { h in
            let s = try h.scenario()
            let alice = try s.registerUser("alice")
            let bob = try s.registerUser("bob")
            let scheduleId = try s.openSchedule(now: clock.now(), seats: 1, price: 0)
            let first = try #require(try hold(s, alice, scheduleId, [1]).body["reservationId"]?.string)
            clock.advance(by: Self.holdTtl + 1)
            let second = try hold(s, bob, scheduleId, [1])
            #expect(second.ok, "\(second.text)")
            let types = try readEvents(s).filter {
                $0.body["scheduleId"]?.string == scheduleId && $0.type != "ConcertScheduled"
            }.map(\.type)
            #expect(types == ["SeatsHeld", "ScheduleSoldOut", "HoldExpired", "SeatsHeld"])
            #expect(try reservation(s, first)["status"] == "EXPIRED")
        }
    }
}
