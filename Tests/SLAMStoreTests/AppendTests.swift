import Foundation
import GRDB
import SLAMDomain
import SLAMJSON
import SLAMStore
import Testing

@Suite("Appending events")
struct AppendTests {
    @Test(".noStream creates a stream, and refuses one that exists")
    func noStream() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            #expect(try append(store, writer, "s", .noStream, events(1)) == [1])
            #expect {
                try append(store, writer, "s", .noStream, events(1))
            } throws: { isStoreError($0, .wrongExpectedVersion) }
            #expect(try store.readStream("s").count == 1)
            #expect(writer.headPosition == 1)
        }
    }

    @Test(".exact(0) means the stream must not exist yet")
    func exactZero() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            #expect(try append(store, writer, "s", .exact(0), events(2)) == [1, 2])
            #expect {
                try append(store, writer, "s", .exact(0), events(1))
            } throws: { isStoreError($0, .wrongExpectedVersion) }
        }
    }

    @Test(".exact(n) appends when the stream is at n and conflicts when it is not",
          arguments: [Int64(0), 1, 2, 4, 5, 100])
    func exact(expected: Int64) throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try append(store, writer, "s", .noStream, events(3))
            try append(store, writer, "other", .noStream, events(1))
            if expected == 3 { return }
            #expect {
                try append(store, writer, "s", .exact(expected), events(2))
            } throws: { error in
                isStoreError(error, .wrongExpectedVersion) && "\(error)".contains("version 3")
            }
            #expect(try store.readStream("s").map(\.streamVersion) == [1, 2, 3])
            #expect(writer.headPosition == 4)
            #expect(try append(store, writer, "s", .exact(3), events(2)) == [5, 6])
            #expect(try store.readStream("s").map(\.streamVersion) == [1, 2, 3, 4, 5])
            #expect(try storeProblems(store) == [])
        }
    }

    @Test(".any appends whatever the stream's version, including to a new stream")
    func any() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            #expect(try append(store, writer, "s", .any, events(1)) == [1])
            #expect(try append(store, writer, "s", .any, events(2)) == [2, 3])
            #expect(try store.readStream("s").map(\.streamVersion) == [1, 2, 3])
        }
    }

    @Test("stream versions count 1, 2, 3 per stream while positions count across streams")
    func versionsAndPositions() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try append(store, writer, "a", .noStream, [event("A1")])
            try append(store, writer, "b", .noStream, [event("B1")])
            try append(store, writer, "a", .exact(1), [event("A2"), event("A3")])
            try append(store, writer, "b", .exact(1), [event("B2")])
            let a = try store.readStream("a")
            #expect(a.map(\.streamVersion) == [1, 2, 3])
            #expect(a.map(\.position) == [1, 3, 4])
            #expect(a.map(\.type) == ["A1", "A2", "A3"])
            let b = try store.readStream("b")
            #expect(b.map(\.streamVersion) == [1, 2])
            #expect(b.map(\.position) == [2, 5])
            #expect(try store.readStream("a", fromVersion: 2).map(\.type) == ["A2", "A3"])
            #expect(try store.readStream("a", fromVersion: 4).isEmpty)
            #expect(try store.readStream("missing").isEmpty)
            #expect(try store.pool.read { db in try writer.version(db, of: "a") } == 3)
            #expect(try store.pool.read { db in try writer.version(db, of: "missing") } == 0)
        }
    }

    @Test("an event is stored as given: type, body, occurredAt, causationId")
    func storedAsGiven() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            let body = #"{"name":"Zoë 🎫","n":1}"#
            try append(store, writer, "s", .noStream,
                       [event("SomethingHappened", category: "thing", body, at: 42, causation: "idem-7")])
            let e = try #require(try store.readStream("s").first)
            #expect(e == RecordedEvent(position: 1, streamId: "s", streamVersion: 1, type: "SomethingHappened",
                                       body: body, occurredAt: 42, causationId: "idem-7"))
        }
    }

    @Test("readAll(after:) pages through every event in position order")
    func readAll() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            for i in 0..<10 { try append(store, writer, "s-\(i % 3)", .any, events(i % 3 + 1)) }
            let all = try allEvents(store)
            #expect(all.count == 19)
            #expect(all.map(\.position) == Array(1...19))
            #expect(try store.readAll(after: 0, limit: 5).map(\.position) == [1, 2, 3, 4, 5])
            #expect(try store.readAll(after: 17).map(\.position) == [18, 19])
            #expect(try store.readAll(after: 19).isEmpty)
            #expect(try store.pool.read { db in try EventStore.readAll(db, after: 3, limit: 2) }.map(\.position) == [4, 5])
        }
    }

    @Test("an append of no events writes nothing")
    func emptyAppend() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            #expect(try append(store, writer, "s", .noStream, []) == [])
            #expect(try append(store, writer, "s", .noStream, events(1)) == [1])
        }
    }

    @Test("outbox rows match the events one to one, with contiguous seq and categorySeq")
    func outboxMatchesEvents() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try store.append([
                (streamId: "sch-1", expected: .noStream, events: [event("ConcertScheduled", category: "concert", #"{"x":1}"#)]),
                (streamId: "usr-1", expected: .noStream, events: [event("UserRegistered", category: "user", #"{"y":2}"#)]),
            ], using: writer)
            try append(store, writer, "res-1", .noStream, [
                event("SeatsHeld", category: "reservation", #"{"seats":[1,2]}"#, at: t0 + 5, causation: "k2"),
                event("ReservationConfirmed", category: "reservation", "{}", at: t0 + 6, causation: "k2"),
            ])
            try append(store, writer, "sch-1", .exact(1), [event("ScheduleSoldOut", category: "concert", at: t0 + 7, causation: "system:expiry")])
            try append(store, writer, "res-1", .exact(2), [event("HoldExpired", category: "reservation", at: t0 + 8)])

            let events = try allEvents(store)
            let outbox = try allOutbox(store)
            #expect(events.count == 6)
            #expect(outbox.map(\.seq) == [1, 2, 3, 4, 5, 6])
            #expect(outbox.map(\.category) == ["concert", "user", "reservation", "reservation", "concert", "reservation"])
            #expect(outbox.map(\.categorySeq) == [1, 1, 1, 2, 2, 3])
            #expect(outbox.map(\.topic) == ["concert.ConcertScheduled", "user.UserRegistered", "reservation.SeatsHeld",
                                            "reservation.ReservationConfirmed", "concert.ScheduleSoldOut",
                                            "reservation.HoldExpired"])
            #expect(try storeProblems(store) == [])
            // The outbox's own `position` column points at the event.
            let positions = try store.pool.read { db in try Int64.fetchAll(db, sql: "SELECT position FROM outbox ORDER BY seq") }
            #expect(positions == events.map(\.position))

            // The header of one row, field by field.
            let header = try JSONParser.parse(outbox[3].header)
            #expect(header["seq"]?.int64Value == 4)
            #expect(header["categorySeq"]?.int64Value == 2)
            #expect(header["storeId"]?.stringValue == store.storeId)
            #expect(header["type"]?.stringValue == "ReservationConfirmed")
            #expect(header["streamId"]?.stringValue == "res-1")
            #expect(header["streamVersion"]?.int64Value == 2)
            #expect(header["position"]?.int64Value == 4)
            #expect(header["occurredAt"]?.stringValue == "2023-11-14T22:13:20.129Z")
            #expect(header["causationId"]?.stringValue == "k2")
            #expect(outbox[4].header.contains(#""causationId":"system:expiry""#))

            // Reading one category, after a global seq.
            let reservations = try allOutbox(store, category: "reservation")
            #expect(reservations.map(\.seq) == [3, 4, 6])
            #expect(reservations.map(\.categorySeq) == [1, 2, 3])
            let later = try store.pool.read { db in try EventStore.readOutbox(db, afterSeq: 4, limit: 10, category: "reservation") }
            #expect(later.map(\.seq) == [6])
            let limited = try store.pool.read { db in try EventStore.readOutbox(db, afterSeq: 0, limit: 2, category: nil) }
            #expect(limited.map(\.seq) == [1, 2])

            let heads = try store.pool.read { db in (try EventStore.heads(db), try EventStore.categoryHeads(db)) }
            #expect(heads.0.position == 6)
            #expect(heads.0.seq == 6)
            #expect(heads.1 == ["concert": 2, "user": 1, "reservation": 3])
        }
    }

    @Test("occurredAt in the header is RFC 3339 UTC with milliseconds",
          arguments: [(Millis(0), "1970-01-01T00:00:00.000Z"),
                      (Millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z"),
                      (Millis(951_782_400_007), "2000-02-29T00:00:00.007Z"),
                      (Millis(-1), "1969-12-31T23:59:59.999Z")])
    func occurredAtFormat(ms: Millis, text: String) throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try append(store, writer, "s", .noStream, [event(at: ms)])
            let header = try JSONParser.parse(try #require(try allOutbox(store).first).header)
            #expect(header["occurredAt"]?.stringValue == text)
        }
    }

    @Test("a domain event appends under its own type and category")
    func domainEvent() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            let domain = DomainEvent.userRegistered(userId: "usr_1", name: "Ann")
            try append(store, writer, "user-usr_1", .noStream, [NewEvent(domain, occurredAt: t0, causationId: "k")])
            let recorded = try #require(try store.readStream("user-usr_1").first)
            #expect(recorded.type == domain.type)
            #expect(try recorded.decode() == domain)
            let message = try #require(try allOutbox(store).first)
            #expect(message.topic == domain.category + "." + domain.type)
        }
    }
}

