import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMProjections
import SLAMStore

/// Reader threads: they answer queries from the read models on reader connections, never
/// through the writer, so reads run beside the writer under WAL.
final class QueryWorkers: @unchecked Sendable {
    private let store: EventStore
    private let clock: Clock
    /// What deadlines are judged by (`NonDecreasingClock.deadlines`).
    private let deadlineClock: Clock
    private let queue: FairQueue<QueryJob>
    private let replies: ReplySink
    private let finished = DispatchGroup()
    private let stats: ServerStats
    /// The relay's progress (`CommandWriter.publishedSeq`), for GetStats.
    private let publishedSeq: Shared<Int64>
    /// GetStats `synchronous` and `groupCommit`.
    private let settings: (synchronous: String, groupCommit: Bool)
    /// Failing queries (at the open-file limit, a new reader connection cannot open) are logged
    /// a line a second at most, shared by the workers: a robustness probe got a line per query.
    private var failureLog = FailureLog(what: "queries")
    private let failureLock = Lock()
    private let cadence = MonotonicClock()

    init(store: EventStore, clock: Clock, queue: FairQueue<QueryJob>, replies: ReplySink, stats: ServerStats,
         publishedSeq: Shared<Int64>, config: ServerConfig) {
        settings = (config.sync.rawValue.uppercased(), config.groupCommit)
        self.stats = stats
        self.publishedSeq = publishedSeq
        self.store = store
        self.clock = clock
        deadlineClock = NonDecreasingClock.deadlines(of: clock)
        self.queue = queue
        self.replies = replies
    }

    func start(count: Int) {
        for i in 0..<count {
            finished.enter()
            ThreadRole.start("slam-query-\(i)") { [self] in
                while let jobs = queue.take(max: 32) {
                    // Stopping (the queue is closed): what is still queued is answered OVERLOADED,
                    // as a request read after the stop is, checked query by query (a batch taken
                    // just before the stop is not run whole). A query records nothing, and a stop
                    // must not wait on thousands of seat maps for clients that may never read them.
                    replies.push(jobs.map { queue.isClosed ? $0.overloaded("the server is stopping") : answer($0) })
                }
                finished.leave()
            }
        }
    }

    /// Waits until every worker has drained the (closed) queue.
    func wait() { finished.wait() }

    func answer(_ job: QueryJob) -> [[UInt8]] {
        var ok = true
        var body: [UInt8]
        do {
            if let deadline = job.deadline, deadlineClock.now() > deadline {
                throw Rejection(.deadlineExceeded, "the deadline " + RFC3339.format(deadline) + " has passed")
            }
            body = try run(job)
        } catch let r as Rejection {
            ok = false
            body = Wire.errorBody(r)
        } catch {
            let now = cadence.now()
            let line: String? = failureLock.withLock { failureLog.failed("query \(job.type) failed: \(error)", now: now) }
            if let line { logError(line) }
            ok = false
            body = Wire.errorBody(Rejection(.internal, "the query failed"))
        }
        return Wire.frames(peer: job.peer, header: Wire.replyHeader(requestId: job.requestId, ok: ok), body: body)
    }

    static let categories = DomainEvent.categories

    private func run(_ job: QueryJob) throws -> [UInt8] {
        let f = BodyFields(job.body)
        switch job.type {
        case "GetUser":
            let userId = try f.id("userId")
            return try store.pool.read { db in try Queries.getUser(db, userId: userId) }
        case "GetPointHistory":
            let userId = try f.id("userId")
            let limit = try f.limit(default: 100, max: 1000)
            let before = try f.optionalInt("before")
            if let before, before < 1 { throw Rejection.badField("before", "before must be at least 1") }
            return try store.pool.read { db in try Queries.getPointHistory(db, userId: userId, limit: limit, before: before) }
        case "ListSchedules":
            let concertId = try f.optionalId("concertId")
            let openAt = try f.optionalTimestamp("openAt")
            return try store.pool.read { db in try Queries.listSchedules(db, concertId: concertId, openAt: openAt) }
        case "GetSeatMap":
            let scheduleId = try f.id("scheduleId")
            // A section name, by the names' rule (1 to 100 characters once trimmed, as they are
            // when stored, so the name a schedule was given finds its section): an empty or blank
            // one is BAD_REQUEST, like every other empty string, not a section that has no seats.
            let section = f.object["section"] == nil ? nil : try f.name("section")
            return try store.pool.read { db in try Queries.getSeatMap(db, scheduleId: scheduleId, section: section) }
        case "GetReservation":
            let reservationId = try f.id("reservationId")
            return try store.pool.read { db in try Queries.getReservation(db, reservationId: reservationId) }
        case "ListReservations":
            let userId = try f.id("userId")
            let limit = try f.limit(default: 100, max: 1000)
            return try store.pool.read { db in try Queries.listReservations(db, userId: userId, limit: limit) }
        case "GetQueueStatus":
            let tokenId = try f.id("tokenId")
            return try store.pool.read { db in try Queries.getQueueStatus(db, tokenId: tokenId) }
        case "ReadEvents":
            let afterSeq = try f.int("afterSeq")
            guard afterSeq >= 0 else { throw Rejection.badField("afterSeq", "afterSeq must be at least 0") }
            let limit = try f.limit(default: 1000, max: 1000)
            let category = try f.optionalString("category")
            if let category, !Self.categories.contains(category) {
                throw Rejection.badField("category", "category must be one of " + Self.categories.sorted().joined(separator: ", "))
            }
            return try store.pool.read { db in try Queries.readEvents(db, afterSeq: afterSeq, limit: limit, category: category) }
        case "GetStats":
            let extra = stats.fields
            let published = publishedSeq.get()  // before the read: what it counts is committed
            return try store.pool.read { db in
                try Queries.getStats(db, storeId: store.storeId, publishedSeq: published, extra: extra, settings: settings)
            }
        default:
            throw Rejection(.unknownType, "no query is named \(job.type)")
        }
    }
}
