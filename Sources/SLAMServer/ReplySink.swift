import SLAMDomain
import ZMQ

/// Replies from the writer and the readers on their way to the ROUTER's thread, which alone may
/// touch the socket: producers append under a lock and signal an eventfd the ROUTER polls.
final class ReplySink: @unchecked Sendable {
    private var pending: [[[UInt8]]] = []
    private let lock = Lock()
    let wakeup: Wakeup

    init() throws { wakeup = try Wakeup() }

    func push(_ replies: [[[UInt8]]]) {
        guard !replies.isEmpty else { return }
        lock.withLock { pending.append(contentsOf: replies) }
        wakeup.signal()
    }

    func push(_ reply: [[UInt8]]) { push([reply]) }

    /// Everything pending, emptied.
    func takeAll() -> [[[UInt8]]] {
        lock.withLock {
            let out = pending
            pending.removeAll(keepingCapacity: true)
            return out
        }
    }
}

/// The server's own counters, reported by GetStats.
final class ServerStats: @unchecked Sendable {
    /// The WAL file's size after the last commit, and its peak since start.
    let walBytes = Shared<Int64>(0)
    let walPeakBytes = Shared<Int64>(0)
    /// TRUNCATE checkpoints (the WAL past `walTruncateBytes`) completed, those a reader held
    /// off, and PASSIVE ones run by the checkpointer thread at the writer's request.
    let checkpoints = Shared<Int64>(0)
    let truncatesBlocked = Shared<Int64>(0)
    let passiveCheckpoints = Shared<Int64>(0)
    /// Times the WAL started over from its beginning, and checkpoints the writer ran itself
    /// (`WalHook.checkpointIfDue`) to let it.
    let walRestarts = Shared<Int64>(0)
    let writerCheckpoints = Shared<Int64>(0)
    let batches = Shared<Int64>(0)
    /// Replies dropped: their client gone, past `replyParkBudgetBytes` kept for clients that do
    /// not read, or not taken within a second of a stop.
    let repliesDropped = Shared<Int64>(0)
    /// Users in the writer's memory after its last batch, and the times it forgot them all
    /// (`ServerConfig.maxCachedUsers`).
    let writerUsers = Shared<Int64>(0)
    let writerUserEvictions = Shared<Int64>(0)
    /// Reservations (held or confirmed) and queue tokens (waiting or active) in the writer's
    /// memory after its last batch.
    let writerReservations = Shared<Int64>(0)
    let writerTokens = Shared<Int64>(0)

    var fields: [(String, Int64)] {
        [("walBytes", walBytes.get()), ("walPeakBytes", walPeakBytes.get()), ("walCheckpoints", checkpoints.get()),
         ("walPassiveCheckpoints", passiveCheckpoints.get()), ("walRestarts", walRestarts.get()),
         ("walWriterCheckpoints", writerCheckpoints.get()), ("walTruncatesBlocked", truncatesBlocked.get()),
         ("batches", batches.get()), ("repliesDropped", repliesDropped.get()), ("writerUsers", writerUsers.get()),
         ("writerUserEvictions", writerUserEvictions.get()), ("writerReservations", writerReservations.get()),
         ("writerTokens", writerTokens.get())]
    }
}
