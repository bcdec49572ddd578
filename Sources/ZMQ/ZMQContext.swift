import CZMQ
import Foundation

/// A libzmq context: the I/O threads and the factory of sockets.
///
/// Thread-safe (libzmq contexts are). Every socket keeps its context alive, so the context is
/// only deinitialized after all its sockets are, and its `deinit` terminates it.
public final class ZMQContext: @unchecked Sendable {
    private let lock = NSLock()
    /// `nil` once `terminate()` has started; guarded by `lock`.
    private var handle: UnsafeMutableRawPointer?

    /// Creates a context with `ioThreads` I/O threads (`ZMQ_IO_THREADS`, at least 1), pinned to
    /// `ioThreadCPUs` when it is not empty (`ZMQ_THREAD_AFFINITY_CPU_ADD`; libzmq pins every
    /// thread it starts for the context, the I/O threads and the mostly idle reaper, when the
    /// first socket is made). Linux only. Throws `EINVAL` for a CPU the calling thread may not
    /// run on: libzmq would stop the process (an assertion) when its thread failed to pin.
    public init(ioThreads: Int = 1, ioThreadCPUs: [Int] = []) throws {
        for cpu in ioThreadCPUs where !CPUPinning.allowed(cpu) {
            throw ZMQError(operation: "zmq_ctx_set(ZMQ_THREAD_AFFINITY_CPU_ADD, \(cpu))",
                           errno: CPUPinning.supported ? EINVAL : ENOTSUP)
        }
        let context = try zmqCall("zmq_ctx_new") { zmq_ctx_new() }
        do {
            _ = try zmqCall("zmq_ctx_set(ZMQ_IO_THREADS, \(ioThreads))") {
                zmq_ctx_set(context, ZMQ_IO_THREADS, Int32(clamping: max(1, ioThreads)))
            }
            for cpu in ioThreadCPUs {
                _ = try zmqCall("zmq_ctx_set(ZMQ_THREAD_AFFINITY_CPU_ADD, \(cpu))") {
                    zmq_ctx_set(context, ZMQ_THREAD_AFFINITY_CPU_ADD, Int32(clamping: cpu))
                }
            }
        } catch {
            _ = try? zmqCall("zmq_ctx_term") { zmq_ctx_term(context) }
            throw error
        }
        handle = context
    }

    deinit {
        terminate()
    }

    /// Creates a socket of `type`, to be used from one thread at a time (it may be handed to
    /// another thread once, with a memory barrier, e.g. at thread creation).
    /// Throws `ZMQError` with `ETERM` once the context is shut down or terminated.
    public func socket(_ type: ZMQSocketType) throws -> ZMQSocket {
        lock.lock()
        defer { lock.unlock() }
        guard let context = handle else {
            throw ZMQError(operation: "zmq_socket(\(type))", errno: ETERM)
        }
        let socket = try zmqCall("zmq_socket(\(type))") { zmq_socket(context, type.cValue) }
        return ZMQSocket(handle: socket, type: type, context: self)
    }

    /// `zmq_ctx_shutdown`: every blocking call on this context's sockets (on any thread) returns
    /// `ETERM` at once, and so does every later call except `close`. Does not wait; idempotent.
    public func shutdown() {
        lock.lock()
        defer { lock.unlock() }
        guard let context = handle else { return }
        _ = try? zmqCall("zmq_ctx_shutdown") { zmq_ctx_shutdown(context) }
    }

    /// `zmq_ctx_term`, retrying `EINTR`: shuts the context down, then blocks until every socket
    /// of it is closed (and, per each socket's linger, its pending messages are sent or dropped).
    /// Idempotent: only the first call waits; later calls return at once.
    public func terminate() {
        lock.lock()
        let context = handle
        handle = nil
        lock.unlock()
        guard let context else { return }
        _ = try? zmqCall("zmq_ctx_term") { zmq_ctx_term(context) }
    }
}

/// The socket types this module supports (libzmq's stable ones).
public enum ZMQSocketType: Sendable, CustomStringConvertible {
    case router, dealer, req, rep, pub, sub, push, pull, pair, xpub, xsub

    /// The libzmq constant (`ZMQ_ROUTER`, ...).
    var cValue: Int32 {
        switch self {
        case .router: return ZMQ_ROUTER
        case .dealer: return ZMQ_DEALER
        case .req: return ZMQ_REQ
        case .rep: return ZMQ_REP
        case .pub: return ZMQ_PUB
        case .sub: return ZMQ_SUB
        case .push: return ZMQ_PUSH
        case .pull: return ZMQ_PULL
        case .pair: return ZMQ_PAIR
        case .xpub: return ZMQ_XPUB
        case .xsub: return ZMQ_XSUB
        }
    }

    /// The libzmq name without its prefix, e.g. `ROUTER`.
    public var description: String {
        switch self {
        case .router: return "ROUTER"
        case .dealer: return "DEALER"
        case .req: return "REQ"
        case .rep: return "REP"
        case .pub: return "PUB"
        case .sub: return "SUB"
        case .push: return "PUSH"
        case .pull: return "PULL"
        case .pair: return "PAIR"
        case .xpub: return "XPUB"
        case .xsub: return "XSUB"
        }
    }
}
