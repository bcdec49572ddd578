import ArgumentParser
import Foundation
import GRDB
import SLAMBench
import SLAMDomain
import SLAMProjections
import SLAMServer
import SLAMStore

/// Writes a ticket rush into a new store, fast, for the rebuild and start-up benchmark
/// (`tools/rebuild_bench.py`): every command goes through the real deciders, appends through
/// the real `StoreWriter` (events with their outbox columns) and applies the real inline projections, as
/// the server's writer does, but thousands of commands per transaction with `synchronous =
/// NORMAL` and a simulated clock (one millisecond per command) so holds lapse and expire.
///
/// The rush: schedules of `--seats` seats in two sections, every fifth with a waiting queue;
/// fans register, charge points, (join the queue,) hold 1–4 seats; 75 % pay, 10 % release,
/// 15 % let the hold lapse (the expiry sweep records it); a tenth of the paid cancel later; a
/// third come back for a second hold. Idempotency records are not written (no client keys).
struct DebugGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-generate", abstract: "Generate a store with a realistic rush (benchmarks).", shouldDisplay: false)

    @Option(help: "The database file to create (must not exist).")
    var db: String
    @Option(help: "Stop after about this many events.")
    var events = 10_000_000
    @Option(help: "Seats per schedule.")
    var seats = 50_000
    @Option(help: "Commands per transaction.")
    var batch = 20_000
    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    func validate() throws {
        guard (4...Limits.maxSeatsPerSchedule).contains(seats) else {
            throw ValidationError("--seats must be 4 to \(Limits.maxSeatsPerSchedule)")
        }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard (1...1_000_000_000).contains(events) else { throw ValidationError("--events must be 1 to 1000000000") }
        try OptionCheck.databasePath(db)
        guard !FileManager.default.fileExists(atPath: db) else { throw ValidationError("--db \(db) exists; give a new file") }
    }

    func run() throws {
        let lock = try StoreLock.acquire(database: db, holder: "slam debug-generate")
        defer { lock.release() }
        let store = try EventStore.open(path: db, sync: .normal, migrations: Projector.migrations, readers: 2)
        try store.pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA cache_size = -1048576") }
        var gen = Generator(store: store, writer: try store.makeWriter(), seats: seats, seed: seed,
                            target: Int64(events))
        let started = Date()
        var lastReport = Date()
        while gen.writer.headPosition < Int64(events) {
            try store.pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    for _ in 0..<batch {
                        try gen.step(db)
                        if gen.writer.headPosition >= Int64(events) { break }
                    }
                    try gen.writer.flushMeta(db)
                    return .commit
                }
            }
            if Date().timeIntervalSince(lastReport) > 5 {
                lastReport = Date()
                let rate = Double(gen.writer.headPosition) / Date().timeIntervalSince(started)
                writeStandardError("debug-generate: \(gen.writer.headPosition) events, \(Int(rate)) events/s\n")
            }
        }
        try store.pool.writeWithoutTransaction { db in _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
        gen.writer.close()
        try store.pool.close()
        print("generated \(gen.writer.headPosition) events from \(gen.commands) commands (\(gen.rejected) rejected) in "
              + "\(fmt(Date().timeIntervalSince(started))) s: \(gen.usersMade) users, \(gen.schedulesMade) schedules, "
              + "\(gen.holds) holds, \(gen.pays) payments, \(gen.cancels) cancellations, \(gen.releases) releases, "
              + "\(gen.expiries) expiries")
    }
}

private struct Generator {
    let store: EventStore
    let writer: StoreWriter
    let seats: Int
    var rng: SplitMix
    var state = DomainState()
    var ids = SortableIdGenerator()
    var now: Millis
    let holdTtl: Millis = 300_000

    // Counters.
    var commands = 0, rejected = 0, usersMade = 0, schedulesMade = 0, holds = 0, pays = 0, cancels = 0
    var releases = 0, expiries = 0

