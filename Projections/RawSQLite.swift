import GRDB
import GRDBSQLite

/// A prepared statement driven through SQLite's C API, for the rebuild's hot loops (millions of
/// rows): no `StatementArguments` boxing, no `Row` per step. Used on a connection GRDB owns
/// (`db.sqliteConnection`), inside GRDB's access block, so GRDB's rules still hold.
final class RawStatement {
    let handle: OpaquePointer
    private let connection: OpaquePointer

    init(_ connection: OpaquePointer, _ sql: String) throws {
        self.connection = connection
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(connection, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else {
            throw RawSQLiteError(code: rc, message: String(cString: sqlite3_errmsg(connection)), sql: sql)
        }
        handle = stmt
    }

    convenience init(_ db: Database, _ sql: String) throws {
        guard let c = db.sqliteConnection else { throw RawSQLiteError(code: SQLITE_MISUSE, message: "closed connection", sql: sql) }
        try self.init(c, sql)
    }

    deinit { sqlite3_finalize(handle) }

    @inline(__always) func bind(_ i: Int32, _ v: Int64) { sqlite3_bind_int64(handle, i, v) }
    @inline(__always) func bind(_ i: Int32, _ v: Int) { sqlite3_bind_int64(handle, i, Int64(v)) }
    @inline(__always) func bindNull(_ i: Int32) { sqlite3_bind_null(handle, i) }
    @inline(__always) func bind(_ i: Int32, _ v: Int64?) {
        if let v { sqlite3_bind_int64(handle, i, v) } else { sqlite3_bind_null(handle, i) }
    }
    @inline(__always) func bind(_ i: Int32, _ s: String) {
        var s = s
        s.withUTF8 { buf in
            if let base = buf.baseAddress {
                base.withMemoryRebound(to: CChar.self, capacity: buf.count) {
                    _ = sqlite3_bind_text(handle, i, $0, Int32(buf.count), SQLITE_TRANSIENT_DESTRUCTOR)
                }
            } else {
                _ = sqlite3_bind_text(handle, i, "", 0, SQLITE_TRANSIENT_DESTRUCTOR)
            }
        }
    }
    @inline(__always) func bind(_ i: Int32, _ s: String?) {
        if let s { bind(i, s) } else { sqlite3_bind_null(handle, i) }
    }

    /// Steps a statement that returns no row (an INSERT), then resets it for the next bindings.
    @inline(__always) func run() throws {
        let rc = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard rc == SQLITE_DONE else {
            throw RawSQLiteError(code: rc, message: String(cString: sqlite3_errmsg(connection)),
                                 sql: String(cString: sqlite3_sql(handle)))
        }
    }

    /// Steps a query: true with a row, false when done.
    @inline(__always) func step() throws -> Bool {
        let rc = sqlite3_step(handle)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw RawSQLiteError(code: rc, message: String(cString: sqlite3_errmsg(connection)),
                             sql: String(cString: sqlite3_sql(handle)))
    }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    @inline(__always) func int64(_ col: Int32) -> Int64 { sqlite3_column_int64(handle, col) }
    @inline(__always) func isNull(_ col: Int32) -> Bool { sqlite3_column_type(handle, col) == SQLITE_NULL }
    @inline(__always) func text(_ col: Int32) -> String {
        guard let p = sqlite3_column_text(handle, col) else { return "" }
        let n = Int(sqlite3_column_bytes(handle, col))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    @inline(__always) func bytes(_ col: Int32) -> [UInt8] {
        guard let p = sqlite3_column_text(handle, col) else { return [] }
        let n = Int(sqlite3_column_bytes(handle, col))
        return Array(UnsafeBufferPointer(start: p, count: n))
    }
}

struct RawSQLiteError: Error, CustomStringConvertible {
    let code: Int32
    let message: String
    let sql: String
    var description: String { "SQLite error \(code): \(message) (in \(sql.prefix(120)))" }
}

/// SQLite's `SQLITE_TRANSIENT` (the C macro is a cast Swift does not import): SQLite copies the value.
let SQLITE_TRANSIENT_DESTRUCTOR = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
