import GRDB
import GRDBSQLite

/// A prepared statement driven through SQLite's C API, for hot loops: the writer's appends and
/// inline projections, the rebuild's millions of rows. No `StatementArguments` boxing, no
/// `Row` per step, no SQL text hashed per call. Used on a connection GRDB owns
/// (`db.sqliteConnection`), inside GRDB's access block, so GRDB's rules still hold; finalized
/// by `finalize()` or deinit, which must happen before the connection closes.
public final class RawStatement {
    public let handle: OpaquePointer
    private let connection: OpaquePointer
    private var finalized = false

    public init(_ connection: OpaquePointer, _ sql: String) throws {
        self.connection = connection
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(connection, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(connection)), sql: sql)
        }
        handle = stmt
    }

    public convenience init(_ db: Database, _ sql: String) throws {
        guard let c = db.sqliteConnection else { throw RawSQLiteError(code: SQLITE_MISUSE, message: "closed connection", sql: sql) }
        try self.init(c, sql)
    }

    deinit { finalize() }

    /// Finalizes now (deinit would do it too); the statement must not be used after.
    public func finalize() {
        guard !finalized else { return }
        finalized = true
        sqlite3_finalize(handle)
    }

    @inline(__always) public func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(handle, i, v) }
    @inline(__always) public func bind(_ i: Int32, _ v: Int) { sqlite3_bind_int64(handle, i, Int64(v)) }
    @inline(__always) public func bindNull(_ i: Int32) { sqlite3_bind_null(handle, i) }
    @inline(__always) public func bind(_ i: Int32, _ v: Int64?) {
        if let v { sqlite3_bind_int64(handle, i, v) } else { sqlite3_bind_null(handle, i) }
    }
    @inline(__always) public func bind(_ i: Int32, _ s: String) {
        var s = s
        s.withUTF8 { buf in bind(i, buf) }
    }
    @inline(__always) public func bind(_ i: Int32, _ buf: UnsafeBufferPointer<UInt8>) {
        if let base = buf.baseAddress {
            base.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                _ = sqlite3_bind_text(handle, i, $0, Int32(buf.count), SQLITE_TRANSIENT_DESTRUCTOR)
            }
        } else {
            _ = sqlite3_bind_text(handle, i, "", 0, SQLITE_TRANSIENT_DESTRUCTOR)
        }
    }
    @inline(__always) public func bind(_ i: Int32, _ s: String?) {
        if let s { bind(i, s) } else { sqlite3_bind_null(handle, i) }
    }

    /// Binds `values` to parameters 1, 2, … in order and runs the statement to its end (an
    /// INSERT, UPDATE or DELETE), then resets it.
    @inline(__always) public func execute<each V: SQLBindable>(_ values: repeat each V) throws {
        bindAll(repeat each values)
        try run()
    }

    /// Binds `values` to parameters 1, 2, … and steps once: true when a row is there to read
    /// (then `reset()` when done with it), false when there is none (already reset).
    @inline(__always) public func query<each V: SQLBindable>(_ values: repeat each V) throws -> Bool {
        bindAll(repeat each values)
        if try step() { return true }
        sqlite3_reset(handle)
        return false
    }

    @inline(__always) private func bindAll<each V: SQLBindable>(_ values: repeat each V) {
        // A statement left mid-step (a row read without `reset()`) would refuse the bindings
        // (SQLITE_MISUSE) and go on with the old ones: start from a reset statement.
        sqlite3_reset(handle)
        var i: Int32 = 0
        func next<B: SQLBindable>(_ v: B) {
            i += 1
            v.bind(to: self, at: i)
        }
        repeat next(each values)
    }

    /// Steps a statement that returns no row (an INSERT), then resets it for the next bindings.
    @inline(__always) public func run() throws {
        let rc = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard rc == SQLITE_DONE else { throw error(rc) }
    }

    /// Steps a query: true with a row, false when done.
    @inline(__always) public func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        sqlite3_reset(handle)
        throw error(rc)
    }

    /// The same error GRDB throws, with the extended code (`SQLITE_CONSTRAINT_PRIMARYKEY`), so
    /// callers handle one kind of database error whichever way the statement ran.
    private func error(_ rc: Int32) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: sqlite3_extended_errcode(connection)),
                      message: String(cString: sqlite3_errmsg(connection)), sql: String(cString: sqlite3_sql(handle)))
    }

    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    @inline(__always) public func int64(_ col: Int32) -> Int64 { sqlite3_column_int64(handle, col) }
    @inline(__always) public func isNull(_ col: Int32) -> Bool { sqlite3_column_type(handle, col) == SQLITE_NULL }
    @inline(__always) public func text(_ col: Int32) -> String {
        guard let p = sqlite3_column_text(handle, col) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, col))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    @inline(__always) public func bytes(_ col: Int32) -> [UInt8] {
        guard let p = sqlite3_column_text(handle, col) else { return [] }
        let n = Int(sqlite3_column_bytes(handle, col))
        return Array(UnsafeBufferPointer(start: p, count: n))
    }
}