    /// The schedule fans are rushing now, its free seats, and whether it has a queue.
    var current: String?
    var free: [Int] = []
    var queued = false
    var tokenOf: [String: String] = [:]   // reservation -> queue token to leave after it
    /// Later work, each FIFO in due order (one fixed delay each).
    var toPay: [(due: Millis, user: String, reservation: String)] = []
    var toRelease: [(due: Millis, user: String, reservation: String)] = []
    var toCancel: [(due: Millis, user: String, reservation: String)] = []
    var toExpire: [(due: Millis, reservation: String)] = []
    var returning: [(due: Millis, user: String)] = []
    var heads = [0, 0, 0, 0, 0]
    var sinceSweep = 0

    init(store: EventStore, writer: StoreWriter, seats: Int, seed: UInt64, target: Int64) {
        self.store = store
        self.writer = writer
        self.seats = seats
        rng = SplitMix(seed: seed)
        // End near the real now: about 1.6 commands per event... one millisecond per command.
        now = SystemClock().now() - target * 10 / 16 - 60_000
    }

    mutating func step(_ db: Database) throws {
        sinceSweep += 1
        if sinceSweep >= 200 {
            sinceSweep = 0
            try sweep(db)
            return
        }
        if heads[0] < toPay.count, toPay[heads[0]].due <= now {
            let p = toPay[heads[0]]; heads[0] += 1
            if try exec(.payReservation(userId: p.user, reservationId: p.reservation), db) != nil {
                pays += 1
                if Int.random(in: 0..<10, using: &rng) == 0 { toCancel.append((now + 120_000, p.user, p.reservation)) }
            } else if let r = state.reservations[p.reservation] {
                toExpire.append((r.expiresAt + 1, p.reservation))
            }
            if let token = tokenOf.removeValue(forKey: p.reservation) {
                _ = try exec(.leaveQueue(userId: p.user, tokenId: token), db)
            }
            return
        }
        if heads[1] < toRelease.count, toRelease[heads[1]].due <= now {
            let p = toRelease[heads[1]]; heads[1] += 1
            if try exec(.cancelReservation(userId: p.user, reservationId: p.reservation), db) != nil {
                releases += 1
                freeSeats(of: p.reservation)
                state.reservations[p.reservation] = nil
            }
            if let token = tokenOf.removeValue(forKey: p.reservation) { _ = try exec(.leaveQueue(userId: p.user, tokenId: token), db) }
            return
        }
        if heads[2] < toCancel.count, toCancel[heads[2]].due <= now {
            let p = toCancel[heads[2]]; heads[2] += 1
            if try exec(.cancelReservation(userId: p.user, reservationId: p.reservation), db) != nil {
                cancels += 1
                freeSeats(of: p.reservation)
                state.reservations[p.reservation] = nil
            }
            return
        }
        if heads[4] < returning.count, returning[heads[4]].due <= now {
            let r = returning[heads[4]]; heads[4] += 1
            try hold(r.user, db)
            return
        }
        // A new fan.
        guard let user = try exec(.registerUser(name: "fan \(usersMade + 1)"), db)?.result["userId"]?.stringValue else { return }
        usersMade += 1
        _ = try exec(.chargePoints(userId: user, amount: Int64.random(in: 300...2000, using: &rng) * 10), db)
        try hold(user, db)
        if Int.random(in: 0..<3, using: &rng) == 0 { returning.append((now + 90_000, user)) }
        compact()
    }

    /// A fan holds 1–4 seats of the current schedule, through its queue if it has one, and
    /// decides now what they will do with the hold.
    mutating func hold(_ user: String, _ db: Database) throws {
        let count = Int.random(in: 1...4, using: &rng)
        if current == nil || free.count < count { try newSchedule(db) }
        let scheduleId = current!
        var token: String?
        if queued {
            guard let joined = try exec(.joinQueue(userId: user, scheduleId: scheduleId), db),
                  let t = joined.result["tokenId"]?.stringValue else { return }
            guard joined.result["status"]?.stringValue == "ACTIVE" else {
                _ = try exec(.leaveQueue(userId: user, tokenId: t), db)
                return
            }
            token = t
        }
        var picked: [Int] = []
        for _ in 0..<count {
            let i = Int.random(in: 0..<free.count, using: &rng)
            picked.append(free[i])
            free.swapAt(i, free.count - 1)
            free.removeLast()
        }
        guard let held = try exec(.holdSeats(userId: user, scheduleId: scheduleId, seatNumbers: picked, queueToken: token), db),
              let reservation = held.result["reservationId"]?.stringValue else {
            free += picked
            if let token { _ = try exec(.leaveQueue(userId: user, tokenId: token), db) }
            return
        }
        holds += 1
        if let token { tokenOf[reservation] = token }
        let fate = Int.random(in: 0..<100, using: &rng)
        if fate < 75 {
            toPay.append((now + 20_000, user, reservation))
        } else if fate < 85 {
            toRelease.append((now + 30_000, user, reservation))
        } else {
            toExpire.append((now + holdTtl + 1, reservation))
            if let token = tokenOf.removeValue(forKey: reservation) { _ = try exec(.leaveQueue(userId: user, tokenId: token), db) }
        }
    }

