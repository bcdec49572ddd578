import CZMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file descriptor that another thread can make readable, to wake a thread blocked in
/// `zmqPoll` (poll `.fd(wakeup.fd)` next to its sockets).
///
/// `signal()` is thread-safe and never blocks; signals coalesce until `drain()`. Linux: an
/// `eventfd`; elsewhere: a non-blocking pipe.
public final class Wakeup: @unchecked Sendable {
    /// The descriptor to poll for readability.
    public let fd: Int32
    /// The descriptor `signal()` writes to (`fd` itself for an eventfd).
    private let writeFD: Int32

    /// Creates the descriptor(s). Throws `ZMQError` with the system `errno` on failure.
    public init() throws {
        #if os(Linux)
        let fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else { throw ZMQError(operation: "eventfd", errno: errno) }
        self.fd = fd
        self.writeFD = fd
        #else
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw ZMQError(operation: "pipe", errno: errno) }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        self.fd = fds[0]
        self.writeFD = fds[1]
        #endif
    }

    deinit {
        _ = close(fd)
        if writeFD != fd { _ = close(writeFD) }
    }

    /// Makes `fd` readable until the next `drain()`. Thread-safe; never blocks (a full counter or
    /// pipe already means "signalled").
    public func signal() {
        var one: UInt64 = 1
        while write(writeFD, &one, MemoryLayout<UInt64>.size) < 0 && errno == EINTR {}
    }

    /// Consumes every pending signal, so `fd` is no longer readable. Call it on the polling thread
    /// after `fd` polled readable, before acting on whatever the signal announced.
    public func drain() {
        var buffer: UInt64 = 0
        while true {
            let n = read(fd, &buffer, MemoryLayout<UInt64>.size)
            if n > 0 { continue }
            if n < 0 && errno == EINTR { continue }
            return  // EAGAIN: empty (or EOF/another error: nothing more to read)
        }
    }
}
