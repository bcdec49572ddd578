import Foundation
import GRDB
import GRDBSQLite
import SLAMStore

/// Where a table's rows go, one value at a time in column order, `endRow()` after each row,
/// `finish()` after the last. Text values point into memory that stays put until `finish()`
/// returns (the fold's arena, static strings).
protocol RowSink: AnyObject {
    func text(_ p: UnsafeBufferPointer<UInt8>)
    func int(_ v: Int64)
    func null()
    func endRow() throws
    func finish() throws
}

extension RowSink {
    @inline(__always) func int(_ v: Int) { int(Int64(v)) }
    @inline(__always) func int(_ v: Int64?) { if let v { int(v) } else { null() } }
    @inline(__always) func text(_ s: StaticString) {
        text(UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
}

/// One buffered value.
struct Cell {
    var kind: UInt8          // 0 null, 1 int, 2 text
    var int: Int64
    var ptr: UnsafePointer<UInt8>?
    var len: Int
}

@inline(__always) func bind(_ h: OpaquePointer, _ i: Int32, _ c: Cell) {
    switch c.kind {
    case 0: sqlite3_bind_null(h, i)
    case 1: sqlite3_bind_int64(h, i, c.int)
    default:
        if c.len == 0 || c.ptr == nil {
            sqlite3_bind_text(h, i, "", 0, SQLITE_TRANSIENT_DESTRUCTOR)
        } else {
            c.ptr!.withMemoryRebound(to: CChar.self, capacity: c.len) {
                _ = sqlite3_bind_text(h, i, $0, Int32(c.len), nil)   // nil: SQLITE_STATIC (the bytes outlive the step)
            }
        }
    }
}

/// Inserts rows in batches of `rowsPerStatement` through one multi-row `INSERT ... VALUES
/// (...), (...), ...` statement: SQLite runs one statement per batch instead of per row, and
/// text is bound in place (`SQLITE_STATIC`).
final class BatchInserter: RowSink {
    private let connection: OpaquePointer
    private let columns: Int
    private let rowsPerStatement: Int
    private let full: RawStatement
    private let table: String
    private let columnList: String
    @exclusivity(unchecked) private var cells: [Cell] = []
    @exclusivity(unchecked) private var rows = 0

    init(_ db: Database, table: String, columns: [String], rowsPerStatement: Int = 64) throws {
        guard let c = db.sqliteConnection else { throw RawSQLiteError(code: SQLITE_MISUSE, message: "closed connection", sql: table) }
        connection = c
        self.columns = columns.count
        self.rowsPerStatement = rowsPerStatement
        self.table = table
        columnList = columns.joined(separator: ", ")
        full = try RawStatement(c, Self.sql(table, columnList, columns.count, rowsPerStatement))
        cells.reserveCapacity(columns.count * rowsPerStatement)
    }

    static func sql(_ table: String, _ columnList: String, _ columns: Int, _ rows: Int) -> String {
        let one = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        return "INSERT INTO \(table) (\(columnList)) VALUES " + Array(repeating: one, count: rows).joined(separator: ", ")
    }

    @inline(__always) func int(_ v: Int64) { cells.append(Cell(kind: 1, int: v, ptr: nil, len: 0)) }
    @inline(__always) func null() { cells.append(Cell(kind: 0, int: 0, ptr: nil, len: 0)) }
    @inline(__always) func text(_ p: UnsafeBufferPointer<UInt8>) { cells.append(Cell(kind: 2, int: 0, ptr: p.baseAddress, len: p.count)) }

    @inline(__always) func endRow() throws {
        rows += 1
        if rows == rowsPerStatement { try flush(full) }
    }

    func finish() throws {
        guard rows > 0 else { return }
        try flush(try RawStatement(connection, Self.sql(table, columnList, columns, rows)))
    }

    private func flush(_ stmt: RawStatement) throws {
        let h = stmt.handle
        for k in 0..<cells.count { bind(h, Int32(k + 1), cells[k]) }
        try stmt.run()
        rows = 0
        cells.removeAll(keepingCapacity: true)
    }
}

/// Upserts (`INSERT OR REPLACE`) the rows whose ordinals (0-based, in emission order) are
/// listed, ignoring the others: `TableDiff`'s second pass.
final class UpsertSink: RowSink {
    private let stmt: RawStatement
    private let ordinals: [Int]
    private var next = 0
    private var ordinal = 0
    @exclusivity(unchecked) private var cells: [Cell] = []

    init(_ db: Database, table: String, columns: [String], ordinals: [Int]) throws {
        stmt = try RawStatement(db, "INSERT OR REPLACE INTO \(table) (\(columns.joined(separator: ", "))) VALUES ("
                                + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")")
        self.ordinals = ordinals
    }

    private var wanted: Bool { next < ordinals.count && ordinals[next] == ordinal }
    @inline(__always) func int(_ v: Int64) { if wanted { cells.append(Cell(kind: 1, int: v, ptr: nil, len: 0)) } }
    @inline(__always) func null() { if wanted { cells.append(Cell(kind: 0, int: 0, ptr: nil, len: 0)) } }
    @inline(__always) func text(_ p: UnsafeBufferPointer<UInt8>) {
        if wanted { cells.append(Cell(kind: 2, int: 0, ptr: p.baseAddress, len: p.count)) }
    }
    func endRow() throws {
        if wanted {
            for k in 0..<cells.count { bind(stmt.handle, Int32(k + 1), cells[k]) }
            try stmt.run()
            cells.removeAll(keepingCapacity: true)
            next += 1
        }
        ordinal += 1
    }
    func finish() throws {}
}

/// The `diff` way of `ProjectionWriter`: merges the fold's rows (emitted in key order) with the
/// table's rows (read in key order), comparing each value in place as it is emitted, and
/// remembers the ordinals of fold rows that are missing or different (to upsert in a second
/// pass) and the keys of table rows the fold does not have (to delete). Stops once more than a
/// fifth of the rows differ (`overflowed`): replacing the whole table is cheaper then.
final class TableDiff: RowSink {
    private let schema: String, table: String
    private let columns: [String]
    private let keyColumns: Int
    private let limit: Int
    private var cursor: RawStatement?
    private let h: OpaquePointer
    private var live = false

    @exclusivity(unchecked) private var key: [Cell]
    private var column = 0
    private var matched = false
    private var differs = false
    private var ordinal = 0
    @exclusivity(unchecked) private(set) var upserts: [Int] = []
    @exclusivity(unchecked) private var deleteKeys: [DatabaseValue] = []
    private(set) var inserted = 0, updated = 0, deleted = 0
    private(set) var overflowed = false

    init(_ db: Database, schema: String, table: String, columns: [String], keyColumns: Int, expectedRows: Int) throws {
        guard let c = db.sqliteConnection else { throw RawSQLiteError(code: SQLITE_MISUSE, message: "closed connection", sql: table) }
        self.schema = schema
        self.table = table
        self.columns = columns
        self.keyColumns = keyColumns
        limit = max(10_000, expectedRows / 5)
        key = [Cell](repeating: Cell(kind: 0, int: 0, ptr: nil, len: 0), count: keyColumns)
        let keys = columns.prefix(keyColumns).joined(separator: ", ")
        cursor = try RawStatement(c, "SELECT \(columns.joined(separator: ", ")) FROM \(schema).\(table) ORDER BY \(keys)")
        h = cursor!.handle
        live = try cursor!.step()
    }

    @inline(__always) func int(_ v: Int64) { value(Cell(kind: 1, int: v, ptr: nil, len: 0)) }
    @inline(__always) func null() { value(Cell(kind: 0, int: 0, ptr: nil, len: 0)) }
    @inline(__always) func text(_ p: UnsafeBufferPointer<UInt8>) { value(Cell(kind: 2, int: 0, ptr: p.baseAddress, len: p.count)) }

    @inline(__always) private func value(_ c: Cell) {
        let k = column
        column += 1
        if overflowed { return }
        if k < keyColumns {
            key[k] = c
            if k == keyColumns - 1 { resolveKey() }
        } else if matched && !differs {
            if !same(c, k) { differs = true }
        }
    }

    /// Positions the table cursor at the fold row's key, remembering the table rows before it
    /// as deletes.
    private func resolveKey() {
        while live {
            let c = compareKey()
            if c > 0 {
                rememberDelete()
                if overflowed { return }
                live = (try? cursor!.step()) ?? false
                continue
            }
            matched = c == 0
            return
        }
        matched = false
    }

    func endRow() throws {
        defer {
            column = 0
            matched = false
            differs = false
            ordinal += 1
        }
        if overflowed { return }
        if matched {
            if differs { remember(); updated += 1 }
            live = try cursor!.step()
        } else {
            remember(); inserted += 1
        }
    }

    /// After the last row: every table row left is one to delete. Closes the cursor.
    func finish() throws {
        while live, !overflowed {
            rememberDelete()
            live = try cursor!.step()
        }
        cursor = nil
    }

    /// Deletes the table rows the fold does not have (on the writing connection).
    func applyDeletes(_ db: Database) throws {
        guard !deleteKeys.isEmpty else { return }
        let cond = columns.prefix(keyColumns).map { "\($0) = ?" }.joined(separator: " AND ")
        let stmt = try RawStatement(db, "DELETE FROM \(schema).\(table) WHERE \(cond)")
        var k = 0
        while k < deleteKeys.count {
            for c in 0..<keyColumns {
                let i = Int32(c + 1)
                switch deleteKeys[k + c].storage {
                case .null: sqlite3_bind_null(stmt.handle, i)
                case .int64(let v): sqlite3_bind_int64(stmt.handle, i, v)
                case .double(let v): sqlite3_bind_double(stmt.handle, i, v)
                case .string(let s): sqlite3_bind_text(stmt.handle, i, s, -1, SQLITE_TRANSIENT_DESTRUCTOR)
                case .blob(let d): _ = d.withUnsafeBytes { sqlite3_bind_blob(stmt.handle, i, $0.baseAddress, Int32(d.count), SQLITE_TRANSIENT_DESTRUCTOR) }
                }
            }
            try stmt.run()
            k += keyColumns
        }
    }

    private func remember() {
        guard upserts.count + deleted < limit else { overflowed = true; return }
        upserts.append(ordinal)
    }

    private func rememberDelete() {
        guard upserts.count + deleted < limit else { overflowed = true; return }
        for k in 0..<Int32(keyColumns) {
            switch sqlite3_column_type(h, k) {
            case SQLITE_NULL: deleteKeys.append(.null)
            case SQLITE_INTEGER: deleteKeys.append(sqlite3_column_int64(h, k).databaseValue)
            case SQLITE_FLOAT: deleteKeys.append(sqlite3_column_double(h, k).databaseValue)
            case SQLITE_TEXT:
                let n = Int(sqlite3_column_bytes(h, k))
                let p = sqlite3_column_text(h, k)
                deleteKeys.append(String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self).databaseValue)
            default:
                let n = Int(sqlite3_column_bytes(h, k))
                let p = sqlite3_column_blob(h, k)
                deleteKeys.append(Data(bytes: p!, count: n).databaseValue)
            }
        }
        deleted += 1
    }

    /// The fold row's key against the table row's, in SQLite's order (NULL < numbers < text <
    /// blob; text by bytes).
    private func compareKey() -> Int {
        for k in 0..<keyColumns {
            let type = sqlite3_column_type(h, Int32(k))
            let liveRank: Int
            switch type {
            case SQLITE_NULL: liveRank = 0
            case SQLITE_INTEGER, SQLITE_FLOAT: liveRank = 1
            case SQLITE_TEXT: liveRank = 2
            default: liveRank = 3
            }
            let c = key[k]
            let foldRank = Int(c.kind)
            if foldRank != liveRank { return foldRank < liveRank ? -1 : 1 }
            switch foldRank {
            case 0: continue
            case 1:
                if type == SQLITE_FLOAT {
                    let l = sqlite3_column_double(h, Int32(k)), f = Double(c.int)
                    if f != l { return f < l ? -1 : 1 }
                } else {
                    let l = sqlite3_column_int64(h, Int32(k))
                    if c.int != l { return c.int < l ? -1 : 1 }
                }
            default:
                let n = Int(sqlite3_column_bytes(h, Int32(k)))
                let p = sqlite3_column_text(h, Int32(k))
                let r = bytesCompare(UnsafeBufferPointer(start: c.ptr, count: c.len), UnsafeBufferPointer(start: p, count: n))
                if r != 0 { return r }
            }
        }
        return 0
    }

    /// Whether the table row's column `k` holds exactly `c` (same type too).
    @inline(__always) private func same(_ c: Cell, _ k: Int) -> Bool {
        let type = sqlite3_column_type(h, Int32(k))
        switch c.kind {
        case 0: return type == SQLITE_NULL
        case 1: return type == SQLITE_INTEGER && sqlite3_column_int64(h, Int32(k)) == c.int
        default:
            guard type == SQLITE_TEXT else { return false }
            let p = sqlite3_column_text(h, Int32(k))
            let n = Int(sqlite3_column_bytes(h, Int32(k)))
            return bytesEqual(UnsafeBufferPointer(start: c.ptr, count: c.len), UnsafeBufferPointer(start: p, count: n))
        }
    }
}
