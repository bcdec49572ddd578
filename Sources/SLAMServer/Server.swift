import CZMQ
import Foundation
import GRDB
import SLAMDomain
import SLAMProjections
import SLAMStore
import ZMQ

/// `slam serve`: the store, the writer, the readers, the relay and the ROUTER/PUB sockets,
/// wired together. `init` binds and opens the store; `start()` starts the threads and returns
/// the endpoints actually bound; `stop()` executes no request read from then on (each is
/// answered OVERLOADED), executes and answers every command already queued, answers the queries
/// still queued OVERLOADED, commits, and closes.
public final class Server: @unchecked Sendable {
    public let config: ServerConfig
    public let store: EventStore
    /// The store's lock (`<db>.lock`), held from `init` until `wait()` returns (or deinit), so
    /// offline tools and a second server refuse the database while this one has it open.
    private let lock: StoreLock
    private let clock: Clock
    private let context: ZMQContext
    /// Bound by `init`, before the store is opened; handed to the ROUTER's thread and the relay
    /// by `start()`, each of which closes its own when it ends (`wait()` closes them otherwise).
    private let routerSocket: ZMQSocket
    private let pubSocket: ZMQSocket
    /// The endpoints actually bound (`tcp://127.0.0.1:*` with its port), as `start()` returns them.
    public let endpoints: (commands: String, events: String)
    private let replies: ReplySink
    /// Internal, not private: a test waits on its depth to know which commands a batch will take.
    let commands: BoundedQueue<CommandJob>
    private let queries: FairQueue<QueryJob>
    private var router: RouterLoop?
    private var writer: CommandWriter?
    private var relay: Relay?
    private var workers: QueryWorkers?
    private let stats = ServerStats()
    private let checkpointer: Checkpointer
    private let walHook: WalHook
    private let finished = DispatchGroup()
    /// `wait()` closes once; later calls find `closed`.
    private let waitLock = Lock()
    private var closed = false

