import Foundation
import GRDB
import SLAMDomain
import SLAMStore
import Testing

@Suite("Idempotency records")
struct IdempotencyTests {
    func record(_ key: String, createdAt: Millis, ok: Bool = true, position: Int64 = 0) -> IdempotencyRecord {
        IdempotencyRecord(key: key, fingerprint: "HoldSeats:{\"seats\":[1]}", ok: ok,
                          reply: #"{"reservationId":"res_1"}"#, position: position, createdAt: createdAt)
    }

    func count(_ store: EventStore) throws -> Int {
        try store.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM idempotency") ?? -1 }
    }

    @Test("a record reads back as written, and survives a reopen")
    func recordAndLookup() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("store.sqlite")
        let accepted = record("k-ok", createdAt: t0, ok: true, position: 7)
        let rejected = IdempotencyRecord(key: "k-rejected", fingerprint: "PayReservation:{}", ok: false,
                                         reply: #"{"code":"HOLD_EXPIRED"}"#, position: 0, createdAt: t0 + 1)
        do {
            let store = try EventStore.open(path: path)
            let writer = try store.makeWriter()
            try store.pool.write { db in
                #expect(try writer.idempotencyRecord(db, key: "k-ok") == nil)
                try writer.record(db, accepted)
                try writer.record(db, rejected)
                // Visible inside the same transaction, as a retry later in the same batch needs.
                #expect(try writer.idempotencyRecord(db, key: "k-ok") == accepted)
            }
        }
        let store = try EventStore.open(path: path)
        let writer = try store.makeWriter()
        try store.pool.read { db throws in
            #expect(try writer.idempotencyRecord(db, key: "k-ok") == accepted)
            #expect(try writer.idempotencyRecord(db, key: "k-rejected") == rejected)
            #expect(try writer.idempotencyRecord(db, key: "K-OK") == nil)
            #expect(try writer.idempotencyRecord(db, key: "missing") == nil)
        }
    }

    @Test("recording a key twice is a uniqueness violation, and the first record stays")
    func duplicateKey() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            let first = record("k", createdAt: t0, position: 1)
            try store.pool.write { db in try writer.record(db, first) }
            #expect {
                try store.pool.write { db in try writer.record(db, record("k", createdAt: t0 + 1, ok: false, position: 2)) }
            } throws: { error in
                (error as? DatabaseError)?.extendedResultCode == .SQLITE_CONSTRAINT_UNIQUE
            }
            #expect(try store.pool.read { db in try writer.idempotencyRecord(db, key: "k") } == first)
            #expect(try count(store) == 1)
        }
    }

    @Test("a record rolled back with its savepoint is gone")
    func rolledBackRecord() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try store.pool.write { db in
                try db.inSavepoint {
                    try writer.record(db, record("k", createdAt: t0))
                    return .rollback
                }
                #expect(try writer.idempotencyRecord(db, key: "k") == nil)
                try writer.record(db, record("k", createdAt: t0))
            }
            #expect(try count(store) == 1)
        }
    }

    @Test("pruning deletes only records older than the cutoff, in the order recorded, at most limit at a time")
    func prune() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            // Keys out of order, so the order recorded is not the keys' order.
            let ages: [Millis] = [100, 101, 102, 103, 104, 105, 106, 107, 108, 109]
            try store.pool.write { db in
                for age in ages { try writer.record(db, record("k-\(209 - age)", createdAt: age)) }
            }
            func remaining() throws -> [Millis] {
                try store.pool.read { db in try Millis.fetchAll(db, sql: "SELECT created_at FROM idempotency ORDER BY seq") }
            }
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 105, limit: 3) } == 3)
            #expect(try remaining() == [103, 104, 105, 106, 107, 108, 109])
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 105, limit: 3) } == 2)
            #expect(try remaining() == [105, 106, 107, 108, 109])
            // The cutoff itself is kept: "before" is strict.
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 105, limit: 3) } == 0)
            #expect(try remaining() == [105, 106, 107, 108, 109])
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 1_000) } == 5)
            #expect(try remaining() == [])
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 1_000) } == 0)
        }
    }

    @Test("after a clock step back, pruning stops at the first record not older than the cutoff: none is deleted early")
    func pruneAfterClockStep() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            // Recorded in this order: the clock stepped back after 108.
            let ages: [Millis] = [100, 101, 108, 102, 103]
            try store.pool.write { db in
                for (i, age) in ages.enumerated() { try writer.record(db, record("k-\(i)", createdAt: age)) }
            }
            func remaining() throws -> [Millis] {
                try store.pool.read { db in try Millis.fetchAll(db, sql: "SELECT created_at FROM idempotency ORDER BY seq") }
            }
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 105) } == 2)
            #expect(try remaining() == [108, 102, 103], "102 and 103 wait behind 108, which is not yet old enough")
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 108) } == 0)
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: 109) } == 3)
            #expect(try remaining() == [])
            // Lookups still find records by key after pruning, and new ones append.
            try store.pool.write { db in try writer.record(db, record("k-new", createdAt: 200)) }
            #expect(try store.pool.write { db in try writer.idempotencyRecord(db, key: "k-new") }?.createdAt == 200)
            #expect(try store.pool.write { db in try writer.idempotencyRecord(db, key: "k-0") } == nil)
        }
    }

    @Test("pruning leaves events and the outbox alone")
    func pruneTouchesOnlyIdempotency() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try store.pool.write { db in
                try writer.append(db, streamId: "s", expected: .noStream, events: events(2))
                try writer.record(db, record("k", createdAt: 1))
            }
            #expect(try store.pool.write { db in try writer.pruneIdempotency(db, before: t0 * 2) } == 1)
            #expect(try allEvents(store).count == 2)
            #expect(try allOutbox(store).count == 2)
        }
    }
}
