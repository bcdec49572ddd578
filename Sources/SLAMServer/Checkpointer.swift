import Foundation
import GRDB
import GRDBSQLite
import SLAMDomain

/// The WAL checkpoint policy. Checkpoints run on this thread, off the writer's: the writer's WAL
/// hook (`WalHook`) asks for a PASSIVE checkpoint once the WAL holds `walAutocheckpointPages`
/// frames, and the writer checkpoints itself only past four times that, to let the WAL start
/// over. A PASSIVE checkpoint never waits, so a reader that keeps an old snapshot can stop it
/// from catching up and the WAL grows: this thread also watches the WAL every 100 ms (and
/// reports its size and peak in GetStats), and past `walTruncateBytes` runs a TRUNCATE
/// checkpoint, which waits for the readers (queries are short) and empties the file.
/// `journal_size_limit` trims the file after each restart. So under constant load with readers
/// always open the WAL stays bounded.
final class Checkpointer: @unchecked Sendable {
    private let path: String
    private let config: ServerConfig
    private let stats: ServerStats
    private let stopFlag = Shared(false)
    private let done = DispatchSemaphore(value: 0)
    private let wake = DispatchSemaphore(value: 0)
    /// Set by `requestPassive()`, cleared when this thread takes the request.
    let passiveRequested = Shared(false)

    init(path: String, config: ServerConfig, stats: ServerStats) {
        self.path = path
        self.config = config
        self.stats = stats
    }

    func start() throws {
        var c = Configuration()
        c.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: path, configuration: c)
        ThreadRole.start("slam-checkpoint", priority: .background) { [self] in
            run(queue)
            try? queue.close()
            done.signal()
        }
    }

    func stop() {
        stopFlag.set(true)
        wake.signal()
        done.wait()
    }

    private func walSize() -> Int64 {
        var st = stat()
        guard stat(path + "-wal", &st) == 0 else { return 0 }
        return Int64(st.st_size)
    }

    /// Asks for a PASSIVE checkpoint on this thread (from the writer's WAL hook: cheap, never
    /// waits).
    func requestPassive() {
        if !passiveRequested.exchange(true) { wake.signal() }
    }

    private func run(_ queue: DatabaseQueue) {
        while !stopFlag.get() {
            _ = wake.wait(timeout: .now() + .milliseconds(100))
            if passiveRequested.exchange(false) {
                do {
                    try queue.writeWithoutTransaction { db in _ = try db.checkpoint(.passive) }
                    stats.passiveCheckpoints.update { $0 += 1 }
                } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
                    // The writer is checkpointing (its WAL hook, past `hard` frames): nothing to do.
                } catch {
                    logError("WAL checkpoint (PASSIVE): \(error)")
                }
            }
            let size = walSize()
            stats.walBytes.set(size)
            stats.walPeakBytes.update { $0 = max($0, size) }
            if size > config.walTruncateBytes {
                let mode = "TRUNCATE"
                do {
                    try queue.writeWithoutTransaction { db in _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(\(mode))") }
                    stats.checkpoints.update { $0 += 1 }
                } catch {
                    logError("WAL checkpoint (\(mode)): \(error)")
                }
            }
        }
    }
}

/// The writer connection's WAL hook (`sqlite3_wal_hook`), called after each commit with the
/// WAL's frame count; it replaces SQLite's auto-checkpoint. Past `soft` frames it asks the
/// checkpointer thread for a PASSIVE checkpoint, so copying pages into the database file and
/// syncing it happen on the other core while the writer goes on. A PASSIVE checkpoint that runs
/// while the writer keeps appending never finishes the WAL, and only a finished one lets the
/// next transaction start the WAL over; so past `hard` frames the writer checkpoints itself,
/// after its commit, copying only what the checkpointer has not (a PASSIVE checkpoint never
/// waits: if the checkpointer holds the checkpoint lock, it tries again after the next commit).
final class WalHook {
    let checkpointer: Checkpointer
    let soft: Int32
    let hard: Int32

    init(checkpointer: Checkpointer, soft: Int32, hard: Int32) {
        self.checkpointer = checkpointer
        self.soft = soft
        self.hard = hard
    }

    /// Removes the hook from `db`'s connection (before this object goes, while the connection
    /// may still commit).
    func uninstall(from db: Database) {
        guard let connection = db.sqliteConnection else { return }
        sqlite3_wal_hook(connection, nil, nil)
    }

    /// Installs the hook on `db`'s connection; it must stay installed no longer than this object
    /// lives (`uninstall(from:)`).
    func install(on db: Database) {
        guard let connection = db.sqliteConnection else { return }
        sqlite3_wal_hook(connection, { context, connection, name, frames in
            let hook = Unmanaged<WalHook>.fromOpaque(context!).takeUnretainedValue()
            if frames >= hook.hard {
                sqlite3_wal_checkpoint_v2(connection, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            } else if frames >= hook.soft {
                hook.checkpointer.requestPassive()
            }
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }
}