    /// Binds both endpoints, then opens (creating if needed) the store at `config.dbPath`, after
    /// taking its lock: throws `StoreError(.locked)` when another server or an offline tool holds
    /// the database (before binding anything). Throws `ServerConfigError` when `writerCPU` or
    /// `ioCPU` names a CPU the process may not run on, or an endpoint cannot be bound (a TCP port
    /// in use), having created nothing. When it throws after binding, the `ipc://` socket files it
    /// bound are removed.
    public init(config: ServerConfig, clock: Clock = SystemClock()) throws {
        for (option, cpu) in [("writer-cpu", config.writerCPU), ("io-cpu", config.ioCPU)] {
            guard let cpu else { continue }
            guard CPUPinning.supported else { throw ServerConfigError("--\(option): pinning threads needs Linux") }
            if !CPUPinning.allowed(cpu) {
                let allowed = CPUPinning.allowedCPUs.map(String.init).joined(separator: ",")
                throw ServerConfigError("--\(option) \(cpu): this process may not run on CPU \(cpu) (it may on \(allowed))")
            }
        }
        // An ipc:// endpoint a live process listens on (another server's): binding would take it.
        for (endpoint, option) in [(config.commandsEndpoint, "commands"), (config.eventsEndpoint, "events")] {
            guard let path = Self.socketFile(of: endpoint) else { continue }
            if Self.unixSocketAccepts(path) {
                throw ServerConfigError("--\(option) \(endpoint): a process is listening there already (another server?); "
                                        + "binding would take the endpoint from it")
            }
            // libzmq's bind removes whatever file is at the path, a socket or not.
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT != S_IFSOCK {
                throw ServerConfigError("--\(option) \(endpoint): \(path) exists and is not a socket; binding would delete it")
            }
        }
        self.config = config
        // A store another process holds is refused first, as the lock would (without this, the
        // bind below would come first: it would take the ipc:// endpoint of a server on this
        // store where `unixSocketAccepts` cannot tell, another user's socket, say).
        try StoreLock.refuseIfHeld(database: config.dbPath)
        // Bound before the store's lock is taken and the store opened: a port in use (another
        // process's) then fails the start with no file created. Until 2026-12-07 the bind came in
        // `start()`, and such a start left a new, empty store and its lock file behind.
        let socketFiles = SocketFiles(config.commandsEndpoint, config.eventsEndpoint)
        context = try ZMQContext(ioThreadCPUs: config.ioCPU.map { [$0] } ?? [])
        (routerSocket, pubSocket) = try Self.bindSockets(context, config)
        endpoints = (try routerSocket.lastEndpoint, try pubSocket.lastEndpoint)
        replies = try ReplySink()
        lock = try StoreLock.acquire(database: config.dbPath, holder: "slam serve")
        let store = try EventStore.open(path: config.dbPath, sync: config.sync, migrations: Projector.migrations,
                                        readers: max(2, config.queryWorkers + 2))
        self.store = store
        // What the store must show before it is served, read once: its read-model schema, how far
        // the relay got, and its last event (position and time).
        let (missing, publishedAt, last) = try Self.closingOnError(store) { try store.pool.read { db in
            (try Projector.missingSchema(db),
             Int64(try EventStore.meta(db, "publishedSeq") ?? "0") ?? 0,
             try Row.fetchOne(db, sql: "SELECT position, occurred_at FROM events ORDER BY position DESC LIMIT 1")
                .map { (position: $0[0] as Int64, occurredAt: $0[1] as Millis) })
        } }
        let headAt = last?.position ?? 0
        let refusal: String?
        if !missing.isEmpty {
            // A read-model table or index missing (dropped, or damage): refused, not half served
            // (an audit's dropped `seats` table made every hold fail INTERNAL while charges went through).
            refusal = "lacks read-model " + missing.map { "\($0.type) \($0.name)" }.joined(separator: ", ")
                + ": `slam projections rebuild --db \(config.dbPath)` creates them again from the log"
        } else if publishedAt > headAt {
            // The relay past the log's head: events it published are gone from the end of the log
            // (damage). Served, the next events would take their positions again, and subscribers,
            // which hold the old ones, would never get the new (an audit's).
            refusal = "says its events were published up to seq \(publishedAt), but its log ends at \(headAt): events "
                + "subscribers have are gone from it (a damaged store); `slam verify` checks it; restore it from a copy"
        } else {
            refusal = nil
        }
        if let refusal {
            try? store.pool.close()
            throw ServerConfigError("the store \(config.dbPath) " + refusal)
        }
        // Decisions never go back in time, even across a restart (see `NonDecreasingClock`).
        let lastRecorded = last?.occurredAt
        if let last = lastRecorded, last > clock.now() + 1000 {
            logError("the clock is \(last - clock.now()) ms behind the last recorded event (\(RFC3339.format(last))): "
                     + "decisions are made at that event's time until the clock catches up")
        }
        self.clock = NonDecreasingClock(clock, notBefore: lastRecorded ?? .min)
        // The writer's page cache (see `ServerConfig.writerCacheKiB`), statement journals in
        // memory (not in temporary files), and the WAL policy (see `Checkpointer`).
        try Self.closingOnError(store) {
            try store.pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA cache_size = -\(config.writerCacheKiB)")
                try db.execute(sql: "PRAGMA temp_store = MEMORY")
                try db.execute(sql: "PRAGMA journal_size_limit = \(config.walTruncateBytes)")
            }
        }
        checkpointer = Checkpointer(path: config.dbPath, config: config, stats: stats)
        let hook = WalHook(checkpointer: checkpointer, soft: Int32(config.walAutocheckpointPages),
                           hard: Int32(8 * config.walAutocheckpointPages))
        store.pool.writeWithoutTransaction { db in hook.install(on: db) }
        walHook = hook
        // Nothing from here on throws: a failure above has closed the store's connections (the
        // WAL hook, once installed, points at this object).
        commands = BoundedQueue(capacity: config.commandQueueCapacity)
        queries = FairQueue(capacity: config.queryQueueCapacity, key: \.peer)
        socketFiles.keep()
    }

    /// Runs `body`; when it throws, closes the store's connections first. A failed `init` then
    /// lets go of the lock after them: the lock's descriptor of the database file, closed, would
    /// drop the process's `fcntl` locks on it, SQLite's own, while its connections were still open.
    private static func closingOnError<T>(_ store: EventStore, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            try? store.pool.close()
            throw error
        }
    }

    /// Binds, naming the option on failure: libzmq's "Address already in use" alone does not say
    /// which of the two endpoints (`tcp://127.0.0.1:5555` and `tcp://0.0.0.0:5555` are two
    /// spellings of one port).
    private static func bind(_ socket: ZMQSocket, _ endpoint: String, option: String) throws {
        do {
            try socket.bind(endpoint)
        } catch let error as ZMQError {
            throw ServerConfigError("--\(option) \(endpoint): \(error.message)")
        }
    }

    /// The ROUTER and the PUB, set up and bound. Each bind failure names its option.
    private static func bindSockets(_ context: ZMQContext, _ config: ServerConfig) throws -> (router: ZMQSocket, pub: ZMQSocket) {
        let routerSocket = try context.socket(.router)
        try routerSocket.setRouterMandatory(true)
        try routerSocket.setMaxMessageSize(config.maxFrameBytes)
        try routerSocket.setReceiveHighWaterMark(1000)
        try routerSocket.setSendHighWaterMark(config.replyHighWaterMark)
        try routerSocket.setLinger(ms: 1000)
        try Self.bind(routerSocket, config.commandsEndpoint, option: "commands")
        let pub = try context.socket(.pub)
        try pub.setSendHighWaterMark(config.publishHighWaterMark)
        // What a subscriber sends is its subscriptions, and no topic is that long: without a
        // bound, one frame announced as 4 GiB was read into memory as it came.
        try pub.setMaxMessageSize(ServerConfig.maxSubscriptionBytes)
        try pub.setLinger(ms: 1000)
        try Self.bind(pub, config.eventsEndpoint, option: "events")
        return (routerSocket, pub)
    }

    /// Starts every thread on the sockets `init` bound. Returns the bound endpoints
    /// (`tcp://127.0.0.1:*` comes back with its port).
    public func start() throws -> (commands: String, events: String) {
        guard self.router == nil, !waitLock.withLock({ closed }) else {
            throw ServerConfigError("the server is started already, or closed")
        }
        let pub = pubSocket

        var relayRef: Relay?
        let writer = try CommandWriter(store: store, clock: clock, config: config, queue: commands, replies: replies,
                                       stats: stats, walHook: walHook) { seq, cats in
            relayRef?.notify(headSeq: seq, categories: cats)
        }
        let relay = Relay(store: store, socket: pub, published: writer.publishedSeq, heads: writer.heads)
        relayRef = relay
        let workers = QueryWorkers(store: store, clock: clock, queue: queries, replies: replies, stats: stats,
                                   publishedSeq: writer.publishedSeq, config: config)
        let router = RouterLoop(socket: routerSocket, decoder: RequestDecoder(maxRequestBytes: config.maxRequestBytes),
                                commands: commands, queries: queries, replies: replies, stats: stats,
                                parking: ParkedReplies.Limits(totalBytes: config.replyParkBudgetBytes,
                                                              clientBytes: config.replyParkClientBytes,
                                                              maxAgeMs: config.replyParkMaxAgeMs))
        // The last step that can fail, before anything is kept: `wait()` after a failed start
        // must find no relay or router of a start that never ran (it closes the sockets itself).
        try checkpointer.start()
        self.writer = writer
        self.relay = relay
        self.workers = workers
        self.router = router

        relay.start()
        workers.start(count: config.queryWorkers)
        finished.enter()
        ThreadRole.start("slam-writer", priority: .foreground, cpu: config.writerCPU) { [self] in
            writer.run()
            // Everything queued is answered; let the readers finish, then the router.
            workers.wait()
            router.drained.set(true)
            replies.wakeup.signal()
            finished.leave()
        }
        finished.enter()
        ThreadRole.start("slam-router", cpu: config.ioCPU) { [self] in
            router.run()
            finished.leave()
        }
        return endpoints
    }

    /// Asks the server to stop (any thread, e.g. a signal handler); `wait()` returns when done.
    public func stop() {
        router?.stopRequested.set(true)
        replies.wakeup.signal()
    }

    /// Blocks until the server has stopped, then publishes what is left and closes. A later call
    /// (or one from another thread meanwhile) returns once that is done.
    public func wait() {
        waitLock.lock()
        defer { waitLock.unlock() }
        guard !closed else { return }
        defer { closed = true }
        finished.wait()
        relay?.stop()
        // Closed by their threads when they ran; a server never started closes them here, or
        // the context's termination below would wait for them for ever.
        routerSocket.close()
        pubSocket.close()
        // The relay's last position is recorded for the next start.
        if let writer { writer.runBatch([], sweep: false) }
        if let writer {
            checkpointer.stop()
            writer.close()
        }
        context.terminate()
        uninstallWalHook()
        try? store.pool.close()
        // Every sync is over: the writer, the relay and the checkpointer have stopped, and the
        // store's connections are closed (a close may checkpoint).
        if let path = config.timingsPath, let timings = writer?.timings {
            do { try timings.write(to: path) } catch { logError("cannot write the timings to \(path): \(error)") }
        }
        lock.release()
    }

    private var walHookInstalled = true

    /// The WAL hook points at `walHook`, which goes with this object: the store may outlive it.
    private func uninstallWalHook() {
        guard walHookInstalled else { return }
        walHookInstalled = false
        store.pool.writeWithoutTransaction { db in walHook.uninstall(from: db) }
    }

    deinit {
        uninstallWalHook()
        // Closed before the lock goes: releasing it closes a descriptor of the database file,
        // which would drop SQLite's own locks on it (a server dropped without `wait()`, such as
        // one whose `start()` failed).
        try? store.pool.close()
        lock.release()
    }
}

