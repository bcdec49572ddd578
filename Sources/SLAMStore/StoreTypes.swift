import SLAMDomain

/// What an append expects of its stream's current version.
public enum ExpectedVersion: Equatable, Sendable {
    /// No check.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream's last event must have this version (0: the stream must not exist).
    case exact(Int64)
}

/// An event about to be appended.
public struct NewEvent: Sendable {
    public var type: String
    public var category: String
    public var body: [UInt8]
    public var occurredAt: Millis
    public var causationId: String

    public init(type: String, category: String, body: [UInt8], occurredAt: Millis, causationId: String) {
        self.type = type
        self.category = category
        self.body = body
        self.occurredAt = occurredAt
        self.causationId = causationId
    }

    public init(_ event: DomainEvent, occurredAt: Millis, causationId: String) {
        self.init(type: event.type, category: event.category, body: event.encodeBody(),
                  occurredAt: occurredAt, causationId: causationId)
    }
}

/// An event as stored.
public struct RecordedEvent: Equatable, Sendable {
    public var position: Int64
    public var streamId: String
    public var streamVersion: Int64
    public var type: String
    public var body: String
    public var occurredAt: Millis
    public var causationId: String

    public init(position: Int64, streamId: String, streamVersion: Int64, type: String, body: String,
                occurredAt: Millis, causationId: String) {
        self.position = position
        self.streamId = streamId
        self.streamVersion = streamVersion
        self.type = type
        self.body = body
        self.occurredAt = occurredAt
        self.causationId = causationId
    }

    public func decode() throws -> DomainEvent { try DomainEvent.decode(type: type, body: Array(body.utf8)) }
}

/// An outbox row: one published message of PROTOCOL.md section 7.
public struct OutboxMessage: Equatable, Sendable {
    public var seq: Int64
    public var category: String
    public var categorySeq: Int64
    public var topic: String
    public var header: String
    public var body: String

    public init(seq: Int64, category: String, categorySeq: Int64, topic: String, header: String, body: String) {
        self.seq = seq
        self.category = category
        self.categorySeq = categorySeq
        self.topic = topic
        self.header = header
        self.body = body
    }
}

/// A store error with a code, like GRDB's `DatabaseError`.
public struct StoreError: Error, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        /// An append found its stream at another version than expected.
        case wrongExpectedVersion
        /// The database belongs to something else, or is corrupt.
        case badDatabase
        /// Another process holds the database (a server, or an offline tool).
        case locked
    }
    public let code: Code
    public let message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { message }
}

/// SQLite's `synchronous` setting for the writer: FULL (2) makes every acknowledged commit
/// durable across power loss; NORMAL (1) only across a process crash.
public enum SyncMode: String, Sendable, CaseIterable {
    case full, normal
    var pragmaValue: Int { self == .full ? 2 : 1 }
}

/// A recorded reply for an idempotency key.
public struct IdempotencyRecord: Equatable, Sendable {
    public var key: String
    public var fingerprint: String
    public var ok: Bool
    public var reply: String
    public var position: Int64
    public var createdAt: Millis
    public init(key: String, fingerprint: String, ok: Bool, reply: String, position: Int64, createdAt: Millis) {
        self.key = key
        self.fingerprint = fingerprint
        self.ok = ok
        self.reply = reply
        self.position = position
        self.createdAt = createdAt
    }
}
