@testable import SLAMServer
import Testing

/// The query queue: one line per client, taken in turn (PROTOCOL.md leaves fairness to the
/// server; the README's Limits section says what it gives).
@Suite("FairQueue")
struct FairQueueTests {
    struct Job: Equatable, CustomStringConvertible {
        var client: String
        var n: Int
        var description: String { "\(client)\(n)" }
    }

    func queue(capacity: Int = 100) -> FairQueue<Job> { FairQueue(capacity: capacity) { Array($0.client.utf8) } }

    func offer(_ q: FairQueue<Job>, _ client: String, _ count: Int) {
        for n in 0..<count { #expect(q.offer(Job(client: client, n: n))) }
    }

    @Test("one from each client in turn, each client's own in order")
    func turns() throws {
        let q = queue()
        offer(q, "A", 5)
        offer(q, "B", 1)
        offer(q, "C", 2)
        let taken = try #require(q.take(max: 100)).map(\.description)
        #expect(taken == ["A0", "B0", "C0", "A1", "C1", "A2", "A3", "A4"])
        #expect(q.count == 0)
    }

    @Test("a client flooding the queue delays another's next request by one of its own per take")
    func flood() throws {
        let q = queue(capacity: 10_000)
        offer(q, "flood", 5_000)
        #expect(try #require(q.take(max: 1)).map(\.description) == ["flood0"])
        offer(q, "B", 1)
        #expect(try #require(q.take(max: 2)).map(\.description) == ["flood1", "B0"])
    }

    @Test("taken a few at a time, turns carry over; a client whose line emptied joins at the back")
    func carryOver() throws {
        let q = queue()
        offer(q, "A", 3)
        offer(q, "B", 1)
        #expect(try #require(q.take(max: 3)).map(\.description) == ["A0", "B0", "A1"])
        #expect(q.offer(Job(client: "B", n: 1)))
        #expect(try #require(q.take(max: 3)).map(\.description) == ["A2", "B1"])
    }

    @Test("bounded in all, refusing when full or closed; a closed queue drains, then says so")
    func boundsAndClose() throws {
        let q = queue(capacity: 3)
        offer(q, "A", 2)
        #expect(q.offer(Job(client: "B", n: 0)))
        #expect(!q.offer(Job(client: "C", n: 0)))
        q.close()
        #expect(q.isClosed)
        #expect(!q.offer(Job(client: "C", n: 1)))
        #expect(try #require(q.take(max: 10)).map(\.description) == ["A0", "B0", "A1"])
        #expect(q.take(max: 10) == nil)
    }
}