@Suite("Reading the outbox by category")
struct OutboxCategoryReadTests {
    /// What `readOutbox` must return, computed the slow, obvious way.
    func reference(_ all: [OutboxMessage], afterSeq: Int64, limit: Int, category: String?) -> [OutboxMessage] {
        Array(all.filter { $0.seq > afterSeq && (category == nil || $0.category == category) }.prefix(limit))
    }

    func read(_ store: EventStore, afterSeq: Int64, limit: Int, category: String?) throws -> [OutboxMessage] {
        try store.pool.read { db in try EventStore.readOutbox(db, afterSeq: afterSeq, limit: limit, category: category) }
    }

    func fill(_ store: EventStore, categories: [String], events count: Int) throws {
        let writer = try store.makeWriter()
        var rng = SystemRandomNumberGenerator()
        var written = 0
        while written < count {
            let n = Int.random(in: 1...4, using: &rng)
            let batch = (0..<n).map { _ in event("E", category: categories.randomElement(using: &rng)!) }
            try append(store, writer, "s-\(Int.random(in: 1...20, using: &rng))", .any, batch)
            written += n
        }
    }

    @Test("every afterSeq, category and limit gives what a filter of the whole outbox gives")
    func matchesReference() throws {
        try withStore { store, _ in
            let categories = ["reservation", "user", "wallet", "queue", "concert", "rare"]
            try fill(store, categories: categories.dropLast() + Array(repeating: "reservation", count: 4), events: 300)
            try append(store, try store.makeWriter(), "rare-1", .any, [event("E", category: "rare")])
            let all = try allOutbox(store)
            let head = all.last!.seq
            for category in categories + ["missing", "reserv", "reservationX"] {
                for afterSeq in Array(0...head + 2) + [-1, Int64.max] {
                    for limit in [1, 7, 1000] {
                        let got = try read(store, afterSeq: afterSeq, limit: limit, category: category)
                        let want = reference(all, afterSeq: afterSeq, limit: limit, category: category)
                        if got != want {
                            Issue.record("category \(category) afterSeq \(afterSeq) limit \(limit): got seqs \(got.map(\.seq)), want \(want.map(\.seq))")
                            return
                        }
                    }
                }
            }
            #expect(try read(store, afterSeq: 0, limit: 1000, category: nil) == reference(all, afterSeq: 0, limit: 1000, category: nil))
        }
    }

