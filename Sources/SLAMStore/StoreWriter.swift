import GRDB
import SLAMDomain
import SLAMJSON

/// The write side of the store, owned by the one writer thread. It keeps the heads (last
/// position, which is also the last outbox seq, each category's last seq, commands executed) in memory so an append
/// costs inserts only; `mark`/`rollback(to:)` keep them right when a savepoint rolls back, and
/// `reload` after a failed transaction.
public final class StoreWriter {
    public let storeId: String
    public private(set) var headPosition: Int64 = 0
    /// The last outbox seq: an event's seq is its position.
    public var headSeq: Int64 { headPosition }
    public private(set) var categoryHeads: [String: Int64] = [:]
    public private(set) var commandsExecuted: Int64 = 0
    /// The writer connection's prepared statements (appends, idempotency, inline projections).
    public let statements = StatementCache()

    public struct Mark {
        fileprivate let position: Int64, categories: [String: Int64], commands: Int64
    }

    init(_ db: Database, storeId: String) throws {
        self.storeId = storeId
        try reload(db)
    }

    /// Re-reads the heads from the database (after a transaction failed).
    public func reload(_ db: Database) throws {
        headPosition = try EventStore.heads(db).position
        categoryHeads = try EventStore.categoryHeads(db)
        commandsExecuted = Int64(try EventStore.meta(db, "commands") ?? "0") ?? 0
        flushedCommands = commandsExecuted
    }

    public func mark() -> Mark {
        Mark(position: headPosition, categories: categoryHeads, commands: commandsExecuted)
    }

    public func rollback(to mark: Mark) {
        headPosition = mark.position
        categoryHeads = mark.categories
        commandsExecuted = mark.commands
    }

    /// Finalizes the prepared statements; call before the connection closes.
    public func close() { statements.finalizeAll() }

    /// The current version of a stream (0 when it has no events).
    public func version(_ db: Database, of streamId: String) throws -> Int64 {
        let max = try statements.statement(db, "SELECT MAX(stream_version) FROM events WHERE stream_id = ?")
        guard try max.query(streamId) else { return 0 }
        defer { max.reset() }
        return max.int64(0)
    }

    /// Appends events to one stream, each with its outbox row, and returns their positions.
    /// Throws `StoreError.wrongExpectedVersion` (having written nothing) when the stream is not
    /// at the expected version. Must run inside a transaction on the writer connection.
    @discardableResult
    public func append(_ db: Database, streamId: String, expected: ExpectedVersion, events: [NewEvent]) throws -> [Int64] {
        var version: Int64
        switch expected {
        case .any:
            version = try self.version(db, of: streamId)
        case .noStream:
            version = try self.version(db, of: streamId)
            guard version == 0 else {
                throw StoreError(.wrongExpectedVersion, "stream \(streamId) exists (version \(version)); expected none")
            }
        case .exact(let v):
            version = try self.version(db, of: streamId)
            guard version == v else {
                throw StoreError(.wrongExpectedVersion, "stream \(streamId) is at version \(version); expected \(v)")
            }
        }
        let insertEvent = try statements.statement(db, """
            INSERT INTO events (position, stream_id, stream_version, type, body, occurred_at, causation_id, category, category_seq)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        var positions: [Int64] = []
        positions.reserveCapacity(events.count)
        let start = mark()
        do {
            for e in events {
                version += 1
                let position = headPosition + 1
                let categorySeq = (categoryHeads[e.category] ?? 0) + 1
                try insertEvent.execute(position, streamId, version, e.type, TextBytes(e.body), e.occurredAt, e.causationId,
                                        e.category, categorySeq)
                headPosition = position
                categoryHeads[e.category] = categorySeq
                positions.append(position)
            }
        } catch {
            rollback(to: start)
            throw error
        }
        return positions
    }

    // MARK: Idempotency

    public func idempotencyRecord(_ db: Database, key: String) throws -> IdempotencyRecord? {
        let find = try statements.statement(db, """
            SELECT fingerprint, ok, reply, position, created_at FROM idempotency WHERE key = ?
            """)
        guard try find.query(key) else { return nil }
        defer { find.reset() }
        return IdempotencyRecord(key: key, fingerprint: find.text(0), ok: find.int64(1) != 0, reply: find.text(2),
                                 position: find.int64(3), createdAt: find.int64(4))
    }

    public func record(_ db: Database, _ r: IdempotencyRecord) throws {
        try statements.statement(db, """
            INSERT INTO idempotency (key, fingerprint, ok, reply, position, created_at) VALUES (?, ?, ?, ?, ?, ?)
            """).execute(r.key, r.fingerprint, r.ok, r.reply, r.position, r.createdAt)
    }

    /// Deletes idempotency records created before `cutoff`, in the order they were recorded, up
    /// to the first one that is not (a record is never deleted before the retention has passed;
    /// one recorded after a clock step back may stay a little longer), at most `limit` at a time
    /// so a large backlog never stalls the writer; returns how many went.
    @discardableResult
    public func pruneIdempotency(_ db: Database, before cutoff: Millis, limit: Int = 5000) throws -> Int {
        let oldest = try Row.fetchCursor(db.cachedStatement(sql: "SELECT seq, created_at FROM idempotency ORDER BY seq LIMIT ?"),
                                         arguments: [limit])
        var last: Int64?
        while let row = try oldest.next() {
            guard (row[1] as Millis) < cutoff else { break }
            last = row[0]
        }
        guard let last else { return 0 }
        try db.cachedStatement(sql: "DELETE FROM idempotency WHERE seq <= ?").execute(arguments: [last])
        return db.changesCount
    }

    // MARK: Stats

    public func countCommand() { commandsExecuted += 1 }

    private var flushedCommands: Int64 = -1

    /// Writes the in-memory command count when it changed; call once per transaction (an idle
    /// sweep then writes no page and costs no fsync).
    public func flushMeta(_ db: Database) throws {
        guard commandsExecuted != flushedCommands else { return }
        try db.cachedStatement(sql: "UPDATE meta SET value = ? WHERE key = 'commands'")
            .execute(arguments: [String(commandsExecuted)])
        flushedCommands = commandsExecuted
    }
}
