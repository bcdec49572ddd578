import Foundation
import GRDB
import SLAMDomain

/// The WAL checkpoint policy. The writer checkpoints PASSIVE after its commits once the WAL holds
/// `walAutocheckpointPages` pages (SQLite's auto-checkpoint); a PASSIVE checkpoint never waits,
/// so a reader that keeps an old snapshot can stop it from catching up and the WAL grows. This
/// thread watches the WAL every 100 ms (and reports its size and peak in GetStats); past
/// `walTruncateBytes` it runs a TRUNCATE checkpoint on its own connection, which waits for the
/// readers (queries are short) and empties the file. `journal_size_limit` trims the file after
/// each restart. So under constant load with readers always open the WAL stays bounded.
final class Checkpointer: @unchecked Sendable {
    private let path: String
    private let config: ServerConfig
    private let stats: ServerStats
    private let stopFlag = Shared(false)
    private let done = DispatchSemaphore(value: 0)

    init(path: String, config: ServerConfig, stats: ServerStats) {
        self.path = path
        self.config = config
        self.stats = stats
    }

    func start() throws {
        var c = Configuration()
        c.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: path, configuration: c)
        let t = Thread { [self] in
            run(queue)
            try? queue.close()
            done.signal()
        }
        t.name = "slam-checkpoint"
        t.start()
    }

    func stop() {
        stopFlag.set(true)
        done.wait()
    }

    private func walSize() -> Int64 {
        var st = stat()
        guard stat(path + "-wal", &st) == 0 else { return 0 }
        return Int64(st.st_size)
    }

    private func run(_ queue: DatabaseQueue) {
        while !stopFlag.get() {
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
            usleep(100_000)
        }
    }
}
