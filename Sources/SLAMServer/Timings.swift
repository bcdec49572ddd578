import CWalBuffer
import Foundation

/// A diagnostic (`slam serve --timings FILE`, `ServerConfig.timingsPath`): how long each batch of
/// commands took the writer, and every sync through the store's VFS, written to a CSV file when
/// the server stops, so that a benchmark run can say where the writer's time went in its hour
/// (tools/series.py reads it).
///
/// A batch's execution runs from before its BEGIN IMMEDIATE (a wait for the write lock, the sweep
/// and the prune when due, included) to its last statement; the writer thread's CPU time in it is
/// kept too (this kernel accounts the host's steal apart, CONFIG_PARAVIRT_TIME_ACCOUNTING, so a
/// CPU time below the wall time is the writer kept off its CPU); its commit is the COMMIT, the
/// WAL's frames written and synced. A sync is a WAL file's or a database file's, on any thread of
/// the process: those made while the writer commits a batch are written `wal-sync`, the others
/// (the checkpoints') `wal-sync-other` and `db-sync`. Batches of no command (sweeps alone, the
/// relay's progress) are not timed; failed ones are counted.
///
/// Off by default. On, each batch of commands costs three reads of the monotonic clock and two of
/// the thread's CPU clock (a system call), and each sync two clock reads; the latest `capacity`
/// batches and `2 * capacity` syncs are kept (rings allocated when it is turned on: about 36 MB
/// and 80 MB of address space, touched as they fill), those before counted in the file's last
/// line.
final class BatchTimings {
    static let capacity = 1_000_000

    private var starts: [Double]
    private var executing: [Double]
    private var executingCPU: [Double]
    private var committing: [Double]
    private var commands: [Int32]
    /// Batches timed (the ring holds the latest `capacity`), and those that failed.
    private var timed = 0
    private var failed = 0

    /// Starts timing the VFS's syncs too (process-wide, from now on).
    init() throws {
        let rc = slam_walbuffer_time_syncs(2 * Self.capacity)
        guard rc == 0 else { throw ServerConfigError("--timings: cannot keep the sync timings (SQLite code \(rc))") }
        starts = [Double](repeating: 0, count: Self.capacity)
        executing = starts
        executingCPU = starts
        committing = starts
        commands = [Int32](repeating: 0, count: Self.capacity)
    }

    static func now() -> Double { slam_monotonic_micros() }

    /// The calling thread's CPU time, in microseconds.
    static func threadCPU() -> Double { slam_thread_cpu_micros() }

    /// Tags the syncs the calling thread makes from now on as a batch's commit's (or not).
    static func committing(_ on: Bool) { slam_walbuffer_sync_tag(on ? 1 : 0) }

    /// One batch of `count` commands (the writer's thread only): `started` when it began,
    /// `committing` when its last statement was done, `done` when its commit returned;
    /// `executionCPU` the thread's CPU time from `started` to `committing`.
    func batch(started: Double, committing commit: Double, done: Double, executionCPU: Double, count: Int) {
        let i = timed % Self.capacity
        starts[i] = started
        executing[i] = commit - started
        executingCPU[i] = executionCPU
        committing[i] = done - commit
        commands[i] = Int32(clamping: count)
        timed += 1
    }

    /// A batch of commands that failed (nothing of it committed).
    func batchFailed() { failed += 1 }

    /// The CSV file: `kind,at_us,micros,commit_micros,commands,cpu_micros`, `at_us` on the
    /// monotonic clock (microseconds), a batch's `micros` its execution and `cpu_micros` the
    /// writer's CPU time in it; the latest `capacity` batches, then the latest syncs, each kind in
    /// the order made; then `dropped,,<batches>,<syncs>,<failed batches>,`, the batches and syncs
    /// timed but no longer kept (or, for a sync, still in flight). Call once the writer, the
    /// checkpointer and the store's connections are done.
    func write(to path: String) throws {
        let kept = min(timed, Self.capacity)
        var out = "kind,at_us,micros,commit_micros,commands,cpu_micros\n"
        out.reserveCapacity(72 * (kept + 1024))
        func us(_ v: Double) -> String { String(format: "%.1f", v) }
        for n in (timed - kept)..<timed {
            let i = n % Self.capacity
            out += "batch,\(us(starts[i])),\(us(executing[i])),\(us(committing[i])),\(commands[i]),\(us(executingCPU[i]))\n"
        }
        let syncs = slam_walbuffer_syncs_timed()
        var keptSyncs = 0
        var at = 0.0, micros = 0.0, wal: Int32 = 0, tag: Int32 = 0
        for n in max(0, syncs - 2 * Self.capacity)..<syncs
        where slam_walbuffer_sync_timing(n, &at, &micros, &wal, &tag) == 0 {
            let kind = wal == 0 ? "db-sync" : tag == 1 ? "wal-sync" : "wal-sync-other"
            out += "\(kind),\(us(at)),\(us(micros)),,,\n"
            keptSyncs += 1
        }
        out += "dropped,,\(timed - kept),\(syncs - keptSyncs),\(failed),\n"
        try out.write(toFile: path, atomically: true, encoding: .utf8)
    }
}
