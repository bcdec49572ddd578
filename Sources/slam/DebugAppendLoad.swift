import ArgumentParser
import Foundation
import GRDB
import SLAMStore

/// The child process of the store's crash test: appends under load and reports each commit, so
/// the test can kill it with SIGKILL at a random moment and check what survived.
struct DebugAppendLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-append-load", abstract: "Append test events in a loop (crash-test child).", shouldDisplay: false)

    @Option var db: String
    @Option var transactions = Int.max

    func validate() throws {
        guard transactions >= 0 else { throw ValidationError("--transactions must be at least 0") }
        try OptionCheck.databasePath(db)
    }

    func run() throws {
        // The store's lock, as every writer but the server takes it: appending beside a running
        // server would take the positions its writer has in memory.
        let lock = try StoreLock.acquire(database: db, holder: "slam debug-append-load")
        defer { lock.release() }
        let store = try EventStore.open(path: db, sync: .full)
        let writer = try store.makeWriter()
        var txn = try store.pool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(DISTINCT stream_id) FROM events WHERE stream_id LIKE 'load-a-%'")
        } ?? 0
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<transactions {
            txn += 1
            let a = Int.random(in: 1...3, using: &rng), b = Int.random(in: 1...3, using: &rng)
            let body = Array("{\"txn\":\(txn),\"count\":\(a + b)}".utf8)
            func events(_ n: Int) -> [NewEvent] {
                (0..<n).map { _ in NewEvent(type: "LoadTest", category: "load", body: body, occurredAt: 0, causationId: "load") }
            }
            let positions = try store.append([("load-a-\(txn)", .noStream, events(a)), ("load-b-\(txn)", .noStream, events(b))],
                                             using: writer)
            print("committed \(txn) \(positions.last!)")
            fflush(stdout)
        }
    }
}
