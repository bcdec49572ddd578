import CZMQ
#if canImport(Glibc)
import Glibc
#endif

#if os(Linux)
/// A file descriptor that becomes readable at a set time on `CLOCK_MONOTONIC`, to wake a thread
/// blocked in `zmqPoll` (poll `.fd(timer.fd)` next to its sockets) with microsecond precision:
/// `zmq_poll`'s own timeout counts whole milliseconds, so a thread that must act every 200 µs
/// (the bench's open loop at 10,000/s) would otherwise act up to a millisecond late. Linux only
/// (a `timerfd`).
public final class PollTimer: @unchecked Sendable {
    /// The descriptor to poll for readability.
    public let fd: Int32

    /// Creates the timer, disarmed. Throws `ZMQError` with the system `errno` on failure.
    public init() throws {
        let fd = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        guard fd >= 0 else { throw ZMQError(operation: "timerfd_create", errno: errno) }
        self.fd = fd
    }

    deinit { _ = close(fd) }

    /// Makes `fd` readable once `CLOCK_MONOTONIC` reaches `micros` (at once if that has passed),
    /// replacing any earlier setting; the expiry stays pending until `drain()`.
    public func arm(atMicros micros: UInt64) {
        // An all-zero it_value disarms a timerfd: a time in the past must still fire.
        let at = max(micros, 1)
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(at / 1_000_000)
        spec.it_value.tv_nsec = Int(at % 1_000_000) * 1000
        _ = timerfd_settime(fd, Int32(TFD_TIMER_ABSTIME), &spec, nil)
    }

    /// Consumes a pending expiry, so `fd` is no longer readable.
    public func drain() {
        var expirations: UInt64 = 0
        _ = read(fd, &expirations, MemoryLayout<UInt64>.size)
    }
}
#endif
