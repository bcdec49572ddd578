import CWalBuffer
import Foundation

/// A diagnostic (`slam serve --timings FILE`, `ServerConfig.timingsPath`): how long each batch of
/// commands took the writer, split into its execution (BEGIN to the last statement; also the
/// writer thread's CPU time in it, so that a batch slowed by other threads taking the writer's
/// CPU shows) and its commit (the WAL's frames written and synced), and every sync through the store's VFS (the
/// writer's WAL syncs, the checkpoints' syncs of the WAL and of the database file), written to a
/// CSV file when the server stops, so that a benchmark run can say where the writer's time went
/// in its hour (tools/series.py reads it). Off by default; on, it costs two clock reads a batch
/// and two a sync, and keeps at most `capacity` records of each (the first ones; those after
/// are counted in the file's last line).
final class BatchTimings {
    static let capacity = 2_000_000

    private var starts: [Double] = []
    private var executing: [Double] = []
    private var executingCPU: [Double] = []
    private var committing: [Double] = []
    private var commands: [Int32] = []
    private var dropped = 0

    /// Starts timing the VFS's syncs too (process-wide, from now on).
    init() throws {
        let rc = slam_walbuffer_time_syncs(Self.capacity)
        guard rc == 0 else { throw ServerConfigError("--timings: cannot keep the sync timings (SQLite code \(rc))") }
    }

    static func now() -> Double { slam_monotonic_micros() }

    /// The calling thread's CPU time, in microseconds.
    static func threadCPU() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) * 1e6 + Double(t.tv_nsec) / 1e3
    }

    /// One batch of `count` commands (the writer's thread only): `started` when it began,
    /// `committing` when its last statement was done, `done` when its commit returned;
    /// `executionCPU` the thread's CPU time from `started` to `committing`.
    func batch(started: Double, committing commit: Double, done: Double, executionCPU: Double, count: Int) {
        guard starts.count < Self.capacity else { dropped += 1; return }
        starts.append(started)
        executing.append(commit - started)
        executingCPU.append(executionCPU)
        committing.append(done - commit)
        commands.append(Int32(clamping: count))
    }

    /// The CSV file: `kind,at_us,micros,commit_micros,commands,cpu_micros`, `at_us` on the
    /// monotonic clock (microseconds), a batch's `micros` its execution and `cpu_micros` the
    /// writer's CPU time in it; then a `dropped` line. Call once the writer and the checkpointer
    /// have stopped.
    func write(to path: String) throws {
        var out = "kind,at_us,micros,commit_micros,commands,cpu_micros\n"
        out.reserveCapacity(72 * (starts.count + 1024))
        func us(_ v: Double) -> String { String(format: "%.1f", v) }
        for i in starts.indices {
            out += "batch,\(us(starts[i])),\(us(executing[i])),\(us(committing[i])),\(commands[i]),\(us(executingCPU[i]))\n"
        }
        let timed = slam_walbuffer_syncs_timed()
        var at = 0.0, micros = 0.0, wal: Int32 = 0
        var kept = 0
        while slam_walbuffer_sync_timing(kept, &at, &micros, &wal) == 0 {
            out += "\(wal != 0 ? "wal-sync" : "db-sync"),\(us(at)),\(us(micros)),,,\n"
            kept += 1
        }
        out += "dropped,,\(dropped),\(timed - kept),,\n"
        try out.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
