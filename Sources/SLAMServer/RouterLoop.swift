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
/// way, offers replies still parked for clients that have not read (`ParkedReplies`) for a
/// second more, and closes.
final class RouterLoop: @unchecked Sendable {
    private let socket: ZMQSocket
    private let decoder: RequestDecoder
    private let commands: BoundedQueue<CommandJob>
    private let queries: FairQueue<QueryJob>
    private let replies: ReplySink
    private let stats: ServerStats
    /// Set by `Server.stop()`: execute no request read from now on.
    let stopRequested = Shared(false)
    /// Set once the writer and readers have drained: send what is left and leave.
    let drained = Shared(false)
    /// Replies the socket would not take yet (`ParkedReplies`), offered again at `nextRetryAt`:
    /// within 2 ms of a client's first being parked or of some being taken, twice as long after
    /// each offer none was taken, up to 64 ms (a client that does not read costs the thread a
    /// wake-up every 64 ms).
    private var parked: ParkedReplies
    private var nextRetryAt: Millis = 0
    private var retryIntervalMs: Millis = 2
    /// How long a stopping server goes on offering parked replies to clients that do not read.
    private let parkedAtStopMs: Millis = 1000
    /// The retries' cadence: real time, never stepped back (as the relay's heartbeats).
    private let clock: Clock = MonotonicClock()

    init(socket: ZMQSocket, decoder: RequestDecoder, commands: BoundedQueue<CommandJob>, queries: FairQueue<QueryJob>,
         replies: ReplySink, stats: ServerStats, parking: ParkedReplies.Limits) {
        self.socket = socket
        self.stats = stats
        self.decoder = decoder
        self.commands = commands
        self.queries = queries
        self.replies = replies
        parked = ParkedReplies(limits: parking)
    }

    func run() {
        var queuesOpen = true
        while true {
            var items: [ZMQPollItem] = [.fd(replies.wakeup.fd), .socket(socket)]
            do {
                try zmqPoll(&items, timeoutMs: parked.isEmpty ? 100 : Int(max(0, nextRetryAt - clock.now())))
            } catch {
                // Leaving, the queues close, so the writer and readers drain and the server can
                // still stop (nothing else closes them).
                logError("router poll: \(error)")
                commands.close()
                queries.close()
                stats.repliesDropped.update { $0 += Int64(parked.removeAll()) }
                break
            }
            if items[0].isReadable { replies.wakeup.drain() }
            if items[1].isReadable { receiveAvailable() }
            if !parked.isEmpty, clock.now() >= nextRetryAt { retryParked() }
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

    /// Parked replies get `parkedAtStopMs` more to be taken, requests read meanwhile answered
    /// OVERLOADED (the server is stopping); what is left then is dropped and counted.
    private func offerParkedBeforeClosing() {
        let until = clock.now() + parkedAtStopMs
        while !parked.isEmpty, clock.now() < until {
            var items: [ZMQPollItem] = [.socket(socket)]
            _ = try? zmqPoll(&items, timeoutMs: 2)
            receiveAvailable()
            retryParked()
            flush()
        }
        stats.repliesDropped.update { $0 += Int64(parked.removeAll()) }
    }

    private func receiveAvailable() {
        for _ in 0..<1024 {
            let message: ZMQSocket.Received?
            do { message = try socket.receive(dontWait: true, keepingFrames: RequestDecoder.framesKept) } catch {
                logError("router receive: \(error)")
                return
            }
            guard let message else { return }
            handle(message)
        }
    }

    private func handle(_ message: ZMQSocket.Received) {
        let frames = message.frames
        // Read for every request, so that one read after `stop()` returned is never executed.
        let stopping = stopRequested.get()
        switch decoder.decode(message) {
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
                send(job.overloaded(stopping ? "the server is stopping" : "the query queue is full"))
            }
        }
    }

    private func flush() {
        for reply in replies.takeAll() { send(reply) }
    }

    /// Sends without blocking; a reply the socket will not take yet is parked (`parked`), behind
    /// any already parked for its client; one to a client that is gone, or past the parking
    /// bounds, is dropped and counted (a retry with the same key gets a command's reply from its
    /// idempotency record).
    private func send(_ frames: [[UInt8]]) {
        if parked.has(frames[0]) { return park(frames) }
        do {
            switch try socket.sendOutcome(frames, dontWait: true) {
            case .sent: break
            case .wouldBlock: park(frames)
            case .unreachable: stats.repliesDropped.update { $0 += 1 }
            }
        } catch {
            logError("router send: \(error)")
            stats.repliesDropped.update { $0 += 1 }
        }
    }

    private func park(_ frames: [[UInt8]]) {
        let wasEmpty = parked.isEmpty, newClient = !parked.has(frames[0])
        let now = clock.now()
        guard parked.park(frames, at: now) else { return stats.repliesDropped.update { $0 += 1 } }
        if newClient {
            // Not behind another client's backed-off interval.
            retryIntervalMs = 2
            nextRetryAt = wasEmpty ? now + 2 : min(nextRetryAt, now + 2)
        }
    }

    private func retryParked() {
        let (sent, dropped) = parked.retry(at: clock.now()) { frames in
            do { return try socket.sendOutcome(frames, dontWait: true) } catch {
                logError("router send: \(error)")
                return .unreachable
            }
        }
        if dropped > 0 { stats.repliesDropped.update { $0 += Int64(dropped) } }
        retryIntervalMs = sent > 0 ? 2 : min(retryIntervalMs * 2, 64)
        nextRetryAt = clock.now() + retryIntervalMs
    }
}
