import Foundation
import SLAMClient
import SLAMDomain
import SLAMProjections
@testable import SLAMServer
import SLAMStore
import Testing

@Suite("Query workers")
struct QueryWorkersTests {
    /// A stop closes the query queue; the queries still in it are answered OVERLOADED ("the server
    /// is stopping"), as a request read after the stop is, not run. Run, 150 queued maps of a
    /// 100,000-seat schedule held a stop for 55 s (robustness probe); the queue holds 20,000.
    @Test func queriesStillQueuedAtAStopAreAnsweredOverloaded() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slam-queries-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = ServerConfig.forTests(in: dir)
        let store = try EventStore.open(path: config.dbPath, migrations: Projector.migrations)
        defer { try? store.pool.close() }
        let queue = FairQueue<QueryJob>(capacity: 10, key: \.peer)
        let replies = try ReplySink()
        let workers = QueryWorkers(store: store, clock: SystemClock(), queue: queue, replies: replies, stats: ServerStats(),
                                   publishedSeq: Shared(0), config: config)
        for i in 0..<5 {
            #expect(queue.offer(QueryJob(peer: [1], requestId: "q\(i)", type: "GetStats", deadline: nil, body: [:])))
        }
        queue.close()
        workers.start(count: 2)
        workers.wait()
        let answered = try replies.takeAll().map { try SLAMClient.parse(Array($0.dropFirst())) }
        #expect(Set(answered.compactMap(\.requestId)) == ["q0", "q1", "q2", "q3", "q4"])
        for reply in answered {
            #expect(reply.code == "OVERLOADED" && reply.replayed == nil, "\(reply.bodyText)")
            #expect(reply.bodyText.contains("stopping"), "\(reply.bodyText)")
        }
    }
}
