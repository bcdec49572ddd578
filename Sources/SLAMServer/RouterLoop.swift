import Foundation
import SLAMDomain
import ZMQ

/// The ROUTER's thread: it alone touches the command socket. It reads requests, refuses the
/// malformed at once, hands commands to the writer and queries to the readers (OVERLOADED at
/// once when their queue is full), and sends the replies they produce.
final class RouterLoop: @unchecked Sendable {
    private let socket: ZMQSocket
    private let decoder: RequestDecoder
    private let commands: BoundedQueue<CommandJob>
    private let queries: BoundedQueue<QueryJob>
    private let replies: ReplySink
    /// Set by `Server.stop()`: stop reading new requests.
    let stopRequested = Shared(false)
    /// Set once the writer and readers have drained: send what is left and leave.
    let drained = Shared(false)

    init(socket: ZMQSocket, decoder: RequestDecoder, commands: BoundedQueue<CommandJob>, queries: BoundedQueue<QueryJob>,
         replies: ReplySink) {
        self.socket = socket
        self.decoder = decoder
        self.commands = commands
        self.queries = queries
        self.replies = replies
    }

    func run() {
        var accepting = true
        while true {
            var items: [ZMQPollItem] = accepting ? [.fd(replies.wakeup.fd), .socket(socket)] : [.fd(replies.wakeup.fd)]
            do {
                try zmqPoll(&items, timeoutMs: 100)
            } catch {
                logError("router poll: \(error)")
                break
            }
            if items[0].isReadable { replies.wakeup.drain() }
            if accepting, items.count > 1, items[1].isReadable { receiveAvailable() }
            flush()
            if accepting, stopRequested.get() {
                accepting = false
                commands.close()
                queries.close()
            }
            if !accepting, drained.get() {
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
        switch decoder.decode(frames) {
        case .refused(let r, let requestId, let isCommand):
            send(Wire.frames(peer: frames[0], header: Wire.replyHeader(requestId: requestId, ok: false,
                                                                          replayed: isCommand ? false : nil),
                             body: Wire.errorBody(r)))
        case .command(let job):
            if !commands.offer(job) {
                send(Wire.frames(peer: job.peer, header: Wire.replyHeader(requestId: job.requestId, ok: false, replayed: false),
                                 body: Wire.errorBody(Rejection(.overloaded, "the command queue is full; retry later with the same key"))))
            }
        case .query(let job):
            if !queries.offer(job) {
                send(Wire.frames(peer: job.peer, header: Wire.replyHeader(requestId: job.requestId, ok: false),
                                 body: Wire.errorBody(Rejection(.overloaded, "the query queue is full; retry later"))))
            }
        }
    }

    private func flush() {
        for reply in replies.takeAll() { send(reply) }
    }

    /// Sends without blocking; a reply to a client that is gone is dropped (its retry with the
    /// same key gets the reply from the idempotency record).
    private func send(_ frames: [[UInt8]]) {
        do { _ = try socket.send(frames, dontWait: true) } catch { logError("router send: \(error)") }
    }
}
