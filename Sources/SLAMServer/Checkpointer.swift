import Foundation
import GRDB
import GRDBSQLite
import SLAMDomain

/// The WAL checkpoint policy. Checkpoints run on this thread, off the writer's: the writer's WAL
/// hook (`WalHook`) asks for a PASSIVE checkpoint each time the WAL has grown by
/// `walAutocheckpointPages` frames, and past eight times that asks for one more and, once it is
/// done, checkpoints the little left itself, to let the WAL start over. A PASSIVE checkpoint
/// never waits, so a reader that keeps an old snapshot can stop it from catching up and the WAL
/// grows: this thread also watches the WAL every 100 ms (and reports its size and peak in
/// GetStats), and past `walTruncateBytes` runs a TRUNCATE checkpoint, which waits for the
/// readers (queries are short) and empties the file. `journal_size_limit` trims the file after
/// each restart. So under constant load with readers always open the WAL stays bounded.
final class Checkpointer: @unchecked Sendable {
    private let path: String
    private let config: ServerConfig
    private let stats: ServerStats
    private let stopFlag = Shared(false)
    private let done = DispatchSemaphore(value: 0)
    private let wake = DispatchSemaphore(value: 0)
    /// Set by `requestPassive()`, cleared when this thread takes the request.
    let passiveRequested = Shared(false)
    /// PASSIVE checkpoints this thread has started, and finished (copied what it could, or found
    /// the checkpoint lock taken).
    let passivesStarted = Shared(0)
    let passivesDone = Shared(0)

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

    /// Syncs `db`'s main database file. A PASSIVE checkpoint that stops short of the WAL's end
    /// (the writer kept appending) copies pages into the database file without syncing it:
    /// SQLite syncs only once a checkpoint reaches the end, which here is the writer's own, just
    /// before the WAL starts over. Left alone, everything the PASSIVE checkpoints copied would be
    /// synced then, on the writer's thread (measured: 4.6 ms at the median); synced here, on
    /// this thread, the writer's sync finds only what its own checkpoint copied.
    static func syncDatabaseFile(_ db: Database) {
        guard let connection = db.sqliteConnection else { return }
        var file: UnsafeMutablePointer<sqlite3_file>?
        guard sqlite3_file_control(connection, "main", SQLITE_FCNTL_FILE_POINTER, &file) == SQLITE_OK,
              let file, let methods = file.pointee.pMethods else { return }
        let rc = methods.pointee.xSync(file, SQLITE_SYNC_NORMAL)
        if rc != SQLITE_OK { logError("syncing the database file after a checkpoint: SQLite error \(rc)") }
    }

    /// Runs the PASSIVE checkpoint asked for, if one is, on `queue` (this thread's connection),
    /// then syncs the database file.
    func passiveIfRequested(_ queue: DatabaseQueue) {
        guard passiveRequested.exchange(false) else { return }
        passivesStarted.update { $0 += 1 }
        defer { passivesDone.update { $0 += 1 } }
        do {
            try queue.writeWithoutTransaction { db in
                _ = try db.checkpoint(.passive)
                Self.syncDatabaseFile(db)
            }
            stats.passiveCheckpoints.update { $0 += 1 }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            // The writer is checkpointing (`WalHook.checkpointIfDue`): nothing to do.
        } catch {
            logError("WAL checkpoint (PASSIVE): \(error)")
        }
    }

    private func run(_ queue: DatabaseQueue) {
        while !stopFlag.get() {
            _ = wake.wait(timeout: .now() + .milliseconds(100))
            passiveIfRequested(queue)
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
/// WAL's frame count; it replaces SQLite's auto-checkpoint. Each time the WAL has grown by `soft`
/// frames (at `soft`, `2 × soft`, ...) it asks the checkpointer thread for a PASSIVE checkpoint,
/// so copying pages into the database file and syncing it happen on the other core while the
/// writer goes on. Asking once per `soft` new frames, not after every commit past `soft`,
/// matters: each checkpoint syncs the WAL and the database file, and a commit's WAL sync that
/// overlaps a database sync takes twice as long (measured: p50 0.42 ms against 0.21 ms).
/// A PASSIVE checkpoint that runs while the writer keeps appending never finishes the WAL, and
/// only a finished one lets the next transaction start the WAL over; so past `hard` frames the
/// hook asks the checkpointer for one more PASSIVE checkpoint and marks a restart due, and once
/// that checkpoint is done the writer checkpoints itself (`checkpointIfDue`), between batches,
/// copying and syncing only what was committed meanwhile (a few commits' pages): the writer
/// stops for a millisecond or so, not for the whole copy. Should the checkpointer not answer
/// (it is stopped, or a reader holds it back), the writer checkpoints anyway past `2 × hard`
/// frames. The hook runs inside the commit, before the batch's replies go, so it only takes
/// note; `checkpointIfDue` runs after the replies are on their way. A PASSIVE checkpoint never
/// waits: if the checkpointer holds the checkpoint lock, it is tried again after the next batch.
final class WalHook {
    let checkpointer: Checkpointer
    let soft: Int32
    let hard: Int32
    /// Set by the hook past `hard` frames, cleared by `checkpointIfDue` once it has run (a
    /// checkpoint that could not finish leaves the WAL past `hard`, and the next commit sets it
    /// again). Writer thread only, like everything below.
    private(set) var restartDue = false
    /// The checkpointer's PASSIVE checkpoint the restart waits for: done once
    /// `checkpointer.passivesDone` reaches this.
    private var restartAfter = 0
    /// The frame count at which the hook next asks for a PASSIVE checkpoint, and the count it
    /// last saw (a smaller one means the WAL started over).
    private var nextPassive: Int32
    private(set) var lastFrames: Int32 = 0

    init(checkpointer: Checkpointer, soft: Int32, hard: Int32) {
        self.checkpointer = checkpointer
        self.soft = soft
        self.hard = hard
        nextPassive = soft
    }

    /// What the hook does after a commit that left `frames` frames in the WAL.
    func committed(frames: Int32) {
        if frames < lastFrames { nextPassive = soft }
        lastFrames = frames
        if frames >= hard {
            if !restartDue {
                restartDue = true
                // The next PASSIVE checkpoint to start (one running now began too early).
                restartAfter = checkpointer.passivesStarted.get() + 1
                checkpointer.requestPassive()
            }
        } else if frames >= nextPassive {
            checkpointer.requestPassive()
            nextPassive = frames + soft
        }
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
        sqlite3_wal_hook(connection, { context, _, _, frames in
            Unmanaged<WalHook>.fromOpaque(context!).takeUnretainedValue().committed(frames: frames)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Runs the writer's own PASSIVE checkpoint if the hook marked one due and the
    /// checkpointer's has finished (or the WAL is past `2 × hard` frames), on `db`: the
    /// connection the hook is installed on, between transactions. Returns whether one ran.
    @discardableResult
    func checkpointIfDue(_ db: Database) -> Bool {
        guard restartDue, let connection = db.sqliteConnection else { return false }
        guard checkpointer.passivesDone.get() >= restartAfter || lastFrames >= 2 * hard else { return false }
        restartDue = false
        sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        return true
    }
}
