#if canImport(Glibc)
import Glibc
#endif

/// The process's limit on open files (`RLIMIT_NOFILE`). Every client connection is a file, and
/// the default soft limit (1,024 on many systems) is far below what the server can serve: at the
/// limit, libzmq's I/O thread spins on failed `accept`s, and queries needing a new reader
/// connection fail (robustness probe). `slam serve` raises the soft limit to the hard one.
public enum OpenFileLimit {
    /// Raises the soft limit to the hard one (a no-op when they are equal, where the system
    /// refuses, or off Linux).
    public static func raiseToHard() {
        #if os(Linux)
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max
        else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        #endif
    }
}