/// A value `RawStatement.execute` can bind.
public protocol SQLBindable {
    func bind(to statement: RawStatement, at index: Int32)
}

extension Int64: SQLBindable {
    @inline(__always) public func bind(to s: RawStatement, at i: Int32) { s.bind(i, self) }
}
extension Int: SQLBindable {
    @inline(__always) public func bind(to s: RawStatement, at i: Int32) { s.bind(i, self) }
}
extension Bool: SQLBindable {
    @inline(__always) public func bind(to s: RawStatement, at i: Int32) { s.bind(i, self ? 1 : 0) }
}
extension String: SQLBindable {
    @inline(__always) public func bind(to s: RawStatement, at i: Int32) { s.bind(i, self) }
}
extension Optional: SQLBindable where Wrapped: SQLBindable {
    @inline(__always) public func bind(to s: RawStatement, at i: Int32) {
        if let v = self { v.bind(to: s, at: i) } else { s.bindNull(i) }
    }
}

/// A misuse found before SQLite ran (a closed connection); SQLite's own errors are GRDB's
/// `DatabaseError`.
public struct RawSQLiteError: Error, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public let sql: String
    public init(code: Int32, message: String, sql: String) {
        self.code = code
        self.message = message
        self.sql = sql
    }
    public var description: String { "SQLite error \(code): \(message) (in \(sql.prefix(120)))" }
}

/// SQLite's `SQLITE_TRANSIENT` (the C macro is a cast Swift does not import): SQLite copies the value.
public let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

/// The writer's prepared statements, by their SQL text's address: a `StaticString` literal has
/// one address for the life of the process, so a lookup hashes a pointer, not the text. One
/// cache per connection; `finalizeAll()` before the connection closes.
public final class StatementCache {
    private var statements: [UnsafeRawPointer: RawStatement] = [:]
    private var connection: OpaquePointer?

    public init() {}

    @inline(__always) public func statement(_ db: Database, _ sql: StaticString) throws -> RawStatement {
        guard let c = db.sqliteConnection else {
            throw RawSQLiteError(code: SQLITE_MISUSE, message: "closed connection", sql: "\(sql)")
        }
        if c != connection {
            // Another connection (a test's, after the first closed): statements belong to one.
            finalizeAll()
            connection = c
        }
        let key = UnsafeRawPointer(sql.utf8Start)
        if let s = statements[key] { return s }
        let s = try RawStatement(c, "\(sql)")
        statements[key] = s
        return s
    }

    public func finalizeAll() {
        for s in statements.values { s.finalize() }
        statements.removeAll()
        connection = nil
    }

    deinit { finalizeAll() }
}

/// UTF-8 bytes bound as TEXT, without making a `String` of them first.
public struct TextBytes: SQLBindable {
    public let bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    @inline(__always) public func bind(to s: RawStatement, at i: Int32) { bytes.withUnsafeBufferPointer { s.bind(i, $0) } }
}
