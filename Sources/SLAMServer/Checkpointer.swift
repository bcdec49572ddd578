import CWalBuffer
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
/// readers (queries are short) and empties the file. While it waits it holds off the writer, so
/// it waits at most `walTruncateWait` (100 ms) and, held off by a reader or failing, tries again only
/// `walTruncateRetry` (1 s) later. `journal_size_limit` (set to
/// `walTruncateBytes`) trims the file after a restart only past that size: below it the file
/// keeps its largest extent and is overwritten from the start. So under constant load with
/// readers always open the WAL stays bounded.
final class Checkpointer: @unchecked Sendable {
    private let path: String
    private let config: ServerConfig
    let stats: ServerStats
    private let stopFlag = Shared(false)
    private let done = DispatchSemaphore(value: 0)
    private let wake = DispatchSemaphore(value: 0)
    /// Set by `requestPassive()`, cleared when this thread takes the request.
    let passiveRequested = Shared(false)
    /// PASSIVE checkpoints this thread has started, and finished (copied what it could, or found
    /// the checkpoint lock taken).
    let passivesStarted = Shared(0)
    let passivesDone = Shared(0)
    /// How `syncDatabaseFile` syncs the file, given this thread's connection; returns SQLite's
    /// result code and, when the sync failed, the system's errno (settable by tests).
    var syncMainFile: (OpaquePointer) -> (code: Int32, errno: Int32) = { db in
        var lastErrno: Int32 = 0
        let code = slam_sync_main_file(db, &lastErrno)
        return (code, lastErrno)
    }
    /// The WAL and checkpointed frame counts and the WAL restarts the last PASSIVE checkpoint saw.
    private(set) var lastWalFrames = 0
    private(set) var lastCheckpointed = 0
    private var lastRestarts: Int64 = 0
    /// What an I/O error in a checkpoint or in syncing the database file does: by default it
    /// stops the process at once (`abort`), as PostgreSQL does on a failed fsync. Linux reports a
    /// failed write-back once to each open file, so SQLite's next checkpoint could sync with
    /// success, declare the WAL copied and let it start over above pages the disk lost; stopped
    /// here, without a clean close (which would checkpoint and delete the WAL), the server comes
    /// back from the WAL, which holds every acknowledged commit, copying it all again. Tests
    /// replace it.
    var ioFailure: (String) -> Void

    init(path: String, config: ServerConfig, stats: ServerStats) {
        self.path = path
        self.config = config
        self.stats = stats
        let stop = config.ioFailure
        ioFailure = { message in
            stop("\(message): stopping at once, so that the WAL is not started over above pages the disk may have lost; "
                 + "every acknowledged command is in the WAL, and restarting the server recovers from it")
        }
    }