    mutating func newSchedule(_ db: Database) throws {
        guard let concert = try exec(.createConcert(name: "Rush \(schedulesMade + 1)", artist: "Artist \(schedulesMade % 97)"), db)?
            .result["concertId"]?.stringValue else { return }
        queued = schedulesMade % 5 == 4
        let vip = max(1, seats / 10)
        let request = ScheduleRequest(
            concertId: concert, startsAt: now + 400 * 86_400_000, reservationOpensAt: now - 3_600_000,
            reservationClosesAt: now + 365 * 86_400_000,
            sections: [Section(name: "VIP", seatCount: vip, price: 300), Section(name: "Floor", seatCount: max(1, seats - vip), price: 120)],
            maxSeatsPerUser: 4, queue: queued ? QueueRequest(maxActive: 2000, activeTtlSeconds: 600, waitingTtlSeconds: 3600) : nil)
        guard let s = try exec(.scheduleConcert(request), db)?.result["scheduleId"]?.stringValue else { return }
        schedulesMade += 1
        current = s
        free = Array(1...state.schedules[s]!.definition.seatCount)
    }

    /// The expiry and queue sweeps, as the server's writer runs them.
    mutating func sweep(_ db: Database) throws {
        while heads[3] < toExpire.count, toExpire[heads[3]].due <= now {
            let e = toExpire[heads[3]]; heads[3] += 1
            if try exec(.expireHold(reservationId: e.reservation), db, cause: "system:expiry", counted: false) != nil {
                if state.reservations[e.reservation]?.status == .expired {
                    expiries += 1
                    freeSeats(of: e.reservation)
                    state.reservations[e.reservation] = nil
                }
            }
        }
        for scheduleId in Array(state.queues.keys) {
            if let due = state.queueDue(scheduleId), due <= now {
                _ = try exec(.tickQueue(scheduleId: scheduleId), db, cause: "system:queue", counted: false)
            }
        }
    }

    mutating func freeSeats(of reservation: String) {
        guard let r = state.reservations[reservation], r.ref.scheduleId == current else { return }
        free += r.ref.seatNumbers
    }

    mutating func compact() {
        func trim<T>(_ a: inout [T], _ h: inout Int) {
            if h > 100_000 { a.removeFirst(h); h = 0 }
        }
        trim(&toPay, &heads[0]); trim(&toRelease, &heads[1]); trim(&toCancel, &heads[2]); trim(&toExpire, &heads[3])
        trim(&returning, &heads[4])
    }

    /// Decides one command against the in-memory state and records it as the server's writer
    /// does: appends with expected versions, inline projections, evolve. Nil when rejected.
    mutating func exec(_ command: Command, _ db: Database, cause: String? = nil, counted: Bool = true) throws -> Decision? {
        commands += 1
        now += 1
        let decision: Decision
        do {
            decision = try Decider.decide(command, state: state, context: DecisionContext(now: now, holdTtl: holdTtl), ids: &ids)
        } catch {
            rejected += 1
            if counted { writer.countCommand() }
            return nil
        }
        try DecisionRecorder.record(decision, causationId: cause ?? "gen-\(commands)", now: now, state: &state,
                                    writer: writer, db: db)
        if counted { writer.countCommand() }
        return decision
    }

}
