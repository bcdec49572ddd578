/// Milliseconds since the Unix epoch. Every time in the domain is one of these; RFC 3339 text
/// exists only at the wire boundary.
public typealias Millis = Int64

/// Where decisions get "now". The server uses `SystemClock`; tests use `ManualClock` and move time
/// instead of sleeping.
public protocol Clock: Sendable {
    func now() -> Millis
}
