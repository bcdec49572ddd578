import Foundation
import SLAMDomain
import ZMQ

/// The ROUTER's thread: it alone touches the command socket. It reads requests, refuses the
/// malformed at once, hands commands to the writer and queries to the readers (OVERLOADED at
/// once when their queue is full), and sends the replies they produce. Once the server is
/// stopping it goes on reading until the writer and readers have answered everything queued,
/// and answers each request it reads meanwhile OVERLOADED without executing it, so a client
/// learns at once to retry with the same key (against the server's next start) rather than
/// waiting out its timeout; then it looks once more, answers what came in meanwhile the same
/// way, and closes.
final class RouterLoop: @unchecked Sendable {
    private let socket: ZMQSocket
    private let decoder: RequestDecoder
    private let commands: BoundedQueue<CommandJob>
    private let queries: BoundedQueue<QueryJob>
    private let replies: ReplySink
    private let stats: ServerStats
    /// Set by `Server.stop()`: execute no request read from now on.
    let stopRequested = Shared(false)
    /// Set once the writer and readers have drained: send what is left and leave.
    let drained = Shared(false)
    /// Replies libzmq would not take yet (their client's pipe full: `replyHighWaterMark` replies
    /// untaken, and the sockets' buffers full), by client, in order, kept here and tried again
    /// every `parkRetryMs` until the client reads: each request still gets its one reply
    /// (PROTOCOL.md section 2) when a client pipelines more than that before reading. Within
    /// `parkBudgetBytes` in all; past it, a reply is dropped and counted, as one to a client gone.
    private var parked: [[UInt8]: ArraySlice<[[UInt8]]>] = [:]
    private var parkedBytes = 0
    private let parkBudgetBytes: Int
    private let parkRetryMs = 2
    /// How long a stopping server goes on offering parked replies to clients that do not read.
    private let parkedAtStopMs: Int64 = 1000

    init(socket: ZMQSocket, decoder: RequestDecoder, commands: BoundedQueue<CommandJob>, queries: BoundedQueue<QueryJob>,
         replies: ReplySink, stats: ServerStats, parkBudgetBytes: Int) {
        self.socket = socket
        self.stats = stats
        self.decoder = decoder
        self.commands = commands
        self.queries = queries
        self.replies = replies
        self.parkBudgetBytes = parkBudgetBytes
    }

    func run() {
        var queuesOpen = true
        while true {
            var items: [ZMQPollItem] = [.fd(replies.wakeup.fd), .socket(socket)]
            do {
                try zmqPoll(&items, timeoutMs: parked.isEmpty ? 100 : parkRetryMs)
            } catch {
                // Leaving, the queues close, so the writer and readers drain and the server can
                // still stop (nothing else closes them).
                logError("router poll: \(error)")
                commands.close()
                queries.close()
                break
            }
            if items[0].isReadable { replies.wakeup.drain() }
            if items[1].isReadable { receiveAvailable() }
            if !parked.isEmpty { retryParked() }
            flush()
            if queuesOpen, stopRequested.get() {
                queuesOpen = false
                commands.close()
                queries.close()
            }
            if !queuesOpen, drained.get() {
                receiveAvailable()
                flush()
                offerParkedBeforeClosing()
                break
            }
        }
        socket.close()
    }

    /// Parked replies get `parkedAtStopMs` more to be taken; what is left then is dropped.
    private func offerParkedBeforeClosing() {
        let until = DispatchTime.now().uptimeNanoseconds + UInt64(parkedAtStopMs) * 1_000_000
        while !parked.isEmpty, DispatchTime.now().uptimeNanoseconds < until {
            var none: [ZMQPollItem] = []
            _ = try? zmqPoll(&none, timeoutMs: parkRetryMs)
            retryParked()
        }
        for (_, waiting) in parked { stats.repliesDropped.update { $0 += Int64(waiting.count) } }
        parked.removeAll()
        parkedBytes = 0
    }

    private func receiveAvailable() {
        for _ in 0..<1024 {
            let message: [[UInt8]]?
            do { message = try socket.receive(dontWait: true) } catch {
                logError("router receive: \(error)")
                return
            }
            guard let frames = message else { return }
            handle(frames)
        }
    }

    private func handle(_ frames: [[UInt8]]) {
        // Read for every request, so that one read after `stop()` returned is never executed.
        let stopping = stopRequested.get()
        switch decoder.decode(frames) {
        case .refused(let r, let requestId, let isCommand):
            send(Wire.frames(peer: frames[0], header: Wire.replyHeader(requestId: requestId, ok: false,
                                                                          replayed: isCommand ? false : nil),
                             body: Wire.errorBody(r)))
        case .command(let job):
            if stopping || !commands.offer(job) {
                let why = stopping ? "the server is stopping" : "the command queue is full"
                send(Wire.frames(peer: job.peer, header: Wire.replyHeader(requestId: job.requestId, ok: false, replayed: false),
                                 body: Wire.errorBody(Rejection(.overloaded, why + "; retry later with the same key"))))
            }
        case .query(let job):
            if stopping || !queries.offer(job) {
                let why = stopping ? "the server is stopping" : "the query queue is full"
                send(Wire.frames(peer: job.peer, header: Wire.replyHeader(requestId: job.requestId, ok: false),
                                 body: Wire.errorBody(Rejection(.overloaded, why + "; retry later"))))
            }
        }
    }

    private func flush() {
        for reply in replies.takeAll() { send(reply) }
    }

    /// Sends without blocking; a reply libzmq will not take yet is parked (`parked`), behind any
    /// already parked for its client; one to a client that is gone, or past the parking budget,
    /// is dropped and counted (a retry with the same key gets a command's reply from its
    /// idempotency record).
    private func send(_ frames: [[UInt8]]) {
        let client = frames[0]
        if !parked.isEmpty, parked[client] != nil { return park(frames, for: client) }
        do {
            switch try socket.sendOutcome(frames, dontWait: true) {
            case .sent: break
            case .wouldBlock: park(frames, for: client)
            case .unreachable: stats.repliesDropped.update { $0 += 1 }
            }
        } catch {
            logError("router send: \(error)")
        }
    }

    private func park(_ frames: [[UInt8]], for client: [UInt8]) {
        let size = Self.size(frames)
        guard parkedBytes + size <= parkBudgetBytes else { return stats.repliesDropped.update { $0 += 1 } }
        parked[client, default: []].append(frames)
        parkedBytes += size
    }

    /// Sends each client's parked replies, in order, until its pipe is full again; a client gone
    /// has its replies dropped and counted.
    private func retryParked() {
        for client in Array(parked.keys) {
            guard var waiting = parked[client] else { continue }
            while let next = waiting.first {
                let outcome: ZMQSocket.SendOutcome
                do { outcome = try socket.sendOutcome(next, dontWait: true) } catch {
                    logError("router send: \(error)")
                    outcome = .unreachable
                }
                if outcome == .wouldBlock { break }
                if outcome == .unreachable {
                    stats.repliesDropped.update { $0 += Int64(waiting.count) }
                    parkedBytes -= waiting.reduce(0) { $0 + Self.size($1) }
                    waiting = []
                    break
                }
                waiting.removeFirst()
                parkedBytes -= Self.size(next)
            }
            parked[client] = waiting.isEmpty ? nil : waiting
        }
    }

    private static func size(_ frames: [[UInt8]]) -> Int { frames.reduce(0) { $0 + $1.count } }
}
