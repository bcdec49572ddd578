import Testing
@testable import SLAMServer

/// While the disk is full every batch fails; the writer logs the first failure, then a line a
/// second at most with the count since the last one, and says when batches commit again.
@Suite("The writer's log of failing batches")
struct FailureLogTests {
    @Test("the first failure is logged, the rest of the second counted, the next second's first logged with the count")
    func throttled() {
        var log = FailureLog(interval: 1_000)
        #expect(log.failed("batch of 3 failed: disk full", now: 10_000) == "batch of 3 failed: disk full")
        for t in stride(from: 10_001 as Int64, to: 11_000, by: 10) {
            #expect(log.failed("batch of 1 failed: disk full", now: t) == nil)
        }
        #expect(log.unlogged == 100)
        #expect(log.failed("batch of 2 failed: disk full", now: 11_000)
                == "batch of 2 failed: disk full (and 100 more batches failed since the last line)")
        #expect(log.failed("batch of 2 failed: disk full", now: 11_500) == nil)
        #expect(log.committed() == "batches commit again, after 103 failed in a row (1 of them not logged)")
        #expect(log.committed() == nil)
    }

    @Test("after batches commit again, the next failure is logged at once, however soon")
    func newRun() {
        var log = FailureLog(interval: 1_000)
        #expect(log.failed("a", now: 0) == "a")
        #expect(log.committed() == "batches commit again, after 1 failed in a row")
        #expect(log.failed("b", now: 1) == "b")
        #expect(log.failed("c", now: 2) == nil)
        #expect(log.committed() == "batches commit again, after 2 failed in a row (1 of them not logged)")
    }

    /// The query workers' log says "queries" (a robustness probe counted 240 lines, one per
    /// query failed at the open-file limit); it is only throttled.
    @Test("another noun: failing queries")
    func queries() {
        var log = FailureLog(interval: 1_000, what: "queries")
        #expect(log.failed("query GetStats failed: x", now: 0) == "query GetStats failed: x")
        #expect(log.failed("query GetStats failed: x", now: 1) == nil)
        #expect(log.failed("query GetUser failed: x", now: 1_001)
                == "query GetUser failed: x (and 1 more queries failed since the last line)")
    }

    @Test("no failure, no line")
    func quiet() {
        var log = FailureLog()
        #expect(log.committed() == nil)
    }
}
