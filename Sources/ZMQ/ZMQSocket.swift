import CZMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A libzmq socket. Like libzmq's, it must be used by one thread at a time: the thread that owns
/// it (handing it over once, e.g. at thread creation, is fine; sharing it is not).
///
/// Every call after `close()` throws `ZMQError` with `ENOTSOCK`.
public final class ZMQSocket: @unchecked Sendable {
    /// The type this socket was created with.
    public let type: ZMQSocketType
    /// Keeps the context alive (and so un-terminated) while this socket exists.
    private let context: ZMQContext
    /// `nil` once closed.
    private var handle: UnsafeMutableRawPointer?

    init(handle: UnsafeMutableRawPointer, type: ZMQSocketType, context: ZMQContext) {
        self.handle = handle
        self.type = type
        self.context = context
    }

    deinit {
        close()
    }

    /// The open handle, or `ENOTSOCK` once closed.
    @inline(__always)
    func liveHandle(_ operation: @autoclosure () -> String) throws -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError(operation: operation(), errno: ENOTSOCK) }
        return handle
    }

    // MARK: Endpoints

    /// `zmq_bind`. `tcp://127.0.0.1:*` binds an ephemeral port (read it back with `lastEndpoint`).
    /// Throws e.g. `EADDRINUSE`, `EINVAL` (malformed endpoint), `EPROTONOSUPPORT` (unknown transport).
    public func bind(_ endpoint: String) throws {
        let socket = try liveHandle("zmq_bind(\"\(endpoint)\")")
        try allowIPv6(for: endpoint)
        _ = try zmqCall("zmq_bind(\"\(endpoint)\")") { zmq_bind(socket, endpoint) }
    }

    /// `zmq_connect`: returns at once; the connection is made (and remade) in the background.
    public func connect(_ endpoint: String) throws {
        let socket = try liveHandle("zmq_connect(\"\(endpoint)\")")
        try allowIPv6(for: endpoint)
        _ = try zmqCall("zmq_connect(\"\(endpoint)\")") { zmq_connect(socket, endpoint) }
    }

    /// libzmq leaves IPv6 off (`ZMQ_IPV6` 0): an IPv6 address (`tcp://[::1]:5555`) then fails
    /// to bind (`ENODEV`), and a connection to it is never made, without an error. It is turned
    /// on for such an endpoint only, so that `tcp://*:P` still binds IPv4 alone.
    private func allowIPv6(for endpoint: String) throws {
        if endpoint.hasPrefix("tcp://[") { try setOption(ZMQ_IPV6, 1 as Int32) }
    }

    /// `zmq_disconnect` from an endpoint given to `connect` (throws `ENOENT` for any other).
    public func disconnect(_ endpoint: String) throws {
        let socket = try liveHandle("zmq_disconnect(\"\(endpoint)\")")
        _ = try zmqCall("zmq_disconnect(\"\(endpoint)\")") { zmq_disconnect(socket, endpoint) }
    }

    /// `ZMQ_LAST_ENDPOINT`: the endpoint last bound or connected, with wildcards resolved
    /// (a `tcp://127.0.0.1:*` bind reads back as `tcp://127.0.0.1:<port>`); `""` if none.
    public var lastEndpoint: String {
        get throws {
            let socket = try liveHandle("zmq_getsockopt(ZMQ_LAST_ENDPOINT)")
            var buffer = [CChar](repeating: 0, count: 1024)
            var size = buffer.count
            _ = try zmqCall("zmq_getsockopt(ZMQ_LAST_ENDPOINT)") {
                zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, &buffer, &size)
            }
            return String(cString: buffer)
        }
    }

    // MARK: Options

    /// `zmq_setsockopt` of an `int` option (`ZMQ_LINGER`, `ZMQ_SNDHWM`, ...).
    public func setOption(_ option: Int32, _ value: Int32) throws {
        let socket = try liveHandle("zmq_setsockopt(\(option), \(value))")
        var value = value
        _ = try zmqCall("zmq_setsockopt(\(option), \(value))") {
            zmq_setsockopt(socket, option, &value, MemoryLayout<Int32>.size)
        }
    }

    /// `zmq_setsockopt` of an `int64_t` option (`ZMQ_MAXMSGSIZE`).
    public func setOption(_ option: Int32, _ value: Int64) throws {
        let socket = try liveHandle("zmq_setsockopt(\(option), \(value))")
        var value = value
        _ = try zmqCall("zmq_setsockopt(\(option), \(value))") {
            zmq_setsockopt(socket, option, &value, MemoryLayout<Int64>.size)
        }
    }

    /// `zmq_setsockopt` of a binary option (`ZMQ_SUBSCRIBE`, `ZMQ_ROUTING_ID`, ...); may be empty.
    public func setOption(_ option: Int32, _ value: [UInt8]) throws {
        let socket = try liveHandle("zmq_setsockopt(\(option), \(value.count) bytes)")
        _ = try value.withUnsafeBytes { bytes in
            try zmqCall("zmq_setsockopt(\(option), \(value.count) bytes)") {
                zmq_setsockopt(socket, option, bytes.baseAddress, bytes.count)
            }
        }
    }

    /// `zmq_getsockopt` of an `int` option (`ZMQ_LINGER`, `ZMQ_RCVMORE`, `ZMQ_EVENTS`, `ZMQ_FD`, ...).
    public func getInt32Option(_ option: Int32) throws -> Int32 {
        let socket = try liveHandle("zmq_getsockopt(\(option))")
        var value: Int32 = 0
        var size = MemoryLayout<Int32>.size
        _ = try zmqCall("zmq_getsockopt(\(option))") { zmq_getsockopt(socket, option, &value, &size) }
        return value
    }

    /// `ZMQ_LINGER`: how long `close`/`terminate` keep unsent messages (-1 forever, the libzmq
    /// default; 0 drops them at once).
    public func setLinger(ms: Int32) throws { try setOption(ZMQ_LINGER, ms) }

    /// `ZMQ_SNDHWM`: messages queued per peer before sends block (or drop, by socket type); 0 = no limit.
    public func setSendHighWaterMark(_ messages: Int32) throws { try setOption(ZMQ_SNDHWM, messages) }

    /// `ZMQ_RCVHWM`: messages queued per peer on receive; 0 = no limit.
    public func setReceiveHighWaterMark(_ messages: Int32) throws { try setOption(ZMQ_RCVHWM, messages) }

    /// `ZMQ_MAXMSGSIZE`: a peer sending a larger message is disconnected; -1 = no limit.
    public func setMaxMessageSize(_ bytes: Int64) throws { try setOption(ZMQ_MAXMSGSIZE, bytes) }

    /// `ZMQ_ROUTER_MANDATORY`: a ROUTER send to an unknown routing id fails (`send` returns
    /// false) instead of being dropped silently.
    public func setRouterMandatory(_ on: Bool) throws { try setOption(ZMQ_ROUTER_MANDATORY, Int32(on ? 1 : 0)) }

    /// `ZMQ_ROUTING_ID`: the id a ROUTER peer sees for this socket (1...255 bytes, not starting
    /// with a zero byte). Set before `connect`.
    public func setRoutingId(_ id: [UInt8]) throws { try setOption(ZMQ_ROUTING_ID, id) }

    /// `ZMQ_RCVTIMEO`: a blocking `receive` returns nil after `ms` (-1, the default, waits forever).
    public func setReceiveTimeout(ms: Int32) throws { try setOption(ZMQ_RCVTIMEO, ms) }

    /// `ZMQ_SNDTIMEO`: a blocking `send` returns false after `ms` (-1, the default, waits forever).
    public func setSendTimeout(ms: Int32) throws { try setOption(ZMQ_SNDTIMEO, ms) }

    /// `ZMQ_SUBSCRIBE` (SUB): receive messages whose first frame starts with `prefix` (empty: all).
    public func subscribe(_ prefix: [UInt8]) throws { try setOption(ZMQ_SUBSCRIBE, prefix) }

    /// `ZMQ_SUBSCRIBE` with the UTF-8 bytes of `prefix`.
    public func subscribe(_ prefix: String) throws { try subscribe(Array(prefix.utf8)) }

    /// `ZMQ_UNSUBSCRIBE` (SUB): removes one earlier `subscribe` of the same prefix.
    public func unsubscribe(_ prefix: [UInt8]) throws { try setOption(ZMQ_UNSUBSCRIBE, prefix) }

    /// `ZMQ_UNSUBSCRIBE` with the UTF-8 bytes of `prefix`.
    public func unsubscribe(_ prefix: String) throws { try unsubscribe(Array(prefix.utf8)) }

    /// `ZMQ_IMMEDIATE`: queue messages only to completed connections (sends block or fail while
    /// none is up, instead of queueing for a peer that may never come).
    public func setImmediate(_ on: Bool) throws { try setOption(ZMQ_IMMEDIATE, Int32(on ? 1 : 0)) }

    /// `ZMQ_FD`: a file descriptor that becomes readable when the socket's `ZMQ_EVENTS` may have
    /// changed (edge-triggered; check `ZMQ_EVENTS` or `receive(dontWait: true)` after it fires).
    public var fileDescriptor: Int32 {
        get throws { try getInt32Option(ZMQ_FD) }
    }

    // MARK: Messages

    /// Sends all frames as one multipart message (`zmq_send`, `ZMQ_SNDMORE` on all but the last;
    /// empty frames are sent as zero-length frames). libzmq delivers a multipart message whole
    /// or not at all.
    ///
    /// Returns false, with nothing sent, when the message cannot be queued: `dontWait` and the
    /// send would block, or the send timeout expired (`EAGAIN`), or a ROUTER_MANDATORY socket
    /// has no peer with the routing id of the first frame (`EHOSTUNREACH`). Throws `ZMQError`
    /// for any other failure (e.g. `ETERM`, `EFSM` for a REQ sending twice). `frames` must not be
    /// empty.
    @discardableResult
    public func send(_ frames: [[UInt8]], dontWait: Bool = false) throws -> Bool {
        try sendOutcome(frames, dontWait: dontWait) == .sent
    }

    /// What became of a message `sendOutcome` was given.
    public enum SendOutcome: Equatable, Sendable {
        case sent
        /// `EAGAIN`: not queued; the peer's pipe is full (`dontWait`) or the send timed out.
        case wouldBlock
        /// `EHOSTUNREACH`: not queued; a ROUTER_MANDATORY socket has no peer of that routing id.
        case unreachable
    }

    /// `send`, telling a full pipe (worth trying again later) from a peer that is gone.
    public func sendOutcome(_ frames: [[UInt8]], dontWait: Bool = false) throws -> SendOutcome {
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        let socket = try liveHandle("zmq_send")
        let last = frames.count - 1
        for index in 0...last {
            var flags: Int32 = index < last ? ZMQ_SNDMORE : 0
            // Only the first frame can fail softly: once it is queued, libzmq accepts the rest
            // of the message at once (high-water marks count whole messages).
            if index == 0, dontWait { flags |= ZMQ_DONTWAIT }
            let sent: Int32?
            do {
                sent = try frames[index].withUnsafeBytes { bytes in
                    // A NULL buffer with length 0 is explicitly allowed by zmq_send.
                    try zmqCall("zmq_send", soft: index == 0 ? [.wouldBlock] : []) { zmq_send(socket, bytes.baseAddress, bytes.count, flags) }
                }
            } catch let error as ZMQError where index == 0 && error.errno == EHOSTUNREACH {
                return .unreachable
            }
            if sent == nil { return .wouldBlock }
        }
        return .sent
    }

    /// Receives one whole multipart message, frame by frame (`zmq_msg_recv`, while `ZMQ_RCVMORE`),
    /// zero-length frames as empty arrays.
    ///
    /// Returns nil when nothing is ready and `dontWait`, or when the receive timeout expired
    /// (`EAGAIN`); never a partial message. Throws `ZMQError` for any other failure (e.g. `ETERM`
    /// after the context is shut down, `EFSM` for a REQ receiving before sending).
    public func receive(dontWait: Bool = false) throws -> [[UInt8]]? {
        try receive(dontWait: dontWait, keepingFrames: .max)?.frames
    }

    /// A message received with `receive(dontWait:keepingFrames:)`.
    public struct Received {
        /// The first frames, at most the number kept.
        public var frames: [[UInt8]]
        /// How many frames the message had, and their bytes: kept or not.
        public var frameCount: Int
        public var byteCount: Int
    }

    /// Receives one whole multipart message like `receive(dontWait:)`, but copies only its first
    /// `keep` frames: the rest are received (the message is taken whole) and counted, not kept.
    /// A peer can send a message of millions of frames (`ZMQ_MAXMSGSIZE` bounds each, not their
    /// number); copying them all took seconds and a gigabyte for a request refused by its count.
    public func receive(dontWait: Bool = false, keepingFrames keep: Int) throws -> Received? {
        let socket = try liveHandle("zmq_msg_recv")
        return try withUnsafeTemporaryAllocation(of: zmq_msg_t.self, capacity: 1) { storage in
            let message = storage.baseAddress!
            _ = try zmqCall("zmq_msg_init") { zmq_msg_init(message) }
            defer { _ = try? zmqCall("zmq_msg_close") { zmq_msg_close(message) } }
            var received = Received(frames: [], frameCount: 0, byteCount: 0)
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            repeat {
                // Only the first frame can be missing: libzmq delivers multipart messages whole.
                let soft: SoftErrors = received.frameCount == 0 ? .wouldBlock : []
                guard try zmqCall("zmq_msg_recv", soft: soft, { zmq_msg_recv(message, socket, flags) }) != nil else {
                    return nil
                }
                let size = zmq_msg_size(message)
                received.frameCount += 1
                received.byteCount += size
                if received.frames.count < keep {
                    if size == 0 {
                        received.frames.append([])
                    } else {
                        let data = UnsafeRawPointer(zmq_msg_data(message)!)
                        received.frames.append([UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: data, byteCount: size)
                            count = size
                        })
                    }
                }
                flags = 0
            } while zmq_msg_more(message) != 0
            return received
        }
    }

    // MARK: Lifetime

    /// `zmq_close`. Idempotent; also done by `deinit`. Unsent messages are kept per `ZMQ_LINGER`.
    public func close() {
        guard let socket = handle else { return }
        handle = nil
        _ = try? zmqCall("zmq_close") { zmq_close(socket) }
    }
}
