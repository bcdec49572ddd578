import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMProjections
import SLAMStore

/// The one writer. It owns the write connection and the decision state, drains the command
/// queue in batches and runs each batch as one transaction (group commit): per command, in a
/// savepoint, the idempotency check, the deadline, the body's fields, the decision, the appends
/// with their outbox rows, the inline projections and the idempotency record; then one commit
/// (one fsync) and all the replies. The time-driven sweeps run first in a batch, so they never
/// wait behind clients (DESIGN.md section 3).
final class CommandWriter: @unchecked Sendable {
    private let store: EventStore
    private let writer: StoreWriter
    private let clock: Clock
    /// What deadlines are judged by (`NonDecreasingClock.deadlines`).
    private let deadlineClock: Clock
    private let config: ServerConfig
    private let queue: BoundedQueue<CommandJob>
    private let replies: ReplySink
    /// Called after every commit that appended events (wakes the relay).
    private let committed: (_ headSeq: Int64, _ categories: [String: Int64]) -> Void
    /// The WAL hook installed on the writer's connection: its checkpoints run after the replies.
    private let walHook: WalHook?
    /// How far the relay has published; written to `meta` with the next transaction.
    let publishedSeq = Shared<Int64>(0)
    private var recordedPublishedSeq: Int64 = -1

    private let stats: ServerStats
    private var state = DomainState()
    private var ids = SortableIdGenerator()
    /// When the next sweep is due, on `cadence`: the sweep's cadence is real time (it must run
    /// every `sweepInterval` whatever the injected clock says, so a test clock set in the past
    /// cannot make the writer spin, nor one set in the future make it sleep, and a step of the
    /// wall clock neither stops it nor hurries it); its decisions use the injected clock.
    private var nextSweep: Millis = 0
    private let cadence = MonotonicClock()
    /// When the next prune of idempotency records is due, on `cadence` like the sweep; what it
    /// deletes is decided with the injected clock.
    private var nextPrune: Millis = 0
    /// The heads in memory may be out of step with the database: a batch failed and re-reading
    /// them failed too. The next batch re-reads them first, inside its transaction, and fails
    /// (committing nothing) if it cannot: no append ever starts from a stale head.
    private var headsStale = false
    /// Failing batches are logged a line a second at most, and their end is logged.
    private var failureLog = FailureLog()
    /// The batches' times, when `ServerConfig.timingsPath` asks for them.
    let timings: BatchTimings?

    init(store: EventStore, clock: Clock, config: ServerConfig, queue: BoundedQueue<CommandJob>, replies: ReplySink,
         stats: ServerStats, walHook: WalHook? = nil, committed: @escaping (Int64, [String: Int64]) -> Void) throws {
        self.walHook = walHook
        self.stats = stats
        timings = config.timingsPath == nil ? nil : try BatchTimings()
        self.store = store
        self.writer = try store.makeWriter()
        self.clock = clock
        deadlineClock = NonDecreasingClock.deadlines(of: clock)
        self.config = config
        self.queue = queue
        self.replies = replies
        self.committed = committed
        let published = try store.pool.read { db in Int64(try EventStore.meta(db, "publishedSeq") ?? "0") ?? 0 }
        publishedSeq.set(published)
        recordedPublishedSeq = published
    }

    var heads: (seq: Int64, categories: [String: Int64]) { (writer.headSeq, writer.categoryHeads) }

    /// Finalizes the writer's prepared statements; call once the writer is done, before the
    /// database closes.
    func close() {
        store.pool.writeWithoutTransaction { _ in writer.close() }
    }

    /// The writer thread's loop; returns once the queue is closed and drained.
    func run() {
        // Holds that expired while the server was down are recorded at once.
        runBatch([], sweep: true)
        let batch = config.groupCommit ? config.batchLimit : 1
        while true {
            let wakeAt = Date(timeIntervalSinceNow: Double(max(0, nextSweep - cadence.now())) / 1000)
            guard let jobs = queue.take(max: batch, until: wakeAt) else { break }
            let sweep = cadence.now() >= nextSweep
            if jobs.isEmpty, !sweep, publishedSeq.get() == recordedPublishedSeq { continue }
            runBatch(jobs, sweep: sweep)
        }
        runBatch([], sweep: false)
    }

