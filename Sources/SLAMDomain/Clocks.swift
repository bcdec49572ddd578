#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `clock_gettime(id)` in milliseconds.
private func millis(_ id: clockid_t) -> Millis {
    var ts = timespec()
    clock_gettime(id, &ts)
    return Millis(ts.tv_sec) * 1000 + Millis(ts.tv_nsec) / 1_000_000
}

/// The wall clock.
public struct SystemClock: Clock {
    public init() {}
    public func now() -> Millis { millis(CLOCK_REALTIME) }
}

/// A clock that moves only when told to: tests set it instead of sleeping.
public final class ManualClock: Clock, @unchecked Sendable {
    private var current: Millis
    private let lock = Lock()

    public init(_ start: Millis) { current = start }
    public func now() -> Millis { lock.withLock { current } }
    public func set(_ t: Millis) { lock.withLock { current = t } }
    public func advance(by ms: Millis) { lock.withLock { current += ms } }
}

/// Real time that only moves forward (CLOCK_MONOTONIC, in milliseconds from an arbitrary
/// start): for the server's cadences (a sweep every 200 ms, a heartbeat every second), which a
/// step of the wall clock must neither stop for its length nor hurry. Not for decisions, nor
/// anything written down.
public struct MonotonicClock: Clock {
    public init() {}
    public func now() -> Millis { millis(CLOCK_MONOTONIC) }
}

/// A clock that never goes backwards: `base`'s time, or the latest it has given when `base`
/// has stepped back since (an NTP step, someone setting the time). The server decides with one,
/// so the times it records never decrease: the waiting queue relies on it (tokens expire in the
/// order they joined or were admitted), and so does anyone reading the log. `notBefore` seeds
/// it, with the last recorded event's time, so a clock found behind at start is held there too.
public final class NonDecreasingClock: Clock, @unchecked Sendable {
    /// The clock it reads: what a client's deadline, an instant of the wall clock, is judged by.
    public let base: Clock
    private var latest: Millis
    private let lock = Lock()

    public init(_ base: Clock, notBefore: Millis = .min) {
        self.base = base
        latest = notBefore
    }

    public func now() -> Millis {
        let t = base.now()
        return lock.withLock {
            if t > latest { latest = t }
            return latest
        }
    }

    /// The clock a deadline is judged by: `clock`'s base when it is a `NonDecreasingClock`
    /// (a client sets its deadline by the wall clock, which a step back does not make pass).
    public static func deadlines(of clock: Clock) -> Clock { (clock as? NonDecreasingClock)?.base ?? clock }
}

/// A small mutex (pthread), usable from any thread.
public final class Lock: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    public init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    public func lock() { pthread_mutex_lock(&mutex) }
    public func unlock() { pthread_mutex_unlock(&mutex) }
    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

/// A value shared between threads (flags, counters), every access under a lock.
public final class Shared<T>: @unchecked Sendable {
    private var value: T
    private let lock = Lock()
    public init(_ v: T) { value = v }
    public func get() -> T { lock.withLock { value } }
    public func set(_ v: T) { lock.withLock { value = v } }
    @discardableResult
    public func update<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&value) } }
    /// Sets the value and returns the one it replaced.
    public func exchange(_ v: T) -> T {
        lock.withLock {
            let old = value
            value = v
            return old
        }
    }
}