    @Test("a hole in categorySeq (which the writer never makes) still gives the right rows")
    func holeFallsBack() throws {
        try withStore { store, _ in
            try fill(store, categories: ["a", "b"], events: 100)
            try store.pool.write { db in
                try db.execute(sql: """
                    DELETE FROM events WHERE category = 'a' AND category_seq IN
                      (SELECT category_seq FROM events WHERE category = 'a' ORDER BY category_seq LIMIT 5 OFFSET 10)
                    """)
            }
            let all = try allOutbox(store)
            for afterSeq in 0...all.last!.seq {
                #expect(try read(store, afterSeq: afterSeq, limit: 10, category: "a")
                        == reference(all, afterSeq: afterSeq, limit: 10, category: "a"))
            }
        }
    }

    @Test("category heads are found for every category, whatever their names")
    func categoryHeads() throws {
        try withStore { store, _ in
            #expect(try store.pool.read { db in try EventStore.categoryHeads(db) } == [:])
            let names = ["b", "a", "ab", "a b", "Z", "é", ""]
            let writer = try store.makeWriter()
            for (i, name) in names.enumerated() {
                try append(store, writer, "s-\(i)", .noStream, events(i + 1, category: name))
            }
            var want: [String: Int64] = [:]
            for (i, name) in names.enumerated() { want[name] = Int64(i + 1) }
            #expect(try store.pool.read { db in try EventStore.categoryHeads(db) } == want)
            #expect(writer.categoryHeads == want)
            #expect(try store.makeWriter().categoryHeads == want)
        }
    }
}