    /// Runs one batch of work in one transaction; exposed for tests that drive time by hand.
    func runBatch(_ jobs: [CommandJob], sweep: Bool) {
        let now = clock.now()
        var outgoing: [[[UInt8]]] = []
        outgoing.reserveCapacity(jobs.count)
        // The head this batch starts from (re-read below when stale, so that a batch appending
        // up to a stale value still counts as having appended).
        var headBefore = writer.headSeq
        // What this transaction records as published: the relay may move on meanwhile, and the
        // newer value must not be taken as recorded (it would stay unrecorded until the next move).
        let published = publishedSeq.get()
        var sweepBacklog = false
        var failed = false
        // Keys this batch recorded, and the replies that do not depend on its commit (below).
        var recordedInBatch = Set<String>()
        var standingAlone = Set<Int>()
        // `slam serve --timings`: batches of commands only.
        let timed = timings != nil && !jobs.isEmpty
        let started = timed ? BatchTimings.now() : 0
        let startedCPU = timed ? BatchTimings.threadCPU() : 0
        var committing = started, committingCPU = startedCPU
        do {
            try store.pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    if self.headsStale {
                        try self.writer.reload(db)
                        self.headsStale = false
                        headBefore = self.writer.headSeq
                    }
                    if sweep { sweepBacklog = try self.sweep(db, now: now) }
                    for job in jobs {
                        let (frames, standsAlone) = try self.process(job, db, recordedInBatch: &recordedInBatch)
                        outgoing.append(frames)
                        if standsAlone { standingAlone.insert(outgoing.count - 1) }
                    }
                    try self.writer.flushMeta(db)
                    if published != self.recordedPublishedSeq {
                        try db.execute(sql: "UPDATE meta SET value = ? WHERE key = 'publishedSeq'", arguments: [String(published)])
                    }
                    if self.cadence.now() >= self.nextPrune { try self.prune(db, now: now) }
                    if timed {
                        committing = BatchTimings.now()
                        committingCPU = BatchTimings.threadCPU()
                        BatchTimings.committing(true)
                    }
                    return .commit
                }
            }
            if timed, let timings {
                BatchTimings.committing(false)
                timings.batch(started: started, committing: committing, done: BatchTimings.now(),
                              executionCPU: committingCPU - startedCPU, count: jobs.count)
            }
            recordedPublishedSeq = published
        } catch {
            if timed, let timings {
                BatchTimings.committing(false)
                timings.batchFailed()
            }
            // An I/O error in the commit itself whose outcome is unknown: the server stops at once
            // (`ServerConfig.ioFailure`) and answers nothing (`commitOutcomeUnknown`).
            if let e = error as? DatabaseError, Self.commitOutcomeUnknown(e) {
                config.ioFailure("batch of \(jobs.count) failed: \(error): stopping at once, so that no later commit is "
                                 + "acknowledged above pages the disk may have lost, and no command is answered as not "
                                 + "executed that the disk holds; restarting the server recovers every committed command "
                                 + "from what the disk holds")
            }
            // Nothing of the batch is committed: every client gets INTERNAL and may retry with
            // its key; the decision state is reloaded from the database on demand.
            if let line = failureLog.failed("batch of \(jobs.count) failed: \(error)", now: cadence.now()) { logError(line) }
            failed = true
            state = DomainState()
            do {
                try store.pool.read { db in try writer.reload(db) }
            } catch {
                logError("re-reading the heads after a failed batch: \(error); the next batch re-reads them first")
                headsStale = true
            }
            // A reply that does not depend on this batch's commit still goes out: a replay of a
            // record committed before it (PROTOCOL.md section 3: only the checks before the record
            // pre-empt a replay; an audit found every retry of an acknowledged command answered
            // INTERNAL while the disk was full), a key reused against such a record, a deadline
            // passed, a body refused.
            let decided = outgoing
            // Jobs the batch never reached (one before them failed it): a record committed before
            // the batch still answers them (read outside any transaction; if that fails too, INTERNAL).
            let unreached = jobs.indices.filter { $0 >= decided.count && !recordedInBatch.contains(jobs[$0].key) }
            var records: [Int: IdempotencyRecord] = [:]
            if !unreached.isEmpty {
                store.pool.writeWithoutTransaction { db in
                    for i in unreached {
                        do {
                            records[i] = try self.writer.idempotencyRecord(db, key: jobs[i].key)
                        } catch {
                            logError("reading the idempotency record of \(jobs[i].key) after a failed batch: \(error)")
                        }
                    }
                }
            }
            outgoing = jobs.enumerated().map { i, job in
                if standingAlone.contains(i) { return decided[i] }
                if let record = records[i] { return answer(job, from: record) }
                return Wire.frames(peer: job.peer, header: Wire.replyHeader(requestId: job.requestId, ok: false, replayed: false),
                                   body: Wire.errorBody(Rejection(.internal, "the command could not be committed; retry with the same key")))
            }
        }
        if !failed, let line = failureLog.committed() { logError(line) }
        // A committed sweep that left due holds behind is due again at once; otherwise (and
        // after a failed batch, which must not be retried in a loop) after the interval.
        if sweep { nextSweep = sweepBacklog && !failed ? cadence.now() : cadence.now() + config.sweepInterval }
        // Counted before the replies go: a client that has its reply sees its batch in GetStats.
        stats.batches.update { $0 += 1 }
        // Past the cap, the users are forgotten (reloaded when next named), between batches:
        // after the commit the read models hold everything the state does.
        if state.users.count > config.maxCachedUsers {
            // Freed on another thread: a million users take the writer tens of milliseconds.
            let forgotten = state.users
            state.users = [:]
            DispatchQueue.global(qos: .background).async { withExtendedLifetime(forgotten) {} }
            stats.writerUserEvictions.update { $0 += 1 }
        }
        stats.writerUsers.set(Int64(state.users.count))
        stats.writerReservations.set(Int64(state.reservations.count))
        stats.writerTokens.set(Int64(state.tokens.count))
        replies.push(outgoing)
        // The writer's own checkpoint, if one is due, after the replies and before the relay
        // wakes: a relay that starts reading before the checkpoint has finished takes a read
        // mark on the WAL and keeps the next commit from starting it over.
        if let hook = walHook, hook.restartDue {
            store.pool.writeWithoutTransaction { db in _ = hook.checkpointIfDue(db) }
        }
        // Not after a failed batch: its heads were rolled back (or, unread, are stale).
        if !failed, writer.headSeq != headBefore { committed(writer.headSeq, writer.categoryHeads) }
    }

    /// Deletes idempotency records past the retention, at most `pruneLimit`, in a savepoint of
    /// its own: a prune that fails is rolled back and tried again an interval later, never
    /// failing the batch (and every batch after it) with it. One that deleted its limit is due
    /// again with the next batch.
    private func prune(_ db: Database, now: Millis) throws {
        let limit = config.pruneLimit
        switch try inSavepoint(.prune, db, {
            try writer.pruneIdempotency(db, before: now - config.idempotencyRetention, limit: limit)
        }) {
        case .success(let pruned):
            nextPrune = pruned == limit ? 0 : cadence.now() + config.pruneInterval
        case .failure(let error):
            logError("pruning idempotency records: \(error); trying again in \(config.pruneInterval) ms")
            nextPrune = cadence.now() + config.pruneInterval
        }
    }

    /// A savepoint's statements, static text as the statement cache keys them.
    private struct Savepoint {
        let begin: StaticString, release: StaticString, rollback: StaticString
        static let command = Savepoint(begin: "SAVEPOINT command", release: "RELEASE command", rollback: "ROLLBACK TO command")
        static let prune = Savepoint(begin: "SAVEPOINT prune", release: "RELEASE prune", rollback: "ROLLBACK TO prune")
    }

    /// Runs `body` in `savepoint` (its statements prepared once): released when `body` returns;
    /// rolled back to and released when it throws, its error then returned rather than thrown, so
    /// the transaction goes on without `body`'s writes. Throws only when the savepoint statements
    /// fail (SQLite rolled the whole transaction back: no savepoint is left).
    private func inSavepoint<T>(_ savepoint: Savepoint, _ db: Database, _ body: () throws -> T) throws -> Result<T, any Error> {
        try requireTransaction(db)
        let statements = writer.statements
        try statements.statement(db, savepoint.begin).run()
        do {
            let value = try body()
            try statements.statement(db, savepoint.release).run()
            return .success(value)
        } catch {
            try statements.statement(db, savepoint.rollback).run()
            try statements.statement(db, savepoint.release).run()
            return .failure(error)
        }
    }

    /// SQLite rolls a whole transaction back on some errors, a read's included (an I/O error, a
    /// full disk, no memory). The writer's own statements run through the C API, which GRDB's
    /// check for an aborted transaction does not see: one run after that would start a
    /// transaction of its own and commit alone, past heads that counted what was rolled back.
    /// Throws, failing the batch, when the batch's transaction is gone.
    private func requireTransaction(_ db: Database) throws {
        guard db.isInsideTransaction else { throw TransactionGone() }
    }

    /// After a failure the batch goes on without (a load, or a command rolled back to its
    /// savepoint): the decision state may hold half of what was loaded or evolved, so it is
    /// dropped (reloaded on demand, this transaction's writes included), and the failure logged;
    /// unless SQLite rolled the whole transaction back, which fails the batch (`requireTransaction`).
    private func goOnAfter(_ failure: String, _ db: Database) throws {
        try requireTransaction(db)
        state = DomainState()
        logError(failure)
    }

    struct TransactionGone: Error, CustomStringConvertible {
        var description: String { "SQLite rolled the batch's transaction back" }
    }

    // MARK: One command

    /// Whether a batch's error leaves its commit's outcome unknown: an I/O error (`SQLITE_IOERR`)
    /// of the `COMMIT` itself, other than a refused write (`SQLITE_IOERR_WRITE`: a quota reached;
    /// the commit frame, written last, is then not in the file). A failed sync (`_FSYNC`): the
    /// disk may have lost pages that a later sync would not report. Any other (a wal-index region
    /// a full disk cannot grow, `_SHMSIZE`): SQLite fails the commit after the WAL, commit frame
    /// included, was written and synced, so the commit comes back after a restart; answered
    /// `INTERNAL` ("not executed, retry"), a client that gave up, or retried under another key,
    /// would have seats held or points moved it does not know of. An I/O error before the commit
    /// (a read, a lock) rolls the batch back for certain, and is answered `INTERNAL`; so is a
    /// full disk (`SQLITE_FULL`), refused before the commit frame is written.
    static func commitOutcomeUnknown(_ error: DatabaseError) -> Bool {
        Checkpointer.isIOErrorBeyondARefusedWrite(error.extendedResultCode.rawValue)
            && (error.sql?.uppercased().hasPrefix("COMMIT") ?? false)
    }

    /// The reply to a command whose key has a record: the recorded reply, replayed, or
    /// `IDEMPOTENCY_KEY_REUSED` when the record is of another command.
    private func answer(_ job: CommandJob, from record: IdempotencyRecord) -> [[UInt8]] {
        // Bytes, not String ==: canonically equivalent Unicode spellings are different commands.
        let rejection: Rejection? = record.fingerprint.utf8.elementsEqual(job.fingerprint.utf8) ? nil
            : Rejection(.idempotencyKeyReused, "idempotency key \(job.key) was used for a different command",
                        details: ["field": .string("header.idempotencyKey")])
        return Wire.frames(peer: job.peer,
                           header: Wire.replyHeader(requestId: job.requestId, ok: rejection == nil && record.ok,
                                                    position: rejection == nil ? record.position : nil,
                                                    replayed: rejection == nil),
                           body: rejection.map(Wire.errorBody) ?? Array(record.reply.utf8))
    }

    /// A command's reply, and whether it stands without the batch's commit (it wrote nothing,
    /// and read nothing the batch wrote): the reply still goes out when the batch fails.
    private func process(_ job: CommandJob, _ db: Database,
                         recordedInBatch: inout Set<String>) throws -> (frames: [[UInt8]], standsAlone: Bool) {
        func reply(ok: Bool, position: Int64?, replayed: Bool, body: [UInt8]) -> [[UInt8]] {
            Wire.frames(peer: job.peer, header: Wire.replyHeader(requestId: job.requestId, ok: ok, position: position,
                                                                 replayed: replayed), body: body)
        }
        func refuse(_ r: Rejection) -> [[UInt8]] { reply(ok: false, position: nil, replayed: false, body: Wire.errorBody(r)) }

        if let record = try writer.idempotencyRecord(db, key: job.key) {
            return (answer(job, from: record), !recordedInBatch.contains(job.key))
        }
        let now = clock.now()
        if let deadline = job.deadline, deadlineClock.now() > deadline {
            return (refuse(Rejection(.deadlineExceeded, "the deadline " + RFC3339.format(deadline) + " has passed")), true)
        }
        let command: Command
        switch job.command {
        case .success(let c): command = c
        case .failure(let r): return (refuse(r), true)
        }

        let outcome = try execute(command, causation: job.key, db: db, now: now)
        let body: [UInt8]
        // PROTOCOL.md section 2: the position of the command's last event, or the head when it
        // appended none. Not the head after an accepted command: events the server appends in
        // the same transaction for its own reasons may follow the command's (a `LeaveQueue` that
        // frees a slot admits the next waiting token, `system:queue`).
        var position = writer.headPosition
        switch outcome {
        case .accepted(let result, let lastOwn):
            body = Wire.resultBody(result)
            if let lastOwn { position = lastOwn }
        case .rejected(let r): body = Wire.errorBody(r)
        case .failed:
            // Rolled back alone; like any refusal before execution, not recorded.
            return (refuse(Rejection(.internal, "the command could not be executed and nothing of it was committed; retry with the same key")), false)
        }
        let ok: Bool
        if case .accepted = outcome { ok = true } else { ok = false }
        try requireTransaction(db)
        try writer.record(db, IdempotencyRecord(key: job.key, fingerprint: job.fingerprint, ok: ok,
                                                reply: String(decoding: body, as: UTF8.self), position: position, createdAt: now))
        recordedInBatch.insert(job.key)
        return (reply(ok: ok, position: position, replayed: false, body: body), false)
    }

    enum Outcome {
        /// The result, and the position of the last event the command itself caused (nil: none).
        case accepted(JSONObject, lastOwn: Int64?)
        case rejected(Rejection)
        /// Recording the decision failed (an SQLite error in an append or a projection): rolled
        /// back to the command's savepoint, and the batch goes on without it.
        case failed
    }

    /// Decides a command and, when accepted, appends its events in a savepoint: a failure rolls
    /// back only this command's writes, the in-memory state is dropped (it reloads from the
    /// database, the transaction's own writes included) and the outcome is `failed`, so the
    /// other commands of the batch still commit (DESIGN.md section 3). If the transaction itself
    /// is gone (SQLite rolls it back whole on some errors, and then no savepoint is left to
    /// roll back to), the error fails the batch. Deciding reads and writes nothing, so a
    /// rejection (most commands in a rush) costs no savepoint.
    private func execute(_ command: Command, causation: String, db: Database, now: Millis, counted: Bool = true) throws -> Outcome {
        do {
            try preload(command, db)
        } catch {
            // Reading only, so nothing to roll back.
            try goOnAfter("\(command) (\(causation)) could not load what it decides on: \(error)", db)
            return .failed
        }
        let decision: Decision
        do {
            decision = try Decider.decide(command, state: state, context: DecisionContext(now: now, holdTtl: config.holdTtl),
                                          ids: &ids)
        } catch {
            if counted { writer.countCommand() }
            forgetEndedNamed(by: command)
            return .rejected(error)
        }
        let mark = writer.mark()
        switch try inSavepoint(.command, db, { () throws -> Int64? in
            let lastOwn = try DecisionRecorder.record(decision, causationId: causation, now: now, state: &state,
                                                      writer: writer, db: db)
            for (event, _) in decision.events { forgetIfEnded(event) }
            if counted { writer.countCommand() }
            return lastOwn
        }) {
        case .success(let lastOwn):
            return .accepted(decision.result, lastOwn: lastOwn)
        case .failure(let error):
            writer.rollback(to: mark)
            try goOnAfter("\(command) (\(causation)) failed and was rolled back alone: \(error)", db)
            return .failed
        }
    }

    /// Ended reservations and tokens leave memory, so the state stays the size of what is live;
    /// a later command naming one loads it again, with its final status, from the read models.
    private func forgetIfEnded(_ event: DomainEvent) {
        switch event {
        case .holdExpired(let r), .holdReleased(let r), .reservationCancelled(let r, _):
            state.reservations[r.reservationId] = nil
        case .queueTokenExpired(let t), .queueLeft(let t):
            state.tokens[t.tokenId] = nil
        default:
            break
        }
    }

    /// A rejected command may have loaded an ended reservation or token to decide on (a payment
    /// of an expired hold, a leave with an expired token): it leaves memory again, as one that
    /// ends does (`forgetIfEnded`), or every such retry would keep one for good.
    private func forgetEndedNamed(by command: Command) {
        switch command {
        case .payReservation(_, let rid), .cancelReservation(_, let rid), .expireHold(let rid):
            if let status = state.reservations[rid]?.status, status == .expired || status == .released || status == .cancelled {
                state.reservations[rid] = nil
            }
        case .leaveQueue(_, let tokenId), .holdSeats(_, _, _, .some(let tokenId)):
            if state.tokens[tokenId]?.status == .expired { state.tokens[tokenId] = nil }
        default:
            break
        }
    }

    /// Loads every aggregate the command may touch, so the decider sees them.
    private func preload(_ command: Command, _ db: Database) throws {
        switch command {
        case .registerUser, .createConcert: break
        case .chargePoints(let userId, _):
            try StateLoader.loadUser(db, userId, into: &state, writer: writer)
        case .scheduleConcert(let r):
            try StateLoader.loadConcert(db, r.concertId, into: &state)
        case .joinQueue(let userId, let scheduleId):
            try StateLoader.loadUser(db, userId, into: &state, writer: writer)
            try StateLoader.loadSchedule(db, scheduleId, into: &state, writer: writer)
        case .leaveQueue(let userId, let tokenId):
            try StateLoader.loadUser(db, userId, into: &state, writer: writer)
            try StateLoader.loadToken(db, tokenId, into: &state)
            if let t = state.tokens[tokenId] { try StateLoader.loadSchedule(db, t.ref.scheduleId, into: &state, writer: writer) }
        case .holdSeats(let userId, let scheduleId, _, let token):
            try StateLoader.loadUser(db, userId, into: &state, writer: writer)
            try StateLoader.loadSchedule(db, scheduleId, into: &state, writer: writer)
            if let token { try StateLoader.loadToken(db, token, into: &state) }
        case .payReservation(let userId, let reservationId), .cancelReservation(let userId, let reservationId):
            try StateLoader.loadUser(db, userId, into: &state, writer: writer)
            try StateLoader.loadReservation(db, reservationId, into: &state, writer: writer)
            if let r = state.reservations[reservationId] {
                try StateLoader.loadSchedule(db, r.ref.scheduleId, into: &state, writer: writer)
            }
        case .expireHold(let reservationId):
            try StateLoader.loadReservation(db, reservationId, into: &state, writer: writer)
            if let r = state.reservations[reservationId] {
                try StateLoader.loadSchedule(db, r.ref.scheduleId, into: &state, writer: writer)
            }
        case .tickQueue(let scheduleId):
            try StateLoader.loadSchedule(db, scheduleId, into: &state, writer: writer)
        }
    }

    // MARK: Sweeps

    /// Records due hold expiries (found through the expiry index, never a scan), at most
    /// `sweepExpiryLimit`, and runs every queue whose next admission or expiry is due. Returns
    /// whether it left due holds behind: it reached the limit and recorded some (due holds that
    /// could not be recorded, failing or decided to nothing, were there ever a full sweep of
    /// them, must not make the writer sweep them again in a loop).
    private func sweep(_ db: Database, now: Millis) throws -> Bool {
        let limit = config.sweepExpiryLimit
        let due = try String.fetchAll(db.cachedStatement(sql: """
            SELECT reservation_id FROM reservations WHERE status = 'HELD' AND expires_at < ? ORDER BY expires_at LIMIT ?
            """), arguments: [now, limit])
        var recorded = 0
        for reservationId in due {
            let head = writer.headPosition
            _ = try execute(.expireHold(reservationId: reservationId), causation: "system:expiry", db: db, now: now, counted: false)
            if writer.headPosition != head { recorded += 1 }  // its HoldExpired appended
        }
        let queues = try String.fetchAll(db.cachedStatement(sql: "SELECT schedule_id FROM queues WHERE active > 0 OR waiting > 0"))
        for scheduleId in queues {
            do {
                try StateLoader.loadSchedule(db, scheduleId, into: &state, writer: writer)
            } catch {
                // As for a command whose aggregates cannot be loaded: this queue waits for the
                // next sweep.
                try goOnAfter("the queue of \(scheduleId) could not be loaded for its sweep: \(error)", db)
                continue
            }
            if let due = state.queueDue(scheduleId), due <= now {
                _ = try execute(.tickQueue(scheduleId: scheduleId), causation: "system:queue", db: db, now: now, counted: false)
            }
        }
        return due.count == limit && recorded > 0
    }
}
