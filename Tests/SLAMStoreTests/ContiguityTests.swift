import Foundation
import GRDB
import SLAMStore
import Testing

/// Positions and outbox seqs stay contiguous (no gap, ever) however work is rejected or rolled
/// back: the writer's in-memory heads must follow what the database really kept.
@Suite("Contiguity after rejected and rolled-back work")
struct ContiguityTests {
    @Test("a multi-stream append whose second stream conflicts writes nothing, and leaves no gap")
    func multiStreamAtomicity() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try append(store, writer, "wallet-1", .noStream, events(2, category: "wallet"))   // positions 1, 2
            try append(store, writer, "schedule-1", .noStream, events(1, category: "concert")) // position 3

            #expect {
                try store.append([
                    (streamId: "schedule-1", expected: .exact(1), events: events(2, category: "concert")),
                    (streamId: "wallet-1", expected: .exact(1), events: events(1, category: "wallet")), // stale: it is at 2
                ], using: writer)
            } throws: { isStoreError($0, .wrongExpectedVersion) }

            #expect(try store.readStream("schedule-1").count == 1)
            #expect(try store.readStream("wallet-1").count == 2)
            #expect(try allEvents(store).count == 3)
            #expect(try allOutbox(store).count == 3)
            #expect(writer.headPosition == 3)
            #expect(writer.headSeq == 3)
            #expect(writer.categoryHeads == ["wallet": 2, "concert": 1])

            // A new category in the failed append must not leave a phantom head either.
            #expect {
                try store.append([
                    (streamId: "new-stream", expected: .noStream, events: events(1, category: "ghost")),
                    (streamId: "schedule-1", expected: .noStream, events: events(1, category: "concert")),
                ], using: writer)
            } throws: { isStoreError($0, .wrongExpectedVersion) }
            #expect(writer.categoryHeads["ghost"] == nil)

            let positions = try store.append([
                (streamId: "schedule-1", expected: .exact(1), events: events(2, category: "concert")),
                (streamId: "wallet-1", expected: .exact(2), events: events(1, category: "wallet")),
                (streamId: "new-stream", expected: .noStream, events: events(1, category: "ghost")),
            ], using: writer)
            #expect(positions == [4, 5, 6, 7])
            #expect(try allOutbox(store, category: "ghost").map(\.categorySeq) == [1])
            #expect(try allOutbox(store, category: "concert").map(\.categorySeq) == [1, 2, 3])
            #expect(try storeProblems(store) == [])
        }
    }

    @Test("a rolled-back savepoint inside one transaction leaves no gap, there or later")
    func savepointRollback() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try append(store, writer, "a", .noStream, events(1))   // position 1

            let kept = try store.pool.write { db -> [Int64] in
                var kept: [Int64] = []
                // Command 1: accepted.
                kept += try writer.append(db, streamId: "a", expected: .exact(1), events: events(1))
                // Command 2: appends, then is rejected: its savepoint rolls back.
                let mark = writer.mark()
                try db.inSavepoint {
                    let p = try writer.append(db, streamId: "b", expected: .noStream, events: events(3, category: "ghost"))
                    #expect(p == [3, 4, 5])
                    return .rollback
                }
                writer.rollback(to: mark)
                // Command 3: rejected by its expected version, inside its own savepoint.
                let mark3 = writer.mark()
                do {
                    try db.inSavepoint {
                        _ = try writer.append(db, streamId: "c", expected: .noStream, events: events(1))
                        _ = try writer.append(db, streamId: "a", expected: .exact(7), events: events(1))
                        return .commit
                    }
                    Issue.record("the stale expected version was accepted")
                } catch {
                    #expect(isStoreError(error, .wrongExpectedVersion))
                    writer.rollback(to: mark3)
                }
                // Command 4: accepted, in the same transaction.
                kept += try writer.append(db, streamId: "b", expected: .noStream, events: events(2))
                return kept
            }
            #expect(kept == [2, 3, 4])
            #expect(writer.headPosition == 4)
            #expect(writer.headSeq == 4)
            #expect(writer.categoryHeads == ["test": 4])

            // A later transaction carries on from there.
            #expect(try append(store, writer, "c", .noStream, events(1, category: "ghost")) == [5])
            #expect(try store.readStream("c").map(\.position) == [5])
            #expect(try allOutbox(store, category: "ghost").map(\.categorySeq) == [1])
            #expect(try allEvents(store).map(\.position) == [1, 2, 3, 4, 5])
            #expect(try allOutbox(store).map(\.seq) == [1, 2, 3, 4, 5])
            #expect(try storeProblems(store) == [])
        }
    }

    @Test("a transaction that fails after appending leaves no gap once the writer reloads")
    func failedTransactionThenReload() throws {
        struct Boom: Error {}
        try withStore { store, _ in
            let writer = try store.makeWriter()
            try append(store, writer, "a", .noStream, events(2))
            #expect(throws: Boom.self) {
                try store.pool.write { db in
                    try writer.append(db, streamId: "a", expected: .exact(2), events: events(3))
                    throw Boom()
                }
            }
            // The writer counted the rolled-back events; the documented cure is a reload.
            #expect(writer.headPosition == 5)
            try store.pool.read { db in try writer.reload(db) }
            #expect(writer.headPosition == 2)
            #expect(writer.headSeq == 2)
            #expect(try append(store, writer, "a", .exact(2), events(1)) == [3])
            #expect(try storeProblems(store) == [])
        }
    }

    @Test("a writer whose heads are stale fails loudly instead of overwriting or leaving a gap")
    func staleWriterFails() throws {
        try withStore { store, _ in
            let writer = try store.makeWriter()
            let other = try store.makeWriter()
            try append(store, writer, "a", .noStream, events(1))
            #expect(throws: (any Error).self) {
                try append(store, other, "b", .noStream, events(1))
            }
            #expect(other.headPosition == 0)
            #expect(try allEvents(store).count == 1)
            #expect(try storeProblems(store) == [])
        }
    }

    @Test("the command count is kept through savepoint rollbacks and written by flushMeta")
    func commandCount() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.path("store.sqlite")
        do {
            let store = try EventStore.open(path: path)
            let writer = try store.makeWriter()
            try store.pool.write { db in
                writer.countCommand()
                let mark = writer.mark()
                writer.countCommand()
                writer.rollback(to: mark)
                writer.countCommand()
                try writer.flushMeta(db)
            }
            #expect(writer.commandsExecuted == 2)
            #expect(try store.pool.read { db in try EventStore.meta(db, "commands") } == "2")
        }
        let store = try EventStore.open(path: path)
        #expect(try store.makeWriter().commandsExecuted == 2)
    }
}