extension Server {
    /// The file of an `ipc://` endpoint, or nil for another transport or an abstract socket
    /// (`ipc://@name`, which has no file).
    static func socketFile(of endpoint: String) -> String? {
        guard endpoint.hasPrefix("ipc://") else { return nil }
        let path = String(endpoint.dropFirst("ipc://".count))
        return path.hasPrefix("@") ? nil : path
    }

    /// Whether a process accepts connections on the unix socket at `path` (a live `ipc://`
    /// endpoint). libzmq's bind of an `ipc://` endpoint removes the file of a socket already
    /// there, so a second server would take a live server's endpoint from it without a word. A
    /// socket file no process listens on any more (a server killed) is refused the connection
    /// and may be bound again. Non-blocking: a listener whose backlog is full answers EAGAIN,
    /// and counts as listening.
    static func unixSocketAccepts(_ path: String) -> Bool {
        #if os(Linux)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return rc == 0 || errno == EAGAIN || errno == EINPROGRESS
        #else
        return false
        #endif
    }
}

/// The socket files of a server's `ipc://` endpoints, removed when it is dropped before `keep()`:
/// libzmq leaves a socket's file behind when it closes, and a server whose `init` failed after
/// binding must leave no file (a stale socket file is harmless, the next bind replaces it, but a
/// failed start should create nothing).
private final class SocketFiles {
    private var paths: [String]

    init(_ endpoints: String...) {
        paths = endpoints.compactMap(Server.socketFile(of:))
    }

    func keep() { paths = [] }

    deinit {
        for path in paths {
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        }
    }
}

/// A configuration the server cannot start with.
public struct ServerConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
