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

    init(socket: ZMQSocket, decoder: RequestDecoder, commands: BoundedQueue<CommandJob>, queries: BoundedQueue<QueryJob>,
         replies: ReplySink, stats: ServerStats) {
        self.socket = socket
        self.stats = stats
        self.decoder = decoder
        self.commands = commands
        self.queries = queries
        self.replies = replies
    }

    func run() {
        var queuesOpen = true
        while true {
            var items: [ZMQPollItem] = [.fd(replies.wakeup.fd), .socket(socket)]
            do {
                try zmqPoll(&items, timeoutMs: 100)
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
            flush()
            if queuesOpen, stopRequested.get() {
                queuesOpen = false
                commands.close()
                queries.close()
            }
            if !queuesOpen, drained.get() {
                receiveAvailable()
                flush()
                break
            }
        }
        socket.close()
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

    /// Sends without blocking; a reply to a client that is gone, or that has left
    /// `replyHighWaterMark` replies untaken, is dropped and counted (a retry with the same key
    /// gets a command's reply from its idempotency record).
    private func send(_ frames: [[UInt8]]) {
        do {
            if try !socket.send(frames, dontWait: true) { stats.repliesDropped.update { $0 += 1 } }
        } catch {
            logError("router send: \(error)")
        }
    }
}
