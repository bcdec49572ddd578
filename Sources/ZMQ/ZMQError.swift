import CZMQ

/// A failed libzmq (or system) call: which call failed, and the `errno` it reported.
///
/// Infrastructure errors carry their code (STYLE.md): compare `errno` with the C constants
/// (`EINVAL`, `EADDRINUSE`, `ETERM`, ...) rather than matching on `message`.
public struct ZMQError: Error, CustomStringConvertible {
    /// The call that failed, with its most useful argument, e.g. `zmq_bind("tcp://x:1")`.
    public let operation: String
    /// The error number reported by `zmq_errno()` (or the system `errno` for non-zmq calls).
    public let errno: Int32

    /// Creates an error for `operation` failing with `errno`.
    public init(operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// The human-readable text of `errno`, from `zmq_strerror` (which also knows system errors).
    public var message: String {
        String(cString: zmq_strerror(errno))
    }

    /// True when the socket's context was shut down or terminated (`ETERM`): the owning thread
    /// should close its sockets and stop.
    public var isContextTerminated: Bool {
        errno == ETERM
    }

    /// `"<operation> failed: <message> (errno <n>)"`.
    public var description: String {
        "\(operation) failed: \(message) (errno \(errno))"
    }
}