    func start() throws {
        var c = Configuration()
        // Only the TRUNCATE checkpoint waits (PASSIVE ones never call the busy handler).
        c.busyMode = .timeout(Double(config.walTruncateWait) / 1000)
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

    /// Syncs the database file after a PASSIVE checkpoint that copied frames. SQLite syncs the
    /// database file only when a checkpoint reaches the end of the WAL with no commit having
    /// come meanwhile, which under load is the writer's own, just before the WAL starts over:
    /// left alone, everything the PASSIVE checkpoints copied would be synced then, on the
    /// writer's thread (measured: 4.6 ms at the median at 10,000 commands/s); synced here, on
    /// this thread, the writer's sync finds only what its own checkpoint copied. The sync goes
    /// through SQLite's own handle of the file on this thread's connection
    /// (`slam_sync_main_file`), not a descriptor of this thread's own: closing that would drop
    /// every POSIX lock the process holds on the file, SQLite's included, so that another
    /// process could take this one's database for unused. The other connections' descriptors
    /// still see a write-back error in their own syncs (Linux reports it once to each open
    /// file); an I/O error here goes to `ioFailure`, any other failure is logged (nothing is
    /// lost: SQLite's own sync comes before the WAL starts over).
    func syncDatabaseFile(_ queue: DatabaseQueue) {
        let (rc, lastErrno) = queue.inDatabase { db in syncMainFile(db.sqliteConnection!) }
        guard rc != SQLITE_OK else { return }
        let cause = lastErrno != 0 ? String(cString: strerror(lastErrno)) : String(cString: sqlite3_errstr(rc))
        let message = "syncing \(path) after a checkpoint: \(cause) (SQLite result code \(rc))"
        if Self.isIOError(rc) { ioFailure(message) } else { logError(message) }
    }

    /// Whether `code` (an SQLite result code, extended or not) is an I/O error.
    static func isIOError(_ code: Int32) -> Bool { code & 0xff == SQLITE_IOERR }

    /// Whether `code` is an I/O error other than a refused write (`SQLITE_IOERR_WRITE`, a quota
    /// reached: what was refused is not in the file). The checkpointer's and the writer's rule
    /// for stopping at once (`checkpointFailed`, `CommandWriter.commitOutcomeUnknown`).
    static func isIOErrorBeyondARefusedWrite(_ code: Int32) -> Bool {
        isIOError(code) && code != ResultCode.SQLITE_IOERR_WRITE.rawValue
    }

    /// A checkpoint (`kind`) that failed with `code`: an I/O error goes to `ioFailure`, any
    /// other is logged, and so is a refused write (`SQLITE_IOERR_WRITE`: a quota reached as the
    /// checkpoint extends the database file): the checkpoint then copied less than it would
    /// have, SQLite does not count the frames as copied, and the WAL does not start over above
    /// them; stopping would only stop again at every restart, as a full disk would.
    func checkpointFailed(_ kind: String, code: Int32, _ detail: String) {
        let message = "WAL checkpoint (\(kind)): \(detail)"
        if Self.isIOErrorBeyondARefusedWrite(code) { ioFailure(message) } else { logError(message) }
    }

    /// Runs the PASSIVE checkpoint asked for, if one is, on `queue` (this thread's connection),
    /// then syncs the database file if the checkpoint copied frames. Returns whether one ran.
    @discardableResult
    func passiveIfRequested(_ queue: DatabaseQueue) -> Bool {
        guard passiveRequested.exchange(false) else { return false }
        passivesStarted.update { $0 += 1 }
        defer { passivesDone.update { $0 += 1 } }
        do {
            let (frames, checkpointed) = try queue.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            // Copied frames: more checkpointed than last time, or any after the WAL started over.
            // (Whether SQLite synced the file cannot be told from here: it syncs when no commit
            // came during the checkpoint, and the counts reported are those of the WAL as the
            // checkpoint began; a second sync of a synced file writes nothing.)
            let restarts = stats.walRestarts.get()
            let restarted = restarts != lastRestarts || frames < lastWalFrames
            let copied = restarted ? checkpointed > 0 : checkpointed > lastCheckpointed
            if copied { syncDatabaseFile(queue) }
            (lastWalFrames, lastCheckpointed, lastRestarts) = (frames, checkpointed, restarts)
            stats.passiveCheckpoints.update { $0 += 1 }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            // The writer is checkpointing (`WalHook.checkpointIfDue`): nothing to do.
        } catch let error as DatabaseError {
            checkpointFailed("PASSIVE", code: error.extendedResultCode.rawValue, "\(error)")
        } catch {
            logError("WAL checkpoint (PASSIVE): \(error)")
        }
        return true
    }

    private func run(_ queue: DatabaseQueue) {
        var nextTruncate = DispatchTime.now()
        while !stopFlag.get() {
            _ = wake.wait(timeout: .now() + .milliseconds(100))
            passiveIfRequested(queue)
            let size = walSize()
            stats.walBytes.set(size)
            stats.walPeakBytes.update { $0 = max($0, size) }
            if size > config.walTruncateBytes, DispatchTime.now() >= nextTruncate, !truncate(queue) {
                // Held off, or failed (a full disk, say): each try holds off the writer, so the
                // next comes `walTruncateRetry` later, not at the next 100 ms look.
                nextTruncate = .now() + .milliseconds(Int(config.walTruncateRetry))
            }
        }
        // Stopping (the writer, relay and readers are done): the WAL copied into the database
        // file and emptied, the file synced, so the file alone holds every commit (a copy of it
        // is a whole backup) and the next start has no WAL to recover. Held off by a reader of
        // another process (`slam verify`), the WAL stays, as after a crash, and is recovered.
        if truncate(queue) { syncDatabaseFile(queue) }
    }

    /// A TRUNCATE checkpoint; returns whether it completed (not held off by a reader, no error).
    private func truncate(_ queue: DatabaseQueue) -> Bool {
        let mode = "TRUNCATE"
        var blocked = false, completed = false
        do {
            // Its first column is 1 when readers (or a writer) kept it from completing.
            let row = try queue.writeWithoutTransaction { db in try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(\(mode))") }
            blocked = (row?[0] as Int64?) != 0
            completed = !blocked
        } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY {
            blocked = true
        } catch let error as DatabaseError {
            checkpointFailed(mode, code: error.extendedResultCode.rawValue, "\(error)")
        } catch {
            logError("WAL checkpoint (\(mode)): \(error)")
        }
        if blocked { stats.truncatesBlocked.update { $0 += 1 } }
        if completed { stats.checkpoints.update { $0 += 1 } }
        return completed
    }
}

/// The writer connection's WAL hook (`sqlite3_wal_hook`), called after each commit with the
/// WAL's frame count; it replaces SQLite's auto-checkpoint. Each time the WAL has grown by `soft`
/// frames since it last asked, it asks the checkpointer thread for a PASSIVE checkpoint, so
/// copying pages into the database file and syncing it happen on the other core while the
/// writer goes on. Asking once per `soft` new frames, not after every commit past `soft`,
/// matters: each checkpoint syncs the WAL and the database file, and a commit's WAL sync that
/// overlaps a database sync takes twice as long (measured: p50 0.42 ms against 0.21 ms).
/// A PASSIVE checkpoint that runs while the writer keeps appending never finishes the WAL, and
/// only a finished one lets the next transaction start the WAL over; so past `hard` frames the
/// hook asks the checkpointer for one more PASSIVE checkpoint and marks a restart due, and once
/// that checkpoint is done the writer checkpoints itself (`checkpointIfDue`), between batches,
/// copying and syncing only what was committed meanwhile (a few commits' pages): the writer
/// stops for a millisecond or two, not for the whole copy. Should the checkpointer not get to
/// it (its thread starved or stopped), the writer checkpoints anyway past `2 × hard` frames.
/// The hook runs inside the commit, before the batch's replies go, so it only takes note;
/// `checkpointIfDue` runs after the replies are on their way. The WAL starts over only if the
/// checkpoint finished (no reader kept an older snapshot) and no reader is reading from the WAL
/// at the next commit; readers are short (the relay reads right after each commit), so if it
/// did not, the writer checkpoints again after the next commit (only that commit's pages), up
/// to `directRetries` times; past those the restart is due again only after `soft` more frames,
/// so a reader that holds the WAL longer does not make the writer checkpoint after every batch.
final class WalHook {
    let checkpointer: Checkpointer
    let soft: Int32
    let hard: Int32
    /// Set by the hook once the WAL reaches `restartAt` frames, cleared by `checkpointIfDue` or
    /// when the WAL starts over. Writer thread only, like everything below.
    private(set) var restartDue = false
    /// The frame count at which a restart is next due: `hard`; after a writer checkpoint, the
    /// next commit; past `directRetries` of those, `soft` frames later.
    private var restartAt: Int32
    /// The checkpointer's PASSIVE checkpoint the restart waits for: done once
    /// `checkpointer.passivesDone` reaches this (0: none).
    private var restartAfter = 0
    /// Writer checkpoints since the WAL last started over or the last back-off, in a row (each
    /// after the next commit), and how many are made so before backing off by `soft` frames
    /// (after which the restart waits for a checkpointer's PASSIVE checkpoint again).
    private var retries = 0
    let directRetries = 4
    /// The frame count at which the hook next asks for a PASSIVE checkpoint, and the count it
    /// last saw (a smaller one means the WAL started over).
    private var nextPassive: Int32
    private(set) var lastFrames: Int32 = 0

    init(checkpointer: Checkpointer, soft: Int32, hard: Int32) {
        self.checkpointer = checkpointer
        self.soft = soft
        self.hard = hard
        nextPassive = soft
        restartAt = hard
    }

    /// What the hook does after a commit that left `frames` frames in the WAL.
    func committed(frames: Int32) {
        if frames < lastFrames {
            // The WAL started over.
            checkpointer.stats.walRestarts.update { $0 += 1 }
            nextPassive = soft
            restartAt = hard
            restartDue = false
            retries = 0
        }
        lastFrames = frames
        if frames >= restartAt, !restartDue {
            restartDue = true
            if retries > 0 {
                // The writer checkpointed after the last commit: only this one's pages are new.
                restartAfter = 0
            } else {
                // The next PASSIVE checkpoint to start (one running now began too early).
                restartAfter = checkpointer.passivesStarted.get() + 1
                checkpointer.requestPassive()
                nextPassive = frames + soft
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

    /// Runs the writer's own PASSIVE checkpoint if a restart is due and the checkpointer's
    /// PASSIVE checkpoint has finished (or the WAL is past `2 × hard` frames), on `db`: the
    /// connection the hook is installed on, between transactions. Returns whether one ran.
    @discardableResult
    func checkpointIfDue(_ db: Database) -> Bool {
        guard restartDue, let connection = db.sqliteConnection else { return false }
        guard checkpointer.passivesDone.get() >= restartAfter || lastFrames >= 2 * hard else { return false }
        restartDue = false
        checkpointer.stats.writerCheckpoints.update { $0 += 1 }
        let rc = sqlite3_wal_checkpoint_v2(connection, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        if rc != SQLITE_OK, rc != SQLITE_BUSY {
            checkpointer.checkpointFailed("PASSIVE, writer", code: rc, String(cString: sqlite3_errstr(rc)))
        }
        // Due again at the next commit if that one does not start the WAL over, until the
        // retries run out.
        retries += 1
        if retries <= directRetries {
            restartAt = lastFrames
        } else {
            retries = 0
            restartAt = lastFrames + soft
        }
        return true
    }
}
