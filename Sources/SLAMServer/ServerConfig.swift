import Foundation
import SLAMDomain
import SLAMStore

/// Everything `slam serve` can be told. Defaults are PROTOCOL.md's and DESIGN.md's.
public struct ServerConfig: Sendable {
    public var dbPath = "var/slam.sqlite"
    public var commandsEndpoint = "tcp://127.0.0.1:5555"
    public var eventsEndpoint = "tcp://127.0.0.1:5556"
    /// How long a hold lasts, in milliseconds.
    public var holdTtl: Millis = 300_000
    public var sync: SyncMode = .full
    /// What an I/O error that leaves the store's state unknown does (a batch's `COMMIT` failing
    /// with `SQLITE_IOERR`, other than a refused write: `CommandWriter.commitOutcomeUnknown`; any
    /// I/O error in a checkpoint or in the sync of the database file after one): by default it
    /// logs `message` and stops the process at once (`abort`), answering nothing, as PostgreSQL
    /// does on a failed fsync. Linux reports a failed write-back once to each open file and may
    /// drop the pages it could not write, so a later sync can succeed above a hole; a server that
    /// went on would acknowledge commits whose WAL has one. Stopped without a clean close, it
    /// comes back from what the disk holds, every command it acknowledged before the error
    /// included. Other errors of a batch (a full disk, `SQLITE_FULL`; a quota reached,
    /// `SQLITE_IOERR_WRITE`; any error before the commit) are answered `INTERNAL` and the server
    /// goes on. Tests replace it.
    public var ioFailure: @Sendable (String) -> Void = ServerConfig.stopAtOnce

    public static let stopAtOnce: @Sendable (String) -> Void = { message in
        logError(message)
        abort()
    }
    /// A request larger than this in total (all frames) gets PAYLOAD_TOO_LARGE.
    public var maxRequestBytes = 64 * 1024
    /// libzmq drops a connection sending a frame larger than this (ZMQ_MAXMSGSIZE).
    public var maxFrameBytes: Int64 = 1024 * 1024
    /// Commands waiting for the writer beyond this get OVERLOADED at once.
    public var commandQueueCapacity = 20_000
    /// Queries waiting for a reader beyond this get OVERLOADED at once.
    public var queryQueueCapacity = 20_000
    /// Replies libzmq keeps for one client that has not taken them (ZMQ_SNDHWM of the ROUTER,
    /// as its receive mark is 1,000): past it, and what the sockets' buffers also hold, the
    /// ROUTER's thread keeps them itself (`replyParkBudgetBytes`).
    public var replyHighWaterMark: Int32 = 1000
    /// Replies kept by the ROUTER's thread for clients whose pipes are full (past
    /// `replyHighWaterMark`), until they read (`ParkedReplies`): at most this many bytes in all,
    /// and for one client; a client that has taken none of them for `replyParkMaxAgeMs` loses
    /// them all. A reply past a bound is dropped and counted in GetStats `repliesDropped`.
    public var replyParkBudgetBytes = 64 << 20
    public var replyParkClientBytes = 16 << 20
    public var replyParkMaxAgeMs: Int64 = 60_000
    /// The most commands the writer decides in one transaction.
    public var batchLimit = 1024
    /// Reader threads answering queries.
    public var queryWorkers = 2
    /// Idempotency records older than this are pruned.
    public var idempotencyRetention: Millis = 24 * 3600 * 1000
    /// How often the writer looks for due holds and queue work (at most one second late).
    public var sweepInterval: Millis = 200
    /// The most due holds one sweep records. A sweep that reaches it is due again at once, so a
    /// backlog (after a restart, say) is recorded batch after batch, commands still decided in
    /// between, not one batch per `sweepInterval`.
    public var sweepExpiryLimit = 2000
    /// How often the writer deletes idempotency records past `idempotencyRetention`, and the
    /// most one prune deletes; a prune that reaches the limit is due again with the next batch,
    /// so the table keeps up with any sustained rate, a thousand records at a time.
    public var pruneInterval: Millis = 10_000
    public var pruneLimit = 1000
    /// The WAL checkpoint policy (see `Checkpointer` and `WalHook`): each time the WAL grows by
    /// this many frames the checkpointer thread runs a PASSIVE checkpoint; past eight times this
    /// many, once the checkpointer's next one is done, the writer checkpoints what is left
    /// between two batches (so the WAL starts over); and past `walTruncateBytes` the
    /// checkpointer runs a TRUNCATE checkpoint.
    public var walAutocheckpointPages = 1000
    public var walTruncateBytes: Int64 = 64 * 1024 * 1024
    /// How long a TRUNCATE checkpoint waits for readers to leave the WAL before giving up (it
    /// holds off the writer while it waits), and how long the checkpointer then leaves before
    /// trying again: a reader that keeps an old snapshot costs the writer at most this wait per
    /// `walTruncateRetry`, never its own busy timeout (5 s, which would fail its batch).
    public var walTruncateWait: Millis = 100
    public var walTruncateRetry: Millis = 1000
    /// The writer's page cache (SQLite `cache_size`), in KiB. Bigger is not better: every
    /// commit costs SQLite time that grows with the pages cached, and a page missing from this
    /// cache is read from the OS page cache. Measured under the rush (`slam bench --max`, writer
    /// CPU per command): 8-16 MiB 73-78 µs, 64 MiB 76-84 µs, 128 MiB 88-95 µs, 2 GiB 109 µs.
    public var writerCacheKiB = 16_384
    /// `ZMQ_SNDHWM` of the PUB socket: messages queued per subscriber before the relay drops
    /// that subscriber's (it recovers through ReadEvents), so a slow one never grows the server's
    /// memory without bound.
    public var publishHighWaterMark: Int32 = 100_000
    /// libzmq drops a subscriber that sends a frame larger than this (ZMQ_MAXMSGSIZE on the PUB):
    /// a subscription is a topic prefix behind a flag byte (ZMTP 3.0) or `SUBSCRIBE` (3.1), and
    /// the longest topic (`reservation.ReservationConfirmed`, `…Cancelled`) is 32 bytes. The
    /// handshake's commands count too: CURVE (PROTOCOL.md section 8, not built) sends an
    /// INITIATE larger than this, so the limit must grow with it.
    public static let maxSubscriptionBytes: Int64 = 256
    /// CPUs to pin threads to (`slam serve --writer-cpu`, `--io-cpu`); nil leaves a thread to
    /// the scheduler. `writerCPU` takes the writer; `ioCPU` the ROUTER's thread and ZeroMQ's I/O
    /// thread (which also carries the PUB; and its reaper, mostly idle). Each must be one the
    /// process may run on, on Linux, or the server refuses to start. See `ThreadRole` for what it
    /// changed under the rush.
    public var writerCPU: Int?
    public var ioCPU: Int?
    /// One command per transaction: for the baseline benchmark only.
    public var groupCommit = true
    /// The most users the writer keeps in memory (their balances and wallet versions, loaded
    /// from the read models when a command first names one). Past it, between two batches, it
    /// forgets them all and loads each again when next named (a row and an index lookup), so a
    /// server up for months keeps its memory bounded however many users it has seen.
    public var maxCachedUsers = 1_000_000
    /// A diagnostic: when set, the writer times its batches and every sync of the store, and
    /// the server writes them to this CSV file when it stops (`BatchTimings`; `slam serve
    /// --timings FILE`).
    public var timingsPath: String?

    public init() {}
}
