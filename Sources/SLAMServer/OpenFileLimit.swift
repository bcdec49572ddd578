#if canImport(Glibc)
import Glibc
#endif

/// The process's limit on open files (`RLIMIT_NOFILE`). Every client connection is a file, and
/// the default soft limit (1,024 on many systems) is far below what the server can serve: at the
/// limit, libzmq's I/O thread spins on failed `accept`s, and queries needing a new reader
/// connection fail (robustness probe). `slam serve` raises the soft limit to the hard one.
public enum OpenFileLimit {
    /// The soft and hard limits now in force (nil where `getrlimit` is not available).
    public static var current: (soft: UInt64, hard: UInt64)? {
        #if os(Linux)
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
        #else
        return nil
        #endif
    }

    /// Raises the soft limit to the hard one (a no-op when they are equal, or where the system
    /// refuses); returns the limits then in force.
    @discardableResult
    public static func raiseToHard() -> (soft: UInt64, hard: UInt64)? {
        #if os(Linux)
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
        #endif
        return current
    }
}
