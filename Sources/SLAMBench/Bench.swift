import Foundation

/// What `slam bench` is told.
public struct BenchOptions: Sendable {
    public var server = "tcp://127.0.0.1:5555"
    public var events = "tcp://127.0.0.1:5556"
    public var seats = 50_000
    public var users = 20_000
    /// Run the rush through a waiting queue.
    public var queue = false
    public var queueMaxActive = 5_000
    /// Open loop at this many commands/s; nil with `max` for the closed loop.
    public var rate: Int? = nil
    /// Closed loop: every connection keeps `inFlight` requests outstanding.
    public var max = false
    public var connections = 8
    public var inFlight = 32
    /// Seconds of load after set-up.
    public var duration: Double = 10
    /// Driver threads.
    public var threads = 2
    /// Seconds without a reply after which a request is sent again, the same bytes.
    public var replyTimeout: Double = 5
    public var json: String? = nil
    public var seed: UInt64 = 42
    /// Check invariants through the server at the end.
    public var verify = true
    /// A progress line on stderr every second.
    public var progress = true
    public init() {}
}

/// Monotonic microseconds.
@inline(__always)
func nowMicros() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}

/// Wall-clock milliseconds (to compare with events' `occurredAt`).
@inline(__always)
func wallMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// A small fast PRNG (SplitMix64), seeded so runs are repeatable: per bench driver, and for
/// `slam debug-generate`'s stores.
public struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
