import CZMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors that a caller of `zmqCall` wants back as a value (`nil`) instead of a throw.
struct SoftErrors: OptionSet {
    let rawValue: UInt8
    /// `EAGAIN`: a non-blocking call would block, or a send/receive timeout expired.
    static let wouldBlock = SoftErrors(rawValue: 1 << 0)
    /// `EINTR`: a signal interrupted the call; return instead of retrying (used by `zmq_poll`,
    /// so its caller's loop sees signal-driven state at once).
    static let interrupted = SoftErrors(rawValue: 1 << 2)
}

/// The one funnel every fallible `zmq_*` call goes through (STYLE.md, after swift-nio's
/// `System.swift`).
///
/// Runs `body` until it does not fail with `EINTR` (unless `.interrupted` is soft), returns
/// `nil` for the errors listed in `soft`, traps on `EFAULT` (an invalid handle: always a bug in
/// this module), and throws `ZMQError` for the rest. `operation` is only evaluated on failure,
/// so passing an interpolated string costs nothing on the success path.
@inline(__always)
func zmqCall<Result>(
    _ operation: @autoclosure () -> String,
    soft: SoftErrors = [],
    failed: (Result) -> Bool,
    _ body: () throws -> Result
) throws -> Result? {
    while true {
        let result = try body()
        if !failed(result) { return result }
        let code = zmq_errno()
        switch code {
        case EINTR:
            if soft.contains(.interrupted) { return nil }
            continue
        case EAGAIN where soft.contains(.wouldBlock):
            return nil
        case EFAULT:
            preconditionFailure("\(operation()) failed with EFAULT: an invalid zmq handle (a bug)")
        default:
            throw ZMQError(operation: operation(), errno: code)
        }
    }
}

/// `zmqCall` for the `int`-returning calls (failure is `-1`); `nil` only for a soft error.
@inline(__always)
func zmqCall(
    _ operation: @autoclosure () -> String,
    soft: SoftErrors = [],
    _ body: () throws -> Int32
) throws -> Int32? {
    try zmqCall(operation(), soft: soft, failed: { $0 == -1 }, body)
}

/// `zmqCall` for the pointer-returning calls (failure is `NULL`); never soft.
@inline(__always)
func zmqCall(
    _ operation: @autoclosure () -> String,
    _ body: () throws -> UnsafeMutableRawPointer?
) throws -> UnsafeMutableRawPointer {
    // No soft errors were asked for, so a nil here can only mean success returned nil: impossible.
    try zmqCall(operation(), soft: [], failed: { $0 == nil }, body)!!
}
